package samtemplate

// The checks that template_test.go runs against template.yaml. Each takes the loaded template and
// returns every problem it finds, so that the negative tests can prove each one fails on a
// broken copy of the template.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
)

// repoRoot is the repository root as seen from this package's directory (where go test runs).
const repoRoot = "../.."

var (
	templatePath  = filepath.Join(repoRoot, "template.yaml")
	samconfigPath = filepath.Join(repoRoot, "samconfig.toml")
	configGoPath  = filepath.Join(repoRoot, "shared", "config", "config.go")
	makefilePath  = filepath.Join(repoRoot, "Makefile")
)

// fnEnv is the environment a function runs with: Globals merged with its own, as SAM merges them.
func fnEnv(tpl map[string]any, id string) map[string]any {
	env := maps.Clone(asMap(dig(tpl, "Globals", "Function", "Environment", "Variables")))
	if env == nil {
		env = map[string]any{}
	}
	maps.Copy(env, asMap(dig(tpl, "Resources", id, "Properties", "Environment", "Variables")))
	return env
}

// logicalID is the template name of the function in functions/<dir>; the Makefile's build
// targets (build-<LogicalId>) depend on it.
func logicalID(dir string) string { return strings.ToUpper(dir[:1]) + dir[1:] + "Function" }

// ---------------------------------------------------------------- 1. functions

func checkFunctions(tpl map[string]any) []error {
	var errs []error
	if !slices.Contains(asList(tpl["Transform"]), any("AWS::Serverless-2016-10-31")) {
		errs = append(errs, errors.New("Transform: AWS::Serverless-2016-10-31 is missing"))
	}
	entries, err := os.ReadDir(filepath.Join(repoRoot, "functions"))
	if err != nil {
		return append(errs, err)
	}
	dirs := map[string]string{} // logical id -> directory
	for _, e := range entries {
		if e.IsDir() {
			dirs[logicalID(e.Name())] = e.Name()
		}
	}
	fns := functions(tpl)
	makefile, err := os.ReadFile(makefilePath)
	if err != nil {
		return append(errs, err)
	}
	for _, id := range sortedKeys(dirs) {
		if fns[id] == nil {
			errs = append(errs, fmt.Errorf("functions/%s: the template has no %s", dirs[id], id))
		}
		// sam build runs make build-<LogicalId>; the target must build that function's directory.
		target := regexp.MustCompile(`(?m)^build-` + id + `:\n\t.*-o \$\(ARTIFACTS_DIR\)/bootstrap \./functions/` + dirs[id] + `\s*$`)
		if !target.Match(makefile) {
			errs = append(errs, fmt.Errorf("functions/%s: the Makefile has no build-%s target building ./functions/%s into $(ARTIFACTS_DIR)/bootstrap", dirs[id], id, dirs[id]))
		}
	}
	for _, id := range sortedKeys(fns) {
		fn := fns[id]
		if dirs[id] == "" {
			errs = append(errs, fmt.Errorf("%s: no functions/<dir> matches it", id))
		}
		if v := fnProp(tpl, id, "Runtime"); v != "provided.al2023" {
			errs = append(errs, fmt.Errorf("%s: Runtime = %v, want provided.al2023", id, v))
		}
		if v := fnProp(tpl, id, "Handler"); v != "bootstrap" {
			errs = append(errs, fmt.Errorf("%s: Handler = %v, want bootstrap", id, v))
		}
		if v := asList(fnProp(tpl, id, "Architectures")); len(v) != 1 || v[0] != "arm64" {
			errs = append(errs, fmt.Errorf("%s: Architectures = %v, want [arm64]", id, v))
		}
		if v := dig(fn, "Metadata", "BuildMethod"); v != "makefile" {
			errs = append(errs, fmt.Errorf("%s: Metadata.BuildMethod = %v, want makefile", id, v))
		}
		// sam build copies ProjectRootDirectory (default: CodeUri) before running make, and the
		// function imports packages outside its own directory: the copy must hold go.mod.
		root, _ := dig(fn, "Metadata", "ProjectRootDirectory").(string)
		if root == "" {
			root, _ = fnProp(tpl, id, "CodeUri").(string)
		}
		if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(root), "go.mod")); err != nil {
			errs = append(errs, fmt.Errorf("%s: Metadata.ProjectRootDirectory %q holds no go.mod, so the build cannot see the module", id, root))
		}
		codeURI, _ := fnProp(tpl, id, "CodeUri").(string)
		if codeURI == "" {
			errs = append(errs, fmt.Errorf("%s: CodeUri is missing", id))
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(codeURI), "main.go")); err != nil {
			errs = append(errs, fmt.Errorf("%s: CodeUri %q has no main.go", id, codeURI))
		}
		if dirs[id] != "" && filepath.Clean(codeURI) != filepath.Join("functions", dirs[id]) {
			errs = append(errs, fmt.Errorf("%s: CodeUri = %q, want functions/%s/", id, codeURI, dirs[id]))
		}
	}
	return errs
}

// ---------------------------------------------------------------- 2. references

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func checkReferences(tpl map[string]any) []error {
	params := asMap(tpl["Parameters"])
	res := asMap(tpl["Resources"])
	conds := asMap(tpl["Conditions"])
	declared := func(name string) bool {
		// SAM's generated resources of a function with AutoPublishAlias: !Ref Fn.Version, Fn.Alias.
		if fn, gen, ok := strings.Cut(name, "."); ok && (gen == "Version" || gen == "Alias") {
			return asMap(res[fn])["Type"] == functionType && dig(res[fn], "Properties", "AutoPublishAlias") != nil
		}
		return params[name] != nil || res[name] != nil || strings.HasPrefix(name, "AWS::")
	}
	var errs []error
	fail := func(where, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	checkSub := func(where string, arg any) {
		var s string
		var locals map[string]any
		switch x := arg.(type) {
		case string:
			s = x
		case []any:
			if len(x) > 0 {
				s, _ = x[0].(string)
			}
			if len(x) > 1 {
				locals = asMap(x[1])
			}
		}
		for _, m := range subVar.FindAllStringSubmatch(s, -1) {
			name := m[1]
			if strings.HasPrefix(name, "!") || locals[name] != nil {
				continue // ${!Literal} is escaped text; locals are the Sub's own variables
			}
			if r, _, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
				if res[r] == nil {
					fail(where, "Fn::Sub ${%s} names no resource %q", name, r)
				}
			} else if !declared(name) {
				fail(where, "Fn::Sub ${%s} names no parameter or resource", name)
			}
		}
	}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 1 {
				if r, ok := x["Ref"]; ok {
					if name, _ := r.(string); !declared(name) {
						fail(where, "Ref %q names no parameter or resource", name)
					}
				}
				if _, ok := x["Fn::GetAtt"]; ok {
					if r, _, ok := getAtt(x); !ok || res[r] == nil {
						fail(where, "Fn::GetAtt %v names no resource", x["Fn::GetAtt"])
					}
				}
				if s, ok := x["Fn::Sub"]; ok {
					checkSub(where, s)
				}
				if l, ok := x["Fn::If"].([]any); ok && len(l) > 0 {
					if c, _ := l[0].(string); conds[c] == nil {
						fail(where, "Fn::If names no condition %q", c)
					}
				}
				if c, ok := x["Condition"].(string); ok && conds[c] == nil {
					fail(where, "Condition names no condition %q", c)
				}
			}
			for _, k := range sortedKeys(x) {
				walk(where+"."+k, x[k])
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), c)
			}
		}
	}
	for _, sec := range []string{"Conditions", "Globals", "Resources", "Outputs"} {
		walk(sec, tpl[sec])
	}
	for _, id := range sortedKeys(res) {
		if c, ok := asMap(res[id])["Condition"].(string); ok && conds[c] == nil {
			fail("Resources."+id, "Condition names no condition %q", c)
		}
	}
	return errs
}

// ---------------------------------------------------------------- 3. SQS event sources

func checkSQSEvents(tpl map[string]any) []error {
	var errs []error
	res := resources(tpl)
	fns := functions(tpl)
	for _, id := range sortedKeys(fns) {
		timeout, ok := fnTimeout(tpl, id)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: Timeout %v is not a number", id, fnProp(tpl, id, "Timeout")))
			continue
		}
		evs := events(fns[id])
		for _, name := range sortedKeys(evs) {
			if evs[name]["Type"] != "SQS" {
				continue
			}
			where := fmt.Sprintf("%s event %s", id, name)
			p := asMap(evs[name]["Properties"])
			if v := asList(p["FunctionResponseTypes"]); len(v) != 1 || v[0] != "ReportBatchItemFailures" {
				errs = append(errs, fmt.Errorf("%s: FunctionResponseTypes = %v, want [ReportBatchItemFailures] (else one failed message redelivers the whole batch)", where, v))
			}
			errs = append(errs, checkMaxConcurrency(tpl, where, dig(p, "ScalingConfig", "MaximumConcurrency"))...)

			qid, attr, ok := getAtt(p["Queue"])
			if !ok || attr != "Arn" || res[qid]["Type"] != queueType {
				errs = append(errs, fmt.Errorf("%s: Queue %v is not !GetAtt <an AWS::SQS::Queue>.Arn", where, p["Queue"]))
				continue
			}
			qp := asMap(res[qid]["Properties"])
			vt := 30 // SQS's default
			if v, set := qp["VisibilityTimeout"]; set {
				if vt, ok = intValue(tpl, v); !ok {
					errs = append(errs, fmt.Errorf("%s: VisibilityTimeout %v is not a number", qid, v))
				}
			}
			if vt < 6*timeout {
				errs = append(errs, fmt.Errorf("%s: VisibilityTimeout = %d, want at least 6 x %s's Timeout %d = %d", qid, vt, id, timeout, 6*timeout))
			}
			rp := asMap(qp["RedrivePolicy"])
			if rp == nil {
				errs = append(errs, fmt.Errorf("%s: RedrivePolicy is missing: a poison message would be retried until it expires", qid))
				continue
			}
			dlq, attr, ok := getAtt(rp["deadLetterTargetArn"])
			if !ok || attr != "Arn" || res[dlq]["Type"] != queueType || dlq == qid {
				errs = append(errs, fmt.Errorf("%s: RedrivePolicy.deadLetterTargetArn %v is not !GetAtt <another AWS::SQS::Queue>.Arn", qid, rp["deadLetterTargetArn"]))
			} else {
				// A message keeps its original enqueue time in a standard DLQ, so a DLQ that keeps
				// messages no longer than its source would drop them on arrival.
				src, _ := intValue(tpl, orDefault(qp["MessageRetentionPeriod"], 345600))
				dst, _ := intValue(tpl, orDefault(dig(res[dlq], "Properties", "MessageRetentionPeriod"), 345600))
				if dst <= src {
					errs = append(errs, fmt.Errorf("%s: MessageRetentionPeriod = %d, want more than %s's %d", dlq, dst, qid, src))
				}
			}
			if n, ok := intValue(tpl, rp["maxReceiveCount"]); !ok || n < 1 {
				errs = append(errs, fmt.Errorf("%s: RedrivePolicy.maxReceiveCount = %v, want a count of at least 1", qid, rp["maxReceiveCount"]))
			}
		}
	}
	return errs
}

func orDefault(v any, def int) any {
	if v == nil {
		return def
	}
	return v
}

// checkMaxConcurrency: ScalingConfig.MaximumConcurrency must be a literal of at least 2 (AWS's
// minimum) or a Ref to a parameter that cannot go below 2.
func checkMaxConcurrency(tpl map[string]any, where string, v any) []error {
	if v == nil {
		return []error{fmt.Errorf("%s: ScalingConfig.MaximumConcurrency is missing: one busy queue could take every instance", where)}
	}
	if name, ok := refName(v); ok {
		p := asMap(dig(tpl, "Parameters", name))
		if p == nil {
			return []error{fmt.Errorf("%s: ScalingConfig.MaximumConcurrency names no parameter %q", where, name)}
		}
		if min, ok := literalInt(p["MinValue"]); !ok || min < 2 {
			return []error{fmt.Errorf("%s: parameter %s needs MinValue of at least 2 (AWS's minimum MaximumConcurrency), has %v", where, name, p["MinValue"])}
		}
		return nil
	}
	if n, ok := literalInt(v); !ok || n < 2 {
		return []error{fmt.Errorf("%s: ScalingConfig.MaximumConcurrency = %v, want at least 2", where, v)}
	}
	return nil
}

// ---------------------------------------------------------------- 4. triggers

var allowedEventTypes = []string{"SQS", "Schedule", "ScheduleV2", "HttpApi"}

func checkTriggers(tpl map[string]any) []error {
	var errs []error
	fns := functions(tpl)
	for _, id := range []string{"ApiFunction", "PopulateFunction", "DispatchFunction", "WorkerFunction", "PurgeFunction"} {
		if fns[id] == nil {
			errs = append(errs, fmt.Errorf("%s is missing", id))
		}
	}
	byType := func(id string, types ...string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for name, e := range events(fns[id]) {
			if t, _ := e["Type"].(string); slices.Contains(types, t) {
				out[name] = e
			}
		}
		return out
	}
	for _, id := range sortedKeys(fns) {
		evs := events(fns[id])
		for _, name := range sortedKeys(evs) {
			if t, _ := evs[name]["Type"].(string); !slices.Contains(allowedEventTypes, t) {
				errs = append(errs, fmt.Errorf("%s event %s: Type %v, want one of %v", id, name, evs[name]["Type"], allowedEventTypes))
			}
		}
	}

	if fns["ApiFunction"] != nil {
		if len(byType("ApiFunction", "HttpApi")) == 0 {
			errs = append(errs, errors.New("ApiFunction: no HttpApi event"))
		}
		if t, ok := fnTimeout(tpl, "ApiFunction"); !ok || t >= 30 {
			errs = append(errs, fmt.Errorf("ApiFunction: Timeout = %v, want below API Gateway's 30 s integration limit", fnProp(tpl, "ApiFunction", "Timeout")))
		}
	}
	for _, id := range []string{"DispatchFunction", "PurgeFunction"} {
		if fns[id] == nil {
			continue
		}
		evs := byType(id, "Schedule", "ScheduleV2")
		if len(evs) == 0 {
			errs = append(errs, fmt.Errorf("%s: no Schedule or ScheduleV2 event", id))
		}
		for name, e := range evs {
			p := asMap(e["Properties"])
			if p["Schedule"] == nil && p["ScheduleExpression"] == nil {
				errs = append(errs, fmt.Errorf("%s event %s: no schedule expression", id, name))
			}
		}
	}
	if fns["PopulateFunction"] != nil {
		for name, e := range byType("PopulateFunction", "SQS") {
			if n, _ := intValue(tpl, dig(e, "Properties", "BatchSize")); n != 1 {
				errs = append(errs, fmt.Errorf("PopulateFunction event %s: BatchSize = %v, want 1 (each batch takes minutes)", name, dig(e, "Properties", "BatchSize")))
			}
		}
	}
	if fns["WorkerFunction"] != nil {
		reserved, hasReserved := intValue(tpl, fnProp(tpl, "WorkerFunction", "ReservedConcurrentExecutions"))
		if !hasReserved {
			errs = append(errs, errors.New("WorkerFunction: ReservedConcurrentExecutions is missing"))
		}
		sqs := byType("WorkerFunction", "SQS")
		if len(sqs) == 0 {
			errs = append(errs, errors.New("WorkerFunction: no SQS event"))
		}
		for _, name := range sortedKeys(sqs) {
			p := asMap(sqs[name]["Properties"])
			if n, _ := intValue(tpl, p["BatchSize"]); n != 10 {
				errs = append(errs, fmt.Errorf("WorkerFunction event %s: BatchSize = %v, want 10", name, p["BatchSize"]))
			}
			if n, ok := intValue(tpl, p["MaximumBatchingWindowInSeconds"]); !ok || n != 0 {
				errs = append(errs, fmt.Errorf("WorkerFunction event %s: MaximumBatchingWindowInSeconds = %v, want 0", name, p["MaximumBatchingWindowInSeconds"]))
			}
			// Reserved concurrency below the event source's concurrency makes the poller's
			// surplus invocations throttle, pushing messages back and towards the DLQ.
			if max, ok := intValue(tpl, dig(p, "ScalingConfig", "MaximumConcurrency")); ok && hasReserved && reserved < max {
				errs = append(errs, fmt.Errorf("WorkerFunction: ReservedConcurrentExecutions (%d) is below event %s's MaximumConcurrency (%d)", reserved, name, max))
			}
		}
	}
	return errs
}

// ---------------------------------------------------------------- 5. environment

var (
	configRead = regexp.MustCompile(`e\.(str|int|bool|ms|float|list|ints|durations|duration)\("([A-Z0-9_]+)"`)
	requireArg = regexp.MustCompile(`wire\.Boot\(([^)]*)\)`)
	quotedName = regexp.MustCompile(`"([A-Z0-9_]+)"`)
)

// configVars lists every variable shared/config reads, from its source.
func configVars() ([]string, error) {
	src, err := os.ReadFile(configGoPath)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range configRead.FindAllStringSubmatch(string(src), -1) {
		if !slices.Contains(out, m[2]) {
			out = append(out, m[2])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: found no e.<kind>(\"NAME\", ...) reads; has the config reader changed?", configGoPath)
	}
	return out, nil
}

// required lists the settings functions/<dir>/main.go requires through wire.Boot.
func required(codeURI string) ([]string, error) {
	src, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(codeURI), "main.go"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, call := range requireArg.FindAllStringSubmatch(string(src), -1) {
		for _, m := range quotedName.FindAllStringSubmatch(call[1], -1) {
			out = append(out, m[1])
		}
	}
	return out, nil
}

func checkEnvironment(tpl map[string]any) []error {
	vars, err := configVars()
	if err != nil {
		return []error{err}
	}
	var errs []error
	global := asMap(dig(tpl, "Globals", "Function", "Environment", "Variables"))
	fns := functions(tpl)
	declaredBy := map[string][]string{} // variable -> where it is declared
	for name := range global {
		declaredBy[name] = append(declaredBy[name], "Globals")
	}
	for _, id := range sortedKeys(fns) {
		for name := range asMap(dig(fns[id], "Properties", "Environment", "Variables")) {
			declaredBy[name] = append(declaredBy[name], id)
		}
	}
	for _, name := range vars {
		local := slices.Contains(config.LocalOnly, name)
		switch {
		case local && len(declaredBy[name]) > 0:
			errs = append(errs, fmt.Errorf("%s is local-only (config.LocalOnly) but is set in %v", name, declaredBy[name]))
		case !local && len(declaredBy[name]) == 0:
			errs = append(errs, fmt.Errorf("%s (read by shared/config) is declared neither in Globals.Function.Environment nor in any function's Environment", name))
		}
	}
	for _, name := range sortedKeys(declaredBy) {
		if !slices.Contains(vars, name) {
			errs = append(errs, fmt.Errorf("%s (set in %v) is read nowhere in shared/config: a typo?", name, declaredBy[name]))
		}
	}
	for _, id := range sortedKeys(fns) {
		codeURI, _ := fnProp(tpl, id, "CodeUri").(string)
		names, err := required(codeURI)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		env := fnEnv(tpl, id)
		for _, name := range names {
			if _, ok := env[name]; !ok {
				errs = append(errs, fmt.Errorf("%s: its main requires %s, which its environment lacks", id, name))
			}
		}
	}
	return errs
}

// ---------------------------------------------------------------- 5b. the migration step

// migrator is the function that migrates the schema; the other functions only check it.
const migrator = "MigrateFunction"

// checkMigration: a deployment migrates the schema in one explicit step, a custom resource backed
// by the migrate function, which runs again whenever that function's code (and so its embedded
// migrations) changes, and before any other function is updated.
func checkMigration(tpl map[string]any) []error {
	var errs []error
	res := resources(tpl)
	fns := functions(tpl)
	if fns[migrator] == nil {
		return []error{fmt.Errorf("%s is missing: nothing migrates the schema", migrator)}
	}
	var steps []string
	for _, id := range sortedKeys(res) {
		t, _ := res[id]["Type"].(string)
		if t != "AWS::CloudFormation::CustomResource" && !strings.HasPrefix(t, "Custom::") {
			continue
		}
		if fn, attr, ok := getAtt(dig(res[id], "Properties", "ServiceToken")); ok && fn == migrator && attr == "Arn" {
			steps = append(steps, id)
		}
	}
	if len(steps) != 1 {
		return append(errs, fmt.Errorf("want exactly one custom resource with ServiceToken !GetAtt %s.Arn (the migration step), found %v", migrator, steps))
	}
	step := steps[0]
	if dig(fns[migrator], "Properties", "AutoPublishAlias") == nil {
		errs = append(errs, fmt.Errorf("%s: AutoPublishAlias is missing: without a version per code change, %s would not run again when the migrations change", migrator, step))
	}
	names := false
	for _, v := range asMap(dig(res[step], "Properties")) {
		if n, _ := refName(v); n == migrator+".Version" {
			names = true
		}
	}
	if !names {
		errs = append(errs, fmt.Errorf("%s: no property is !Ref %s.Version, so CloudFormation would not migrate again when the migrations change", step, migrator))
	}
	if t, ok := fnTimeout(tpl, migrator); !ok || t < 300 {
		errs = append(errs, fmt.Errorf("%s: Timeout = %v, want at least 300 s: a deployment waits for its migrations", migrator, fnProp(tpl, migrator, "Timeout")))
	}
	for _, id := range sortedKeys(fns) {
		if id == migrator {
			continue
		}
		if !slices.Contains(asList(fns[id]["DependsOn"]), any(step)) {
			errs = append(errs, fmt.Errorf("%s: does not DependsOn %s, so its new code could start before the schema is migrated", id, step))
		}
		if _, ok := fnEnv(tpl, id)["MIGRATE_ON_START"]; ok {
			errs = append(errs, fmt.Errorf("%s: MIGRATE_ON_START is set; %s is the one migration step", id, step))
		}
	}
	return errs
}

// envValue is what a variable will hold on AWS: a literal as written, a Ref to a parameter as its
// Default, and anything else (a resource's name or URL) as a stand-in that is not empty.
func envValue(tpl map[string]any, v any) string {
	if name, ok := refName(v); ok {
		if p := asMap(dig(tpl, "Parameters", name)); p != nil {
			if d, ok := p["Default"]; ok {
				return fmt.Sprint(d)
			}
		}
		return "stand-in-for-" + name
	}
	if v == nil {
		return ""
	}
	if _, ok := v.(map[string]any); ok {
		return "stand-in-value"
	}
	return fmt.Sprint(v)
}

// checkEnvironmentValues loads each function's environment with shared/config itself, so a value
// the code would reject at cold start fails here, and checks the timeouts against the worker's.
func checkEnvironmentValues(tpl map[string]any) []error {
	var errs []error
	fns := functions(tpl)
	for _, id := range sortedKeys(fns) {
		env := fnEnv(tpl, id)
		cfg, err := config.Load(func(name string) string { return envValue(tpl, env[name]) })
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: shared/config rejects its environment: %w", id, err))
			continue
		}
		codeURI, _ := fnProp(tpl, id, "CodeUri").(string)
		if names, err := required(codeURI); err == nil {
			if err := cfg.Require(names...); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
			}
		}
		if id != "WorkerFunction" {
			continue
		}
		timeout, _ := fnTimeout(tpl, id)
		limit := time.Duration(timeout) * time.Second
		if cfg.ProcessingTimeout <= limit {
			errs = append(errs, fmt.Errorf("WorkerFunction: PROCESSING_TIMEOUT_MS (%v) must exceed its Timeout (%v), or live workers are robbed", cfg.ProcessingTimeout, limit))
		}
		if cfg.FirstByteTimeout >= limit {
			errs = append(errs, fmt.Errorf("WorkerFunction: UPSTREAM_FIRST_BYTE_TIMEOUT_MS (%v) must be below its Timeout (%v)", cfg.FirstByteTimeout, limit))
		}
	}
	return errs
}

// checkEnvironmentDefaults: every setting the template spells out (a literal, or a parameter's
// Default) is shared/config's default, which the package owning the knob declares (engine,
// upstream, ingest, postgres, domain). The template states them so that a change is a reviewed
// deployment change, not to differ: a value that differs from the code's is two homes for one
// fact. Each is proved by loading the function's environment with and without the variable.
func checkEnvironmentDefaults(tpl map[string]any) []error {
	var errs []error
	fns := functions(tpl)
	for _, id := range sortedKeys(fns) {
		env := fnEnv(tpl, id)
		load := func(without string) (config.Config, error) {
			return config.Load(func(name string) string {
				if name == without {
					return ""
				}
				return envValue(tpl, env[name])
			})
		}
		with, err := load("")
		if err != nil {
			continue // checkEnvironmentValues reports it
		}
		for _, name := range sortedKeys(env) {
			if !statesDefault(tpl, env[name]) {
				continue
			}
			without, err := load(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: without %s shared/config rejects the environment: %w", id, name, err))
				continue
			}
			for _, f := range configDiff(with, without) {
				errs = append(errs, fmt.Errorf("%s: %s = %s is not shared/config's default (%s); change the default in Go, or drop the variable", id, name, envValue(tpl, env[name]), f))
			}
		}
	}
	return errs
}

// statesDefault says whether an environment value is one the template chooses: a literal, or a
// Ref to a parameter with a Default. Refs to resources and to required parameters name
// deployment-specific things, which have no default in the code.
func statesDefault(tpl map[string]any, v any) bool {
	if name, ok := refName(v); ok {
		_, has := asMap(dig(tpl, "Parameters", name))["Default"]
		return has
	}
	_, intrinsic := v.(map[string]any)
	return !intrinsic
}

// configDiff lists, as "Field = default value", the fields in which b differs from a.
func configDiff(a, b config.Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			f := va.Type().Field(i)
			if f.Type.Kind() == reflect.Struct {
				for j := range f.Type.NumField() {
					if x, y := va.Field(i).Field(j), vb.Field(i).Field(j); !reflect.DeepEqual(x.Interface(), y.Interface()) {
						out = append(out, fmt.Sprintf("%s.%s = %v", f.Name, f.Type.Field(j).Name, y.Interface()))
					}
				}
				continue
			}
			out = append(out, fmt.Sprintf("%s = %v", f.Name, vb.Field(i).Interface()))
		}
	}
	return out
}

// ---------------------------------------------------------------- 6. IAM

type statement struct {
	effect    string
	actions   []string
	resources []any
}

// policies splits a function's Policies into inline statements (both branches of an Fn::If),
// managed policy names and SAM policy templates.
func policies(fn map[string]any) (stmts []statement, managed []string, templates []string) {
	var add func(p any)
	add = func(p any) {
		switch x := p.(type) {
		case string:
			managed = append(managed, x)
		case map[string]any:
			if l, ok := x["Fn::If"].([]any); ok && len(x) == 1 {
				for _, branch := range l[1:] {
					if n, _ := refName(branch); n != "AWS::NoValue" {
						add(branch)
					}
				}
				return
			}
			if st, ok := x["Statement"]; ok {
				for _, s := range asList(st) {
					sm := asMap(s)
					var acts []string
					for _, a := range asList(sm["Action"]) {
						if as, ok := a.(string); ok {
							acts = append(acts, as)
						}
					}
					effect, _ := sm["Effect"].(string)
					stmts = append(stmts, statement{effect: effect, actions: acts, resources: asList(sm["Resource"])})
				}
				return
			}
			templates = append(templates, sortedKeys(x)...)
		}
	}
	for _, p := range asList(dig(fn, "Properties", "Policies")) {
		add(p)
	}
	return stmts, managed, templates
}

// allowedManaged are the only managed policies a function may carry: anything broader
// (AmazonS3FullAccess, ...) defeats the per-function statements.
var allowedManaged = []string{"AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole", "AWSXRayDaemonWriteAccess"}

func isS3(action string) bool { return strings.HasPrefix(strings.ToLower(action), "s3:") }
func isSend(action string) bool {
	a := strings.ToLower(action)
	return a == "sqs:*" || strings.HasPrefix(a, "sqs:sendmessage")
}

func checkPolicies(tpl map[string]any) []error {
	var errs []error
	fns := functions(tpl)
	wantSend := map[string][]string{
		"ApiFunction":      {"PopulateQueue", "WorkQueue"}, // the work queue for retries, which claim at once
		"PopulateFunction": {"WorkQueue"},
		"DispatchFunction": {"WorkQueue"},
		"WorkerFunction":   {"WorkQueue"},
		"PurgeFunction":    {"WorkQueue"},
	}
	for _, id := range sortedKeys(fns) {
		fn := fns[id]
		if dig(fn, "Properties", "Role") != nil {
			continue // an explicit role is reviewed where it is defined
		}
		stmts, managed, templates := policies(fn)
		if len(stmts)+len(templates) == 0 {
			errs = append(errs, fmt.Errorf("%s: no Policies (or Role) grant it its permissions", id))
		}
		for _, m := range managed {
			if !slices.Contains(allowedManaged, m) {
				errs = append(errs, fmt.Errorf("%s: managed policy %s is broader than the function needs", id, m))
			}
		}
		if fnProp(tpl, id, "VpcConfig") != nil && !slices.Contains(managed, "AWSLambdaVPCAccessExecutionRole") {
			errs = append(errs, fmt.Errorf("%s: runs in the VPC but lacks AWSLambdaVPCAccessExecutionRole", id))
		}
		var send []string
		dbSecret := false
		for _, s := range stmts {
			if s.effect != "Allow" {
				continue
			}
			for _, a := range s.actions {
				if a == "*" || strings.HasSuffix(a, ":*") {
					errs = append(errs, fmt.Errorf("%s: action %q is a wildcard", id, a))
				}
				for _, r := range s.resources {
					if r == "*" && (isS3(a) || isSend(a)) {
						errs = append(errs, fmt.Errorf("%s: %s is granted on resource *", id, a))
					}
					if isSend(a) {
						if q, _, ok := getAtt(r); ok {
							send = append(send, q)
						}
					}
					if n, _ := refName(r); a == "secretsmanager:GetSecretValue" && n == "DatabaseSecretArn" {
						dbSecret = true
					}
					if n, _ := refName(r); n == "UpstreamSecretArnPrefix" && id != "WorkerFunction" {
						errs = append(errs, fmt.Errorf("%s: only the worker may read upstream secrets", id))
					}
				}
			}
		}
		if !dbSecret {
			errs = append(errs, fmt.Errorf("%s: no secretsmanager:GetSecretValue on DatabaseSecretArn", id))
		}
		slices.Sort(send)
		if want, ok := wantSend[id]; ok && !slices.Equal(slices.Compact(send), want) {
			errs = append(errs, fmt.Errorf("%s: may send to %v, want exactly %v", id, send, want))
		}
	}
	return errs
}

// s3Access is one action on one object key.
type s3Access struct{ action, key string }

// checkS3Grants proves each function can reach the object keys the code uses (from the code's own
// key functions, so a changed layout fails here rather than with AccessDenied on AWS), and that
// only the API writes input files.
func checkS3Grants(tpl map[string]any) []error {
	input := domain.InputFileKey("tenant", "file")
	content := domain.ContentKey("tenant", "file")
	staged := domain.StagingKey("tenant", "file")
	part := domain.UploadPartsPrefix("tenant", "upload") + "part"
	output := domain.BatchFileKey("tenant", "batch", true)
	errorsKey := domain.BatchFileKey("tenant", "batch", false)
	messageResults := domain.MessageResultsKey("tenant", "batch")
	writeResults := []s3Access{
		{"s3:PutObject", output}, {"s3:PutObject", errorsKey},
		{"s3:DeleteObject", output}, {"s3:DeleteObject", errorsKey}, {"s3:AbortMultipartUpload", output},
	}
	must := map[string][]s3Access{
		"ApiFunction": {
			{"s3:PutObject", input}, {"s3:DeleteObject", input}, {"s3:AbortMultipartUpload", input},
			{"s3:GetObject", input}, {"s3:GetObject", output}, {"s3:GetObject", errorsKey},
			{"s3:PutObject", content}, {"s3:DeleteObject", content}, {"s3:AbortMultipartUpload", content},
			{"s3:PutObject", staged}, {"s3:GetObject", staged}, {"s3:DeleteObject", staged},
			{"s3:PutObject", part}, {"s3:GetObject", part}, {"s3:DeleteObject", part},
			{"s3:PutObject", messageResults}, {"s3:GetObject", messageResults},
		},
		"PopulateFunction": {{"s3:GetObject", input}, {"s3:GetObject", content}},
		"WorkerFunction":   writeResults,
		"PurgeFunction":    append(writeResults, s3Access{"s3:DeleteObject", messageResults}),
	}
	var errs []error
	fns := functions(tpl)
	for _, id := range sortedKeys(fns) {
		stmts, _, _ := policies(fns[id])
		for _, a := range must[id] {
			if !allows(stmts, a.action, a.key) {
				errs = append(errs, fmt.Errorf("%s: no %s on %s", id, a.action, a.key))
			}
		}
		if id == "ApiFunction" {
			continue
		}
		for _, action := range []string{"s3:PutObject", "s3:DeleteObject"} {
			if allows(stmts, action, input) {
				errs = append(errs, fmt.Errorf("%s: may %s input files; only the API writes them", id, action))
			}
		}
	}
	return errs
}

// allows reports whether an Allow statement grants action on key in the template's Bucket,
// written as !Sub "${Bucket.Arn}/<pattern>".
func allows(stmts []statement, action, key string) bool {
	for _, s := range stmts {
		if s.effect != "Allow" || !slices.Contains(s.actions, action) {
			continue
		}
		for _, r := range s.resources {
			sub, _ := asMap(r)["Fn::Sub"].(string)
			if pattern, ok := strings.CutPrefix(sub, "${Bucket.Arn}/"); ok && iamMatch(pattern, key) {
				return true
			}
		}
	}
	return false
}

// iamMatch matches IAM resource wildcards: * is any run of characters (slashes included), ? one.
func iamMatch(pattern, s string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.NewReplacer(`\*`, `.*`, `\?`, `.`).Replace(re)
	return regexp.MustCompile("^" + re + "$").MatchString(s)
}

// ---------------------------------------------------------------- resources, parameters, outputs

func checkBucket(tpl map[string]any) []error {
	var errs []error
	res := resources(tpl)
	b := res["Bucket"]
	if b["Type"] != "AWS::S3::Bucket" {
		return []error{errors.New("Bucket: no AWS::S3::Bucket named Bucket")}
	}
	p := asMap(b["Properties"])
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if dig(p, "PublicAccessBlockConfiguration", k) != true {
			errs = append(errs, fmt.Errorf("Bucket: PublicAccessBlockConfiguration.%s is not true", k))
		}
	}
	if len(asList(dig(p, "BucketEncryption", "ServerSideEncryptionConfiguration"))) == 0 {
		errs = append(errs, errors.New("Bucket: no BucketEncryption"))
	}
	// The dashboard's presigned PUTs and followed GETs are cross-origin: a browser needs a rule.
	methods := map[string]bool{}
	for _, r := range asList(dig(p, "CorsConfiguration", "CorsRules")) {
		if len(asList(dig(r, "AllowedOrigins"))) == 0 {
			continue
		}
		for _, m := range asList(dig(r, "AllowedMethods")) {
			if s, ok := m.(string); ok {
				methods[s] = true
			}
		}
	}
	if !methods["PUT"] || !methods["GET"] {
		errs = append(errs, errors.New("Bucket: no CORS rule allows the dashboard's presigned PUT and GET"))
	}
	abort := false
	for _, r := range asList(dig(p, "LifecycleConfiguration", "Rules")) {
		if d, ok := literalInt(dig(r, "AbortIncompleteMultipartUpload", "DaysAfterInitiation")); ok && d >= 1 && dig(r, "Status") == "Enabled" {
			abort = true
		}
	}
	if !abort {
		errs = append(errs, errors.New("Bucket: no enabled lifecycle rule aborts incomplete multipart uploads"))
	}
	// What a PUT to a presigned URL leaves after complete must expire, but only after any pending
	// file could still be completed (expires_after is at most 30 days).
	staged := false
	for _, r := range asList(dig(p, "LifecycleConfiguration", "Rules")) {
		prefix, _ := dig(r, "Prefix").(string)
		d, ok := literalInt(dig(r, "ExpirationInDays"))
		if ok && d > 30 && prefix != "" && strings.HasPrefix(domain.StagingKey("tenant", "file"), prefix) && dig(r, "Status") == "Enabled" {
			staged = true
		}
	}
	if !staged {
		errs = append(errs, errors.New("Bucket: no enabled lifecycle rule expires staged uploads after more than 30 days"))
	}
	return errs
}

func checkParameters(tpl map[string]any) []error {
	var errs []error
	want := map[string]string{
		"DatabaseSecretArn":         "String",
		"VpcSubnetIds":              "List<AWS::EC2::Subnet::Id>",
		"VpcSecurityGroupIds":       "List<AWS::EC2::SecurityGroup::Id>",
		"WorkerMaxConcurrency":      "Number",
		"WorkerReservedConcurrency": "Number",
		"UpstreamSecretArnPrefix":   "String",
		"LogLevel":                  "String",
		"CompletionWindows":         "String",
	}
	params := asMap(tpl["Parameters"])
	for _, name := range sortedKeys(want) {
		p := asMap(params[name])
		if p == nil {
			errs = append(errs, fmt.Errorf("parameter %s is missing", name))
			continue
		}
		if p["Type"] != want[name] {
			errs = append(errs, fmt.Errorf("parameter %s: Type = %v, want %s", name, p["Type"], want[name]))
		}
	}
	if d, _ := literalInt(dig(params, "WorkerMaxConcurrency", "Default")); d < 2 {
		errs = append(errs, fmt.Errorf("parameter WorkerMaxConcurrency: Default %v is below 2", dig(params, "WorkerMaxConcurrency", "Default")))
	}
	if d := dig(params, "UpstreamSecretArnPrefix", "Default"); d != "" {
		errs = append(errs, fmt.Errorf("parameter UpstreamSecretArnPrefix: Default = %v, want \"\" (optional)", d))
	}
	// The prefix is both the worker's IAM grant and the allow-list of credential_ref ARNs, so the
	// deployment refuses a value shared/config would refuse at cold start, and the API and worker
	// see the very value the grant uses.
	if p, want := dig(params, "UpstreamSecretArnPrefix", "AllowedPattern"), "^$|"+config.UpstreamSecretARNPattern; p != want {
		errs = append(errs, fmt.Errorf("parameter UpstreamSecretArnPrefix: AllowedPattern = %v, want %q (empty or shared/config's UpstreamSecretARNPattern)", p, want))
	}
	for _, id := range []string{"ApiFunction", "WorkerFunction"} {
		if n, _ := refName(fnEnv(tpl, id)["UPSTREAM_SECRET_ARN_PREFIX"]); n != "UpstreamSecretArnPrefix" {
			errs = append(errs, fmt.Errorf("%s: UPSTREAM_SECRET_ARN_PREFIX = %v, want !Ref UpstreamSecretArnPrefix (the worker's grant)", id, fnEnv(tpl, id)["UPSTREAM_SECRET_ARN_PREFIX"]))
		}
	}
	return errs
}

// replicaReader is the one function that reads from the read replica (shared/postgres's
// replica.go: the API's GET reads); the others read and write the primary only.
const replicaReader = "ApiFunction"

// checkReplica: the read replica is optional (its secret parameter defaults to empty, which
// shared/config reads as "no replica"), and only the function that reads from it is given its
// secret, in its environment and in IAM, where the grant exists only when a secret is named (an
// empty Resource would fail the deployment).
func checkReplica(tpl map[string]any) []error {
	var errs []error
	const param, env, cond = "DatabaseReplicaSecretArn", "DATABASE_REPLICA_SECRET_ARN", "HasDatabaseReplica"
	p := asMap(dig(tpl, "Parameters", param))
	if p == nil {
		return []error{fmt.Errorf("parameter %s is missing", param)}
	}
	if d, ok := p["Default"]; !ok || d != "" {
		errs = append(errs, fmt.Errorf("parameter %s: Default = %v, want \"\" (optional: no replica)", param, p["Default"]))
	}
	if pat, _ := p["AllowedPattern"].(string); !strings.HasPrefix(pat, "^$|") {
		errs = append(errs, fmt.Errorf("parameter %s: AllowedPattern = %q, want one that admits the empty default (^$|...)", param, pat))
	}
	wantCond := map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": param}, ""}}}}
	if c := dig(tpl, "Conditions", cond); !reflect.DeepEqual(c, wantCond) {
		errs = append(errs, fmt.Errorf("condition %s = %v, want !Not [!Equals [!Ref %s, \"\"]]", cond, c, param))
	}
	fns := functions(tpl)
	for _, id := range sortedKeys(fns) {
		v, set := fnEnv(tpl, id)[env]
		n, _ := refName(v)
		switch {
		case id == replicaReader && n != param:
			errs = append(errs, fmt.Errorf("%s: %s = %v, want !Ref %s", id, env, v, param))
		case id != replicaReader && set:
			errs = append(errs, fmt.Errorf("%s: %s is set, but only %s reads from the replica", id, env, replicaReader))
		}
		conditional := false
		for _, pol := range asList(dig(fns[id], "Properties", "Policies")) {
			l, isIf := asMap(pol)["Fn::If"].([]any)
			granted := false
			stmts, _, _ := policies(map[string]any{"Properties": map[string]any{"Policies": []any{pol}}})
			for _, st := range stmts {
				for _, r := range st.resources {
					if rn, _ := refName(r); rn == param && slices.Contains(st.actions, "secretsmanager:GetSecretValue") {
						granted = true
					}
				}
			}
			if !granted {
				continue
			}
			if id != replicaReader {
				errs = append(errs, fmt.Errorf("%s: may read the replica's secret, but only %s reads from the replica", id, replicaReader))
				continue
			}
			if !isIf || len(l) != 3 || l[0] != cond {
				errs = append(errs, fmt.Errorf("%s: the grant on %s must be under !If [%s, ..., !Ref AWS::NoValue]", id, param, cond))
				continue
			}
			conditional = true
		}
		if id == replicaReader && !conditional {
			errs = append(errs, fmt.Errorf("%s: no secretsmanager:GetSecretValue on %s under !If %s", id, param, cond))
		}
	}
	return errs
}

func checkOutputs(tpl map[string]any) []error {
	var errs []error
	outs := asMap(tpl["Outputs"])
	for _, name := range []string{"ApiUrl", "BucketName", "PopulateQueueUrl", "PopulateDLQUrl", "WorkQueueUrl", "WorkDLQUrl"} {
		if dig(outs, name, "Value") == nil {
			errs = append(errs, fmt.Errorf("output %s is missing", name))
		}
	}
	return errs
}

// ---------------------------------------------------------------- 7. samconfig.toml

func checkSamconfig(path string) []error {
	var doc map[string]any
	if _, err := toml.DecodeFile(path, &doc); err != nil {
		return []error{err}
	}
	var errs []error
	if v, ok := doc["version"].(float64); !ok || v != 0.1 {
		errs = append(errs, fmt.Errorf("samconfig: version = %v, want 0.1", doc["version"]))
	}
	if s, _ := dig(doc, "default", "global", "parameters", "stack_name").(string); s == "" {
		errs = append(errs, errors.New("samconfig: default.global.parameters.stack_name is missing"))
	}
	deploy := asMap(dig(doc, "default", "deploy", "parameters"))
	if deploy == nil {
		return append(errs, errors.New("samconfig: [default.deploy.parameters] is missing"))
	}
	caps := fmt.Sprint(deploy["capabilities"])
	if !strings.Contains(caps, "CAPABILITY_IAM") && !strings.Contains(caps, "CAPABILITY_NAMED_IAM") {
		errs = append(errs, fmt.Errorf("samconfig: default.deploy.parameters.capabilities = %v, want CAPABILITY_IAM (SAM creates the roles)", deploy["capabilities"]))
	}
	if r, _ := deploy["region"].(string); r == "" {
		errs = append(errs, errors.New("samconfig: default.deploy.parameters.region is missing"))
	}
	if deploy["resolve_s3"] != true {
		errs = append(errs, fmt.Errorf("samconfig: default.deploy.parameters.resolve_s3 = %v, want true", deploy["resolve_s3"]))
	}
	return errs
}
