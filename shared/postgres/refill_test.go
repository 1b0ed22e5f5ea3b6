package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// A worker's result write claims the slots it frees straight into processing under the worker's
// name, with what the calls need, and counts its own finishes as freed: the limit stays exact.
func TestFinishAndClaimRefillsTheFreedSlotsForItsOwnerWithinTheLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 2)
	id := f.batch(t, 5, "m")
	refill := domain.Refill{Model: "m", Owner: "w1", Max: 3}
	won, jobs, err := f.store.FinishAndClaim(ctx, nil, refill, f.now)
	require.NoError(t, err)
	require.Empty(t, won)
	require.Len(t, jobs, 2, "the limit of 2, though 3 were asked")
	for _, j := range jobs {
		require.Equal(t, id, j.BatchID)
		require.Equal(t, "m", j.Model)
		require.Equal(t, 1, j.Attempt)
		require.JSONEq(t, `{"model":"m"}`, string(j.Body), "a worker's claim carries the body")
		require.Equal(t, "/v1/chat/completions", j.BatchEndpoint)
		var state, owner string
		require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT state, owner FROM requests WHERE id = $1`, j.RequestID).Scan(&state, &owner))
		require.Equal(t, "processing", state, "no start write: the claim is the start")
		require.Equal(t, "w1", owner)
	}

	done := domain.Outcome{Work: jobs[0].Work, Model: "m", State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)}
	later := f.now.Add(time.Millisecond) // the database keeps microseconds
	won, next, err := f.store.FinishAndClaim(ctx, []domain.Outcome{done}, refill, later)
	require.NoError(t, err)
	require.Equal(t, []domain.Finished{{RequestID: done.RequestID, BatchID: id, State: domain.StateCompleted}}, won)
	require.Len(t, next, 1, "one slot freed by the write itself, one still running")

	adopted, err := f.store.AdoptClaims(ctx, "w1", "m", later)
	require.NoError(t, err)
	require.Equal(t, next, adopted, "the claims of a write are found again by its time and owner")
	adopted, err = f.store.AdoptClaims(ctx, "w2", "m", later)
	require.NoError(t, err)
	require.Empty(t, adopted, "another worker's claims are not")

	// A dispatcher's claim (no owner) leaves the rows claimed, for a worker to start.
	f.model(t, "m", 4)
	c := f.claim(t, "m", 10, 2) // 4 − the 2 running
	var state string
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT state FROM requests WHERE id = $1`, c[0].RequestID).Scan(&state))
	require.Equal(t, "claimed", state)
}

// A request whose own cancellation was asked while its call ran must not go back to pending when
// the call ends in a retriable failure: a claim would run it again. It ends cancelled.
func TestARetryOfARequestCancelledWhileItRanEndsCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 2)
	id := f.batch(t, 2, "m")
	_, jobs, err := f.store.FinishAndClaim(ctx, nil, domain.Refill{Model: "m", Owner: "w1", Max: 1}, f.now)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	res, err := f.store.CancelRequests(ctx, f.tenant, id, []string{jobs[0].RequestID}, f.now)
	require.NoError(t, err)
	require.Equal(t, []domain.CancelOutcome{{RequestID: jobs[0].RequestID, Result: "cancelling"}}, res)

	retry := domain.Outcome{Work: jobs[0].Work, Model: "m", State: domain.StatePending, StatusCode: 503,
		ErrorCode: "upstream_unavailable", ErrorMessage: "try again", NotBefore: f.now.Add(time.Second)}
	won, err := f.store.FinishMany(ctx, []domain.Outcome{retry}, f.now)
	require.NoError(t, err)
	require.Equal(t, []domain.Finished{{RequestID: retry.RequestID, BatchID: id, State: domain.StateCanceled}}, won)
	var code string
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT error_code FROM requests WHERE id = $1`, retry.RequestID).Scan(&code))
	require.Equal(t, "request_cancelled", code)
}
