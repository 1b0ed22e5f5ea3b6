package samtemplate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadTemplate(t *testing.T) map[string]any {
	t.Helper()
	tpl, err := Load(templatePath)
	require.NoError(t, err)
	return tpl
}

func reportAll(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		assert.NoError(t, err)
	}
}

// TestTemplate runs every check against template.yaml.
func TestTemplate(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for _, c := range []struct {
		name  string
		check func(map[string]any) []error
	}{
		{"functions", checkFunctions},
		{"references", checkReferences},
		{"sqs events", checkSQSEvents},
		{"triggers", checkTriggers},
		{"environment", checkEnvironment},
		{"environment values", checkEnvironmentValues},
		{"environment defaults", checkEnvironmentDefaults},
		{"migration step", checkMigration},
		{"policies", checkPolicies},
		{"s3 grants", checkS3Grants},
		{"bucket", checkBucket},
		{"parameters", checkParameters},
		{"replica", checkReplica},
		{"alarms", checkAlarms},
		{"readiness", checkReadiness},
		{"outputs", checkOutputs},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reportAll(t, c.check(tpl))
		})
	}
}

func TestSamconfig(t *testing.T) {
	t.Parallel()
	reportAll(t, checkSamconfig(samconfigPath))
}

// ---------------------------------------------------------------- negative tests

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, c := range x {
			out[k] = deepCopy(c)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = deepCopy(c)
		}
		return out
	}
	return v
}

func props(tpl map[string]any, id string) map[string]any {
	p := asMap(dig(tpl, "Resources", id, "Properties"))
	if p == nil {
		panic("no resource " + id)
	}
	return p
}

func globalEnv(tpl map[string]any) map[string]any {
	return asMap(dig(tpl, "Globals", "Function", "Environment", "Variables"))
}

// eventProps is the Properties of the function's first event of the given type.
func eventProps(tpl map[string]any, id, typ string) map[string]any {
	evs := events(asMap(dig(tpl, "Resources", id)))
	for _, name := range sortedKeys(evs) {
		if evs[name]["Type"] == typ {
			return asMap(evs[name]["Properties"])
		}
	}
	panic(fmt.Sprintf("%s has no %s event", id, typ))
}

// statementBySid finds an inline policy statement of the function.
func statementBySid(tpl map[string]any, id, sid string) map[string]any {
	for _, p := range asList(props(tpl, id)["Policies"]) {
		for _, s := range asList(dig(p, "Statement")) {
			if asMap(s)["Sid"] == sid {
				return asMap(s)
			}
		}
	}
	panic(fmt.Sprintf("%s has no statement %s", id, sid))
}

// TestChecksCatchBrokenTemplates breaks a copy of the template one way at a time and requires the
// matching check to report it, naming what is wrong.
func TestChecksCatchBrokenTemplates(t *testing.T) {
	t.Parallel()
	base := loadTemplate(t)
	cases := []struct {
		name   string
		check  func(map[string]any) []error
		mutate func(tpl map[string]any)
		want   string
	}{
		{
			"worker SQS event without ReportBatchItemFailures", checkSQSEvents,
			func(tpl map[string]any) { eventProps(tpl, "WorkerFunction", "SQS")["FunctionResponseTypes"] = []any{} },
			"WorkerFunction event",
		},
		{
			"work queue without RedrivePolicy", checkSQSEvents,
			func(tpl map[string]any) { delete(props(tpl, "WorkQueue"), "RedrivePolicy") },
			"WorkQueue: RedrivePolicy is missing",
		},
		{
			"work queue VisibilityTimeout 100", checkSQSEvents,
			func(tpl map[string]any) { props(tpl, "WorkQueue")["VisibilityTimeout"] = 100 },
			"WorkQueue: VisibilityTimeout = 100",
		},
		{
			"populate queue VisibilityTimeout below 6 x the Globals timeout", checkSQSEvents,
			func(tpl map[string]any) {
				delete(props(tpl, "PopulateFunction"), "Timeout")
				dig(tpl, "Globals", "Function").(map[string]any)["Timeout"] = 901
			},
			"PopulateQueue: VisibilityTimeout = 5400, want at least 6 x PopulateFunction's Timeout 901",
		},
		{
			"dead-letter target is the queue itself", checkSQSEvents,
			func(tpl map[string]any) {
				asMap(props(tpl, "WorkQueue")["RedrivePolicy"])["deadLetterTargetArn"] = map[string]any{"Fn::GetAtt": []any{"WorkQueue", "Arn"}}
			},
			"WorkQueue: RedrivePolicy.deadLetterTargetArn",
		},
		{
			"worker MaximumConcurrency 1", checkSQSEvents,
			func(tpl map[string]any) {
				asMap(eventProps(tpl, "WorkerFunction", "SQS")["ScalingConfig"])["MaximumConcurrency"] = 1
			},
			"MaximumConcurrency = 1",
		},
		{
			"worker MaximumConcurrency parameter without MinValue", checkSQSEvents,
			func(tpl map[string]any) { delete(asMap(dig(tpl, "Parameters", "WorkerMaxConcurrency")), "MinValue") },
			"parameter WorkerMaxConcurrency needs MinValue",
		},
		{
			"populate SQS event without ScalingConfig", checkSQSEvents,
			func(tpl map[string]any) { delete(eventProps(tpl, "PopulateFunction", "SQS"), "ScalingConfig") },
			"PopulateFunction event",
		},
		{
			"Ref to a misspelt resource", checkReferences,
			func(tpl map[string]any) { globalEnv(tpl)["BUCKET"] = map[string]any{"Ref": "Bukcet"} },
			`Ref "Bukcet"`,
		},
		{
			"GetAtt of a misspelt queue", checkReferences,
			func(tpl map[string]any) {
				eventProps(tpl, "WorkerFunction", "SQS")["Queue"] = map[string]any{"Fn::GetAtt": []any{"WorkQueu", "Arn"}}
			},
			"WorkQueu",
		},
		{
			"Sub naming a misspelt resource", checkReferences,
			func(tpl map[string]any) {
				asMap(dig(tpl, "Outputs", "ApiUrl"))["Value"] = map[string]any{"Fn::Sub": "https://${HttpAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}
			},
			"${HttpAPI}",
		},
		{
			"If naming a missing condition", checkReferences,
			func(tpl map[string]any) { delete(asMap(tpl["Conditions"]), "HasUpstreamSecretArnPrefix") },
			`Fn::If names no condition "HasUpstreamSecretArnPrefix"`,
		},
		{
			"worker without reserved concurrency", checkTriggers,
			func(tpl map[string]any) { delete(props(tpl, "WorkerFunction"), "ReservedConcurrentExecutions") },
			"WorkerFunction: ReservedConcurrentExecutions is missing",
		},
		{
			"reserved concurrency below the event source's", checkTriggers,
			func(tpl map[string]any) { asMap(dig(tpl, "Parameters", "WorkerReservedConcurrency"))["Default"] = 50 },
			"ReservedConcurrentExecutions (50) is below",
		},
		{
			"dispatch without a schedule", checkTriggers,
			func(tpl map[string]any) { delete(props(tpl, "DispatchFunction"), "Events") },
			"DispatchFunction: no Schedule",
		},
		{
			"an unexpected event type", checkTriggers,
			func(tpl map[string]any) {
				asMap(props(tpl, "PurgeFunction")["Events"])["Upload"] = map[string]any{"Type": "S3", "Properties": map[string]any{}}
			},
			"PurgeFunction event Upload: Type S3",
		},
		{
			"api timeout at API Gateway's limit", checkTriggers,
			func(tpl map[string]any) { props(tpl, "ApiFunction")["Timeout"] = 30 },
			"ApiFunction: Timeout = 30",
		},
		{
			"worker built for x86_64", checkFunctions,
			func(tpl map[string]any) { props(tpl, "WorkerFunction")["Architectures"] = []any{"x86_64"} },
			"WorkerFunction: Architectures",
		},
		{
			"function without ProjectRootDirectory", checkFunctions,
			func(tpl map[string]any) {
				delete(asMap(dig(tpl, "Resources", "ApiFunction", "Metadata")), "ProjectRootDirectory")
			},
			"ApiFunction: Metadata.ProjectRootDirectory",
		},
		{
			"a function directory without a function", checkFunctions,
			func(tpl map[string]any) { delete(asMap(tpl["Resources"]), "PurgeFunction") },
			"functions/purge: the template has no PurgeFunction",
		},
		{
			"BUCKET not declared", checkEnvironment,
			func(tpl map[string]any) { delete(globalEnv(tpl), "BUCKET") },
			"BUCKET",
		},
		{
			"a local-only variable declared", checkEnvironment,
			func(tpl map[string]any) { globalEnv(tpl)["DATABASE_URL"] = "postgres://localhost/fusillade" },
			"DATABASE_URL is local-only",
		},
		{
			"a misspelt variable", checkEnvironment,
			func(tpl map[string]any) { globalEnv(tpl)["WORK_QUEUE_ULR"] = "x" },
			"WORK_QUEUE_ULR",
		},
		{
			"a function migrating at cold start", checkMigration,
			func(tpl map[string]any) { globalEnv(tpl)["MIGRATE_ON_START"] = "true" },
			"ApiFunction: MIGRATE_ON_START is set",
		},
		{
			"no migration step", checkMigration,
			func(tpl map[string]any) { delete(asMap(tpl["Resources"]), "MigrateSchema") },
			"want exactly one custom resource with ServiceToken !GetAtt MigrateFunction.Arn",
		},
		{
			"migration step not rerun when the migrations change", checkMigration,
			func(tpl map[string]any) { delete(props(tpl, "MigrateSchema"), "MigratorVersion") },
			"MigrateSchema: no property is !Ref MigrateFunction.Version",
		},
		{
			"migrate function without published versions", checkMigration,
			func(tpl map[string]any) { delete(props(tpl, "MigrateFunction"), "AutoPublishAlias") },
			"MigrateFunction: AutoPublishAlias is missing",
		},
		{
			"a function updated before the schema is migrated", checkMigration,
			func(tpl map[string]any) { delete(asMap(dig(tpl, "Resources", "WorkerFunction")), "DependsOn") },
			"WorkerFunction: does not DependsOn MigrateSchema",
		},
		{
			"migration cut off after the default timeout", checkMigration,
			func(tpl map[string]any) { delete(props(tpl, "MigrateFunction"), "Timeout") },
			"MigrateFunction: Timeout",
		},
		{
			"Ref to the version of a function without AutoPublishAlias", checkReferences,
			func(tpl map[string]any) {
				props(tpl, "MigrateSchema")["MigratorVersion"] = map[string]any{"Ref": "ApiFunction.Version"}
			},
			`Ref "ApiFunction.Version"`,
		},
		{
			"a value shared/config rejects", checkEnvironmentValues,
			func(tpl map[string]any) { globalEnv(tpl)["URGENCY_WEIGHT"] = "2" },
			"URGENCY_WEIGHT",
		},
		{
			"processing timeout shorter than the worker's", checkEnvironmentValues,
			func(tpl map[string]any) { globalEnv(tpl)["PROCESSING_TIMEOUT_MS"] = "600000" },
			"PROCESSING_TIMEOUT_MS",
		},
		{
			"a tuning value that is not shared/config's default", checkEnvironmentDefaults,
			func(tpl map[string]any) { globalEnv(tpl)["MAX_RETRIES"] = "999" },
			"MAX_RETRIES = 999 is not shared/config's default (Retry.MaxRetries = 1000)",
		},
		{
			"a parameter default that is not shared/config's default", checkEnvironmentDefaults,
			func(tpl map[string]any) { asMap(dig(tpl, "Parameters", "DatabaseMaxConns"))["Default"] = 20 },
			"DB_MAX_CONNS = 20 is not shared/config's default (DBMaxConns = 10)",
		},
		{
			"a function's own tuning value that is not shared/config's default", checkEnvironmentDefaults,
			func(tpl map[string]any) {
				props(tpl, "WorkerFunction")["Environment"] = map[string]any{"Variables": map[string]any{"UPSTREAM_BODY_TIMEOUT_MS": "1000"}}
			},
			"WorkerFunction: UPSTREAM_BODY_TIMEOUT_MS = 1000",
		},
		{
			"S3 writes on every resource", checkPolicies,
			func(tpl map[string]any) { statementBySid(tpl, "WorkerFunction", "WriteResultFiles")["Resource"] = "*" },
			"WorkerFunction: s3:PutObject is granted on resource *",
		},
		{
			"SendMessage on every queue", checkPolicies,
			func(tpl map[string]any) { statementBySid(tpl, "DispatchFunction", "SendWork")["Resource"] = "*" },
			"DispatchFunction: sqs:SendMessage is granted on resource *",
		},
		{
			"dispatch allowed to send to the populate queue", checkPolicies,
			func(tpl map[string]any) {
				statementBySid(tpl, "DispatchFunction", "SendWork")["Resource"] = []any{
					map[string]any{"Fn::GetAtt": []any{"PopulateQueue", "Arn"}},
					map[string]any{"Fn::GetAtt": []any{"WorkQueue", "Arn"}},
				}
			},
			"DispatchFunction: may send to",
		},
		{
			"a broad managed policy", checkPolicies,
			func(tpl map[string]any) {
				props(tpl, "PurgeFunction")["Policies"] = append(asList(props(tpl, "PurgeFunction")["Policies"]), "AmazonS3FullAccess")
			},
			"PurgeFunction: managed policy AmazonS3FullAccess",
		},
		{
			"worker writing to the input files' prefix", checkS3Grants,
			func(tpl map[string]any) {
				statementBySid(tpl, "WorkerFunction", "WriteResultFiles")["Resource"] = map[string]any{"Fn::Sub": "${Bucket.Arn}/tenants/*/files/*"}
			},
			"WorkerFunction",
		},
		{
			"bucket open to public policies", checkBucket,
			func(tpl map[string]any) {
				asMap(props(tpl, "Bucket")["PublicAccessBlockConfiguration"])["BlockPublicPolicy"] = false
			},
			"Bucket: PublicAccessBlockConfiguration.BlockPublicPolicy",
		},
		{
			"bucket without CORS for the dashboard", checkBucket,
			func(tpl map[string]any) { delete(props(tpl, "Bucket"), "CorsConfiguration") },
			"Bucket: no CORS rule",
		},
		{
			"upstream secret prefix without its pattern", checkParameters,
			func(tpl map[string]any) {
				delete(asMap(dig(tpl, "Parameters", "UpstreamSecretArnPrefix")), "AllowedPattern")
			},
			"parameter UpstreamSecretArnPrefix: AllowedPattern",
		},
		{
			"worker's credential-ref prefix not the one it is granted", checkParameters,
			func(tpl map[string]any) { globalEnv(tpl)["UPSTREAM_SECRET_ARN_PREFIX"] = "" },
			"WorkerFunction: UPSTREAM_SECRET_ARN_PREFIX",
		},
		{
			"replica secret required", checkReplica,
			func(tpl map[string]any) { delete(asMap(dig(tpl, "Parameters", "DatabaseReplicaSecretArn")), "Default") },
			"parameter DatabaseReplicaSecretArn: Default",
		},
		{
			"replica secret given to the worker", checkReplica,
			func(tpl map[string]any) {
				props(tpl, "WorkerFunction")["Environment"] = map[string]any{"Variables": map[string]any{
					"DATABASE_REPLICA_SECRET_ARN": map[string]any{"Ref": "DatabaseReplicaSecretArn"}}}
			},
			"WorkerFunction: DATABASE_REPLICA_SECRET_ARN is set",
		},
		{
			"replica secret in every function's environment", checkReplica,
			func(tpl map[string]any) {
				globalEnv(tpl)["DATABASE_REPLICA_SECRET_ARN"] = map[string]any{"Ref": "DatabaseReplicaSecretArn"}
			},
			"PurgeFunction: DATABASE_REPLICA_SECRET_ARN is set",
		},
		{
			"API without the replica setting", checkReplica,
			func(tpl map[string]any) { delete(props(tpl, "ApiFunction"), "Environment") },
			"ApiFunction: DATABASE_REPLICA_SECRET_ARN",
		},
		{
			"replica secret granted without its condition", checkReplica,
			func(tpl map[string]any) {
				pols := asList(props(tpl, "ApiFunction")["Policies"])
				for i, p := range pols {
					if l, ok := asMap(p)["Fn::If"].([]any); ok && l[0] == "HasDatabaseReplica" {
						pols[i] = l[1]
					}
				}
			},
			"ApiFunction: the grant on DatabaseReplicaSecretArn must be under !If",
		},
		{
			"replica secret readable by dispatch", checkReplica,
			func(tpl map[string]any) {
				props(tpl, "DispatchFunction")["Policies"] = append(asList(props(tpl, "DispatchFunction")["Policies"]),
					map[string]any{"Statement": []any{map[string]any{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
						"Resource": map[string]any{"Ref": "DatabaseReplicaSecretArn"}}}})
			},
			"DispatchFunction: may read the replica's secret",
		},
		{
			"no alarm on a dead-letter queue", checkAlarms,
			func(tpl map[string]any) { delete(asMap(tpl["Resources"]), "PopulateDLQAlarm") },
			"no alarm on dead-letter queue PopulateDLQ's depth",
		},
		{
			"worker errors alarm on another function", checkAlarms,
			func(tpl map[string]any) {
				asMap(asList(props(tpl, "WorkerErrorsAlarm")["Dimensions"])[0])["Value"] = map[string]any{"Ref": "DispatchFunction"}
			},
			"no alarm on the worker's errors",
		},
		{
			"DLQ alarm tolerating one message", checkAlarms,
			func(tpl map[string]any) { props(tpl, "WorkDLQAlarm")["Threshold"] = 1 },
			"WorkDLQAlarm: on dead-letter queue WorkDLQ's depth it must fire on anything above 0",
		},
		{
			"no alarm on the API's 5xx", checkAlarms,
			func(tpl map[string]any) { delete(asMap(tpl["Resources"]), "Api5xxAlarm") },
			"no alarm on the API's 5xx",
		},
		{
			"alarm notifying the topic unconditionally", checkAlarms,
			func(tpl map[string]any) {
				props(tpl, "WorkQueueAgeAlarm")["AlarmActions"] = []any{map[string]any{"Ref": "AlarmTopicArn"}}
			},
			"WorkQueueAgeAlarm: with AlarmTopicArn empty, AlarmActions",
		},
		{
			"alarm without an OK action", checkAlarms,
			func(tpl map[string]any) { delete(props(tpl, "Api5xxAlarm"), "OKActions") },
			"Api5xxAlarm: with AlarmTopicArn set, OKActions",
		},
		{
			"readiness check not granted the work queue", checkReadiness,
			func(tpl map[string]any) {
				pol := asMap(asList(props(tpl, "ApiFunction")["Policies"])[1])
				var kept []any
				for _, st := range asList(pol["Statement"]) {
					if asMap(st)["Sid"] != "CheckWorkQueue" {
						kept = append(kept, st)
					}
				}
				pol["Statement"] = kept
			},
			"ApiFunction: no sqs:GetQueueAttributes on !GetAtt WorkQueue.Arn",
		},
		{
			"a DLQ output missing", checkOutputs,
			func(tpl map[string]any) { delete(asMap(tpl["Outputs"]), "WorkDLQUrl") },
			"output WorkDLQUrl",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tpl := deepCopy(base).(map[string]any)
			require.Empty(t, c.check(tpl), "the unbroken template must pass this check")
			c.mutate(tpl)
			errs := c.check(tpl)
			require.NotEmpty(t, errs, "the check accepted the broken template")
			var msgs []string
			for _, err := range errs {
				msgs = append(msgs, err.Error())
			}
			all := strings.Join(msgs, "\n")
			require.Contains(t, all, c.want)
		})
	}
}

func TestSamconfigCheckCatchesMissingSettings(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "samconfig.toml")
	require.NoError(t, os.WriteFile(path, []byte(`version = 0.1
[default.global.parameters]
stack_name = "fusillade"
[default.deploy.parameters]
confirm_changeset = true
`), 0o600))
	var msgs []string
	for _, err := range checkSamconfig(path) {
		msgs = append(msgs, err.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"capabilities", "region", "resolve_s3"} {
		require.Contains(t, all, want)
	}

	require.NoError(t, os.WriteFile(path, []byte("version = [\n"), 0o600))
	require.NotEmpty(t, checkSamconfig(path), "invalid TOML must be reported")
}
