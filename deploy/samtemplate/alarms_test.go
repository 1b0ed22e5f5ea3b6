package samtemplate

import (
	"fmt"
	"reflect"
	"strings"
)

const alarmType = "AWS::CloudWatch::Alarm"

// alarmTopic is the optional SNS topic every alarm notifies, and its condition.
const alarmTopic, alarmTopicCond = "AlarmTopicArn", "HasAlarmTopic"

// resolve evaluates v's Fn::If under the given conditions, dropping what resolves to
// AWS::NoValue, as CloudFormation does when it creates the resource.
func resolve(v any, conds map[string]bool) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		if l, ok := x["Fn::If"].([]any); ok && len(x) == 1 && len(l) == 3 {
			c, _ := l[0].(string)
			if conds[c] {
				return resolve(l[1], conds)
			}
			return resolve(l[2], conds)
		}
		if n, ok := refName(x); ok && n == "AWS::NoValue" {
			return nil, false
		}
		out := map[string]any{}
		for k, e := range x {
			if r, ok := resolve(e, conds); ok {
				out[k] = r
			}
		}
		return out, true
	case []any:
		out := []any{}
		for _, e := range x {
			if r, ok := resolve(e, conds); ok {
				out = append(out, r)
			}
		}
		return out, true
	}
	return v, true
}

// watches reports whether alarm p watches namespace/metric with the dimension name = value
// (value compared as the template spells it: a Ref or a GetAtt), directly or in one of its
// metric-math MetricStats.
func watches(p map[string]any, namespace, metric, dim string, value any) bool {
	match := func(m map[string]any) bool {
		if m["Namespace"] != namespace || m["MetricName"] != metric {
			return false
		}
		for _, d := range asList(m["Dimensions"]) {
			if asMap(d)["Name"] == dim && reflect.DeepEqual(asMap(d)["Value"], value) {
				return true
			}
		}
		return false
	}
	if match(p) {
		return true
	}
	for _, q := range asList(p["Metrics"]) {
		if match(asMap(dig(q, "MetricStat", "Metric"))) {
			return true
		}
	}
	return false
}

// checkAlarms: the alarms an operator needs exist, each on what it must watch (every dead-letter
// queue's depth above 0, the worker's errors, the age of the work queue's oldest message, the
// API's 5xx rate), and every alarm notifies AlarmTopicArn, in ALARM and back to OK, when the
// parameter is set, and nothing (no empty action list, which CloudFormation refuses) when it is
// not.
func checkAlarms(tpl map[string]any) []error {
	var errs []error
	p := asMap(dig(tpl, "Parameters", alarmTopic))
	if p == nil {
		return []error{fmt.Errorf("parameter %s is missing", alarmTopic)}
	}
	if d, ok := p["Default"]; !ok || d != "" {
		errs = append(errs, fmt.Errorf("parameter %s: Default = %v, want \"\" (optional: no actions)", alarmTopic, p["Default"]))
	}
	if pat, _ := p["AllowedPattern"].(string); !strings.HasPrefix(pat, "^$|") {
		errs = append(errs, fmt.Errorf("parameter %s: AllowedPattern = %q, want one that admits the empty default (^$|...)", alarmTopic, pat))
	}
	wantCond := map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": alarmTopic}, ""}}}}
	if c := dig(tpl, "Conditions", alarmTopicCond); !reflect.DeepEqual(c, wantCond) {
		errs = append(errs, fmt.Errorf("condition %s = %v, want !Not [!Equals [!Ref %s, \"\"]]", alarmTopicCond, c, alarmTopic))
	}

	res := resources(tpl)
	alarms := map[string]map[string]any{}
	for id, r := range res {
		if r["Type"] == alarmType {
			alarms[id] = asMap(r["Properties"])
		}
	}
	type need struct {
		what                   string
		namespace, metric, dim string
		value                  any
		zero                   bool // the threshold must be 0 (any at all is an alarm)
	}
	needs := []need{
		{"the worker's errors", "AWS/Lambda", "Errors", "FunctionName", map[string]any{"Ref": "WorkerFunction"}, true},
		{"the work queue's oldest message", "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName",
			map[string]any{"Fn::GetAtt": []any{"WorkQueue", "QueueName"}}, false},
		{"the API's 5xx", "AWS/ApiGateway", "5xx", "ApiId", map[string]any{"Ref": "HttpApi"}, false},
	}
	for _, id := range sortedKeys(res) {
		rp := asMap(dig(res[id], "Properties", "RedrivePolicy"))
		if dlq, _, ok := getAtt(rp["deadLetterTargetArn"]); ok {
			needs = append(needs, need{"dead-letter queue " + dlq + "'s depth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
				map[string]any{"Fn::GetAtt": []any{dlq, "QueueName"}}, true})
		}
	}
	for _, n := range needs {
		found := ""
		for _, id := range sortedKeys(alarms) {
			if watches(alarms[id], n.namespace, n.metric, n.dim, n.value) {
				found = id
				break
			}
		}
		if found == "" {
			errs = append(errs, fmt.Errorf("no alarm on %s (%s %s by %s)", n.what, n.namespace, n.metric, n.dim))
			continue
		}
		a := alarms[found]
		if th, ok := literalInt(a["Threshold"]); n.zero && (!ok || th != 0 || a["ComparisonOperator"] != "GreaterThanThreshold") {
			errs = append(errs, fmt.Errorf("%s: on %s it must fire on anything above 0 (Threshold %v, %v)", found, n.what, a["Threshold"], a["ComparisonOperator"]))
		}
	}

	topic := []any{map[string]any{"Ref": alarmTopic}}
	for _, id := range sortedKeys(alarms) {
		for _, set := range []bool{true, false} {
			r, _ := resolve(alarms[id], map[string]bool{alarmTopicCond: set})
			got := asMap(r)
			for _, k := range []string{"AlarmActions", "OKActions"} {
				v, present := got[k]
				switch {
				case set && !reflect.DeepEqual(v, topic):
					errs = append(errs, fmt.Errorf("%s: with %s set, %s = %v, want [!Ref %s]", id, alarmTopic, k, v, alarmTopic))
				case !set && present:
					errs = append(errs, fmt.Errorf("%s: with %s empty, %s = %v, want none (!If [%s, ..., !Ref AWS::NoValue])", id, alarmTopic, k, v, alarmTopicCond))
				}
			}
		}
		if a := alarms[id]; a["TreatMissingData"] != "notBreaching" {
			errs = append(errs, fmt.Errorf("%s: TreatMissingData = %v, want notBreaching (an idle deployment is no alarm)", id, a["TreatMissingData"]))
		}
	}
	return errs
}

// checkReadiness: GET /readyz reads the work queue's attributes (sqsqueue.Queue.Reachable), so
// the API may call sqs:GetQueueAttributes on that queue, and on no other resource.
func checkReadiness(tpl map[string]any) []error {
	const fn = "ApiFunction"
	stmts, _, _ := policies(asMap(asMap(tpl["Resources"])[fn]))
	granted := false
	var errs []error
	for _, st := range stmts {
		if st.effect != "Allow" {
			continue
		}
		for _, a := range st.actions {
			if !strings.EqualFold(a, "sqs:GetQueueAttributes") {
				continue
			}
			for _, r := range st.resources {
				if q, attr, ok := getAtt(r); ok && q == "WorkQueue" && attr == "Arn" {
					granted = true
				} else {
					errs = append(errs, fmt.Errorf("%s: sqs:GetQueueAttributes on %v, but GET /readyz reads only the work queue", fn, r))
				}
			}
		}
	}
	if !granted {
		errs = append(errs, fmt.Errorf("%s: no sqs:GetQueueAttributes on !GetAtt WorkQueue.Arn: GET /readyz would answer work_queue_unreachable", fn))
	}
	return errs
}
