package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// The timeline of a running batch spans from its start to now, with the points asked for, and
// renders the store's cumulative counts in unix milliseconds.
func TestBatchTimelineSpansTheBatchAndAnswersItsPoints(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	const id = "batch_0123456789abcdef0123456789abcdef"
	started := testNow.Add(-40 * time.Second)
	f.ViewBatchFn = func(_ context.Context, tenant, got string) (domain.Batch, error) {
		require.Equal(t, id, got)
		return domain.Batch{ID: id, TenantID: tenant, Status: domain.BatchInProgress, CreatedAt: started.Add(-time.Second),
			InProgressAt: &started, Counts: domain.Counts{Total: 9, Completed: 3, Failed: 1}}, nil
	}
	f.BatchTimelineFn = func(_ context.Context, tenant, batch string, total int, start, end time.Time, n int) (domain.Timeline, error) {
		require.Equal(t, id, batch)
		require.Equal(t, 9, total)
		require.Equal(t, started, start)
		require.Equal(t, testNow, end)
		require.Equal(t, 4, n)
		tl := domain.NewTimeline(start, end, total, n)
		tl.Add(1, 3, 0)
		tl.Add(3, 0, 1)
		return tl, nil
	}
	w := call(t, newAPI(f), "GET", "/v1/batches/"+id+"/timeline?points=4", tenantKey, "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
	var got struct {
		Object  string `json:"object"`
		BatchID string `json:"batch_id"`
		Total   int    `json:"total"`
		StartMS int64  `json:"start_ms"`
		EndMS   int64  `json:"end_ms"`
		Data    []struct {
			AtMS              int64 `json:"at_ms"`
			Completed, Failed int
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.Equal(t, "batch.timeline", got.Object)
	require.Equal(t, id, got.BatchID)
	require.Equal(t, 9, got.Total)
	require.Equal(t, started.UnixMilli(), got.StartMS)
	require.Equal(t, testNow.UnixMilli(), got.EndMS)
	require.Len(t, got.Data, 4)
	require.Equal(t, started.Add(10*time.Second).UnixMilli(), got.Data[0].AtMS)
	require.Equal(t, [4][2]int{{0, 0}, {3, 0}, {3, 0}, {3, 1}},
		[4][2]int{{got.Data[0].Completed, got.Data[0].Failed}, {got.Data[1].Completed, got.Data[1].Failed},
			{got.Data[2].Completed, got.Data[2].Failed}, {got.Data[3].Completed, got.Data[3].Failed}})
}

func TestBatchTimelineRefusesABadPointCountAndAnotherTenantsBatch(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	const id = "batch_0123456789abcdef0123456789abcdef"
	for _, q := range []string{"0", "501", "x"} {
		w := call(t, newAPI(f), "GET", "/v1/batches/"+id+"/timeline?points="+q, tenantKey, "")
		require.Equal(t, http.StatusBadRequest, w.Code, q)
		require.Contains(t, w.Body.String(), `"param":"points"`, q)
	}
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) {
		return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No batch found with id '" + id + "'."}
	}
	w := call(t, newAPI(f), "GET", "/v1/batches/"+id+"/timeline", tenantKey, "")
	require.Equal(t, http.StatusNotFound, w.Code, "body %s", w.Body)
}
