package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

func (f *fixture) endpoint(t *testing.T, events []string, percent int) string {
	t.Helper()
	e, err := f.store.CreateWebhookEndpoint(context.Background(), domain.WebhookEndpoint{ID: domain.NewWebhookEndpointID(),
		TenantID: f.tenant, URL: "https://example.com/hook", EventTypes: events, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		ProgressEveryPercent: percent, CreatedAt: f.now.Unix()})
	require.NoError(t, err)
	return e.ID
}

// completedBatches makes n one-line batches of model m and moves them to completed, which
// enqueues batch.completed for the subscribed endpoints.
func (f *fixture) completedBatches(t *testing.T, n int) {
	t.Helper()
	for range n {
		id := f.batch(t, 1, "m")
		_, err := f.store.Pool().Exec(context.Background(), `UPDATE batches SET status = 'completed', completed_at = $2 WHERE id = $1`, id, f.now)
		require.NoError(t, err)
	}
}

// atOnce runs enqueue three times at once and sums what the runs enqueued.
func atOnce(t *testing.T, enqueue func() (int, error)) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 3 {
		wg.Go(func() {
			n, err := enqueue()
			assert.NoError(t, err)
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

func (f *fixture) deliveries(t *testing.T, endpointID string) []domain.WebhookDelivery {
	t.Helper()
	ds, _, err := f.store.ListWebhookDeliveries(context.Background(), f.tenant, endpointID, "", 100)
	require.NoError(t, err)
	return ds
}

// The terminal transition writes the event in its own transaction, once per transition and only
// for endpoints subscribed to it; updates that do not change the status write nothing.
func TestTerminalTransitionEnqueuesOneEventPerSubscribedEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 10)
	done := f.endpoint(t, []string{domain.EventBatchCompleted}, 0)
	other := f.endpoint(t, []string{domain.EventBatchCancelled, domain.EventBatchFailed}, 0)
	id := f.batch(t, 2, "m")
	_, err := f.store.Pool().Exec(ctx, `UPDATE batches SET total = total WHERE id = $1`, id)
	require.NoError(t, err)
	assert.Empty(t, f.deliveries(t, done), "no transition, no event")

	_, err = f.store.Pool().Exec(ctx, `UPDATE batches SET status = 'completed', completed_at = $2 WHERE id = $1`, id, f.now)
	require.NoError(t, err)
	_, err = f.store.Pool().Exec(ctx, `UPDATE batches SET status = 'completed' WHERE id = $1`, id)
	require.NoError(t, err)
	ds := f.deliveries(t, done)
	require.Len(t, ds, 1, "one event per transition")
	assert.Equal(t, domain.EventBatchCompleted, ds[0].EventType)
	assert.Equal(t, id, ds[0].BatchID)
	assert.Equal(t, domain.DeliveryPending, ds[0].State)
	assert.Equal(t, f.now.Unix(), ds[0].CreatedAt, "the event's time is the transition's")
	assert.Empty(t, f.deliveries(t, other), "not subscribed to batch.completed")

	// A transition whose transaction rolls back leaves no event.
	tx, err := f.store.Pool().Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE batches SET status = 'failed' WHERE id = $1`, id)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	assert.Empty(t, f.deliveries(t, other))

	// A cancel of a batch still validating ends it at once: batch.cancelled.
	vid := f.batch(t, 1, "m")
	_, err = f.store.Pool().Exec(ctx, `UPDATE batches SET status = 'validating' WHERE id = $1`, vid)
	require.NoError(t, err)
	st, err := f.store.CancelBatch(ctx, f.tenant, vid, f.now)
	require.NoError(t, err)
	require.Equal(t, domain.BatchStatus("cancelled"), st)
	ds = f.deliveries(t, other)
	require.Len(t, ds, 1)
	assert.Equal(t, domain.EventBatchCancelled, ds[0].EventType)
}

// A claim is one attempt, fenced: two senders claiming at once never take the same delivery, a
// claimed delivery is not due again before its lease ends, and a sender whose lease ran out (the
// delivery claimed again) cannot record its late result.
func TestWebhookClaimsFenceEachAttempt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 10)
	ep := f.endpoint(t, []string{domain.EventBatchCompleted}, 0)
	f.completedBatches(t, 20)
	lease := f.now.Add(time.Minute)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ds, err := f.store.ClaimWebhookDeliveries(ctx, f.now, lease, 20)
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				seen[d.ID]++
				assert.Equal(t, 1, d.Attempts)
				assert.Equal(t, "https://example.com/hook", d.URL)
				assert.JSONEq(t, `{"id":"`+d.BatchID+`"}`, string(d.Data))
			}
		})
	}
	wg.Wait()
	require.Len(t, seen, 20)
	for id, n := range seen {
		assert.Equal(t, 1, n, id)
	}
	again, err := f.store.ClaimWebhookDeliveries(ctx, f.now.Add(30*time.Second), lease, 100)
	require.NoError(t, err)
	assert.Empty(t, again, "leased")

	// The lease runs out: the next claim is attempt 2, and attempt 1's result is fenced out.
	second, err := f.store.ClaimWebhookDeliveries(ctx, lease, lease.Add(time.Minute), 1)
	require.NoError(t, err)
	require.Len(t, second, 1)
	d := second[0]
	require.Equal(t, 2, d.Attempts)
	ok, err := f.store.RecordWebhookAttempt(ctx, d.ID, domain.WebhookAttempt{Attempt: 1, At: f.now.Unix(), StatusCode: 500}, domain.DeliveryPending, lease)
	require.NoError(t, err)
	assert.False(t, ok, "a stale attempt writes nothing")
	ok, err = f.store.RecordWebhookAttempt(ctx, d.ID, domain.WebhookAttempt{Attempt: 2, At: lease.Unix(), StatusCode: 204, LatencyMS: 12}, domain.DeliveryDelivered, lease)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = f.store.RecordWebhookAttempt(ctx, d.ID, domain.WebhookAttempt{Attempt: 2, At: lease.Unix(), StatusCode: 204}, domain.DeliveryDelivered, lease)
	require.NoError(t, err)
	assert.False(t, ok, "recorded once")

	var got domain.WebhookDelivery
	for _, x := range f.deliveries(t, ep) {
		if x.ID == d.ID {
			got = x
		}
	}
	assert.Equal(t, domain.DeliveryDelivered, got.State)
	assert.Nil(t, got.NextAt)
	assert.Equal(t, []domain.WebhookAttempt{{Attempt: 2, At: lease.Unix(), StatusCode: 204, LatencyMS: 12}}, got.AttemptLog)

	// Deleting the endpoint fails its undelivered events; nothing of it is claimed again.
	require.NoError(t, f.store.DeleteWebhookEndpoint(ctx, f.tenant, ep, f.now))
	left, err := f.store.ClaimWebhookDeliveries(ctx, lease.Add(time.Hour), lease.Add(2*time.Hour), 100)
	require.NoError(t, err)
	assert.Empty(t, left)
	assert.Equal(t, domain.ENotFound, domain.ErrorCode(f.store.DeleteWebhookEndpoint(ctx, f.tenant, ep, f.now)))
}

// batch.progress is enqueued each time the finished share crosses another multiple of the
// endpoint's step, once, however many passes run.
func TestWebhookProgressIsEnqueuedOncePerStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 10)
	ep := f.endpoint(t, []string{domain.EventBatchProgress}, 50)
	f.endpoint(t, []string{domain.EventBatchCompleted}, 50) // not subscribed to progress
	f.batch(t, 4, "m")
	n, err := f.store.EnqueueWebhookProgress(ctx, f.now, 100)
	require.NoError(t, err)
	assert.Zero(t, n, "0 %")
	w := f.running(t, "m", 3)
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)})
	n, err = f.store.EnqueueWebhookProgress(ctx, f.now, 100)
	require.NoError(t, err)
	assert.Zero(t, n, "25 %")
	f.finish(t, domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 400, Body: []byte(`{}`)})
	total := atOnce(t, func() (int, error) { return f.store.EnqueueWebhookProgress(ctx, f.now.Add(time.Second), 100) })
	assert.Equal(t, 1, total, "50 %: one event")
	f.finish(t, domain.Outcome{Work: w[2], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)})
	n, err = f.store.EnqueueWebhookProgress(ctx, f.now.Add(2*time.Second), 100)
	require.NoError(t, err)
	assert.Zero(t, n, "75 %: the next step is 100 %")
	ds := f.deliveries(t, ep)
	require.Len(t, ds, 1)
	assert.Equal(t, domain.EventBatchProgress, ds[0].EventType)
	claimed, err := f.store.ClaimWebhookDeliveries(ctx, f.now.Add(time.Hour), f.now.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.JSONEq(t, `{"id":"`+ds[0].BatchID+`","request_counts":{"total":4,"completed":1,"failed":1}}`, string(claimed[0].Data))
}

// Ended deliveries older than the cutoff go with their attempts; pending ones and newer ones
// stay.
func TestPurgeWebhookDeliveriesDropsOnlyOldEndedOnes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 10)
	ep := f.endpoint(t, []string{domain.EventBatchCompleted}, 0)
	f.completedBatches(t, 3)
	ds, err := f.store.ClaimWebhookDeliveries(ctx, f.now, f.now.Add(time.Minute), 2)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	for i, d := range ds {
		at := f.now.Add(time.Duration(i) * time.Hour) // one ended at now, one an hour later
		ok, err := f.store.RecordWebhookAttempt(ctx, d.ID, domain.WebhookAttempt{Attempt: 1, At: at.Unix(), StatusCode: 200}, domain.DeliveryDelivered, at)
		require.NoError(t, err)
		require.True(t, ok)
	}
	n, err := f.store.PurgeWebhookDeliveries(ctx, f.now.Add(time.Minute), 100)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	left := f.deliveries(t, ep)
	require.Len(t, left, 2, "the newer ended one and the pending one")
	var attempts int
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_attempts`).Scan(&attempts))
	assert.Equal(t, 1, attempts, "the dropped delivery's attempt went with it")
}

// batch.deadline_at_risk goes to the subscribed endpoints of a running batch once per deadline,
// however many passes run at once; the batch is a candidate until every such endpoint was warned,
// and again once its deadline moves. A batch that no longer runs gets nothing.
func TestDeadlineRiskIsEnqueuedOncePerDeadline(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 10)
	ep := f.endpoint(t, []string{domain.EventBatchDeadlineAtRisk}, 0)
	quiet := f.endpoint(t, []string{domain.EventBatchCompleted}, 0)
	id := f.batch(t, 4, "m")
	ended := f.batch(t, 1, "m")
	_, err := f.store.Pool().Exec(ctx, `UPDATE batches SET status = 'cancelled', cancelled_at = $2 WHERE id = $1`, ended, f.now)
	require.NoError(t, err)

	candidates := func() []string {
		bs, err := f.store.DeadlineRiskCandidates(ctx, 100)
		require.NoError(t, err)
		var ids []string
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
		return ids
	}
	require.Equal(t, []string{id}, candidates())
	bs, err := f.store.DeadlineRiskCandidates(ctx, 100)
	require.NoError(t, err)
	deadline := bs[0].ExpiresAt
	eta := deadline.Add(time.Hour)

	total := atOnce(t, func() (int, error) {
		return f.store.EnqueueDeadlineRisk(ctx, f.now, []domain.DeadlineRisk{{BatchID: id, ExpiresAt: deadline, EstimatedCompletion: eta},
			{BatchID: ended, ExpiresAt: deadline, EstimatedCompletion: eta}})
	})
	assert.Equal(t, 1, total, "one warning per deadline, none for the cancelled batch")
	assert.Empty(t, candidates(), "warned at this deadline")
	assert.Empty(t, f.deliveries(t, quiet), "not subscribed")

	// An estimate made against an older deadline warns nobody; the moved deadline warns again.
	later := deadline.Add(2 * time.Hour)
	_, err = f.store.Pool().Exec(ctx, `UPDATE batches SET expires_at = $2 WHERE id = $1`, id, later)
	require.NoError(t, err)
	require.Equal(t, []string{id}, candidates())
	n, err := f.store.EnqueueDeadlineRisk(ctx, f.now, []domain.DeadlineRisk{{BatchID: id, ExpiresAt: deadline, EstimatedCompletion: eta}})
	require.NoError(t, err)
	assert.Zero(t, n, "the estimate was made against the old deadline")
	n, err = f.store.EnqueueDeadlineRisk(ctx, f.now, []domain.DeadlineRisk{{BatchID: id, ExpiresAt: later}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	ds := f.deliveries(t, ep)
	require.Len(t, ds, 2)
	claimed, err := f.store.ClaimWebhookDeliveries(ctx, f.now.Add(time.Hour), f.now.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	data := map[string]bool{}
	for _, c := range claimed {
		assert.Equal(t, domain.EventBatchDeadlineAtRisk, c.EventType)
		data[string(c.Data)] = true
	}
	assert.Equal(t, map[string]bool{
		fmt.Sprintf(`{"id": "%s", "expires_at": %d, "estimated_completion_at": %d}`, id, deadline.Unix(), eta.Unix()): true,
		fmt.Sprintf(`{"id": "%s", "expires_at": %d, "estimated_completion_at": null}`, id, later.Unix()):              true,
	}, data)
}
