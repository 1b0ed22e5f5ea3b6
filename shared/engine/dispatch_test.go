package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/upstream"
)

// heldQueue holds the first SendWork until released, so that a test can act while a dispatch is
// in the middle of its round.
type heldQueue struct {
	*queue
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (q *heldQueue) SendWork(ctx context.Context, w []domain.Work) ([]domain.Work, error) {
	q.once.Do(func() {
		close(q.entered)
		<-q.release
	})
	return q.queue.SendWork(ctx, w)
}

func (b *bundle) claimedOf(t *testing.T, batchID string) int {
	t.Helper()
	var n int
	require.NoError(t, b.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM requests WHERE batch_id = $1 AND state = 'claimed'`, batchID).Scan(&n))
	return n
}

// A dispatch asked for while another of the same model runs in the process is folded into the
// running one, which goes round again for it. That round is owed to the caller who asked: it must
// run even when the running dispatch's own context has ended meanwhile (a worker's follow-up bound
// is a few seconds from its own request's end), or the freed slots stay empty until the scheduled
// dispatch.
func TestAFoldedDispatchRunsEvenWhenTheRunningDispatchsContextEnded(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	q := &heldQueue{queue: b.queue, entered: make(chan struct{}), release: make(chan struct{})}
	b.eng = engine.New(engine.Config{}, engine.Deps{Store: b.store, Queue: q, Upstream: upstream.New(upstream.Config{}),
		Blobs: b.blobs, Credentials: noCredentials{}, Now: b.clock.Now})
	first := b.batch(t, b.tenant, "m", 2, 24*time.Hour)

	leaderCtx, endLeader := context.WithCancel(context.Background())
	defer endLeader()
	leaderDone := make(chan error, 1)
	go func() { leaderDone <- b.eng.Dispatch(leaderCtx, "m") }()
	<-q.entered // the leader has claimed the first batch and is sending its messages

	second := b.batch(t, b.tenant, "m", 2, 24*time.Hour)
	require.NoError(t, b.eng.Dispatch(context.Background(), "m"), "folded into the running dispatch")
	endLeader() // e.g. the leader's follow-up bound passed while its round was running
	close(q.release)
	if err := <-leaderDone; err != nil {
		require.ErrorIs(t, err, context.Canceled, "the leader may report its own context ending, nothing else")
	}

	require.Equal(t, 2, b.claimedOf(t, first))
	require.Equal(t, 2, b.claimedOf(t, second), "the round asked for by the folded dispatch claimed the new work")
	require.Len(t, b.queue.take(), 4)
}

// lateAnswerStore lets its first claim commit in the database and then holds the answer until
// released. When the caller's context ended meanwhile it reports that instead of the rows, as pgx
// does when the context ends while the answer is on its way: the rows are claimed all the same.
type lateAnswerStore struct {
	engine.Store
	once      sync.Once
	committed chan struct{}
	answer    chan struct{}
}

func (s *lateAnswerStore) ClaimForModel(ctx context.Context, model string, max int, w float64, now time.Time) ([]domain.Claimed, error) {
	first := false
	s.once.Do(func() { first = true })
	if !first {
		return s.Store.ClaimForModel(ctx, model, max, w, now)
	}
	claims, err := s.Store.ClaimForModel(context.WithoutCancel(ctx), model, max, w, now)
	close(s.committed)
	<-s.answer
	if ctx.Err() != nil {
		return nil, fmt.Errorf("claim %q: %w", model, ctx.Err())
	}
	return claims, err
}

// A claim commits in the database even when its caller stops waiting for the answer. A dispatch
// whose context ends while its claim is under way must therefore still enqueue what was claimed:
// rows claimed without a message hold their slots until rescue, ClaimTimeout plus up to one
// maintenance period later (about two minutes with the defaults).
func TestAClaimWhoseCallerGivesUpMidStatementStillEnqueuesWhatItClaimed(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	st := &lateAnswerStore{Store: b.store, committed: make(chan struct{}), answer: make(chan struct{})}
	b.rebuild(t, engine.Config{}, st, upstream.Config{})
	id := b.batch(t, b.tenant, "m", 3, 24*time.Hour)

	ctx, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	done := make(chan error, 1)
	go func() { done <- b.eng.Dispatch(ctx, "m") }()
	<-st.committed
	giveUp() // e.g. a worker's follow-up bound passed during a slow commit
	close(st.answer)
	if err := <-done; err != nil {
		require.ErrorIs(t, err, context.Canceled, "the caller gave up, so it may be told so, nothing else")
	}

	require.Equal(t, 3, b.claimedOf(t, id))
	require.Len(t, b.queue.take(), 3, "every claimed row has its message")
}

// slowSendQueue answers the first SendWork only once its context has ended, standing for a
// refill that takes the whole follow-up bound of the worker running it (claim and send under
// load, or rounds run for other callers).
type slowSendQueue struct {
	*queue
	once sync.Once
}

func (q *slowSendQueue) SendWork(ctx context.Context, w []domain.Work) ([]domain.Work, error) {
	q.once.Do(func() { <-ctx.Done() })
	return q.queue.SendWork(context.WithoutCancel(ctx), w)
}

// Each step a worker takes after persisting a result (refill, finalisation, back-off dispatch) has
// its own bound: a refill that used up its time must not leave the batch whose last request this
// was unsealed until maintenance takes it over.
func TestALongRefillDoesNotLeaveTheFinishedBatchToMaintenance(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	q := &slowSendQueue{queue: b.queue}
	// A short bound keeps the test quick (the slow send waits for it to pass), yet long enough for
	// the seal, a step of its own, on a loaded machine: at 200 ms it lost the race under load.
	cfg := engine.Config{PersistMargin: time.Second, CancelPollEvery: 10 * time.Millisecond, HeartbeatEvery: time.Hour, LoopFor: byQueue}
	done := b.batch(t, b.tenant, "m", 1, 24*time.Hour)
	_, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	work := b.queue.take()
	require.Len(t, work, 1)
	b.eng = engine.New(cfg, engine.Deps{Store: b.store, Queue: q, Upstream: upstream.New(upstream.Config{}),
		Blobs: b.blobs, Credentials: noCredentials{}, Now: b.clock.Now})
	next := b.batch(t, b.tenant, "m", 1, 24*time.Hour)

	for _, err := range b.eng.Process(context.Background(), work) {
		require.NoError(t, err)
	}
	require.Equal(t, 1, b.claimedOf(t, next), "the freed slot was refilled")
	require.Equal(t, domain.BatchCompleted, b.get(t, done).Status, "the worker sealed the batch it finished")
}
