package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
)

// GET /v1/admin/workers passes its status filter, the clock and the stale threshold to the store
// and shows each record's status; an unknown status is a 400 naming the parameter.
func TestListWorkersFiltersByStatus(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	var gotStatus []domain.WorkerStatus
	var gotStale time.Duration
	f.ListWorkersFn = func(_ context.Context, status domain.WorkerStatus, now time.Time, stale time.Duration, limit int) ([]domain.WorkerRecord, error) {
		require.Equal(t, testNow, now)
		require.Equal(t, 100, limit)
		gotStatus, gotStale = append(gotStatus, status), stale
		return []domain.WorkerRecord{{ID: "w1", Function: "worker", Status: domain.WorkerStale, StartedAt: testNow, HeartbeatAt: testNow}}, nil
	}
	h := httpapi.New(httpapi.Config{StaleWorker: 5 * time.Minute}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f,
		Now: func() time.Time { return testNow }})

	w := call(t, h, "GET", "/v1/admin/workers?status=stale", adminKey, "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Data, 1)
	require.Equal(t, "stale", list.Data[0]["status"])
	require.Equal(t, 5*time.Minute, gotStale)

	for _, st := range []string{"running", "stopped", ""} {
		w = call(t, h, "GET", "/v1/admin/workers?status="+st, adminKey, "")
		require.Equal(t, http.StatusOK, w.Code, "status %q: body %s", st, w.Body)
	}
	require.Equal(t, []domain.WorkerStatus{domain.WorkerStale, domain.WorkerRunning, domain.WorkerStopped, ""}, gotStatus)

	w = call(t, h, "GET", "/v1/admin/workers?status=dead", adminKey, "")
	require.Equal(t, http.StatusBadRequest, w.Code, "body %s", w.Body)
	require.JSONEq(t, `"status"`, string(errorOf(t, w).Error.Param))
	require.Len(t, gotStatus, 4, "a bad status never reaches the store")

	// Without a configured threshold the API uses the rescue's default.
	w = call(t, newAPI(f), "GET", "/v1/admin/workers", adminKey, "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
	require.Equal(t, domain.DefaultStaleWorker, gotStale)
}
