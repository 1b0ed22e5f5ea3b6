package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// gateStore holds its first writersPerModel result writes until release is closed and reports
// every write's results and refill on writes. Each write wins every result and claims what the refill asks, all
// from batch "b".
type gateStore struct {
	Store
	release chan struct{}
	writes  chan write
	mu      sync.Mutex
	n       int
}

type write struct {
	outs   []domain.Outcome
	refill domain.Refill
}

func (s *gateStore) FinishAndClaim(_ context.Context, outs []domain.Outcome, refill domain.Refill, _ time.Time) ([]domain.Finished, []domain.Job, error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	s.writes <- write{outs, refill}
	if n <= writersPerModel {
		<-s.release
	}
	won := make([]domain.Finished, len(outs))
	for i, o := range outs {
		won[i] = domain.Finished{RequestID: o.RequestID, BatchID: "b", State: o.State}
	}
	jobs := make([]domain.Job, refill.Max)
	for i := range jobs {
		jobs[i] = domain.Job{Work: domain.Work{RequestID: fmt.Sprintf("next-%d-%d", n, i), Attempt: 1}, BatchID: "b", Model: refill.Model}
	}
	return won, jobs, nil
}

func (s *gateStore) ListModels(context.Context) ([]domain.Model, error) {
	return []domain.Model{{Name: "m", ConcurrencyLimit: 4}}, nil
}

func (s *gateStore) Transient(error) bool { return false }

// While writersPerModel writes of a model's results are in flight, the results that arrive wait
// and then go in one write together, which claims one next request for each of their slots.
func TestResultsArrivingDuringAWriteAreWrittenTogetherAndEachSlotGetsItsNextRequest(t *testing.T) {
	t.Parallel()
	st := &gateStore{release: make(chan struct{}), writes: make(chan write, 8)}
	e := New(Config{Instance: "w"}, Deps{Store: st})
	ctx := context.Background()
	inv := &invocation{ctx: ctx, started: time.Now(), watch: newWatcher()}
	out := func(i int) domain.Outcome {
		return domain.Outcome{Work: domain.Work{RequestID: fmt.Sprint(i), Attempt: 1}, Model: "m", State: domain.StateCompleted}
	}
	total := writersPerModel + 3
	results := make(chan groupResult, total)
	for i := range writersPerModel {
		go func() { results <- e.finish(ctx, out(i), inv) }()
		w := <-st.writes
		require.Len(t, w.outs, 1, "a lone result is written at once")
		require.Equal(t, 1, w.refill.Max)
	}
	for i := writersPerModel; i < total; i++ {
		go func() { results <- e.finish(ctx, out(i), inv) }()
	}
	c := e.committerOf("m")
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 3
	}, 10*time.Second, time.Millisecond, "the three later results wait for a write in flight")
	close(st.release)
	next := <-st.writes
	require.Len(t, next.outs, 3, "the results that waited go in one write")
	require.Equal(t, domain.Refill{Model: "m", Owner: "w", Max: 3, UrgencyWeight: DefaultUrgencyWeight}, next.refill)
	jobs := map[string]bool{}
	for range total {
		r := <-results
		require.NoError(t, r.err)
		require.True(t, r.won)
		require.NotNil(t, r.next, "every slot got its next request")
		jobs[r.next.RequestID] = true
	}
	require.Len(t, jobs, total, "no request handed to two slots")
	inv.wg.Wait()
	require.Empty(t, st.writes, "one write more for the three results")
}
