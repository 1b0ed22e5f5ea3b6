package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// GET /v1/batches hands input_file_id and the status list to the store; an input_file_id that
// is not a file id, or an unknown status, is a 400 naming it and never reaches the store.
func TestListBatchesPassesTheInputFileAndStatusFilters(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	var got []domain.BatchListParams
	f.ListBatchesFn = func(_ context.Context, _ string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
		got = append(got, p)
		return nil, false, nil
	}
	h := newAPI(f)
	w := call(t, h, "GET", "/v1/batches?input_file_id="+aFileID+"&status=failed,%20completed", tenantKey, "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
	require.Len(t, got, 1)
	require.Equal(t, aFileID, got[0].InputFileID)
	require.Equal(t, []string{"failed", "completed"}, got[0].Statuses)

	for _, tt := range []struct{ query, param string }{
		{"input_file_id=batch_123", "input_file_id"},
		{"input_file_id=" + aFileID + "x", "input_file_id"},
		{"status=failed,broken", "status"},
	} {
		w := call(t, h, "GET", "/v1/batches?"+tt.query, tenantKey, "")
		require.Equal(t, http.StatusBadRequest, w.Code, "%s: body %s", tt.query, w.Body)
		require.JSONEq(t, `"`+tt.param+`"`, string(errorOf(t, w).Error.Param), tt.query)
	}
	require.Len(t, got, 1, "a bad filter never reaches the store")
}
