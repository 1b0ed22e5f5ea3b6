package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/postgres"
	"github.com/fusillade/fusillade/shared/upstream"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is an injectable clock: tests move time instead of sleeping through back-offs,
// expiries and rescue timeouts.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// queue records what the engine enqueues; tests deliver it by calling Process.
type queue struct {
	failNext   int // the next SendWork reports this many of its entries as not accepted
	mu         sync.Mutex
	work       []domain.Work
	dispatches []dispatch
	notify     chan struct{} // receives a token per enqueued request, for tests that wait on refills
}

type dispatch struct {
	model string
	delay time.Duration
}

func (q *queue) SendWork(_ context.Context, w []domain.Work) ([]domain.Work, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := min(q.failNext, len(w)); n > 0 {
		q.failNext = 0
		failed := w[:n]
		w = w[n:]
		q.work = append(q.work, w...)
		return failed, nil
	}
	q.work = append(q.work, w...)
	for range w {
		if q.notify != nil {
			q.notify <- struct{}{}
		}
	}
	return nil, nil
}

func (q *queue) SendDispatch(_ context.Context, model string, delay time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dispatches = append(q.dispatches, dispatch{model, delay})
	return nil
}

func (q *queue) take() []domain.Work {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.work
	q.work = nil
	return w
}

// blobs is an in-memory object store.
type blobs struct {
	mu      sync.Mutex
	objects map[string][]byte
	// onDelete, when set, runs before each Delete (outside the lock).
	onDelete func(key string)
}

func (b *blobs) Put(_ context.Context, key string, r io.Reader, _ string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects[key] = data
	return nil
}

func (b *blobs) Delete(_ context.Context, key string) error {
	if b.onDelete != nil {
		b.onDelete(key)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
	return nil
}

func (b *blobs) get(key string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.objects[key]
}

// tlog sends engine logs to the test's output (shown when a test fails or with -v).
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type noCredentials struct{}

func (noCredentials) Resolve(context.Context, string) (string, error) { return "", nil }

type bundle struct {
	store  *postgres.Store
	eng    *engine.Engine
	queue  *queue
	blobs  *blobs
	clock  *clock
	mock   *mockupstream.Server
	tenant string
}

// byQueue as LoopFor makes every invocation give each freed slot back to the work queue (a
// dispatch) instead of running the slot's next request itself, as one past its LoopFor does: the
// tests that follow the work message by message use it.
const byQueue = time.Nanosecond

func setup(t *testing.T, cfg engine.Config) *bundle {
	t.Helper()
	return setupWith(t, cfg, nil)
}

// setupWith is setup with the engine reporting to m (nil: none).
func setupWith(t *testing.T, cfg engine.Config, m engine.Metrics) *bundle {
	t.Helper()
	b := &bundle{store: pgtest.Store(t), queue: &queue{}, blobs: &blobs{objects: map[string][]byte{}},
		clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	b.mock = mockupstream.New(mockupstream.Config{Record: true})
	srv := httptest.NewServer(b.mock)
	t.Cleanup(func() { b.mock.Close(); srv.Close() })
	if cfg.Retry == (domain.RetryPolicy{}) {
		cfg.Retry = domain.RetryPolicy{MaxRetries: 5, Base: time.Second, Factor: 2, Max: 10 * time.Second}
	}
	cfg.CancelPollEvery = 10 * time.Millisecond
	cfg.HeartbeatEvery = time.Hour
	b.eng = engine.New(cfg, engine.Deps{Store: b.store, Queue: b.queue, Upstream: upstream.New(upstream.Config{}),
		Blobs: b.blobs, Credentials: noCredentials{}, Now: b.clock.Now, Metrics: m, Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	var err error
	tenant, err := b.store.CreateTenant(context.Background(), "t", false, b.clock.Now())
	require.NoError(t, err)
	b.tenant = tenant.ID
	for _, m := range []string{"m", "n"} {
		require.NoError(t, b.store.UpsertModel(context.Background(), domain.Model{Name: m, BaseURL: srv.URL, ConcurrencyLimit: 4}))
	}
	return b
}

type lines []domain.NewRequest

func (l *lines) Next() (domain.NewRequest, error) {
	if len(*l) == 0 {
		return domain.NewRequest{}, io.EOF
	}
	r := (*l)[0]
	*l = (*l)[1:]
	return r, nil
}

// batch creates a running batch whose line i has body extra[i] merged into a chat request
// (e.g. `"mock_status":400`); missing entries are plain requests for model.
func (b *bundle) batch(t *testing.T, tenant, model string, n int, window time.Duration, extra ...string) string {
	t.Helper()
	ctx := context.Background()
	fileID := domain.NewFileID()
	require.NoError(t, b.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: tenant, Filename: "in.jsonl", Purpose: "batch",
		Status: "processed", CreatedAt: b.clock.Now()}))
	id := domain.NewBatchID()
	require.NoError(t, b.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: tenant, InputFileID: fileID, Endpoint: "/v1/chat/completions",
		CompletionWindow: "24h", CreatedAt: b.clock.Now(), ExpiresAt: b.clock.Now().Add(window), OutputFileID: domain.NewFileID(),
		ErrorFileID: domain.NewFileID()}))
	var reqs lines
	for i := range n {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"line %d"}]`, model, i+1)
		if i < len(extra) && extra[i] != "" {
			body += "," + extra[i]
		}
		reqs = append(reqs, domain.NewRequest{ID: uuid.NewString(), Line: i + 1, CustomID: fmt.Sprintf("c%d", i+1), Model: model,
			Path: "/v1/chat/completions", Body: []byte(body + "}")})
	}
	res, err := b.store.InsertRequests(ctx, id, &reqs, b.clock.Now())
	require.NoError(t, err)
	require.Nil(t, res.Failed)
	return id
}

func (b *bundle) get(t *testing.T, id string) domain.Batch {
	t.Helper()
	got, err := b.store.GetBatch(context.Background(), b.tenant, id)
	require.NoError(t, err)
	return got
}

// drainOnce delivers what is queued now, once.
func (b *bundle) drainOnce(t *testing.T) {
	t.Helper()
	for _, err := range b.eng.Process(context.Background(), b.queue.take()) {
		require.NoError(t, err)
	}
}

// drain delivers queued work until nothing is left (each delivery may refill more).
func (b *bundle) drain(t *testing.T) {
	t.Helper()
	for range 1000 {
		w := b.queue.take()
		if len(w) == 0 {
			return
		}
		for _, err := range b.eng.Process(context.Background(), w) {
			require.NoError(t, err)
		}
	}
	require.FailNow(t, "work kept coming")
}

func (b *bundle) object(t *testing.T, batch domain.Batch, output bool) string {
	t.Helper()
	return string(b.blobs.get(domain.BatchFileKey(batch.TenantID, batch.ID, output)))
}

func TestABatchRunsToCompletionWithSealedOutputInInputOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	id := b.batch(t, b.tenant, "m", 10, 24*time.Hour)
	st, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, st.Claimed, "dispatch fills exactly the model's limit")
	b.drain(t)

	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, domain.Counts{Total: 10, Completed: 10}, got.Counts)
	require.Empty(t, got.ErrorFileID, "no failures, no error file")
	out := strings.Split(strings.TrimSpace(b.object(t, got, true)), "\n")
	require.Len(t, out, 10)
	for i, l := range out {
		require.Contains(t, l, fmt.Sprintf(`"custom_id":"c%d"`, i+1))
	}
	require.Contains(t, string(got.Usage), `"total_tokens"`)
	require.LessOrEqual(t, b.mock.MaxInFlight("m"), 4)
}

func TestDuplicateDeliveryCallsTheUpstreamOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	_, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	w := b.queue.take()
	require.Len(t, w, 1)
	for _, err := range b.eng.Process(context.Background(), []domain.Work{w[0], w[0], w[0]}) {
		require.NoError(t, err, "duplicates are acknowledged, not retried")
	}
	// A late redelivery after completion is acknowledged too.
	require.NoError(t, b.eng.Process(context.Background(), w)[0])
	require.EqualValues(t, 1, b.mock.Calls())
	require.Equal(t, 1, b.get(t, id).Counts.Completed)
}

func TestZombieCompletionAfterRescueIsFencedOutAndTheFirstResultStands(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{ProcessingTimeout: time.Minute})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour, `"mock_block":"zombie"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	first := b.queue.take()

	zombie := make(chan error, 1)
	go func() { zombie <- b.eng.Process(ctx, first)[0] }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "zombie", 1))

	// The worker looks stuck: rescue returns the row and a new attempt runs to completion.
	b.clock.Advance(2 * time.Minute)
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Rescued)
	second := b.queue.take()
	require.Len(t, second, 1)
	require.Equal(t, first[0].Attempt+1, second[0].Attempt)
	b.mock.Release("zombie") // lets both calls answer; the second attempt's is persisted first
	require.NoError(t, b.eng.Process(ctx, second)[0])
	require.NoError(t, <-zombie)

	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 1, got.Counts.Completed)
	require.Equal(t, 0, got.Counts.Failed)
	require.Len(t, strings.Split(strings.TrimSpace(b.object(t, got, true)), "\n"), 1, "the zombie's result is not written twice")
}

func TestLimitLoweredAndRaisedAtRuntime(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{LoopFor: byQueue})
	ctx := context.Background()
	b.batch(t, b.tenant, "m", 20, 24*time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	inFlight := b.queue.take()
	require.Len(t, inFlight, 4)

	// Lowering aborts nothing but admits nothing until in-flight drops below the new limit.
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 2}))
	st, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Claimed)
	// Finish three of the four: the refills must leave at most 2 in flight.
	for _, err := range b.eng.Process(ctx, inFlight[:3]) {
		require.NoError(t, err)
	}
	refilled := b.queue.take()
	require.Len(t, refilled, 1, "one in flight + one refill = the new limit of 2")

	// Raising it fills the new slots at the next claim.
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 6}))
	st, err = b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, st.Claimed, "6 − 2 in flight")
}

func mustModel(t *testing.T, b *bundle) domain.Model {
	m, err := b.store.GetModel(context.Background(), "m")
	require.NoError(t, err)
	return m
}

func TestCancelMidFlightAbortsRunningCallsAndDispatchesNothingAfterTheCommit(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{LoopFor: byQueue})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 10, 24*time.Hour, `"mock_block":"c"`, `"mock_block":"c"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	w := b.queue.take()
	require.Len(t, w, 4)
	b.queue.notify = make(chan struct{}, 16)
	done := make(chan []error, 1)
	go func() { done <- b.eng.Process(ctx, w) }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "c", 2)) // two calls are in flight at the upstream
	<-b.queue.notify                                    // and the other two finished and refilled
	<-b.queue.notify

	status, err := b.store.CancelBatch(ctx, b.tenant, id, b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, domain.BatchCancelling, status)
	callsAtCancel := b.mock.Calls()
	for _, err := range <-done {
		require.NoError(t, err)
	}
	// Refills enqueued before the cancel committed are dropped on delivery, unsent.
	b.drain(t)
	st, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Claimed)
	require.Equal(t, callsAtCancel, b.mock.Calls(), "no upstream call after the cancel commits")

	got := b.get(t, id)
	require.Equal(t, domain.BatchCancelled, got.Status, "the last aborted request sealed the batch")
	require.NotNil(t, got.CancelledAt)
	require.Equal(t, 10, got.Counts.Completed+got.Counts.Failed)
	require.Equal(t, 2, got.Counts.Completed, "the two unblocked calls answered before the cancel and are kept")
	errLines := b.object(t, got, false)
	require.Equal(t, 8, strings.Count(errLines, `"code":"batch_cancelled"`))
}

func TestIndividualRequestCancelAbortsItsCall(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 2, 24*time.Hour, `"mock_block":"one"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	w := b.queue.take()
	done := make(chan []error, 1)
	go func() { done <- b.eng.Process(ctx, w) }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "one", 1))
	var target string
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT id::text FROM requests WHERE batch_id = $1 AND line = 1`, id).Scan(&target))
	res, err := b.store.CancelRequests(ctx, b.tenant, id, []string{target}, b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, []domain.CancelOutcome{{RequestID: target, Result: "cancelling"}}, res, "the blocked request was running and got marked")
	<-done
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 1, got.Counts.Completed)
	require.Equal(t, 1, got.Counts.Failed)
	require.Contains(t, b.object(t, got, false), `"code":"request_cancelled"`)
}

func TestExpiryWithMixedStatesKeepsFinishedWorkAndExpiresTheRest(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{LoopFor: byQueue})
	ctx := context.Background()
	// Limit 2: lines 1 (ok) and 2 (400) run first; their refills are lines 3 and 4, which hang
	// until the window closes; lines 5 and 6 never start.
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 2}))
	id := b.batch(t, b.tenant, "m", 6, time.Hour, ``, `"mock_status":400`, `"mock_block":"slow"`, `"mock_block":"slow"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drainOnce(t)
	w := b.queue.take()
	require.Len(t, w, 2)
	done := make(chan []error, 1)
	go func() { done <- b.eng.Process(ctx, w) }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "slow", 2))
	b.clock.Advance(2 * time.Hour)
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired)
	for _, err := range <-done { // the hanging calls were aborted by the watcher
		require.NoError(t, err)
	}
	b.drain(t)
	require.EqualValues(t, 4, b.mock.Calls(), "nothing was sent after the expiry")

	got := b.get(t, id)
	require.Equal(t, domain.BatchExpired, got.Status)
	require.NotNil(t, got.ExpiredAt)
	require.Equal(t, 1, got.Counts.Completed)
	require.Equal(t, 5, got.Counts.Failed)
	errLines := b.object(t, got, false)
	require.Equal(t, 4, strings.Count(errLines, `"code":"batch_expired"`))
	require.Contains(t, errLines, `"status_code":400`, "an upstream 4xx keeps its response in the error file")
}

func TestRetryFailedReopensACompletedBatchAndRefinalizes(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 3, 24*time.Hour, `"mock_status":400,"mock_fail_times":1,"mock_key":"once"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 1, got.Counts.Failed)
	require.NotEmpty(t, got.ErrorFileID)

	n, models, err := b.store.RetryFailed(ctx, b.tenant, id, nil, b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"m"}, models)
	require.Equal(t, domain.BatchInProgress, b.get(t, id).Status)
	require.NoError(t, b.eng.Dispatch(ctx, models...))
	b.drain(t)

	got = b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, domain.Counts{Total: 3, Completed: 3}, got.Counts)
	require.Empty(t, got.ErrorFileID)
	require.Len(t, strings.Split(strings.TrimSpace(b.object(t, got, true)), "\n"), 3)

	_, _, err = b.store.RetryFailed(ctx, b.tenant, id, nil, b.clock.Now())
	require.Equal(t, domain.EConflict, domain.ErrorCode(err), "nothing left to retry")
}

func TestRetriableFailuresBackOffHonourRetryAfterAndDispatchTheirModel(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour, `"mock_status":429,"mock_retry_after":3,"mock_fail_times":2,"mock_key":"r"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)
	require.Len(t, b.queue.dispatches, 1)
	require.GreaterOrEqual(t, b.queue.dispatches[0].delay, 3*time.Second, "Retry-After: 3 is honoured")

	// Still backing off: a kick now claims nothing.
	require.NoError(t, b.eng.Dispatch(ctx, "m"))
	require.Empty(t, b.queue.take())
	b.clock.Advance(3 * time.Second)
	require.NoError(t, b.eng.Dispatch(ctx, "m"))
	b.drain(t)
	b.clock.Advance(3 * time.Second)
	require.NoError(t, b.eng.Dispatch(ctx, "m"))
	b.drain(t)

	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 1, got.Counts.Completed)
	require.EqualValues(t, 3, b.mock.Calls())
}

func TestNonRetriableStatusFailsAtOnceWithItsResponseInTheErrorFile(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour, `"mock_status":422`)
	_, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	b.drain(t)
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status, "all-failed batches complete, as in OpenAI")
	require.Empty(t, got.OutputFileID, "no successes, no output file")
	line := b.object(t, got, false)
	require.Contains(t, line, `"response":{"status_code":422`)
	require.Contains(t, line, `"error":null`)
	require.EqualValues(t, 1, b.mock.Calls())
}

func TestClaimsFavourTheTenantUsingFewerSlots(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{UrgencyWeight: new(float64)}) // weight 0: tenant fairness only
	ctx := context.Background()
	otherTenant, err := b.store.CreateTenant(ctx, "other", false, b.clock.Now())
	require.NoError(t, err)
	other := otherTenant.ID
	busy := b.batch(t, b.tenant, "m", 10, 2*time.Hour) // nearer deadline, but its tenant holds slots
	_, err = b.store.ClaimForModel(ctx, "m", 2, 0, b.clock.Now())
	require.NoError(t, err)
	idle := b.batch(t, other, "m", 10, 20*time.Hour)
	claims, err := b.store.ClaimForModel(ctx, "m", 1, 0, b.clock.Now())
	require.NoError(t, err)
	require.Len(t, claims, 1)
	job, err := b.store.StartProcessing(ctx, claims[0].Work, "w", b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, idle, job.BatchID)
	require.NotEqual(t, busy, job.BatchID)
}

func TestPurgeIsIdempotentUnderTwoConcurrentPurgers(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{PurgeChunk: 100})
	ctx := context.Background()
	var ids []string
	for range 3 {
		id := b.batch(t, b.tenant, "n", 250, 24*time.Hour)
		ids = append(ids, id)
	}
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "n", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 0}))
	for _, id := range ids {
		require.NoError(t, b.store.DeleteBatch(ctx, b.tenant, id, b.clock.Now()))
		_, err := b.store.GetBatch(ctx, b.tenant, id)
		require.Equal(t, domain.ENotFound, domain.ErrorCode(err), "hidden at once")
	}
	b.clock.Advance(time.Hour) // past the grace period
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.eng.Maintain(ctx)
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Purged, "nothing left on a re-run")
	var left int
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM requests) + (SELECT count(*) FROM batches)`).Scan(&left))
	require.Zero(t, left)
}

func TestDeletingAnInputFileCancelsItsBatchesAndErasesItsPrompts(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 5, 24*time.Hour)
	got := b.get(t, id)
	cancelling, err := b.store.DeleteFile(ctx, b.tenant, got.InputFileID, b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, []string{id}, cancelling)
	b.eng.TryFinalize(ctx, id)
	require.Equal(t, domain.BatchCancelled, b.get(t, id).Status)
	b.clock.Advance(time.Hour)
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, st.Purged.ErasedPrompts)
	require.Equal(t, 1, st.Purged.Files)
	var bodies int
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM requests WHERE octet_length(body) > 0`).Scan(&bodies))
	require.Zero(t, bodies)
	require.Equal(t, domain.BatchCancelled, b.get(t, id).Status, "the batch and its results stay")
}

func TestWorkIsFairAcrossModelsAndNeverExceedsLimitsUnderConcurrentWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	idM := b.batch(t, b.tenant, "m", 60, 24*time.Hour)
	idN := b.batch(t, b.tenant, "n", 60, 24*time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	// Deliver concurrently: several invocations at once, as SQS would.
	for range 100 {
		w := b.queue.take()
		if len(w) == 0 {
			break
		}
		var wg sync.WaitGroup
		for _, x := range w {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.NoError(t, b.eng.Process(ctx, []domain.Work{x})[0]) // not the test's goroutine
			}()
		}
		wg.Wait()
	}
	for _, id := range []string{idM, idN} {
		got := b.get(t, id)
		require.Equal(t, domain.BatchCompleted, got.Status)
		require.Equal(t, 60, got.Counts.Completed)
	}
	require.LessOrEqual(t, b.mock.MaxInFlight("m"), 4)
	require.LessOrEqual(t, b.mock.MaxInFlight("n"), 4)
	ids := map[string]bool{}
	for _, r := range b.mock.Requests() {
		key := r.Header.Get("X-Fusillade-Request-Id")
		require.False(t, ids[key], "request %s sent twice", key)
		ids[key] = true
		require.NotEmpty(t, r.Header.Get("x-fusillade-batch-id"))
		require.Equal(t, "24h", r.Header.Get("x-fusillade-batch-completion-window"))
	}
	keys := make([]string, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	require.Len(t, keys, 120)
	_ = bytes.MinRead
}

func TestEscalationRoutesNearDeadlineWorkToTheFallbackAndChargesItsSlot(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	base := mustModel(t, b).BaseURL
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "n", BaseURL: base, ConcurrencyLimit: 2}))
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: base, ConcurrencyLimit: 1,
		EscalationModel: "n", EscalationThreshold: 3600}))
	urgent := b.batch(t, b.tenant, "m", 3, 30*time.Minute, `"mock_block":"e"`, `"mock_block":"e"`)
	relaxed := b.batch(t, b.tenant, "m", 1, 20*time.Hour, `"mock_block":"e"`)

	st, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, st.Claimed, "m's one slot for the relaxed batch, n's two slots for the urgent one")
	done := make(chan []error, 1)
	go func() { done <- b.eng.Process(ctx, b.queue.take()) }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "e", 3))
	require.Equal(t, 1, b.mock.ModelStats("m").InFlight, "m runs only its relaxed batch")
	require.Equal(t, 2, b.mock.ModelStats("n").InFlight, "the fallback's slots are the ones charged")
	b.mock.Release("e")
	<-done
	b.drain(t)

	for _, r := range b.mock.Requests() {
		if r.Model == "n" {
			require.Contains(t, string(r.Body), `"model":"n"`, "the body names the model that serves it")
		}
	}
	require.Equal(t, domain.BatchCompleted, b.get(t, urgent).Status)
	require.Equal(t, domain.BatchCompleted, b.get(t, relaxed).Status)
	var routed int
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM requests WHERE batch_id = $1 AND routed_model = 'n'`, urgent).Scan(&routed))
	require.Equal(t, 3, routed)
	require.LessOrEqual(t, b.mock.MaxInFlight("m"), 1)
	require.LessOrEqual(t, b.mock.MaxInFlight("n"), 2)
}

func TestADeadWorkersRequestsAreRescuedBeforeTheProcessingTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{ProcessingTimeout: time.Hour, ClaimTimeout: time.Hour, StaleWorker: time.Minute})
	ctx := context.Background()
	b.batch(t, b.tenant, "m", 2, 24*time.Hour)
	claims, err := b.store.ClaimForModel(ctx, "m", 2, 0, b.clock.Now())
	require.NoError(t, err)
	require.Len(t, claims, 2)
	for i, c := range claims {
		owner := fmt.Sprintf("worker-%d", i)
		require.NoError(t, b.store.Heartbeat(ctx, domain.WorkerRecord{ID: owner, Function: "worker"}, b.clock.Now()))
		_, err := b.store.StartProcessing(ctx, c.Work, owner, b.clock.Now())
		require.NoError(t, err)
	}
	// worker-0 shuts down cleanly (SIGTERM): its request is rescued at once.
	require.NoError(t, b.store.StopWorker(ctx, "worker-0", b.clock.Now()))
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Rescued)
	// worker-1 goes silent: rescued once its heartbeat is stale, long before the 1h timeout.
	b.clock.Advance(30 * time.Second)
	st, err = b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Rescued)
	b.clock.Advance(31 * time.Second)
	st, err = b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Rescued)
	require.Len(t, b.queue.take(), 2, "rescued requests are re-claimed and enqueued at once")
}

func TestStreamablePathsAreSentAsSSEAndStoredAsOrdinaryJSONWithMetadataHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{MetadataHeaders: []string{"request_source"}})
	ctx := context.Background()
	b.eng = engine.New(engine.Config{MetadataHeaders: []string{"request_source"}, CancelPollEvery: 10 * time.Millisecond},
		engine.Deps{Store: b.store, Queue: b.queue, Upstream: upstream.New(upstream.Config{StreamablePaths: []string{"/v1/chat/completions"}}),
			Blobs: b.blobs, Credentials: noCredentials{}, Now: b.clock.Now})
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	_, err := b.store.Pool().Exec(ctx, `UPDATE batches SET metadata = '{"request_source":"api"}' WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	b.drain(t)
	got := b.get(t, id)
	require.Equal(t, 1, got.Counts.Completed)
	out := b.object(t, got, true)
	require.Contains(t, out, `"object":"chat.completion"`, "the SSE stream is reassembled into the ordinary body")
	reqs := b.mock.Requests()
	require.Len(t, reqs, 1)
	require.True(t, reqs[0].Stream)
	require.Equal(t, "api", reqs[0].Header.Get("x-fusillade-batch-request-source"))
}

func TestClaimsWhoseMessagesSQSRejectedAreGivenBackAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 6, 24*time.Hour)
	b.queue.failNext = 2
	st, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, st.Claimed)
	require.Equal(t, 2, st.Returned, "the rejected claims went back to pending instead of waiting for the claim timeout")
	require.Len(t, b.queue.take(), 2)
	var claimed int
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'claimed'`, id).Scan(&claimed))
	require.Equal(t, 2, claimed, "no slot leaks")
	st, err = b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.Claimed, "the freed slots are claimable again")
}

func TestInputFilesAreRemovedWhenTheirExpiresAfterPasses(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	exp := b.clock.Now().Add(time.Hour)
	id, keep := domain.NewFileID(), domain.NewFileID()
	for _, f := range []domain.File{
		{ID: id, TenantID: b.tenant, Filename: "old.jsonl", Purpose: "batch", Status: "processed", ObjectKey: "tenants/x/files/old.jsonl", CreatedAt: b.clock.Now(), ExpiresAt: &exp},
		{ID: keep, TenantID: b.tenant, Filename: "new.jsonl", Purpose: "batch", Status: "processed", ObjectKey: "tenants/x/files/new.jsonl", CreatedAt: b.clock.Now()},
	} {
		require.NoError(t, b.store.InsertFile(ctx, f))
		require.NoError(t, b.blobs.Put(ctx, f.ObjectKey, strings.NewReader("{}\n"), ""))
	}
	b.clock.Advance(2 * time.Hour)
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Purged.Files)
	require.Nil(t, b.blobs.get("tenants/x/files/old.jsonl"), "the content is gone with the row")
	require.NotNil(t, b.blobs.get("tenants/x/files/new.jsonl"))
	_, err = b.store.GetFile(ctx, b.tenant, id)
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err))
	_, err = b.store.GetFile(ctx, b.tenant, keep)
	require.NoError(t, err)
}
