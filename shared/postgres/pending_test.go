package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// fusillade's test_pending_request_counts_respects_states_models_and_cancelling: the counts take
// the states and models asked for, and a batch being cancelled counts for nothing, even for the
// requests still running while their calls are aborted.
func TestPendingCountsRespectStatesModelsAndCancellingBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 2)
	f.model(t, "n", 2)
	first := f.batch(t, 4, "m", "n") // m, n, m, n
	f.running(t, "m", 1)             // m: 1 processing, 1 pending; n: 2 pending
	f.claim(t, "n", 1, 1)            // n: 1 claimed, 1 pending
	windows := []time.Duration{48 * time.Hour}
	const w = 172800
	count := func(pf domain.PendingFilter) domain.WindowCounts {
		t.Helper()
		c, err := f.store.PendingByModelAndWindow(ctx, windows, pf, f.now)
		require.NoError(t, err)
		return c
	}
	require.Equal(t, domain.WindowCounts{"m": {w: 2}, "n": {w: 2}}, count(domain.PendingFilter{}), "every unfinished state by default")
	require.Equal(t, domain.WindowCounts{"m": {w: 1}}, count(domain.PendingFilter{
		States: []domain.RequestState{domain.StatePending}, Models: []string{"m"}}))
	require.Equal(t, domain.WindowCounts{"m": {w: 1}, "n": {w: 2}}, count(domain.PendingFilter{
		States: []domain.RequestState{domain.StatePending, domain.StateClaimed}}))
	require.Equal(t, domain.WindowCounts{"m": {w: 1}}, count(domain.PendingFilter{
		States: []domain.RequestState{domain.StateProcessing}, Models: []string{"m", "absent"}}))
	require.Empty(t, count(domain.PendingFilter{States: []domain.RequestState{}}), "no state asked for counts nothing")
	require.Empty(t, count(domain.PendingFilter{Models: []string{"absent"}}))

	// A second batch keeps its counts while the first is cancelled with its m request still
	// processing (cancelling until its call is aborted).
	f.batch(t, 1, "n")
	status, err := f.store.CancelBatch(ctx, f.tenant, first, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.BatchCancelling, status)
	require.Equal(t, domain.WindowCounts{"n": {w: 1}}, count(domain.PendingFilter{}))
	require.Empty(t, count(domain.PendingFilter{States: []domain.RequestState{domain.StateProcessing}}),
		"the cancelling batch's processing request is not counted")
}
