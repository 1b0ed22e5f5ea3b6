package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// Every outcome of an individual cancel, by the state the request is in: pending and claimed
// end at once (canceled, request_cancelled), processing is marked for its worker to abort
// (cancelling), finished is not_cancellable. Ids that are not requests of this tenant's batch —
// another batch's, another tenant's, unknown — are absent (the use case answers not_found).
func TestCancelRequestsAnswersEveryOutcomeByState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	id := f.batch(t, 5, "m")
	other := f.batchDue(t, f.tenant, 48*time.Hour, 1, "m") // due later: the claims below take id's lines
	w := f.running(t, "m", 3)                              // lines 1–3 of id
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 400, Body: []byte(`{}`)})
	claimed := f.claim(t, "m", 1, 1)[0] // line 4
	var pending, otherReq string
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT id FROM requests WHERE batch_id = $1 AND line = 5`, id).Scan(&pending))
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT id FROM requests WHERE batch_id = $1`, other).Scan(&otherReq))

	ids := []string{w[0].RequestID, w[1].RequestID, w[2].RequestID, claimed.RequestID, pending, otherReq, uuid.NewString()}
	got, err := f.store.CancelRequests(ctx, f.tenant, id, ids, f.now)
	require.NoError(t, err)
	require.ElementsMatch(t, []domain.CancelOutcome{
		{RequestID: w[0].RequestID, Result: "not_cancellable"}, // completed
		{RequestID: w[1].RequestID, Result: "not_cancellable"}, // failed
		{RequestID: w[2].RequestID, Result: "cancelling"},      // processing
		{RequestID: claimed.RequestID, Result: "canceled"},
		{RequestID: pending, Result: "canceled"},
	}, got)

	type row struct {
		State, Code string
		Marked      bool
	}
	read := func(req string) row {
		var r row
		require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT state, coalesce(error_code, ''), cancel_requested_at IS NOT NULL
			FROM requests WHERE id = $1`, req).Scan(&r.State, &r.Code, &r.Marked))
		return r
	}
	require.Equal(t, row{"canceled", domain.CodeRequestCancelled, false}, read(claimed.RequestID))
	require.Equal(t, row{"canceled", domain.CodeRequestCancelled, false}, read(pending))
	require.Equal(t, row{"processing", "", true}, read(w[2].RequestID), "left to its worker, which aborts the call")
	require.Equal(t, row{"completed", "", false}, read(w[0].RequestID))
	require.Equal(t, row{"pending", "", false}, read(otherReq), "another batch's request is untouched")

	// Asked again: the ended ones are now not cancellable, the running one is still being aborted.
	got, err = f.store.CancelRequests(ctx, f.tenant, id, []string{pending, w[2].RequestID}, f.now)
	require.NoError(t, err)
	require.ElementsMatch(t, []domain.CancelOutcome{{RequestID: pending, Result: "not_cancellable"},
		{RequestID: w[2].RequestID, Result: "cancelling"}}, got)

	// Another tenant naming this batch finds nothing and changes nothing.
	stranger := f.newTenant(t, "stranger")
	got, err = f.store.CancelRequests(ctx, stranger, id, []string{w[2].RequestID}, f.now)
	require.NoError(t, err)
	require.Empty(t, got)
}
