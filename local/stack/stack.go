// Package stack runs the whole of fusillade on one machine: a throwaway PostgreSQL cluster (or
// DATABASE_URL), S3 through gofakes3, SQS through the in-repo emulator, a mock OpenAI-compatible
// upstream, and the five functions wired exactly as AWS wires them — the API as an http.Handler,
// populate and the worker fed by SQS event-source runners, dispatch and purge on schedules. The
// functions talk to the emulators through the real AWS SDK clients.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fusillade/fusillade/local/esm"
	"github.com/fusillade/fusillade/local/fakesqs"
	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/lambdafn"
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
	// APIAddr is where the API listens; default 127.0.0.1:8080. Use 127.0.0.1:0 for a free port.
	APIAddr string
	// Models to configure; default mock-chat (limit 8) and mock-embed (limit 4).
	Models []ModelSpec
	// Upstream configures the mock upstream (latency, error rate).
	Upstream mockupstream.Config
	// WorkerConcurrency caps concurrent worker invocations; default 32.
	WorkerConcurrency int
	// DispatchEvery and PurgeEvery are the schedules; default 60s, as on AWS. Slots are refilled by
	// workers when requests finish, so the schedule is only kick-off and safety net.
	DispatchEvery, PurgeEvery time.Duration
	// Env sets configuration variables (engine knobs) over everything else.
	Env map[string]string
	// Getenv is the process environment: configuration variables the stack does not set itself
	// (MAX_RETRIES, BACKOFF_*, …) are read from it, and it overrides the stack's defaults
	// (DB_MAX_CONNS, COMPLETION_WINDOWS); it also resolves env: credential references. The
	// stack's own wiring (database, S3, SQS endpoints and queues) is never taken from it.
	// Default os.Getenv.
	Getenv func(string) string
	// Decorate wraps the engine's collaborators and WrapWorker the worker's processor (the
	// benchmark's timing probes); nil leaves them as they are.
	Decorate   func(engine.Deps) engine.Deps
	WrapWorker func(lambdafn.Processor) lambdafn.Processor
	Logger     *slog.Logger
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
	Queues  map[string]string // name → URL (populate, populate-dlq, work, work-dlq)
	// UpstreamURL is the mock upstream's base URL; Env is the functions' environment (what a
	// bootstrap run outside this process needs to join the stack).
	UpstreamURL string
	Env         map[string]string

	log     *slog.Logger
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func()
}

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
		opts.Models = []ModelSpec{{Name: "mock-chat", Limit: 8}, {Name: "mock-embed", Limit: 4}}
	}
	if opts.WorkerConcurrency <= 0 {
		opts.WorkerConcurrency = 32
	}
	if opts.DispatchEvery <= 0 {
		opts.DispatchEvery = time.Minute
	}
	if opts.PurgeEvery <= 0 {
		opts.PurgeEvery = time.Minute
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
	sqsURL, err := st.serve(fakesqs.New(fakesqs.WithLogger(log)))
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
	for _, q := range []struct {
		name, dlq string
		vis       int
	}{{"populate", "populate-dlq", 900}, {"work", "work-dlq", 900}} {
		dlqURL, dlqARN, err := createQueue(ctx, st.SQS, q.dlq, nil)
		if err != nil {
			return err
		}
		url, _, err := createQueue(ctx, st.SQS, q.name, map[string]string{
			"VisibilityTimeout": strconv.Itoa(q.vis),
			"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":5}`, dlqARN),
		})
		if err != nil {
			return err
		}
		st.Queues[q.name], st.Queues[q.dlq] = url, dlqURL
	}

	// The stack's wiring: what the functions need to find this stack's emulators.
	wiring := map[string]string{
		"DATABASE_URL":       dbURL,
		"BUCKET":             "fusillade",
		"S3_ENDPOINT":        s3URL,
		"S3_PATH_STYLE":      "true",
		"SQS_ENDPOINT":       sqsURL,
		"POPULATE_QUEUE_URL": st.Queues["populate"],
		"WORK_QUEUE_URL":     st.Queues["work"],
	}
	// The stack's defaults, which the process environment overrides: one machine runs every
	// function, so the pool is larger than a Lambda instance's, and every window is offered.
	defaults := map[string]string{
		"DB_MAX_CONNS":       "40",
		"COMPLETION_WINDOWS": "1h,24h,7d",
	}
	env := map[string]string{}
	for k, v := range defaults {
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
	app, err := wire.Open(ctx, cfg, log, wire.Options{Function: "local", AWS: &awsCfg, Getenv: getenv, Migrate: true,
		Decorate: opts.Decorate})
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
	st.goRun(func() {
		(&esm.SQSSource{Client: st.SQS, QueueURL: st.Queues["populate"], QueueARN: "arn:aws:sqs:us-east-1:000000000000:populate",
			Handler: esm.Handler(lambdafn.Populate(app.Ingester, sqsqueue.ParsePopulate, log)), BatchSize: 1, MaxConcurrency: 4, Logger: log}).Run(runCtx)
	})
	var worker lambdafn.Processor = app.Engine
	if opts.WrapWorker != nil {
		worker = opts.WrapWorker(worker)
	}
	st.goRun(func() {
		(&esm.SQSSource{Client: st.SQS, QueueURL: st.Queues["work"], QueueARN: "arn:aws:sqs:us-east-1:000000000000:work",
			Handler: esm.Handler(lambdafn.Worker(worker, sqsqueue.ParseMessage, log)), BatchSize: 10, MaxConcurrency: opts.WorkerConcurrency, Logger: log}).Run(runCtx)
	})
	st.goRun(func() {
		esm.Schedule(runCtx, opts.DispatchEvery, "dispatch", log, func(ctx context.Context) error {
			_, err := app.Engine.Dispatch(ctx)
			return err
		})
	})
	st.goRun(func() {
		esm.Schedule(runCtx, opts.PurgeEvery, "purge", log, func(ctx context.Context) error {
			_, err := app.Engine.Sweep(ctx)
			return err
		})
	})

	srv := &http.Server{Handler: app.API(), ReadHeaderTimeout: 10 * time.Second}
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
	tenant, err := st.App.Store.CreateTenant(ctx, "local", now)
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
	t, err := st.App.Store.CreateTenant(ctx, name, time.Now())
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
