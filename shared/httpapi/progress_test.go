package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

type progressFields struct {
	ID                    string   `json:"id"`
	ThroughputPerMinute   *float64 `json:"throughput_per_minute"`
	EstimatedCompletionAt *int64   `json:"estimated_completion_at"`
	DeadlineAtRisk        *bool    `json:"deadline_at_risk"`
}

// GET /batches/{id} and GET /batches show a running batch's pace and estimate from its oldest
// sample in the window; an ended batch has none; a failed read of the samples leaves the fields
// null and still answers.
func TestRunningBatchesShowTheirPaceAndEstimate(t *testing.T) {
	t.Parallel()
	started := testNow.Add(-time.Hour)
	running := domain.Batch{ID: aBatchID, TenantID: tenantID, Status: domain.BatchInProgress, InProgressAt: &started,
		CreatedAt: started, ExpiresAt: testNow.Add(30 * time.Minute), Counts: domain.Counts{Total: 1000, Completed: 450, Failed: 50}}
	ended := domain.Batch{ID: domain.NewBatchID(), TenantID: tenantID, Status: domain.BatchCompleted, InProgressAt: &started, CreatedAt: started}
	f := withKeys(newFake(t))
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) { return running, nil }
	f.ListBatchesFn = func(context.Context, string, domain.BatchListParams) ([]domain.Batch, bool, error) {
		return []domain.Batch{running, ended}, false, nil
	}
	f.ProgressSinceFn = func(_ context.Context, ids []string, since time.Time) (map[string]domain.ProgressSample, error) {
		assert.Equal(t, []string{aBatchID}, ids, "only running batches are asked for")
		assert.True(t, since.Equal(testNow.Add(-domain.ProgressWindow)))
		return map[string]domain.ProgressSample{aBatchID: {At: testNow.Add(-10 * time.Minute), Done: 400}}, nil
	}
	want := testNow.Add(50 * time.Minute).Unix() // 500 pending at 10 a minute
	check := func(p progressFields) {
		require.NotNil(t, p.ThroughputPerMinute)
		require.InDelta(t, 10, *p.ThroughputPerMinute, 1e-9)
		require.NotNil(t, p.EstimatedCompletionAt)
		require.Equal(t, want, *p.EstimatedCompletionAt)
		require.NotNil(t, p.DeadlineAtRisk)
		require.True(t, *p.DeadlineAtRisk, "50 minutes to go, 30 left")
	}
	w := call(t, newAPI(f), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	var one progressFields
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &one))
	check(one)

	w = call(t, newAPI(f), "GET", "/v1/batches", tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	var list struct{ Data []progressFields }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Data, 2)
	check(list.Data[0])
	require.Nil(t, list.Data[1].ThroughputPerMinute, "an ended batch has no pace")
	require.Nil(t, list.Data[1].EstimatedCompletionAt)
	require.Nil(t, list.Data[1].DeadlineAtRisk)

	f.ProgressSinceFn = func(context.Context, []string, time.Time) (map[string]domain.ProgressSample, error) {
		return nil, errors.New("replica down")
	}
	w = call(t, newAPI(f), "GET", "/v1/batches/"+aBatchID, tenantKey, "")
	require.Equal(t, 200, w.Code, "the estimate is advisory: %s", w.Body)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &one))
	require.Nil(t, one.ThroughputPerMinute)
}
