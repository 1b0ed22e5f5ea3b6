// Package engine runs fusillade's request lifecycle on the serverless shape: claiming requests
// under each model's global concurrency limit and enqueueing them (dispatch), executing them
// against the upstream with fenced writes (worker), refilling a freed slot the moment a request
// ends, rescuing stuck work and sealing finished batches.
//
// The engine owns no goroutines between calls: each function invocation calls one entry point
// (DispatchAll, Dispatch, Process, Maintain) and everything it starts ends before it returns.
package engine

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/upstream"
)

// Store is the part of the Postgres store the engine uses.
type Store interface {
	ClaimForModel(ctx context.Context, model string, max int, urgencyWeight float64, now time.Time) ([]domain.Claimed, error)
	ModelsWithWork(ctx context.Context) ([]string, error)
	Unclaim(ctx context.Context, work []domain.Work) error
	StartProcessing(ctx context.Context, w domain.Work, owner string, now time.Time) (domain.Job, error)
	FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error)
	AdoptClaims(ctx context.Context, owner, model string, at time.Time) ([]domain.Job, error)
	FinishLanded(ctx context.Context, outs []domain.Outcome, now time.Time) ([]domain.Finished, error)
	Rescue(ctx context.Context, now time.Time, claimTimeout, processingTimeout, staleWorker time.Duration) ([]domain.Rescued, error)
	BeginFinalize(ctx context.Context, batchID string, now time.Time) (string, bool, error)
	RestartFinalize(ctx context.Context, batchID string, now, staleBefore time.Time) (string, bool, error)
	BatchesToFinalize(ctx context.Context, staleBefore time.Time) ([]string, error)
	SealBatch(ctx context.Context, batchID string, output, errorsFile domain.Sealed, usage []byte, now time.Time) error
	EachResult(ctx context.Context, batchID string, output bool, fn func(domain.ResultRow) error) error
	ListModels(ctx context.Context) ([]domain.Model, error)
	CancelMarks(ctx context.Context, ids []string) ([]domain.Abort, error)
	ExpireDue(ctx context.Context, now time.Time) ([]domain.Expired, error)
	SampleProgress(ctx context.Context, now, before time.Time) (int, error)
	DecideFailFast(ctx context.Context, batchID string, status int, upstreamMessage string, now time.Time) (bool, error)
	// The purge's primitives (see Engine.purge): rows in, rows out, no object storage inside.
	PurgeRequests(ctx context.Context, chunk int, graceBefore time.Time) (int, error)
	PurgeIdempotencyKeys(ctx context.Context, chunk int, before time.Time) (int, error)
	PurgeCoalesceCache(ctx context.Context, chunk int, now time.Time) (int, error)
	PurgeableBatches(ctx context.Context, chunk int, graceBefore time.Time) ([]domain.PurgeableBatch, error)
	DropBatches(ctx context.Context, ids []string, graceBefore time.Time) (int, error)
	PurgeableFiles(ctx context.Context, chunk int, graceBefore, now time.Time) ([]domain.PurgeableFile, error)
	ErasePromptsOfFile(ctx context.Context, fileID string, chunk int) (int, error)
	DropFiles(ctx context.Context, ids []string, graceBefore, now time.Time) (int, error)
	Heartbeat(ctx context.Context, w domain.WorkerRecord, now time.Time) error
	StopWorker(ctx context.Context, id string, now time.Time) error
	// Transient reports whether an error of this store says the statement may succeed when tried
	// again (the database could not be reached, the connection failed, a deadlock) rather than
	// that it was wrong.
	Transient(err error) bool
}

// Queue is the work queue.
type Queue interface {
	SendWork(ctx context.Context, work []domain.Work) (failed []domain.Work, err error)
	SendDispatch(ctx context.Context, model string, delay time.Duration) error
}

// Upstream executes one call.
type Upstream interface {
	Do(ctx context.Context, call upstream.Call) upstream.Result
}

// Blobs stores sealed output and error files.
type Blobs interface {
	Put(ctx context.Context, key string, r io.Reader, contentType string) error
	Delete(ctx context.Context, key string) error
}

// Credentials resolves a model's credential reference to its API key.
type Credentials interface {
	Resolve(ctx context.Context, ref string) (string, error)
}

// Defaults of the engine's knobs that the deployment can set; config.Load reads them from here.
const (
	DefaultClaimTimeout      = time.Minute               // a claim not started within this is rescued
	DefaultProcessingTimeout = 16 * time.Minute          // the worker Lambda's 15-minute limit + margin, so a live worker is never robbed
	DefaultStaleWorker       = domain.DefaultStaleWorker // a worker silent this long is dead
	DefaultUrgencyWeight     = 0.5                       // halfway between tenant fairness (0) and earliest deadline (1)
	DefaultLoopFor           = time.Minute               // a worker invocation refills its own slots for this long
	DefaultRefillReserve     = 2 * time.Minute           // and stops when less than this is left of it
)

// Config tunes the engine. Zero fields take the defaults named on each.
type Config struct {
	Retry             domain.RetryPolicy // default domain.DefaultRetryPolicy()
	ClaimTimeout      time.Duration      // default DefaultClaimTimeout (60s)
	ProcessingTimeout time.Duration      // default DefaultProcessingTimeout (16m)
	StaleWorker       time.Duration      // default DefaultStaleWorker (60s)
	// UrgencyWeight: 0 = tenant fairness only, 1 = earliest deadline only. A pointer because 0 is a
	// meaningful weight; nil means DefaultUrgencyWeight (0.5).
	UrgencyWeight *float64
	// PersistMargin is kept free before the invocation's deadline so that the result of an upstream
	// call can still be written; the call itself is cut off this much earlier. It also bounds each
	// claim and the sending of its messages, which the caller's cancellation does not cut short
	// (see claimAndEnqueue). Default 5s.
	PersistMargin time.Duration
	// PersistRetry paces the retries of a result write that failed because the database could
	// not be reached (only Base, Factor, Max and Jitter are used). Default 100ms doubling to 2s,
	// ±20 % jitter.
	PersistRetry domain.RetryPolicy
	// PersistSafety is how much of the invocation is left when the worker stops retrying a result
	// write and leaves the row to rescue, for the message to be handed back in time. Default 1s.
	PersistSafety time.Duration
	// HeartbeatEvery is how often a running worker refreshes its liveness record. Default 10s; must
	// stay well under StaleWorker.
	HeartbeatEvery time.Duration
	// CancelPollEvery is how often a worker checks whether its running requests were cancelled or
	// their batch expired, i.e. the longest an aborted upstream call keeps running. Default 2s.
	CancelPollEvery time.Duration
	// FinalizeStale is how long a finalisation may run before maintenance takes it over. Default 10m.
	FinalizeStale time.Duration
	// MetadataHeaders lists batch metadata keys forwarded to the upstream as
	// x-fusillade-batch-<key> headers (underscores become hyphens), beside the batch id, endpoint,
	// created-at and completion-window headers that are always sent. Default none.
	MetadataHeaders []string
	// PurgeChunk is how many rows per table one purge statement deletes. Default 1000
	// (fusillade's purge_batch_size).
	PurgeChunk int
	// MaxClaim caps one claim statement (and so one burst of messages). Default 1000.
	MaxClaim int
	// LoopFor is how long a worker invocation goes on refilling its slots itself (each result's
	// write claims the slot's next request) before it gives them back to the work queue, so that
	// invocations turn over and the worker's concurrency is shared among models through the queue.
	// Default DefaultLoopFor (60s).
	LoopFor time.Duration
	// RefillReserve: a slot takes no next request once its invocation has less than this left, so
	// that a call is rarely cut off by the invocation's end (it would be retried). Default
	// DefaultRefillReserve (2m); calls that may run longer are cut off and retried.
	RefillReserve time.Duration
	// Function and Instance name this process in worker records ("worker", "dispatch", …; a
	// random id per cold start).
	Function string
	Instance string
}

func (c *Config) defaults() {
	if c.Retry == (domain.RetryPolicy{}) {
		c.Retry = domain.DefaultRetryPolicy()
	}
	c.ClaimTimeout = orDuration(c.ClaimTimeout, DefaultClaimTimeout)
	c.ProcessingTimeout = orDuration(c.ProcessingTimeout, DefaultProcessingTimeout)
	c.StaleWorker = orDuration(c.StaleWorker, DefaultStaleWorker)
	if c.UrgencyWeight == nil {
		w := DefaultUrgencyWeight
		c.UrgencyWeight = &w
	}
	c.PersistMargin = orDuration(c.PersistMargin, 5*time.Second)
	if c.PersistRetry == (domain.RetryPolicy{}) {
		c.PersistRetry = domain.RetryPolicy{Base: 100 * time.Millisecond, Factor: 2, Max: 2 * time.Second, Jitter: 0.2}
	}
	c.PersistSafety = orDuration(c.PersistSafety, time.Second)
	c.HeartbeatEvery = orDuration(c.HeartbeatEvery, 10*time.Second)
	c.FinalizeStale = orDuration(c.FinalizeStale, 10*time.Minute)
	c.CancelPollEvery = orDuration(c.CancelPollEvery, 2*time.Second)
	if c.PurgeChunk <= 0 {
		c.PurgeChunk = 1000
	}
	if c.MaxClaim <= 0 {
		c.MaxClaim = 1000
	}
	c.LoopFor = orDuration(c.LoopFor, DefaultLoopFor)
	c.RefillReserve = orDuration(c.RefillReserve, DefaultRefillReserve)
	if c.Function == "" {
		c.Function = "worker"
	}
	if c.Instance == "" {
		c.Instance = c.Function + "-" + randomID()
	}
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Deps are the engine's collaborators.
type Deps struct {
	Store       Store
	Queue       Queue
	Upstream    Upstream
	Blobs       Blobs
	Credentials Credentials
	Logger      *slog.Logger
	// Metrics receives claims, outcomes, upstream latencies, in-flight counts, refill gaps and
	// lines done as they happen; nil means NopMetrics.
	Metrics Metrics
	// Webhooks delivers due webhook events at the end of each maintenance pass; nil sends none.
	Webhooks Webhooks
	// Now is the clock; nil means time.Now. Tests inject a fake to drive back-off, expiry and
	// rescue without sleeping.
	Now func() time.Time
}

// Webhooks is the webhook sender (shared/webhooks): one bounded delivery pass.
type Webhooks interface {
	Deliver(ctx context.Context) (int, error)
}

// Engine is safe for concurrent use; one per process.
type Engine struct {
	cfg   Config
	store Store
	queue Queue
	up    Upstream
	blobs Blobs
	creds Credentials
	log   *slog.Logger
	met   Metrics
	now   func() time.Time
	hooks Webhooks

	models      *modelCache
	dispatching coalescer
	// commits holds each model's committer (see commit.go), created on first use.
	commitMu sync.Mutex
	commits  map[string]*committer
	// lastBeat is when this instance last wrote its liveness record (unix nanoseconds).
	lastBeat atomic.Int64

	// rnd supplies back-off jitter; math/rand/v2's Rand is not safe for concurrent use, so rndMu
	// guards it for the one draw a retry decision makes.
	rndMu sync.Mutex
	rnd   *rand.Rand

	invocations atomic.Int64
	processed   atomic.Int64
	failed      atomic.Int64
}

// New builds an engine.
func New(cfg Config, d Deps) *Engine {
	cfg.defaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = NopMetrics{}
	}
	e := &Engine{cfg: cfg, store: d.Store, queue: d.Queue, up: d.Upstream, blobs: d.Blobs, creds: d.Credentials,
		log: d.Logger.With("instance", cfg.Instance), met: d.Metrics, now: d.Now, hooks: d.Webhooks, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	e.models = &modelCache{store: d.Store, ttl: 5 * time.Second, now: d.Now}
	e.commits = map[string]*committer{}
	return e
}

// Instance returns this process's worker id.
func (e *Engine) Instance() string { return e.cfg.Instance }
