package samtemplate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Settings are what a stand-in for AWS (the local stack) needs to run the template's functions as
// AWS runs them: the queues and their attributes, each function's SQS event source mapping and
// schedule, and which environment variables name which queue. A parameter is read as its
// Default, the value a deployment gets unless it overrides it.
type Settings struct {
	Queues    map[string]Queue    // by logical id
	SQSEvents map[string]SQSEvent // by the logical id of the function it invokes
	Schedules map[string]Schedule // by the logical id of the function it invokes
	// QueueURLVars maps an environment variable set to !Ref <queue> (the queue's URL) to the
	// queue's logical id.
	QueueURLVars map[string]string
}

// Queue is an AWS::SQS::Queue.
type Queue struct {
	// Attributes are the numeric SQS attributes the template sets (VisibilityTimeout,
	// MessageRetentionPeriod, DelaySeconds, MaximumMessageSize, ReceiveMessageWaitTimeSeconds), in
	// SQS's units; one left out has SQS's default.
	Attributes map[string]int
	// DeadLetterQueue is the logical id of the RedrivePolicy's target, empty without one;
	// MaxReceiveCount is the receives after which a message moves there.
	DeadLetterQueue string
	MaxReceiveCount int
}

// queueAttributes are the numeric queue properties, which are also the SQS attribute names.
var queueAttributes = []string{"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds"}

// queueIgnored are queue properties that change nothing a stand-in can observe (encryption,
// naming, tags, who may redrive into the queue).
var queueIgnored = []string{"SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "QueueName", "Tags", "RedriveAllowPolicy"}

// SQSEvent is an SQS event source mapping, with the settings of the function that bound it.
type SQSEvent struct {
	Queue string // logical id of the queue it polls
	// BatchSize is the most messages per invocation; Lambda's default 10.
	BatchSize int
	// MaximumBatchingWindow is how long the poller may wait to fill a batch; default 0.
	MaximumBatchingWindow time.Duration
	// MaximumConcurrency is ScalingConfig.MaximumConcurrency; 0 when unset.
	MaximumConcurrency int
	// ReportBatchItemFailures: the function reports failed items, and only they are redelivered.
	ReportBatchItemFailures bool
	// Timeout is the function's (its own, else Globals', else Lambda's 3 s).
	Timeout time.Duration
	// ReservedConcurrency is the function's ReservedConcurrentExecutions; 0 when unset.
	ReservedConcurrency int
}

// Schedule is a Schedule event: the function invoked every Every, each run bounded by its
// Timeout.
type Schedule struct {
	Every   time.Duration
	Timeout time.Duration
}

// ReadSettings reads the settings from a parsed template (Parse's result). A value it cannot
// resolve to a number (an intrinsic other than a Ref to a parameter with a Default), a second
// SQS event or schedule on one function, a schedule expression other than rate(), and a queue
// property it does not know are errors: a stand-in that ignored them would run differently from
// the deployment without saying so.
func ReadSettings(tpl map[string]any) (Settings, error) {
	s := Settings{Queues: map[string]Queue{}, SQSEvents: map[string]SQSEvent{}, Schedules: map[string]Schedule{},
		QueueURLVars: map[string]string{}}
	var errs []error
	res := resources(tpl)
	for _, id := range sortedKeys(res) {
		if res[id]["Type"] != queueType {
			continue
		}
		q, err := readQueue(tpl, res, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Queues[id] = q
	}
	isQueue := func(v any) (string, bool) {
		n, ok := refName(v)
		return n, ok && res[n]["Type"] == queueType
	}
	for name, v := range asMap(dig(tpl, "Globals", "Function", "Environment", "Variables")) {
		if q, ok := isQueue(v); ok {
			s.QueueURLVars[name] = q
		}
	}
	fns := functions(tpl)
	for _, id := range sortedKeys(fns) {
		for name, v := range asMap(dig(fns[id], "Properties", "Environment", "Variables")) {
			if q, ok := isQueue(v); ok {
				s.QueueURLVars[name] = q
			}
		}
		timeout, ok := fnTimeout(tpl, id)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: Timeout %v is not a number", id, fnProp(tpl, id, "Timeout")))
			continue
		}
		evs := events(fns[id])
		for _, name := range sortedKeys(evs) {
			where := fmt.Sprintf("%s event %s", id, name)
			p := asMap(evs[name]["Properties"])
			switch evs[name]["Type"] {
			case "SQS":
				ev, err := readSQSEvent(tpl, res, where, p)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				ev.Timeout = time.Duration(timeout) * time.Second
				if v := fnProp(tpl, id, "ReservedConcurrentExecutions"); v != nil {
					if ev.ReservedConcurrency, ok = intValue(tpl, v); !ok {
						errs = append(errs, fmt.Errorf("%s: ReservedConcurrentExecutions %v is not a number", id, v))
					}
				}
				if _, dup := s.SQSEvents[id]; dup {
					errs = append(errs, fmt.Errorf("%s: a second SQS event", where))
				}
				s.SQSEvents[id] = ev
			case "Schedule", "ScheduleV2":
				expr, _ := p["Schedule"].(string)
				if expr == "" {
					expr, _ = p["ScheduleExpression"].(string)
				}
				every, err := parseRate(expr)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", where, err))
					continue
				}
				if _, dup := s.Schedules[id]; dup {
					errs = append(errs, fmt.Errorf("%s: a second schedule", where))
				}
				s.Schedules[id] = Schedule{Every: every, Timeout: time.Duration(timeout) * time.Second}
			}
		}
	}
	return s, errors.Join(errs...)
}

func readQueue(tpl map[string]any, res map[string]map[string]any, id string) (Queue, error) {
	q := Queue{Attributes: map[string]int{}}
	props := asMap(res[id]["Properties"])
	for _, k := range sortedKeys(props) {
		v := props[k]
		switch {
		case slices.Contains(queueAttributes, k):
			n, ok := intValue(tpl, v)
			if !ok {
				return q, fmt.Errorf("%s: %s %v is not a number", id, k, v)
			}
			q.Attributes[k] = n
		case k == "RedrivePolicy":
			rp := asMap(v)
			dlq, attr, ok := getAtt(rp["deadLetterTargetArn"])
			if !ok || attr != "Arn" || res[dlq]["Type"] != queueType {
				return q, fmt.Errorf("%s: RedrivePolicy.deadLetterTargetArn %v is not !GetAtt <an AWS::SQS::Queue>.Arn", id, rp["deadLetterTargetArn"])
			}
			n, ok := intValue(tpl, rp["maxReceiveCount"])
			if !ok || n < 1 {
				return q, fmt.Errorf("%s: RedrivePolicy.maxReceiveCount %v is not a count", id, rp["maxReceiveCount"])
			}
			q.DeadLetterQueue, q.MaxReceiveCount = dlq, n
		case slices.Contains(queueIgnored, k):
		default:
			return q, fmt.Errorf("%s: property %s has no local equivalent; teach samtemplate.ReadSettings and the local stack about it", id, k)
		}
	}
	return q, nil
}

func readSQSEvent(tpl map[string]any, res map[string]map[string]any, where string, p map[string]any) (SQSEvent, error) {
	var ev SQSEvent
	qid, attr, ok := getAtt(p["Queue"])
	if !ok || attr != "Arn" || res[qid]["Type"] != queueType {
		return ev, fmt.Errorf("%s: Queue %v is not !GetAtt <an AWS::SQS::Queue>.Arn", where, p["Queue"])
	}
	ev.Queue = qid
	num := func(v any, def int) int {
		if v == nil {
			return def
		}
		n, ok2 := intValue(tpl, v)
		if !ok2 {
			ok = false
			return def
		}
		return n
	}
	ok = true
	ev.BatchSize = num(p["BatchSize"], 10)
	ev.MaximumBatchingWindow = time.Duration(num(p["MaximumBatchingWindowInSeconds"], 0)) * time.Second
	ev.MaximumConcurrency = num(dig(p, "ScalingConfig", "MaximumConcurrency"), 0)
	if !ok {
		return ev, fmt.Errorf("%s: BatchSize, MaximumBatchingWindowInSeconds or ScalingConfig.MaximumConcurrency is not a number", where)
	}
	for _, t := range asList(p["FunctionResponseTypes"]) {
		if t == "ReportBatchItemFailures" {
			ev.ReportBatchItemFailures = true
		}
	}
	return ev, nil
}

// parseRate reads an EventBridge rate expression, rate(<n> minute|minutes|hour|hours|day|days).
func parseRate(expr string) (time.Duration, error) {
	inner, ok := strings.CutPrefix(expr, "rate(")
	inner, ok2 := strings.CutSuffix(inner, ")")
	fields := strings.Fields(inner)
	if !ok || !ok2 || len(fields) != 2 {
		return 0, fmt.Errorf("schedule %q is not rate(<n> <unit>)", expr)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("schedule %q: %q is not a positive count", expr, fields[0])
	}
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(fields[1], "s")]
	if unit == 0 {
		return 0, fmt.Errorf("schedule %q: unit %q is not minute(s), hour(s) or day(s)", expr, fields[1])
	}
	return time.Duration(n) * unit, nil
}

// DefaultMemoryMB is Lambda's MemorySize when neither the function nor Globals sets one.
const DefaultMemoryMB = 128

// MemorySizes reads every function's MemorySize in MB, by logical id: its own, else Globals',
// else Lambda's DefaultMemoryMB. Lambda bills duration by it (GB-s), which is why the benchmark
// reads it here instead of keeping a copy. A value that does not resolve to a number is an error.
func MemorySizes(tpl map[string]any) (map[string]int, error) {
	out := map[string]int{}
	var errs []error
	for _, id := range sortedKeys(functions(tpl)) {
		v := fnProp(tpl, id, "MemorySize")
		if v == nil {
			out[id] = DefaultMemoryMB
			continue
		}
		n, ok := intValue(tpl, v)
		if !ok || n <= 0 {
			errs = append(errs, fmt.Errorf("%s: MemorySize %v is not a number of MB", id, v))
			continue
		}
		out[id] = n
	}
	return out, errors.Join(errs...)
}
