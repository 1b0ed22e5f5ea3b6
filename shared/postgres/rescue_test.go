package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// A dispatcher's claim whose message was never sent (the dispatcher died between its claim and
// SendWork) stays claimed with nobody to start it. Rescue returns it to pending once it has been
// claimed for longer than the claim timeout, and not before; like fusillade's stale-claim sweep
// it keeps the retries spent and the back-off time, and only clears the claim. A running request
// is left to the processing timeout.
func TestAClaimNeverSentIsRescuedAfterTheClaimTimeoutKeepingRetriesAndNotBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 2, "m")

	// Line 1 fails twice with a retriable status: two retries spent, its last back-off 10s.
	now := f.now
	var notBefore time.Time
	for range 2 {
		_, jobs, err := f.store.FinishAndClaim(ctx, nil, domain.Refill{Model: "m", Owner: "w1", Max: 1}, now)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		notBefore = now.Add(10 * time.Second)
		won, err := f.store.FinishMany(ctx, []domain.Outcome{{Work: jobs[0].Work, Model: "m", State: domain.StatePending,
			StatusCode: 503, ErrorCode: "upstream_unavailable", ErrorMessage: "busy", NotBefore: notBefore}}, now)
		require.NoError(t, err)
		require.Len(t, won, 1)
		now = notBefore
	}
	// Line 1 is claimed for the queue and its message never sent; line 2 runs (started now).
	c, err := f.store.ClaimForModel(ctx, "m", 1, 0, now)
	require.NoError(t, err)
	require.Len(t, c, 1)
	lost := c[0].Work
	_, jobs, err := f.store.FinishAndClaim(ctx, nil, domain.Refill{Model: "m", Owner: "w1", Max: 1}, now)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.NotEqual(t, jobs[0].RequestID, lost.RequestID)

	type row struct {
		State     string
		Retries   int32
		NotBefore *time.Time
		ClaimedAt *time.Time
	}
	read := func() row {
		var r row
		require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT state, retries, not_before, claimed_at FROM requests WHERE id = $1`,
			lost.RequestID).Scan(&r.State, &r.Retries, &r.NotBefore, &r.ClaimedAt))
		return r
	}
	before := read()
	require.Equal(t, "claimed", before.State)
	require.EqualValues(t, 2, before.Retries)

	rescue := func(at time.Time) []domain.Rescued {
		r, err := f.store.Rescue(ctx, at, time.Minute, time.Hour, time.Hour)
		require.NoError(t, err)
		return r
	}
	require.Empty(t, rescue(now.Add(59*time.Second)), "claimed for less than the claim timeout")
	require.Equal(t, []domain.Rescued{{RequestID: lost.RequestID, Model: "m", BatchID: id, State: domain.StatePending}},
		rescue(now.Add(61*time.Second)), "only the lost claim; the running request waits for the processing timeout")

	after := read()
	require.Equal(t, "pending", after.State)
	require.EqualValues(t, 2, after.Retries, "the retries spent are kept")
	require.NotNil(t, after.NotBefore)
	require.True(t, notBefore.Equal(*after.NotBefore), "the back-off time is kept: %v, want %v", after.NotBefore, notBefore)
	require.Nil(t, after.ClaimedAt)

	// A message for the lost claim that turns up late is refused, before and after the re-claim.
	_, err = f.store.StartProcessing(ctx, lost, "w2", now.Add(61*time.Second))
	require.ErrorIs(t, err, domain.ErrStateConflict)
	again, err := f.store.ClaimForModel(ctx, "m", 10, 0, now.Add(61*time.Second))
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, lost.RequestID, again[0].RequestID)
	require.Equal(t, lost.Attempt+1, again[0].Attempt)
	_, err = f.store.StartProcessing(ctx, lost, "w2", now.Add(61*time.Second))
	require.ErrorIs(t, err, domain.ErrStateConflict)
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, []int{2, 0, 0}, []int{b.Counts.Total, b.Counts.Completed, b.Counts.Failed}, "nothing finished")
}
