package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fusillade/fusillade/local/esm"
	"github.com/fusillade/fusillade/local/fakesqs"
	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/shared/config"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/sqsqueue"
	"github.com/fusillade/fusillade/shared/upstream"
	"github.com/fusillade/fusillade/shared/wire"
)

// The harness is the local stack (local/stack) assembled from the same parts — gofakes3, the SQS
// emulator driven by the real SDK, the mock upstream, the event-source runner and the Lambda
// handlers of shared/lambdafn — with one difference: the engine that the worker, populate and
// dispatch run is built here over thin timing decorators of its store, queue and upstream
// client. The decorators only read the clock around each call; they are how the per-stage
// breakdown (claim, enqueue, queue hop, mark processing, persist) is measured without touching
// shared code. Everything else (the API, the ingester's validation, SQL, SQS semantics) is the
// production code path.

type modelSpec struct {
	Name  string
	Limit int
}

type harnessOptions struct {
	DatabaseURL string
	Models      []modelSpec
	Upstream    mockupstream.Config
	// WorkerConcurrency caps concurrent worker invocations (the SQS event source's
	// MaximumConcurrency). Default Σ limits + 16: each running request needs an invocation, and
	// an invocation holding a batch of messages stays busy until its slowest one ends.
	WorkerConcurrency int
	// DBMaxConns is the pool of the single in-process "instance"; default 40, the local stack's.
	DBMaxConns int
	// DispatchEvery is the scheduled dispatch; default 60s, as on AWS (slots are refilled by
	// workers; the schedule is only the safety net).
	DispatchEvery time.Duration
	Env           map[string]string
	Log           *slog.Logger
}

type harness struct {
	APIURL      string
	APIKey      string
	TenantID    string
	Upstream    *mockupstream.Server
	UpstreamURL string
	App         *wire.App
	Engine      *engine.Engine
	Trace       *tracer
	Env         map[string]string // the functions' environment (for bootstraps run outside)
	Knobs       map[string]any

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func()
}

func startHarness(ctx context.Context, o harnessOptions) (h *harness, err error) {
	if len(o.Models) == 0 {
		o.Models = []modelSpec{{Name: "bench-a", Limit: 64}}
	}
	sumLimits := 0
	for _, m := range o.Models {
		sumLimits += m.Limit
	}
	if o.WorkerConcurrency <= 0 {
		o.WorkerConcurrency = sumLimits + 16
	}
	if o.DBMaxConns <= 0 {
		o.DBMaxConns = 40
	}
	if o.DispatchEvery <= 0 {
		o.DispatchEvery = time.Minute
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h = &harness{Trace: newTracer(), Knobs: map[string]any{}}
	defer func() {
		if err != nil {
			h.Stop()
		}
	}()
	s3URL, err := h.serve(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	if err != nil {
		return nil, err
	}
	sqsURL, err := h.serve(fakesqs.New(fakesqs.WithLogger(log)))
	if err != nil {
		return nil, err
	}
	h.Upstream = mockupstream.New(o.Upstream)
	if h.UpstreamURL, err = h.serve(h.Upstream); err != nil {
		return nil, err
	}
	awsCfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
		}),
	}
	sqsClient := sqsqueue.NewClient(awsCfg, sqsURL)
	queues := map[string]string{}
	for _, q := range []struct{ name, dlq string }{{"populate", "populate-dlq"}, {"work", "work-dlq"}} {
		_, dlqARN, err := createQueue(ctx, sqsClient, q.dlq, nil)
		if err != nil {
			return nil, err
		}
		url, _, err := createQueue(ctx, sqsClient, q.name, map[string]string{
			"VisibilityTimeout": "900",
			"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":5}`, dlqARN),
		})
		if err != nil {
			return nil, err
		}
		queues[q.name] = url
	}
	env := map[string]string{
		"DATABASE_URL":       o.DatabaseURL,
		"BUCKET":             "fusillade",
		"S3_ENDPOINT":        s3URL,
		"S3_PATH_STYLE":      "true",
		"SQS_ENDPOINT":       sqsURL,
		"POPULATE_QUEUE_URL": queues["populate"],
		"WORK_QUEUE_URL":     queues["work"],
		"DB_MAX_CONNS":       strconv.Itoa(o.DBMaxConns),
		"COMPLETION_WINDOWS": "24h",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	h.Env = env
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, err
	}
	app, err := wire.Open(ctx, cfg, log, wire.Options{Function: "local", AWS: &awsCfg, Getenv: getenv, Migrate: true})
	if err != nil {
		return nil, err
	}
	h.App = app
	h.closers = append(h.closers, app.Close)
	if err := app.Blobs.EnsureBucket(ctx); err != nil {
		return nil, err
	}
	for _, m := range o.Models {
		if err := app.Store.UpsertModel(ctx, domain.Model{Name: m.Name, BaseURL: h.UpstreamURL, ConcurrencyLimit: m.Limit}); err != nil {
			return nil, err
		}
	}
	if h.TenantID, err = app.Store.CreateTenant(ctx, "bench"); err != nil {
		return nil, err
	}
	if h.APIKey, err = app.Store.CreateAPIKey(ctx, h.TenantID, "bench", false); err != nil {
		return nil, err
	}

	// The engine, as wire.Open builds it, over the timing decorators.
	up := upstream.New(upstream.Config{FirstByteTimeout: cfg.FirstByteTimeout, BodyTimeout: cfg.BodyTimeout,
		MaxResponseBytes: cfg.MaxResponseBytes, RetriableStatuses: cfg.RetriableStatuses, StreamablePaths: cfg.StreamablePaths})
	h.Engine = engine.New(engine.Config{Retry: cfg.Retry, ClaimTimeout: cfg.ClaimTimeout, ProcessingTimeout: cfg.ProcessingTimeout,
		StaleWorker: cfg.StaleWorker, UrgencyWeight: cfg.UrgencyWeight, Function: "worker"},
		engine.Deps{Store: tracedStore{app.Store, h.Trace}, Queue: tracedQueue{app.Work, h.Trace},
			Upstream: tracedUpstream{up, h.Trace}, Blobs: app.Blobs, Credentials: app.Secrets, Logger: log})
	ingester := ingest.New(app.Store, app.Blobs, h.Engine, ingest.Limits{MaxFileBytes: cfg.MaxFileBytes, MaxLines: cfg.MaxLines}, log, nil)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.goRun(func() {
		(&esm.SQSSource{Client: sqsClient, QueueURL: queues["populate"], QueueARN: "arn:aws:sqs:us-east-1:000000000000:populate",
			Handler: esm.Handler(lambdafn.Populate(ingester, log)), BatchSize: 1, MaxConcurrency: 4, Logger: log}).Run(runCtx)
	})
	h.goRun(func() {
		(&esm.SQSSource{Client: sqsClient, QueueURL: queues["work"], QueueARN: "arn:aws:sqs:us-east-1:000000000000:work",
			Handler: esm.Handler(lambdafn.Worker(tracedProcessor{h.Engine, h.Trace}, log)), BatchSize: 10,
			MaxConcurrency: o.WorkerConcurrency, Logger: log}).Run(runCtx)
	})
	h.goRun(func() {
		esm.Schedule(runCtx, o.DispatchEvery, "dispatch", log, func(ctx context.Context) error {
			_, err := h.Engine.Dispatch(ctx)
			return err
		})
	})
	h.goRun(func() {
		esm.Schedule(runCtx, time.Minute, "purge", log, func(ctx context.Context) error {
			_, err := h.Engine.Sweep(ctx)
			return err
		})
	})
	if h.APIURL, err = h.serve(app.API()); err != nil {
		return nil, err
	}
	h.Knobs = map[string]any{
		"worker_max_concurrency":     o.WorkerConcurrency,
		"worker_sqs_batch_size":      10,
		"esm_long_poll_wait_s":       2,
		"populate_max_concurrency":   4,
		"db_max_conns":               o.DBMaxConns,
		"dispatch_every_s":           o.DispatchEvery.Seconds(),
		"purge_every_s":              60,
		"engine_max_claim":           1000,
		"urgency_weight":             cfg.UrgencyWeight,
		"cancel_poll_every_s":        2,
		"heartbeat_every_s":          10,
		"sqs":                        "local/fakesqs through aws-sdk-go-v2",
		"s3":                         "gofakes3 (in memory)",
		"upstream":                   "local/mockupstream",
		"models":                     o.Models,
		"max_lines":                  cfg.MaxLines,
		"max_file_bytes":             cfg.MaxFileBytes,
		"single_process_shared_pool": true,
	}
	return h, nil
}

func (h *harness) serve(handler http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	h.goRun(func() { _ = srv.Serve(ln) })
	h.closers = append(h.closers, func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

func (h *harness) goRun(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// Stop shuts everything down in reverse order of start.
func (h *harness) Stop() {
	if h.cancel != nil {
		h.cancel()
	}
	if h.Upstream != nil {
		h.Upstream.Close()
	}
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
	h.wg.Wait()
}

func createQueue(ctx context.Context, c *sqs.Client, name string, attrs map[string]string) (url, arn string, err error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	ga, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", "", fmt.Errorf("queue arn %s: %w", name, err)
	}
	arn = ga.Attributes["QueueArn"]
	if arn == "" {
		return "", "", errors.New("queue has no ARN")
	}
	return aws.ToString(out.QueueUrl), arn, nil
}
