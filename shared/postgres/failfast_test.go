package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// armedBatch creates a running batch of n requests of model m whose fail-fast K is k.
func (f *fixture) armedBatch(t *testing.T, k, n int) string {
	t.Helper()
	ctx := context.Background()
	f.model(t, "m", 100)
	fileID := domain.NewFileID()
	require.NoError(t, f.store.InsertFile(ctx, domain.File{ID: fileID, TenantID: f.tenant, Filename: "in.jsonl",
		Purpose: domain.PurposeBatch, Status: "processed", CreatedAt: f.now}))
	id := domain.NewBatchID()
	require.NoError(t, f.store.InsertBatch(ctx, domain.Batch{ID: id, TenantID: f.tenant, InputFileID: fileID,
		Endpoint: "/v1/chat/completions", CompletionWindow: "24h", CreatedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID(), FailFastAfter: k}))
	reqs := make([]domain.NewRequest, n)
	for i := range reqs {
		reqs[i] = domain.NewRequest{ID: uuid.NewString(), Line: i + 1, CustomID: fmt.Sprintf("c%d", i+1), Model: "m",
			Path: "/v1/chat/completions", Body: []byte(`{"model":"m"}`)}
	}
	_, err := f.store.InsertRequests(ctx, id, &sliceSource{reqs: reqs}, f.now)
	require.NoError(t, err)
	return id
}

func rejected(w domain.Work, status int) domain.Outcome {
	return domain.Outcome{Work: w, Model: "m", State: domain.StateFailed, StatusCode: status, Rejected: true,
		Body: []byte(`{"error":{"message":"Unknown parameter: 'foo'."}}`)}
}

func (f *fixture) states(t *testing.T, batchID string) map[string]int {
	t.Helper()
	rows, err := f.store.Pool().Query(context.Background(), `SELECT state || ':' || coalesce(error_code, ''), count(*)
		FROM requests WHERE batch_id = $1 GROUP BY 1`, batchID)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		out[k] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// The breaker stays undecided below K failures, trips at the K-th when every failure carries the
// same status and nothing completed, ends the unsent lines as batch_failed_fast and marks the
// running one for abort, records the batch error with the status and the upstream's message,
// and the batch seals as failed with every line counted.
func TestTheFailFastBreakerTripsWhenTheFirstKRequestsFailAlike(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	id := f.armedBatch(t, 3, 10)
	w := f.running(t, "m", 4)
	f.finish(t, rejected(w[0], 400), rejected(w[1], 400))
	tripped, err := f.store.DecideFailFast(ctx, id, 400, "Unknown parameter: 'foo'.", f.now)
	require.NoError(t, err)
	require.False(t, tripped, "two failures of three")
	var decided bool
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT fail_fast_decided FROM batches WHERE id = $1`, id).Scan(&decided))
	require.False(t, decided, "undecided: nothing written")

	f.finish(t, rejected(w[2], 400))
	tripped, err = f.store.DecideFailFast(ctx, id, 400, "Unknown parameter: 'foo'.", f.now)
	require.NoError(t, err)
	require.True(t, tripped)
	require.Equal(t, map[string]int{"failed:": 3, "failed:" + domain.CodeBatchFailedFast: 6, "processing:": 1}, f.states(t, id))
	marks, err := f.store.CancelMarks(ctx, []string{w[3].RequestID})
	require.NoError(t, err)
	require.Equal(t, []domain.Abort{{RequestID: w[3].RequestID, State: domain.StateFailed, Code: domain.CodeBatchFailedFast}}, marks,
		"the running request is aborted as not sent")
	again, err := f.store.DecideFailFast(ctx, id, 400, "x", f.now)
	require.NoError(t, err)
	require.False(t, again, "trips once")

	f.finish(t, domain.Outcome{Work: w[3], Model: "m", State: domain.StateFailed, ErrorCode: domain.CodeBatchFailedFast})
	f.seal(t, id, 0, 10)
	b, err := f.store.GetBatch(ctx, f.tenant, id)
	require.NoError(t, err)
	require.Equal(t, domain.BatchFailed, b.Status)
	require.NotNil(t, b.FailedAt)
	require.Nil(t, b.CompletedAt)
	require.True(t, b.Sealed(), "its output and error files are final")
	require.Equal(t, domain.Counts{Total: 10, Failed: 10}, b.Counts)
	require.Len(t, b.Errors, 1)
	require.Equal(t, domain.CodeFailFast, b.Errors[0].Code)
	require.Contains(t, b.Errors[0].Message, "The first 3 requests")
	require.Contains(t, b.Errors[0].Message, "HTTP 400")
	require.Contains(t, b.Errors[0].Message, "Unknown parameter: 'foo'.")
	require.Equal(t, 3, b.FailFastAfter)

	_, _, err = f.store.RetryFailed(ctx, f.tenant, id, nil, f.now)
	require.Equal(t, domain.EConflict, domain.ErrorCode(err), "a stopped batch is rerun, not retried: %v", err)
}

// The breaker never trips once a line completed or when the failures disagree, and then it is
// decided for good; K = 0 is off.
func TestTheFailFastBreakerDoesNotTripOnAMixOrAfterASuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		k    int
		outs func(w []domain.Work) []domain.Outcome
		done bool // decided afterwards
	}{
		{"a success first", 2, func(w []domain.Work) []domain.Outcome {
			return []domain.Outcome{{Work: w[0], Model: "m", State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
				rejected(w[1], 400), rejected(w[2], 400)}
		}, true},
		{"two statuses", 3, func(w []domain.Work) []domain.Outcome {
			return []domain.Outcome{rejected(w[0], 401), rejected(w[1], 400), rejected(w[2], 400)}
		}, true},
		{"a failure without a status", 3, func(w []domain.Work) []domain.Outcome {
			return []domain.Outcome{{Work: w[0], Model: "m", State: domain.StateFailed, ErrorCode: domain.CodeTimeout},
				rejected(w[1], 400), rejected(w[2], 400)}
		}, true},
		{"off", 0, func(w []domain.Work) []domain.Outcome {
			return []domain.Outcome{rejected(w[0], 400), rejected(w[1], 400), rejected(w[2], 400)}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.armedBatch(t, tc.k, 6)
			f.finish(t, tc.outs(f.running(t, "m", 3))...)
			tripped, err := f.store.DecideFailFast(ctx, id, 400, "m", f.now)
			require.NoError(t, err)
			require.False(t, tripped)
			var decided bool
			require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT fail_fast_decided FROM batches WHERE id = $1`, id).Scan(&decided))
			require.Equal(t, tc.done, decided)
			require.Equal(t, 3, f.states(t, id)["pending:"], "nothing was ended")
		})
	}
}
