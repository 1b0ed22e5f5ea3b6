package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/local/pgtest"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/postgres"
	"github.com/fusillade/fusillade/shared/upstream"
)

// rebuild replaces the bundle's engine by one on store st (the bundle's own when nil) with
// upstream configuration up, keeping the bundle's queue, blobs and clock.
func (b *bundle) rebuild(t *testing.T, cfg engine.Config, st engine.Store, up upstream.Config) {
	t.Helper()
	if st == nil {
		st = b.store
	}
	if cfg.Retry == (domain.RetryPolicy{}) {
		cfg.Retry = domain.RetryPolicy{MaxRetries: 5, Base: time.Second, Factor: 2, Max: 10 * time.Second}
	}
	cfg.CancelPollEvery = 10 * time.Millisecond
	cfg.HeartbeatEvery = time.Hour
	b.eng = engine.New(cfg, engine.Deps{Store: st, Queue: b.queue, Upstream: upstream.New(up), Blobs: b.blobs,
		Credentials: noCredentials{}, Now: b.clock.Now, Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

func TestAnAnswerOverTheCapOrWithAStalledBodyIsAnErrorLineWithAStableCode(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	noRetry := domain.RetryPolicy{MaxRetries: 0, Base: time.Second, Factor: 2, Max: time.Second}
	b.rebuild(t, engine.Config{Retry: noRetry}, nil, upstream.Config{MaxResponseBytes: 4096, BodyTimeout: time.Second}) // ample for the bodies that do arrive, on a loaded machine too
	id := b.batch(t, b.tenant, "m", 3, 24*time.Hour, `"mock_big_body_bytes":10000`, `"mock_hang_body":true`)
	_, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	b.drain(t)

	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, domain.Counts{Total: 3, Completed: 1, Failed: 2}, got.Counts)
	lines := strings.Split(strings.TrimSpace(b.object(t, got, false)), "\n")
	require.Len(t, lines, 2)
	for i, code := range []string{domain.CodeResponseTooLarge, domain.CodeUpstreamBodyTimeout} {
		require.Contains(t, lines[i], `"custom_id":"c`+string(rune('1'+i))+`"`)
		require.Contains(t, lines[i], `"response":null`, "no whole answer arrived: not reported as an HTTP response")
		require.Contains(t, lines[i], `"code":"`+code+`"`)
		require.NotContains(t, lines[i], `"message":"The request failed."`, "the line says what went wrong")
		require.Contains(t, lines[i], `"message":"`)
	}
}

func TestAClaimRightAfterTheDeadlinePicksNothingFromThatBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	late := b.batch(t, b.tenant, "m", 3, time.Hour)
	b.clock.Advance(30 * time.Minute)
	onTime := b.batch(t, b.tenant, "m", 3, time.Hour)
	b.clock.Advance(30*time.Minute + time.Microsecond) // late is past its deadline; no sweep has run

	claims, err := b.store.ClaimForModel(ctx, "m", 10, 0, b.clock.Now())
	require.NoError(t, err)
	require.Len(t, claims, 3, "the batch within its window is still served")
	for _, c := range claims {
		var batch string
		require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT batch_id FROM requests WHERE id = $1`, c.RequestID).Scan(&batch))
		require.Equal(t, onTime, batch)
	}
	var pending int
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'pending'`, late).Scan(&pending))
	require.Equal(t, 3, pending, "nothing of the late batch was claimed")
}

func TestAMessageForAClaimedRequestPastItsBatchDeadlineMakesNoUpstreamCall(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 2, time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	w := b.queue.take()
	require.Len(t, w, 2)

	b.clock.Advance(time.Hour) // the deadline itself: expires_at <= now is expired, as for the sweep
	for _, err := range b.eng.Process(ctx, w) {
		require.NoError(t, err, "the message is acknowledged")
	}
	require.Zero(t, b.mock.Calls(), "no upstream call after the deadline")

	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired)
	got := b.get(t, id)
	require.Equal(t, domain.BatchExpired, got.Status)
	require.Equal(t, 2, strings.Count(b.object(t, got, false), `"code":"batch_expired"`))
}

// flakyStore fails FinishAndClaim (the worker's result write) with a connection-class error: the first failBefore calls fail
// without writing, and the first failAfter calls after those write and then lose the answer (the
// commit went through but the connection broke before it was acknowledged).
type flakyStore struct {
	engine.Store
	mu         sync.Mutex
	failBefore int
	failAfter  int
	finishes   atomic.Int64
}

var errConnRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func (s *flakyStore) FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	s.finishes.Add(1)
	s.mu.Lock()
	before, after := s.failBefore > 0, s.failBefore == 0 && s.failAfter > 0
	if before {
		s.failBefore--
	} else if after {
		s.failAfter--
	}
	s.mu.Unlock()
	if before {
		return nil, nil, errConnRefused
	}
	won, jobs, err := s.Store.FinishAndClaim(ctx, outs, refill, now)
	if after && err == nil {
		return nil, nil, fmt.Errorf("finish: %w", io.ErrUnexpectedEOF)
	}
	return won, jobs, err
}

// dispatchAndProcess claims what is pending and processes the messages that sends, requiring
// every one to succeed.
func dispatchAndProcess(t *testing.T, b *bundle) {
	t.Helper()
	_, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, err := range b.eng.Process(ctx, b.queue.take()) {
		require.NoError(t, err)
	}
}

// fastPersist keeps the persist back-off short so that tests run quickly.
var fastPersist = domain.RetryPolicy{Base: time.Millisecond, Factor: 2, Max: 5 * time.Millisecond, Jitter: 0.2}

func TestAResultThatCouldNotBePersistedIsRetriedUntilItLands(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	fs := &flakyStore{Store: b.store, failBefore: 3}
	b.rebuild(t, engine.Config{PersistRetry: fastPersist}, fs, upstream.Config{})
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	dispatchAndProcess(t, b)
	require.EqualValues(t, 4, fs.finishes.Load(), "three failures, then the write landed")
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status, "the worker that persisted the last result sealed the batch")
	require.Equal(t, 1, got.Counts.Completed)
	require.EqualValues(t, 1, b.mock.Calls())
}

func TestAResultWhoseCommitWasNotAcknowledgedIsNotCountedTwiceNorTakenForAZombie(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	var logs strings.Builder
	var logMu sync.Mutex
	fs := &flakyStore{Store: b.store, failAfter: 1}
	b.eng = engine.New(engine.Config{PersistRetry: fastPersist, CancelPollEvery: 10 * time.Millisecond, HeartbeatEvery: time.Hour},
		engine.Deps{Store: fs, Queue: b.queue, Upstream: upstream.New(upstream.Config{}), Blobs: b.blobs, Credentials: noCredentials{},
			Now: b.clock.Now, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	id := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	dispatchAndProcess(t, b)
	require.EqualValues(t, 2, fs.finishes.Load(), "the retry found the write already there")
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status, "the worker whose commit went unacknowledged still sealed the batch")
	require.Equal(t, domain.Counts{Total: 1, Completed: 1}, got.Counts)
	require.Len(t, strings.Split(strings.TrimSpace(b.object(t, got, true)), "\n"), 1)
	logMu.Lock()
	defer logMu.Unlock()
	require.NotContains(t, logs.String(), "fenced out")
	require.NotContains(t, logs.String(), "level=ERROR")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestAFencedOutOrNonConnectionFailureOfAResultWriteIsNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{ProcessingTimeout: time.Minute})
	ctx := context.Background()
	b.batch(t, b.tenant, "m", 1, 24*time.Hour, `"mock_block":"held"`)
	fs := &flakyStore{Store: b.store}
	b.rebuild(t, engine.Config{PersistRetry: fastPersist, ProcessingTimeout: time.Minute}, fs, upstream.Config{})
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	first := b.queue.take()
	done := make(chan error, 1)
	go func() { done <- b.eng.Process(ctx, first)[0] }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "held", 1))
	b.clock.Advance(2 * time.Minute)
	st, err := b.eng.Maintain(ctx) // the row is rescued under the running worker: its write will be fenced out
	require.NoError(t, err)
	require.Equal(t, 1, st.Rescued)
	b.mock.Release("held")
	require.NoError(t, <-done)
	require.EqualValues(t, 1, fs.finishes.Load(), "a fenced-out write is final")

	bad := &badStore{Store: b.store}
	b.rebuild(t, engine.Config{PersistRetry: fastPersist}, bad, upstream.Config{})
	_, err = b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	second := b.queue.take()
	require.Len(t, second, 1)
	require.Error(t, b.eng.Process(ctx, second)[0], "the message comes back")
	require.EqualValues(t, 1, bad.finishes.Load(), "an error that is not about the connection is not retried")
}

// badStore fails every result write with an error the database would not fix by itself.
type badStore struct {
	engine.Store
	finishes atomic.Int64
}

func (s *badStore) FinishAndClaim(context.Context, []domain.Outcome, domain.Refill, time.Time) ([]domain.Finished, []domain.Job, error) {
	s.finishes.Add(1)
	return nil, nil, errors.New("finish: invalid input syntax")
}

//nolint:paralleltest // it measures real time against a one-second invocation deadline with 100 ms to spare, which a loaded machine would eat
func TestAResultWriteIsRetriedOnlyUntilTheInvocationDeadlineMinusTheSafetyMargin(t *testing.T) {
	b := setup(t, engine.Config{})
	fs := &flakyStore{Store: b.store, failBefore: 1 << 30}
	b.rebuild(t, engine.Config{PersistRetry: fastPersist, PersistMargin: 100 * time.Millisecond, PersistSafety: 200 * time.Millisecond},
		fs, upstream.Config{})
	b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	_, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	deadline := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	errs := b.eng.Process(ctx, b.queue.take())
	require.Error(t, errs[0], "the row is left to rescue and the message comes back")
	require.True(t, time.Now().Before(deadline.Add(-100*time.Millisecond)), "gave up before the safety margin")
	require.Greater(t, fs.finishes.Load(), int64(5), "kept retrying while time allowed")
}

func TestFinishLandedTellsAWriteThatCommittedFromARescue(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	b.batch(t, b.tenant, "m", 3, 24*time.Hour)
	claims, err := b.store.ClaimForModel(ctx, "m", 3, 0, b.clock.Now())
	require.NoError(t, err)
	require.Len(t, claims, 3)
	for _, c := range claims {
		_, err := b.store.StartProcessing(ctx, c.Work, "w", b.clock.Now())
		require.NoError(t, err)
	}
	now := b.clock.Now()
	done := domain.Outcome{Work: claims[0].Work, Model: "m", State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)}
	retry := domain.Outcome{Work: claims[1].Work, Model: "m", State: domain.StatePending, ErrorCode: "x", NotBefore: now.Add(3 * time.Second)}
	won, err := b.store.FinishMany(ctx, []domain.Outcome{done, retry}, now)
	require.NoError(t, err)
	require.Len(t, won, 2)

	// The third is rescued before its worker's write: that write did not land.
	b.clock.Advance(time.Hour)
	_, err = b.store.Rescue(ctx, b.clock.Now(), time.Minute, time.Minute, time.Minute)
	require.NoError(t, err)
	lost := domain.Outcome{Work: claims[2].Work, Model: "m", State: domain.StatePending, NotBefore: now.Add(time.Second)}

	landed, err := b.store.FinishLanded(ctx, []domain.Outcome{done, retry, lost}, now)
	require.NoError(t, err)
	got := map[string]domain.RequestState{}
	for _, f := range landed {
		got[f.RequestID] = f.State
	}
	require.Equal(t, map[string]domain.RequestState{done.RequestID: domain.StateCompleted, retry.RequestID: domain.StatePending}, got)
	again, err := b.store.FinishMany(ctx, []domain.Outcome{done, retry, lost}, now)
	require.NoError(t, err)
	require.Empty(t, again, "every one of them is fenced out now")
}

// noticeStore reports each failed result write on failed.
type noticeStore struct {
	engine.Store
	failed chan error
}

func (s *noticeStore) FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	won, jobs, err := s.Store.FinishAndClaim(ctx, outs, refill, now)
	if err != nil {
		select {
		case s.failed <- err:
		default:
		}
	}
	return won, jobs, err
}

func TestAWorkerPersistsItsResultOncePostgreSQLIsBack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "fusillade-restart-*")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	st, err := postgres.Open(ctx, pg.URL("postgres"), postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	_, err = st.Migrate(ctx)
	require.NoError(t, err)

	b := &bundle{store: st, queue: &queue{}, blobs: &blobs{objects: map[string][]byte{}},
		clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, mock: mockupstream.New(mockupstream.Config{Record: true})}
	srv := httptest.NewServer(b.mock)
	t.Cleanup(func() { b.mock.Close(); srv.Close() })
	tenant, err := st.CreateTenant(ctx, "t", false, b.clock.Now())
	require.NoError(t, err)
	b.tenant = tenant.ID
	require.NoError(t, st.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: srv.URL, ConcurrencyLimit: 4}))
	ns := &noticeStore{Store: st, failed: make(chan error, 1)}
	b.rebuild(t, engine.Config{PersistRetry: fastPersist}, ns, upstream.Config{})
	id := b.batch(t, b.tenant, "m", 2, 24*time.Hour, `"mock_block":"outage"`, `"mock_block":"outage"`)
	_, err = b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	work := b.queue.take()
	require.Len(t, work, 2)

	done := make(chan []error, 1)
	go func() {
		ictx, stop := context.WithTimeout(ctx, time.Minute) // the invocation's deadline
		defer stop()
		done <- b.eng.Process(ictx, work)
	}()
	require.NoError(t, b.mock.WaitBlocked(ctx, "outage", 2))
	require.NoError(t, pg.Stop())
	b.mock.Release("outage")
	select {
	case err := <-ns.failed:
		t.Logf("result write failed during the outage: %v", err)
	case <-ctx.Done():
		require.FailNow(t, "no result write failed while PostgreSQL was down")
	}
	pg, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Port: pg.Port()})
	require.NoError(t, err)
	for _, err := range <-done {
		require.NoError(t, err, "the results were written once the database was back")
	}
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, domain.Counts{Total: 2, Completed: 2}, got.Counts)
	require.EqualValues(t, 2, b.mock.Calls())
}

func TestTransientTellsConnectionFailuresFromStatementErrors(t *testing.T) {
	t.Parallel()
	st := pgtest.Store(t)
	_, stmtErr := st.Pool().Exec(context.Background(), `SELECT 'x'::int`)
	require.Error(t, stmtErr)
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("finish: %w", errConnRefused), true},
		{fmt.Errorf("finish: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("finish: %w", context.DeadlineExceeded), true},
		{&pgconn.PgError{Code: "57P01"}, true}, // admin shutdown
		{&pgconn.PgError{Code: "08006"}, true}, // connection failure
		{&pgconn.PgError{Code: "23505"}, false},
		{fmt.Errorf("finish: %w", stmtErr), false},
		{errors.New("closed pool"), false},
		{nil, false},
	} {
		require.Equal(t, c.want, postgres.Transient(c.err), "%v", c.err)
	}
}
