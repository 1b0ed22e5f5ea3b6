package engine_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/upstream"
)

// A freed slot takes the next request in the statement that records its result and runs it in the
// same invocation: one delivery per slot runs a whole batch, with no message per request and never
// more than the limit in flight.
func TestAFreedSlotRunsTheNextRequestInTheSameInvocationWithoutAMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := b.batch(t, b.tenant, "m", 40, 24*time.Hour)
	st, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, st.Claimed, "the kick-off fills the limit of 4")
	for _, err := range b.eng.Process(ctx, b.queue.take()) {
		require.NoError(t, err)
	}
	require.Empty(t, b.queue.take(), "no request went through the queue after the kick-off")
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status, "the slot that wrote the last result sealed the batch")
	require.Equal(t, 40, got.Counts.Completed)
	require.EqualValues(t, 40, b.mock.Calls(), "each line sent once")
	require.LessOrEqual(t, b.mock.MaxInFlight("m"), 4)
	out := strings.Split(strings.TrimSpace(b.object(t, got, true)), "\n")
	require.Len(t, out, 40)
}

// An invocation with less than RefillReserve left takes no next request: a call started then could
// be cut off by its end. The freed slot goes back to the queue.
func TestAnInvocationNearItsEndGivesFreedSlotsBackToTheQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{RefillReserve: time.Hour})
	ctx := context.Background()
	b.batch(t, b.tenant, "m", 6, 24*time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	first := b.queue.take()
	require.Len(t, first, 4)
	ictx, cancel := context.WithTimeout(ctx, time.Minute) // less than the hour kept in reserve
	defer cancel()
	for _, err := range b.eng.Process(ictx, first) {
		require.NoError(t, err)
	}
	require.EqualValues(t, 4, b.mock.Calls(), "the invocation ran only what it was given")
	require.Len(t, b.queue.take(), 2, "the two requests left went to the queue for another invocation")
}

// Cancelling a batch stops the slots running it: their calls are aborted, and the writes of their
// results claim nothing more of the batch.
func TestCancellingABatchStopsTheSlotsRunningIt(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 2}))
	// Lines 1 and 2 answer at once; the slots' next requests, lines 3 and 4, hang.
	id := b.batch(t, b.tenant, "m", 10, 24*time.Hour, ``, ``, `"mock_block":"c"`, `"mock_block":"c"`)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	done := make(chan []error, 1)
	go func() { done <- b.eng.Process(ctx, b.queue.take()) }()
	require.NoError(t, b.mock.WaitBlocked(ctx, "c", 2))
	status, err := b.store.CancelBatch(ctx, b.tenant, id, b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, domain.BatchCancelling, status)
	for _, err := range <-done {
		require.NoError(t, err)
	}
	require.EqualValues(t, 4, b.mock.Calls(), "nothing was sent after the cancel")
	require.Empty(t, b.queue.take())
	got := b.get(t, id)
	require.Equal(t, domain.BatchCancelled, got.Status)
	require.Equal(t, 2, got.Counts.Completed)
	require.Equal(t, 8, strings.Count(b.object(t, got, false), `"code":"batch_cancelled"`))
}

// A result write whose commit went through but whose acknowledgement was lost also claimed the
// slot's next request. The retry must find that request and run it, not leave it processing under
// a live worker until the processing timeout, and must not claim it twice.
func TestAResultWriteWhoseCommitWasLostRunsTheRequestItClaimed(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 1}))
	fs := &flakyStore{Store: b.store, failAfter: 1}
	b.rebuild(t, engine.Config{PersistRetry: fastPersist}, fs, upstream.Config{})
	id := b.batch(t, b.tenant, "m", 3, 24*time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	for _, err := range b.eng.Process(ctx, b.queue.take()) {
		require.NoError(t, err)
	}
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status, "every line ran in the one invocation")
	require.Equal(t, domain.Counts{Total: 3, Completed: 3}, got.Counts)
	require.EqualValues(t, 3, b.mock.Calls(), "no line sent twice")
	require.LessOrEqual(t, b.mock.MaxInFlight("m"), 1)
}

// countingStore counts the result writes and the results they carried.
type countingStore struct {
	engine.Store
	writes, results atomic.Int64
}

func (s *countingStore) FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	s.writes.Add(1)
	s.results.Add(int64(len(outs)))
	return s.Store.FinishAndClaim(ctx, outs, refill, now)
}

// Two invocations running slots of one model at once share its limit exactly, and every result is
// written once.
func TestTwoInvocationsRunningOneModelShareItsLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	cs := &countingStore{Store: b.store}
	b.rebuild(t, engine.Config{}, cs, upstream.Config{})
	id := b.batch(t, b.tenant, "m", 60, 24*time.Hour)
	_, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	w := b.queue.take()
	require.Len(t, w, 4)
	done := make(chan []error, 2)
	go func() { done <- b.eng.Process(ctx, w[:2]) }()
	go func() { done <- b.eng.Process(ctx, w[2:]) }()
	for range 2 {
		for _, err := range <-done {
			require.NoError(t, err)
		}
	}
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 60, got.Counts.Completed)
	require.LessOrEqual(t, b.mock.MaxInFlight("m"), 4)
	require.EqualValues(t, 60, cs.results.Load(), "each result written once")
	require.LessOrEqual(t, cs.writes.Load(), int64(60))
}
