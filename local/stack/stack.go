// Package stack runs the whole of fusillade on one machine: a throwaway PostgreSQL cluster (or
// DATABASE_URL), S3 through gofakes3, SQS through the in-repo emulator, a mock OpenAI-compatible
// upstream, and the five functions wired exactly as AWS wires them — the API as an http.Handler,
// populate and the worker fed by SQS event-source runners, dispatch and purge on schedules. The
// functions talk to the emulators through the real AWS SDK clients. The queues' attributes, the
// event sources' batch sizes, windows, concurrency and timeouts, and the schedules are read from
// template.yaml; localOverrides lists where the stack departs from it, and why.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fusillade/fusillade"
	"github.com/fusillade/fusillade/deploy/samtemplate"
	"github.com/fusillade/fusillade/local/esm"
	"github.com/fusillade/fusillade/local/fakesqs"
	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/prometheus"
	"github.com/fusillade/fusillade/shared/sqsqueue"
	"github.com/fusillade/fusillade/shared/wire"
)

// ModelSpec is a model the stack configures at start. Without a BaseURL it is served by the
// mock upstream; with one it is a real upstream (a local vLLM, OpenAI) called with the key that
// CredentialRef names (e.g. env:FUSILLADE_UPSTREAM_KEY_OPENAI), resolved from the process
// environment.
type ModelSpec struct {
	Name  string
	Limit int
	// BaseURL is the upstream's base URL without /v1 (the request path is appended); default the
	// mock upstream.
	BaseURL string
	// CredentialRef names the upstream key; empty sends no Authorization header.
	CredentialRef string
	// EscalationModel takes over this model's requests whose batch deadline is within
	// EscalationThreshold seconds (default 900 when EscalationModel is set).
	EscalationModel     string
	EscalationThreshold int
}

// Options configures Start. The zero value runs a persistent stack under ./.data on
// 127.0.0.1:8080.
type Options struct {
	// DataDir keeps the database cluster, the S3 objects and the API key across restarts;
	// default ".data". Ignored for the database when DatabaseURL is set.
	DataDir string
	// Fresh wipes DataDir first.
	Fresh bool
	// Ephemeral keeps S3 in memory, writes no key file and runs PostgreSQL without fsync (tests
	// and benchmarks); otherwise the cluster is durable.
	Ephemeral bool
	// DatabaseURL uses an existing database instead of starting a cluster.
	DatabaseURL string
	// ReplicaURL names a read replica of the database, which serves the API's GET reads
	// (DATABASE_REPLICA_URL; docs/api.md, Read replicas). Default none: every read goes to the
	// primary.
	ReplicaURL string
	// APIAddr is where the API listens; default 127.0.0.1:8080. Use 127.0.0.1:0 for a free port.
	APIAddr string
	// Models to configure; default DefaultModels().
	Models []ModelSpec
	// Upstream configures the mock upstream (latency, error rate).
	Upstream mockupstream.Config
	// WorkerConcurrency caps concurrent worker invocations; default DefaultWorkerConcurrency (32),
	// not the template's WorkerMaxConcurrency (see localOverrides).
	WorkerConcurrency int
	// DispatchEvery and PurgeEvery are the schedules; default the template's (every minute).
	// Slots are refilled by workers when requests finish, so the schedule is only the start and
	// safety net.
	DispatchEvery, PurgeEvery time.Duration
	// Env sets configuration variables (engine knobs) over everything else.
	Env map[string]string
	// Getenv is the process environment: configuration variables the stack does not set itself
	// (MAX_RETRIES, BACKOFF_*, …) are read from it, and it overrides the stack's defaults
	// (DB_MAX_CONNS, COMPLETION_WINDOWS); it also resolves env: credential references. The
	// stack's own wiring (database, S3, SQS endpoints and queues) is never taken from it.
	// Default os.Getenv.
	Getenv func(string) string
	// NoMetrics leaves the engine's metrics off (engine.NopMetrics) and /metrics unserved (the
	// benchmark's default). Otherwise the API address also serves GET /metrics: the engine's
	// figures (the ones the Lambda functions write as EMF records) in the Prometheus text format.
	NoMetrics bool
	// Decorate wraps the engine's collaborators and WrapWorker the worker's processor (the
	// benchmark's timing probes); nil leaves them as they are.
	Decorate   func(engine.Deps) engine.Deps
	WrapWorker func(lambdafn.Processor) lambdafn.Processor
	// Invoked, when set, is told of every function invocation the stack makes, once it has
	// returned: each handler call of the SQS event sources, each scheduled run, and each API
	// request (API Gateway invokes the API function once per request). It is called
	// concurrently. The benchmark's cost figures are counted from it.
	Invoked func(Invocation)
	Logger  *slog.Logger
}

// Invocation is one function invocation the stack made.
type Invocation struct {
	// Function is the function's logical id in template.yaml: ApiFunction, PopulateFunction,
	// WorkerFunction, DispatchFunction or PurgeFunction.
	Function string
	// Records is the number of SQS messages handed to it; 0 for schedules and the API.
	Records int
	// Duration is the invocation's wall time, what Lambda bills (before rounding up to 1 ms).
	Duration time.Duration
}

// DefaultWorkerConcurrency is Options.WorkerConcurrency's default.
const DefaultWorkerConcurrency = 32

// localOverrides are where the stack deliberately departs from template.yaml; everything else
// about the queues, event sources and schedules is the template's.
var localOverrides = struct {
	// WorkerConcurrency replaces the worker event source's MaximumConcurrency (the template's
	// WorkerMaxConcurrency, 100): on AWS each invocation is an instance with its own database
	// pool, here every invocation shares one process and one pool of DB_MAX_CONNS.
	WorkerConcurrency int
	// RetryFailedAfter: Lambda leaves a reported item failure invisible for the queue's
	// visibility timeout (90 minutes in the template); here it comes back after a second, so that
	// tests and demos do not wait for it.
	RetryFailedAfter time.Duration
	// Env are the stack's environment defaults, which the process environment overrides: one
	// machine runs every function, so the pool is larger than a Lambda instance's, and every
	// window is offered.
	Env map[string]string
}{
	WorkerConcurrency: DefaultWorkerConcurrency,
	RetryFailedAfter:  time.Second,
	Env:               map[string]string{"DB_MAX_CONNS": "40", "COMPLETION_WINDOWS": "1h,24h,7d"},
}

// deployment reads template.yaml's settings, afresh for every stack (it takes a millisecond),
// so that no stack shares its maps with another.
func deployment() (samtemplate.Settings, error) {
	tpl, err := samtemplate.Parse(fusillade.Template)
	if err != nil {
		return samtemplate.Settings{}, fmt.Errorf("template.yaml: %w", err)
	}
	s, err := samtemplate.ReadSettings(tpl)
	if err != nil {
		return s, fmt.Errorf("template.yaml: %w", err)
	}
	return s, nil
}

// Stack is a running local deployment.
type Stack struct {
	APIURL   string // base URL of the API, e.g. http://127.0.0.1:8080 (clients append /v1)
	APIKey   string // a tenant key
	AdminKey string
	TenantID string
	Upstream *mockupstream.Server
	App      *wire.App
	// Cluster is the PostgreSQL server the stack started; nil with Options.DatabaseURL.
	Cluster *pgcluster.Cluster
	SQS     *sqs.Client
	// SQSEmulator is the SQS server the functions talk to (its Requests are the SQS calls the
	// stack made).
	SQSEmulator *fakesqs.Server
	Queues      map[string]string // name → URL (populate, populate-dlq, work, work-dlq)
	// UpstreamURL is the mock upstream's base URL; Env is the functions' environment (what a
	// bootstrap run outside this process needs to join the stack).
	UpstreamURL string
	Env         map[string]string
	// Metrics is the Prometheus registry GET /metrics serves; nil with Options.NoMetrics.
	Metrics *prometheus.Recorder

	log     *slog.Logger
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func()
}

// DefaultModels are the models a stack configures when it is given none: mock-chat (limit 8),
// mock-embed (limit 4) and claude-mock (limit 4, for Anthropic's Messages API: message batches),
// all served by the mock upstream.
func DefaultModels() []ModelSpec {
	return []ModelSpec{{Name: "mock-chat", Limit: 8}, {Name: "mock-embed", Limit: 4}, {Name: MessagesModel, Limit: 4}}
}

// MessagesModel is the default model that speaks Anthropic's Messages API (/v1/messages) on the
// mock upstream.
const MessagesModel = "claude-mock"

// Start brings the stack up and returns once the API answers. A failed start stops whatever it
// had started, PostgreSQL included, and says why in one line.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	st := &Stack{Queues: map[string]string{}}
	if err := st.start(ctx, opts); err != nil {
		st.Stop()
		return nil, err
	}
	return st, nil
}

func (st *Stack) start(ctx context.Context, opts Options) error {
	if opts.DataDir == "" {
		opts.DataDir = ".data"
	}
	if opts.APIAddr == "" {
		opts.APIAddr = "127.0.0.1:8080"
	}
	if len(opts.Models) == 0 {
		opts.Models = DefaultModels()
	}
	dep, err := deployment()
	if err != nil {
		return err
	}
	populateEv, workerEv := dep.SQSEvents[populateFn], dep.SQSEvents[workerFn]
	dispatchSch, purgeSch := dep.Schedules[dispatchFn], dep.Schedules[purgeFn]
	if err := ranLocally(dep); err != nil {
		return err
	}
	if opts.WorkerConcurrency <= 0 {
		opts.WorkerConcurrency = localOverrides.WorkerConcurrency
	}
	if opts.DispatchEvery <= 0 {
		opts.DispatchEvery = dispatchSch.Every
	}
	if opts.PurgeEvery <= 0 {
		opts.PurgeEvery = purgeSch.Every
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st.log = log
	// The API address first: when it is taken, nothing else has been started yet.
	ln, err := net.Listen("tcp", opts.APIAddr)
	if err != nil {
		return fmt.Errorf("api address %s: %w", opts.APIAddr, err)
	}
	st.closers = append(st.closers, func() { _ = ln.Close() })
	if err := st.lockDataDir(opts); err != nil {
		return err
	}
	predecessors := st.predecessors(opts)

	// PostgreSQL.
	dbURL := opts.DatabaseURL
	if dbURL == "" {
		// Data a user keeps must survive a power cut: fsync stays on unless the stack is a
		// throwaway (tests, benchmarks).
		cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(opts.DataDir, "pg"), Durable: !opts.Ephemeral, Logger: log})
		if err != nil {
			return err
		}
		st.Cluster = cl
		st.closers = append(st.closers, func() { _ = cl.Stop() })
		dbURL = cl.URL("postgres")
	}

	// S3 and SQS emulators.
	var backend gofakes3.Backend
	if opts.Ephemeral {
		backend = s3mem.New()
	} else {
		b, err := s3bolt.NewFile(filepath.Join(opts.DataDir, "s3.bolt"))
		if err != nil {
			return fmt.Errorf("s3 emulator: %w", err)
		}
		backend = b
	}
	s3URL, err := st.serve(gofakes3.New(backend, gofakes3.WithAutoBucket(true)).Server())
	if err != nil {
		return err
	}
	st.SQSEmulator = fakesqs.New(fakesqs.WithLogger(log))
	sqsURL, err := st.serve(st.SQSEmulator)
	if err != nil {
		return err
	}
	st.Upstream = mockupstream.New(opts.Upstream)
	if st.UpstreamURL, err = st.serve(st.Upstream); err != nil {
		return err
	}

	awsCfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			// Dozens of long-polling receivers and senders share one client.
			t.MaxIdleConns, t.MaxIdleConnsPerHost = 512, 512
		}),
	}
	st.SQS = sqsqueue.NewClient(awsCfg, sqsURL)
	arns, err := st.createQueues(ctx, dep.Queues)
	if err != nil {
		return err
	}

	// The stack's wiring: what the functions need to find this stack's emulators.
	wiring := map[string]string{
		"DATABASE_URL":         dbURL,
		"DATABASE_REPLICA_URL": opts.ReplicaURL,
		"BUCKET":               "fusillade",
		"S3_ENDPOINT":          s3URL,
		"S3_PATH_STYLE":        "true",
		"SQS_ENDPOINT":         sqsURL,
	}
	for name, id := range dep.QueueURLVars {
		wiring[name] = st.Queues[queueName(id)]
	}
	env := map[string]string{}
	for k, v := range localOverrides.Env {
		if pv := opts.Getenv(k); pv != "" {
			v = pv
		}
		env[k] = v
	}
	for k, v := range wiring {
		env[k] = v
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	st.Env = env
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return opts.Getenv(k)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	var metrics engine.Metrics
	if !opts.NoMetrics {
		st.Metrics = prometheus.New()
		metrics = st.Metrics
	}
	app, err := wire.Open(ctx, cfg, log, wire.Options{Function: "local", AWS: &awsCfg, Getenv: getenv, Migrate: true,
		Metrics: metrics, Decorate: opts.Decorate})
	if err != nil {
		return err
	}
	st.App = app
	st.closers = append(st.closers, app.Close)
	if err := app.Blobs.EnsureBucket(ctx); err != nil {
		return err
	}
	for _, m := range opts.Models {
		base := m.BaseURL
		if base == "" {
			base = st.UpstreamURL
		}
		if err := app.Store.UpsertModel(ctx, domain.Model{Name: m.Name, BaseURL: base, CredentialRef: m.CredentialRef,
			ConcurrencyLimit: m.Limit, EscalationModel: m.EscalationModel, EscalationThreshold: m.EscalationThreshold}); err != nil {
			return err
		}
	}
	if err := st.ensureKeys(ctx, opts); err != nil {
		return err
	}
	// Before the functions start: take back at once what earlier runs on this data directory
	// left claimed or processing, then record this run for the next one.
	if err := st.rescuePredecessors(ctx, opts, predecessors); err != nil {
		return err
	}

	// The functions, wired as AWS wires them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.cancel = cancel
	var worker lambdafn.Processor = app.Engine
	if opts.WrapWorker != nil {
		worker = opts.WrapWorker(worker)
	}
	for _, src := range []struct {
		fn          string
		ev          samtemplate.SQSEvent
		handler     lambdafn.SQSHandler
		concurrency int
	}{
		{populateFn, populateEv, lambdafn.Populate(app.Ingester, sqsqueue.ParsePopulate, log), eventConcurrency(populateEv)},
		{workerFn, workerEv, lambdafn.Worker(worker, sqsqueue.ParseMessage, log, metrics), opts.WorkerConcurrency},
	} {
		s := &esm.SQSSource{Client: st.SQS, QueueURL: st.Queues[queueName(src.ev.Queue)], QueueARN: arns[src.ev.Queue],
			Handler: observeSQS(src.fn, esm.Handler(src.handler), opts.Invoked), BatchSize: src.ev.BatchSize, BatchingWindow: src.ev.MaximumBatchingWindow,
			MaxConcurrency: src.concurrency, ReportBatchItemFailures: src.ev.ReportBatchItemFailures,
			RetryFailedAfter: localOverrides.RetryFailedAfter, Timeout: src.ev.Timeout, Logger: log}
		st.goRun(func() { s.Run(runCtx) })
	}
	for _, sch := range []struct {
		name    string
		fn      string
		every   time.Duration
		timeout time.Duration
		run     func(ctx context.Context) error
	}{
		{"dispatch", dispatchFn, opts.DispatchEvery, dispatchSch.Timeout, func(ctx context.Context) error {
			_, err := app.Engine.DispatchAll(ctx)
			return err
		}},
		{"purge", purgeFn, opts.PurgeEvery, purgeSch.Timeout, func(ctx context.Context) error {
			_, err := app.Engine.Maintain(ctx)
			return err
		}},
	} {
		st.goRun(func() {
			esm.Schedule(runCtx, sch.every, sch.name, log, func(ctx context.Context) error {
				// Bounded by the function's Timeout, as Lambda bounds the invocation.
				ctx, cancel := context.WithTimeout(ctx, sch.timeout)
				defer cancel()
				defer observe(opts.Invoked, sch.fn, 0, time.Now())
				return sch.run(ctx)
			})
		})
	}

	if app.Config.PublicURL == "" {
		// Message batches' results_url is absolute on the origin the API listens on.
		app.Config.PublicURL = "http://" + ln.Addr().String()
	}
	handler := observeHTTP(apiFn, app.API(), opts.Invoked)
	if st.Metrics != nil {
		// Beside the API rather than in it: a scrape is no API invocation, needs no key, and
		// the deployed API has no /metrics (CloudWatch has the figures).
		// Not a ServeMux: it would clean (redirect) paths the API answers itself.
		api, scrape := handler, st.Metrics.Handler()
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" && r.Method == http.MethodGet {
				scrape.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	st.goRun(func() { _ = srv.Serve(ln) })
	st.closers = append(st.closers, func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	})
	st.APIURL = "http://" + ln.Addr().String()
	return nil
}

// serve starts an HTTP server for h on a free loopback port and returns its URL.
func (st *Stack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	st.goRun(func() { _ = srv.Serve(ln) })
	st.closers = append(st.closers, func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

func (st *Stack) goRun(f func()) {
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		f()
	}()
}

// ensureKeys reuses the key saved in DataDir when the database still knows it, so that a restart
// keeps the same credentials; otherwise it creates a tenant with a tenant key and an admin key.
func (st *Stack) ensureKeys(ctx context.Context, opts Options) error {
	path := filepath.Join(opts.DataDir, "api-keys")
	if !opts.Ephemeral {
		if b, err := os.ReadFile(path); err == nil {
			parts := strings.Fields(string(b))
			if len(parts) == 2 {
				p, err1 := st.App.Store.Authenticate(ctx, parts[0])
				_, err2 := st.App.Store.Authenticate(ctx, parts[1])
				if err1 == nil && err2 == nil {
					st.APIKey, st.AdminKey, st.TenantID = parts[0], parts[1], p.TenantID
					return nil
				}
			}
		}
	}
	now := time.Now()
	tenant, err := st.App.Store.CreateTenant(ctx, "local", false, now)
	if err != nil {
		return err
	}
	if _, st.APIKey, err = st.App.Store.CreateAPIKey(ctx, tenant.ID, "local", false, now); err != nil {
		return err
	}
	if _, st.AdminKey, err = st.App.Store.CreateAPIKey(ctx, tenant.ID, "local-admin", true, now); err != nil {
		return err
	}
	st.TenantID = tenant.ID
	if opts.Ephemeral {
		return nil
	}
	return os.WriteFile(path, []byte(st.APIKey+"\n"+st.AdminKey+"\n"), 0o600)
}

// NewTenant creates another tenant and returns its key (tests of isolation).
func (st *Stack) NewTenant(ctx context.Context, name string) (string, error) {
	t, err := st.App.Store.CreateTenant(ctx, name, false, time.Now())
	if err != nil {
		return "", err
	}
	_, key, err := st.App.Store.CreateAPIKey(ctx, t.ID, name, false, time.Now())
	return key, err
}

// Stop shuts everything down, in reverse order of start.
func (st *Stack) Stop() {
	if st.cancel != nil {
		st.cancel()
	}
	if st.Upstream != nil {
		st.Upstream.Close() // release requests held by test directives
	}
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.wg.Wait()
}

// The template's functions the stack runs, by logical id.
const (
	apiFn      = "ApiFunction"
	populateFn = "PopulateFunction"
	workerFn   = "WorkerFunction"
	dispatchFn = "DispatchFunction"
	purgeFn    = "PurgeFunction"
)

// observe reports an invocation of fn that started at t0 to invoked, if set; deferred, it
// reports a panicking one too.
func observe(invoked func(Invocation), fn string, records int, t0 time.Time) {
	if invoked != nil {
		invoked(Invocation{Function: fn, Records: records, Duration: time.Since(t0)})
	}
}

// observeSQS reports every call of an SQS-triggered handler.
func observeSQS(fn string, h esm.Handler, invoked func(Invocation)) esm.Handler {
	if invoked == nil {
		return h
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		defer observe(invoked, fn, len(ev.Records), time.Now())
		return h(ctx, ev)
	}
}

// observeHTTP reports every request to the API as an invocation of fn.
func observeHTTP(fn string, h http.Handler, invoked func(Invocation)) http.Handler {
	if invoked == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer observe(invoked, fn, 0, time.Now())
		h.ServeHTTP(w, r)
	})
}

// ranLocally checks that the template's event sources and schedules are the ones the stack runs:
// a new one would otherwise be silently left out locally.
func ranLocally(dep samtemplate.Settings) error {
	var errs []error
	for _, id := range []string{populateFn, workerFn} {
		if _, ok := dep.SQSEvents[id]; !ok {
			errs = append(errs, fmt.Errorf("template.yaml: %s has no SQS event", id))
		}
	}
	for _, id := range []string{dispatchFn, purgeFn} {
		if _, ok := dep.Schedules[id]; !ok {
			errs = append(errs, fmt.Errorf("template.yaml: %s has no schedule", id))
		}
	}
	for id := range dep.SQSEvents {
		if id != populateFn && id != workerFn {
			errs = append(errs, fmt.Errorf("template.yaml: the local stack runs nothing for %s's SQS event", id))
		}
	}
	for id := range dep.Schedules {
		if id != dispatchFn && id != purgeFn {
			errs = append(errs, fmt.Errorf("template.yaml: the local stack runs nothing for %s's schedule", id))
		}
	}
	return errors.Join(errs...)
}

// eventConcurrency is the most concurrent invocations AWS allows an event source: its
// MaximumConcurrency, within the function's reserved concurrency.
func eventConcurrency(ev samtemplate.SQSEvent) int {
	n := ev.MaximumConcurrency
	if r := ev.ReservedConcurrency; r > 0 && (n == 0 || r < n) {
		n = r
	}
	return n
}

// queueName is the local name of the template's queue: the logical id without "Queue", in
// lower case, a dead-letter queue with a -dlq suffix (PopulateQueue → populate, PopulateDLQ →
// populate-dlq).
func queueName(id string) string {
	if base, ok := strings.CutSuffix(id, "DLQ"); ok {
		return strings.ToLower(base) + "-dlq"
	}
	return strings.ToLower(strings.TrimSuffix(id, "Queue"))
}

// createQueues creates the template's queues with their attributes, dead-letter queues first,
// into st.Queues, and returns their ARNs by logical id.
func (st *Stack) createQueues(ctx context.Context, queues map[string]samtemplate.Queue) (map[string]string, error) {
	arns := map[string]string{}
	// Dead-letter queues first: a redrive policy must name an existing queue.
	var ids []string
	for len(ids) < len(queues) {
		n := len(ids)
		for _, id := range slices.Sorted(maps.Keys(queues)) {
			if slices.Contains(ids, id) {
				continue
			}
			if dlq := queues[id].DeadLetterQueue; dlq == "" || slices.Contains(ids, dlq) {
				ids = append(ids, id)
			}
		}
		if len(ids) == n {
			return nil, errors.New("template.yaml: the queues' redrive policies form a cycle")
		}
	}
	for _, id := range ids {
		q := queues[id]
		attrs := map[string]string{}
		for k, v := range q.Attributes {
			attrs[k] = strconv.Itoa(v)
		}
		if q.DeadLetterQueue != "" {
			attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, arns[q.DeadLetterQueue], q.MaxReceiveCount)
		}
		url, arn, err := createQueue(ctx, st.SQS, queueName(id), attrs)
		if err != nil {
			return nil, err
		}
		st.Queues[queueName(id)], arns[id] = url, arn
	}
	return arns, nil
}

func createQueue(ctx context.Context, c *sqs.Client, name string, attrs map[string]string) (url, arn string, err error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	ga, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", "", fmt.Errorf("queue arn %s: %w", name, err)
	}
	arn = ga.Attributes["QueueArn"]
	if arn == "" {
		return "", "", errors.New("queue has no ARN")
	}
	return aws.ToString(out.QueueUrl), arn, nil
}
