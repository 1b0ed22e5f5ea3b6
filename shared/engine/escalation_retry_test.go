package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/upstream"
)

// escalating configures m to hand batches within an hour of their deadline to n, and creates a
// one-line batch of m due in 30 minutes (so n serves it) whose line carries extra.
func escalating(t *testing.T, b *bundle, extra string) string {
	t.Helper()
	ctx := context.Background()
	base := mustModel(t, b).BaseURL
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "n", BaseURL: base, ConcurrencyLimit: 2}))
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: base, ConcurrencyLimit: 2,
		EscalationModel: "n", EscalationThreshold: 3600}))
	return b.batch(t, b.tenant, "m", 1, 30*time.Minute, extra)
}

// row reads the request of a one-line batch.
func row(t *testing.T, b *bundle, batchID string) (state, model string) {
	t.Helper()
	require.NoError(t, b.store.Pool().QueryRow(context.Background(),
		`SELECT state, model FROM requests WHERE batch_id = $1`, batchID).Scan(&state, &model))
	return state, model
}

// claimOnce dispatches and requires exactly one claim, made by the fallback model n.
func claimOnce(t *testing.T, b *bundle, batchID, why string) {
	t.Helper()
	st, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, st.Claimed, "%s: the escalated request is claimable again", why)
	state, model := row(t, b, batchID)
	require.Equal(t, "claimed", state)
	require.Equal(t, "n", model, "%s: still within the threshold, so the fallback claims it", why)
}

// finishes delivers what is queued and requires the batch to complete through n.
func finishes(t *testing.T, b *bundle, batchID string) {
	t.Helper()
	b.drain(t)
	got := b.get(t, batchID)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 1, got.Counts.Completed)
	reqs := b.mock.Requests()
	require.Equal(t, "n", reqs[len(reqs)-1].Model, "the last call went to the fallback")
}

func TestAnEscalatedRequestBackingOffIsClaimedAgainWhenItsBackOffEnds(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	id := escalating(t, b, `"mock_status":500,"mock_fail_times":1,"mock_key":"backoff"`)
	claimOnce(t, b, id, "first claim")
	b.drain(t)
	state, model := row(t, b, id)
	require.Equal(t, "pending", state, "the 500 is retried")
	require.Equal(t, "m", model, "back to its own model, so the claim decides afresh")
	require.Len(t, b.queue.dispatches, 1)
	require.Equal(t, "n", b.queue.dispatches[0].model, "the retry's kick wakes the model that claims it")
	b.clock.Advance(11 * time.Second) // past any back-off of the test policy (max 10 s)
	require.NoError(t, b.eng.Dispatch(context.Background(), b.queue.dispatches[0].model))
	state, model = row(t, b, id)
	require.Equal(t, "claimed", state, "the kick claims the retry")
	require.Equal(t, "n", model, "still within the threshold, so the fallback claims it")
	finishes(t, b, id)
	require.EqualValues(t, 2, b.mock.Calls())
}

func TestAnEscalatedRequestRescuedFromAClaimOrADeadWorkerIsClaimedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{ClaimTimeout: time.Minute, StaleWorker: time.Minute})
	ctx := context.Background()
	id := escalating(t, b, "")

	// Claimed, never started: rescued after the claim timeout.
	claimOnce(t, b, id, "first claim")
	require.Len(t, b.queue.take(), 1) // the message is lost
	b.clock.Advance(2 * time.Minute)
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Rescued)
	require.Equal(t, 1, st.Dispatch.Claimed, "the sweep's refill reaches the fallback")
	state, model := row(t, b, id)
	require.Equal(t, "claimed", state)
	require.Equal(t, "n", model)

	// Processing on a worker that stopped: rescued at once.
	w := b.queue.take()
	require.Len(t, w, 1)
	require.NoError(t, b.store.Heartbeat(ctx, domain.WorkerRecord{ID: "gone", Function: "worker"}, b.clock.Now()))
	_, err = b.store.StartProcessing(ctx, w[0], "gone", b.clock.Now())
	require.NoError(t, err)
	require.NoError(t, b.store.StopWorker(ctx, "gone", b.clock.Now()))
	st, err = b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Rescued)
	require.Equal(t, 1, st.Dispatch.Claimed, "the rescued processing row is claimable again")
	state, model = row(t, b, id)
	require.Equal(t, "claimed", state)
	require.Equal(t, "n", model)
	finishes(t, b, id)
}

func TestAnEscalatedClaimGivenBackAfterSQSRejectedItsMessageIsClaimedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	id := escalating(t, b, "")
	b.queue.failNext = 1
	st, err := b.eng.DispatchAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, st.Returned)
	state, model := row(t, b, id)
	require.Equal(t, "pending", state)
	require.Equal(t, "m", model)
	claimOnce(t, b, id, "after the unclaim")
	finishes(t, b, id)
}

func TestRetryingAFailedEscalatedLineRunsItAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := escalating(t, b, `"mock_status":400,"mock_fail_times":1,"mock_key":"retry"`)
	claimOnce(t, b, id, "first claim")
	b.drain(t)
	got := b.get(t, id)
	require.Equal(t, domain.BatchCompleted, got.Status)
	require.Equal(t, 1, got.Counts.Failed)

	n, models, err := b.store.RetryFailed(ctx, b.tenant, id, nil, b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"m"}, models, "the line is m's again")
	require.NoError(t, b.eng.Dispatch(ctx, models...), "the API dispatches the models RetryFailed returns")
	state, model := row(t, b, id)
	require.Equal(t, "claimed", state, "kicking m reaches its fallback")
	require.Equal(t, "n", model)
	finishes(t, b, id)
	require.EqualValues(t, 2, b.mock.Calls())
}

// Once the batch is no longer within the threshold (here: the threshold was lowered), a request
// that went back to pending is claimed by its own model.
func TestAnEscalatedRequestOutsideTheThresholdAgainIsClaimedByItsOwnModel(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{})
	ctx := context.Background()
	id := escalating(t, b, `"mock_status":500,"mock_fail_times":1,"mock_key":"own"`)
	claimOnce(t, b, id, "first claim")
	b.drain(t)
	m := mustModel(t, b)
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "m", BaseURL: m.BaseURL, ConcurrencyLimit: 2,
		EscalationModel: "n", EscalationThreshold: 60}))
	b.clock.Advance(11 * time.Second)
	b.eng = newEngine(b) // no cached model config
	st, err := b.eng.DispatchAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Claimed)
	state, model := row(t, b, id)
	require.Equal(t, "claimed", state)
	require.Equal(t, "m", model)
	var routed *string
	require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT routed_model FROM requests WHERE batch_id = $1`, id).Scan(&routed))
	require.Nil(t, routed, "served by its own model, so not routed")
	b.drain(t)
	require.Equal(t, domain.BatchCompleted, b.get(t, id).Status)
	reqs := b.mock.Requests()
	require.Equal(t, "m", reqs[len(reqs)-1].Model)
	require.Contains(t, string(reqs[len(reqs)-1].Body), `"model":"m"`)
}

// newEngine builds a fresh engine over the bundle's collaborators, as setup does.
func newEngine(b *bundle) *engine.Engine {
	return engine.New(engine.Config{Retry: domain.RetryPolicy{MaxRetries: 5, Base: time.Second, Factor: 2, Max: 10 * time.Second},
		CancelPollEvery: 10 * time.Millisecond, HeartbeatEvery: time.Hour},
		engine.Deps{Store: b.store, Queue: b.queue, Upstream: upstream.New(upstream.Config{}), Blobs: b.blobs, Credentials: noCredentials{}, Now: b.clock.Now})
}
