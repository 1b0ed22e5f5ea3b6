package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/fusillade/fusillade/local/fakesqs"
	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/wire"
)

// The harness is the local stack (local/stack) with thin timing decorators around the engine's
// store, queue and upstream client and around the worker's processor. The decorators only read
// the clock around each call; they are how the per-stage breakdown (claim, enqueue, queue hop,
// mark processing, persist) is measured. Everything else is the production code path.

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
	// Invoked is told of every function invocation (stack.Options.Invoked); nil counts nothing.
	Invoked func(stack.Invocation)
	Env     map[string]string
	Log     *slog.Logger
	// Metrics turns the engine's metrics on (the stack's Prometheus registry and /metrics);
	// default off, the -metrics flag.
	Metrics bool
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
	SQS         *fakesqs.Server   // the SQS emulator (its request counters)
	Knobs       map[string]any

	stack *stack.Stack
	dir   string
}

func startHarness(ctx context.Context, o harnessOptions) (h *harness, err error) {
	if len(o.Models) == 0 {
		o.Models = []modelSpec{{Name: "bench-a", Limit: 64}}
	}
	sumLimits := 0
	specs := make([]stack.ModelSpec, len(o.Models))
	for i, m := range o.Models {
		sumLimits += m.Limit
		specs[i] = stack.ModelSpec{Name: m.Name, Limit: m.Limit}
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
	env := map[string]string{"DB_MAX_CONNS": strconv.Itoa(o.DBMaxConns), "COMPLETION_WINDOWS": "24h"}
	for k, v := range o.Env {
		env[k] = v
	}
	h = &harness{Trace: newTracer()}
	if h.dir, err = os.MkdirTemp("", "fusillade-bench-*"); err != nil {
		return nil, err
	}
	tr := h.Trace
	st, err := stack.Start(ctx, stack.Options{
		DatabaseURL: o.DatabaseURL, DataDir: h.dir, Ephemeral: true, APIAddr: "127.0.0.1:0", Models: specs,
		Upstream: o.Upstream, WorkerConcurrency: o.WorkerConcurrency, DispatchEvery: o.DispatchEvery, Env: env, Logger: o.Log,
		Decorate: func(d engine.Deps) engine.Deps {
			d.Store = tracedStore{d.Store, tr}
			d.Queue = tracedQueue{d.Queue, tr}
			d.Upstream = tracedUpstream{d.Upstream, tr}
			return d
		},
		WrapWorker: func(p lambdafn.Processor) lambdafn.Processor { return tracedProcessor{p, tr} },
		Invoked:    o.Invoked,
		NoMetrics:  !o.Metrics,
	})
	if err != nil {
		_ = os.RemoveAll(h.dir)
		return nil, err
	}
	h.stack = st
	h.APIURL, h.APIKey, h.TenantID = st.APIURL, st.APIKey, st.TenantID
	h.Upstream, h.UpstreamURL, h.App, h.Engine, h.Env = st.Upstream, st.UpstreamURL, st.App, st.App.Engine, st.Env
	h.SQS = st.SQSEmulator
	cfg := st.App.Config
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
		"metrics":                    o.Metrics,
		"models":                     o.Models,
		"max_lines":                  cfg.MaxLines,
		"max_file_bytes":             cfg.MaxFileBytes,
		"single_process_shared_pool": true,
	}
	return h, nil
}

// Stop shuts the stack down; a second call does nothing (workloads stop the stack before running
// a comparator and keep a deferred Stop for their error paths).
func (h *harness) Stop() {
	if h.stack != nil {
		h.stack.Stop()
		h.stack = nil
	}
	_ = os.RemoveAll(h.dir)
}
