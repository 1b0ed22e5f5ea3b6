// Package config reads the functions' settings from the environment once, at cold start, and
// validates them, so that a bad setting fails the deployment's first invocation loudly instead of
// every request quietly. Every variable read anywhere in the project is read here; the template
// test checks that template.yaml declares each of them.
package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/emf"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/postgres"
	"github.com/fusillade/fusillade/shared/upstream"
	"github.com/fusillade/fusillade/shared/webhooks"
)

// Config is the whole configuration. Zero values never reach the code: Load fills defaults. Each
// default is declared once, by the package that owns the knob (engine, upstream, ingest,
// postgres, domain); the values in the comments below are those.
type Config struct {
	LogLevel string // LOG_LEVEL: debug | info | warn | error; default info

	// MetricsNamespace is the CloudWatch namespace of the metrics the functions write as
	// Embedded Metric Format records (METRICS_NAMESPACE); default emf.DefaultNamespace
	// ("fusillade"). Two deployments in one account and region keep apart with two namespaces.
	MetricsNamespace string

	// Database: DATABASE_URL (local and tests) or DATABASE_SECRET_ARN, a Secrets Manager secret in
	// the RDS format {"username","password","host","port","dbname"} (AWS). DB_MAX_CONNS caps each
	// instance's pool; default 10.
	DatabaseURL       string
	DatabaseSecretARN string
	DBMaxConns        int

	// Read replica, optional: DATABASE_REPLICA_URL (local and tests) or
	// DATABASE_REPLICA_SECRET_ARN, a secret in the same RDS format naming the replica (or an
	// Aurora reader endpoint). The API serves its list, get, content and results reads from it
	// (postgres.Options.ReplicaURL says which, and what a lagging replica means for them); every
	// write, and every read that decides one, stays on the primary. Default none: both empty, and
	// every read goes to the primary. Its pool has DB_MAX_CONNS connections of its own.
	DatabaseReplicaURL       string
	DatabaseReplicaSecretARN string

	Region         string // AWS_REGION; default us-east-1
	Bucket         string // BUCKET: holds input, output and error files
	S3Endpoint     string // S3_ENDPOINT: local emulator only; empty on AWS
	S3PathStyle    bool   // S3_PATH_STYLE: local emulator only
	SQSEndpoint    string // SQS_ENDPOINT: local emulator only; empty on AWS
	PopulateQueue  string // POPULATE_QUEUE_URL
	WorkQueue      string // WORK_QUEUE_URL
	FunctionName   string // AWS_LAMBDA_FUNCTION_NAME, set by Lambda; names worker records
	CompletionWins []string

	Retry             domain.RetryPolicy // MAX_RETRIES, BACKOFF_BASE_MS, BACKOFF_FACTOR, BACKOFF_MAX_MS, STOP_BEFORE_DEADLINE_MS
	ClaimTimeout      time.Duration      // CLAIM_TIMEOUT_MS: a claim not started within this is rescued; default 60s
	ProcessingTimeout time.Duration      // PROCESSING_TIMEOUT_MS: default 16m, longer than the worker's 15-minute Lambda limit so a live worker is never robbed
	StaleWorker       time.Duration      // STALE_WORKER_MS: a worker silent this long is dead and its requests are rescued; default 60s
	UrgencyWeight     float64            // URGENCY_WEIGHT: 0 = tenant fairness only, 1 = earliest deadline only; default 0.5
	LoopFor           time.Duration      // WORKER_LOOP_FOR_MS: how long a worker invocation refills its own slots before giving them back to the queue; default 60s
	RefillReserve     time.Duration      // REFILL_RESERVE_MS: a slot takes no next request once its invocation has less than this left; default 120s

	FirstByteTimeout  time.Duration // UPSTREAM_FIRST_BYTE_TIMEOUT_MS: default 540s
	BodyTimeout       time.Duration // UPSTREAM_BODY_TIMEOUT_MS: reading the body after headers (for streams, the whole generation); default 300s
	MaxResponseBytes  int64         // UPSTREAM_MAX_RESPONSE_BYTES: default 32 MiB
	RetriableStatuses []int         // RETRIABLE_STATUSES: beyond 5xx/429/408; default "404,499"
	StreamablePaths   []string      // STREAMABLE_ENDPOINTS: comma-separated paths sent as SSE; default none
	MetadataHeaders   []string      // BATCH_METADATA_HEADERS: batch metadata keys forwarded as x-fusillade-batch-<key>; default none

	// UpstreamSecretARNPrefix is what the Secrets Manager ARN of every model's credential_ref must
	// start with (UPSTREAM_SECRET_ARN_PREFIX, the template's UpstreamSecretArnPrefix parameter: an
	// IAM resource pattern whose one wildcard is a trailing *, which is dropped here). Empty, the
	// default, allows no ARN references at all. It may not cover DATABASE_SECRET_ARN.
	UpstreamSecretARNPrefix string

	// FailFastAfter is the fail-fast breaker's K for batches that do not set fail_fast_after
	// (FAIL_FAST_AFTER): a batch whose first K finished requests all failed with the same
	// upstream 4xx status is stopped; default 20, 0 = off.
	FailFastAfter int
	// CoalesceCacheTTL (COALESCE_CACHE_TTL, a Go duration such as "24h") keeps a coalescing
	// batch's completed answers that long, so that a line with the same key populated later is
	// served without an upstream call. Default postgres.DefaultCoalesceCacheTTL (0): no cache.
	CoalesceCacheTTL time.Duration

	// Webhooks. WebhookAllowPrivate (WEBHOOK_ALLOW_PRIVATE, default false) lets endpoints use
	// http and reach private, loopback and link-local addresses: local runs and tests only.
	// WebhookSchedule (WEBHOOK_RETRY_SCHEDULE, comma-separated durations) is the wait before each
	// retry; default webhooks.DefaultSchedule, 5s,5m,30m,2h,5h,10h,14h,20h,24h (10 attempts).
	// WebhookTimeout (WEBHOOK_TIMEOUT_MS) bounds each attempt; default 10s.
	WebhookAllowPrivate bool
	WebhookSchedule     []time.Duration
	WebhookTimeout      time.Duration

	// PublicURL is the origin clients reach the API at (PUBLIC_API_URL, e.g.
	// https://batch.example.com), which message batches' results_url starts with; default empty,
	// a root-relative results_url.
	PublicURL string

	MaxFileBytes int64 // MAX_FILE_BYTES: input file cap; default 200 MB (OpenAI's)
	MaxLines     int   // MAX_LINES: requests per file; default 50,000 (OpenAI's)
}

// Load reads and validates the configuration.
func Load(getenv func(string) string) (Config, error) {
	e := env{getenv: getenv}
	retry := domain.DefaultRetryPolicy()
	c := Config{
		LogLevel:          e.str("LOG_LEVEL", "info"),
		MetricsNamespace:  e.str("METRICS_NAMESPACE", emf.DefaultNamespace),
		DatabaseURL:       e.str("DATABASE_URL", ""),
		DatabaseSecretARN: e.str("DATABASE_SECRET_ARN", ""),
		DBMaxConns:        e.int("DB_MAX_CONNS", postgres.DefaultMaxConns),
		// No replica unless one is named.
		DatabaseReplicaURL:       e.str("DATABASE_REPLICA_URL", ""),
		DatabaseReplicaSecretARN: e.str("DATABASE_REPLICA_SECRET_ARN", ""),
		Region:                   e.str("AWS_REGION", "us-east-1"),
		Bucket:                   e.str("BUCKET", ""),
		S3Endpoint:               e.str("S3_ENDPOINT", ""),
		S3PathStyle:              e.bool("S3_PATH_STYLE", false),
		SQSEndpoint:              e.str("SQS_ENDPOINT", ""),
		PopulateQueue:            e.str("POPULATE_QUEUE_URL", ""),
		WorkQueue:                e.str("WORK_QUEUE_URL", ""),
		FunctionName:             e.str("AWS_LAMBDA_FUNCTION_NAME", "local"),
		CompletionWins:           e.list("COMPLETION_WINDOWS", domain.DefaultCompletionWindow),
		PublicURL:                e.str("PUBLIC_API_URL", ""),
		Retry: domain.RetryPolicy{
			MaxRetries:         e.int("MAX_RETRIES", retry.MaxRetries),
			Base:               e.ms("BACKOFF_BASE_MS", retry.Base),
			Factor:             e.float("BACKOFF_FACTOR", retry.Factor),
			Max:                e.ms("BACKOFF_MAX_MS", retry.Max),
			Jitter:             retry.Jitter,
			StopBeforeDeadline: e.ms("STOP_BEFORE_DEADLINE_MS", retry.StopBeforeDeadline),
		},
		ClaimTimeout:      e.ms("CLAIM_TIMEOUT_MS", engine.DefaultClaimTimeout),
		ProcessingTimeout: e.ms("PROCESSING_TIMEOUT_MS", engine.DefaultProcessingTimeout),
		StaleWorker:       e.ms("STALE_WORKER_MS", engine.DefaultStaleWorker),
		UrgencyWeight:     e.float("URGENCY_WEIGHT", engine.DefaultUrgencyWeight),
		LoopFor:           e.ms("WORKER_LOOP_FOR_MS", engine.DefaultLoopFor),
		RefillReserve:     e.ms("REFILL_RESERVE_MS", engine.DefaultRefillReserve),
		FirstByteTimeout:  e.ms("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", upstream.DefaultFirstByteTimeout),
		BodyTimeout:       e.ms("UPSTREAM_BODY_TIMEOUT_MS", upstream.DefaultBodyTimeout),
		MaxResponseBytes:  int64(e.int("UPSTREAM_MAX_RESPONSE_BYTES", upstream.DefaultMaxResponseBytes)),
		RetriableStatuses: e.ints("RETRIABLE_STATUSES", joinInts(upstream.DefaultRetriableStatuses())),
		StreamablePaths:   e.list("STREAMABLE_ENDPOINTS", ""),
		MetadataHeaders:   e.list("BATCH_METADATA_HEADERS", ""),
		MaxFileBytes:      int64(e.int("MAX_FILE_BYTES", int(ingest.DefaultMaxFileBytes))),
		MaxLines:          e.int("MAX_LINES", ingest.DefaultMaxLines),
		FailFastAfter:     e.int("FAIL_FAST_AFTER", domain.DefaultFailFastAfter),
		CoalesceCacheTTL:  e.duration("COALESCE_CACHE_TTL", postgres.DefaultCoalesceCacheTTL),

		WebhookAllowPrivate: e.bool("WEBHOOK_ALLOW_PRIVATE", false),
		WebhookSchedule:     e.durations("WEBHOOK_RETRY_SCHEDULE", webhooks.DefaultSchedule),
		WebhookTimeout:      e.ms("WEBHOOK_TIMEOUT_MS", domain.DefaultWebhookTimeout),
	}
	c.UpstreamSecretARNPrefix = strings.TrimSuffix(e.str("UPSTREAM_SECRET_ARN_PREFIX", ""), "*")
	if e.err != nil {
		return c, e.err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if c.DatabaseURL == "" && c.DatabaseSecretARN == "" {
		errs = append(errs, errors.New("one of DATABASE_URL or DATABASE_SECRET_ARN is required"))
	}
	for _, w := range c.CompletionWins {
		if _, err := domain.ParseWindow(w); err != nil {
			errs = append(errs, fmt.Errorf("COMPLETION_WINDOWS: %w", err))
		}
	}
	if c.FailFastAfter < 0 || c.FailFastAfter > domain.MaxFailFastAfter {
		errs = append(errs, fmt.Errorf("FAIL_FAST_AFTER must be within 0..%d", domain.MaxFailFastAfter))
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("WEBHOOK_TIMEOUT_MS must be positive"))
	}
	if c.UrgencyWeight < 0 || c.UrgencyWeight > 1 {
		errs = append(errs, errors.New("URGENCY_WEIGHT must be within 0..1"))
	}
	if c.Retry.Factor < 1 {
		errs = append(errs, errors.New("BACKOFF_FACTOR must be at least 1"))
	}
	if c.LoopFor <= 0 || c.RefillReserve <= 0 {
		errs = append(errs, errors.New("WORKER_LOOP_FOR_MS and REFILL_RESERVE_MS must be positive"))
	}
	if c.ClaimTimeout <= 0 || c.ProcessingTimeout <= 0 || c.StaleWorker <= 0 {
		errs = append(errs, errors.New("CLAIM_TIMEOUT_MS, PROCESSING_TIMEOUT_MS and STALE_WORKER_MS must be positive"))
	}
	for _, p := range c.StreamablePaths {
		if !domain.ValidEndpoint(p) {
			errs = append(errs, fmt.Errorf("STREAMABLE_ENDPOINTS: %q is not an allowed endpoint", p))
		}
	}
	if p := c.UpstreamSecretARNPrefix; p != "" {
		switch {
		case !upstreamSecretARNPattern.MatchString(p + "*"):
			errs = append(errs, fmt.Errorf("UPSTREAM_SECRET_ARN_PREFIX=%q: want a Secrets Manager ARN prefix naming a path, e.g. arn:aws:secretsmanager:us-east-1:123456789012:secret:fusillade/upstream/*", p+"*"))
		case c.DatabaseSecretARN != "" && strings.HasPrefix(c.DatabaseSecretARN, p):
			errs = append(errs, errors.New("UPSTREAM_SECRET_ARN_PREFIX covers DATABASE_SECRET_ARN: a model's credential_ref could name the database secret"))
		case c.DatabaseReplicaSecretARN != "" && strings.HasPrefix(c.DatabaseReplicaSecretARN, p):
			errs = append(errs, errors.New("UPSTREAM_SECRET_ARN_PREFIX covers DATABASE_REPLICA_SECRET_ARN: a model's credential_ref could name the replica's secret"))
		}
	}
	return errors.Join(errs...)
}

// UpstreamSecretARNPattern is the form of UPSTREAM_SECRET_ARN_PREFIX: a full Secrets Manager ARN
// up to a non-empty name prefix, optionally ending in the IAM wildcard *. template.yaml's
// UpstreamSecretArnPrefix parameter allows exactly this (or empty); its test compares the two.
const UpstreamSecretARNPattern = `^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+\*?$`

var upstreamSecretARNPattern = regexp.MustCompile(UpstreamSecretARNPattern)

// Require reports the named settings that are empty, for functions that need them.
func (c Config) Require(names ...string) error {
	values := map[string]string{"BUCKET": c.Bucket, "POPULATE_QUEUE_URL": c.PopulateQueue, "WORK_QUEUE_URL": c.WorkQueue}
	var missing []string
	for _, n := range names {
		if values[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required settings: %s", strings.Join(missing, ", "))
	}
	return nil
}

// LocalOnly lists the variables that exist for the local emulators (or are set by Lambda
// itself) and are therefore absent from template.yaml on purpose.
var LocalOnly = []string{"DATABASE_URL", "DATABASE_REPLICA_URL", "S3_ENDPOINT", "S3_PATH_STYLE", "SQS_ENDPOINT", "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME"}

type env struct {
	getenv func(string) string
	err    error
}

func (e *env) fail(name, v string, err error) {
	e.err = errors.Join(e.err, fmt.Errorf("%s=%q: %w", name, v, err))
}

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

func (e *env) int(name string, def int) int {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, v, err)
	}
	return n
}

func (e *env) float(name string, def float64) float64 {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.fail(name, v, err)
	}
	return f
}

func (e *env) bool(name string, def bool) bool {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, v, err)
	}
	return b
}

func (e *env) ms(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, v, err)
	}
	return time.Duration(n) * time.Millisecond
}

func (e *env) list(name, def string) []string {
	var out []string
	for _, p := range strings.Split(e.str(name, def), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// duration reads one Go duration ("24h"); it must not be negative (0 is off).
func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	if err != nil {
		e.fail(name, v, err)
	}
	return d
}

// durations reads comma-separated Go durations ("5s,5m,2h"); each must be positive.
func (e *env) durations(name string, def []time.Duration) []time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	var out []time.Duration
	for _, p := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		if err != nil {
			e.fail(name, p, err)
			continue
		}
		out = append(out, d)
	}
	return out
}

func (e *env) ints(name, def string) []int {
	var out []int
	for _, p := range e.list(name, def) {
		n, err := strconv.Atoi(p)
		if err != nil {
			e.fail(name, p, err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// joinInts is the inverse of env.ints, to state a default list in the variable's own form.
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
