package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// A results line carries the line's latency in whole milliseconds, and null without one.
func TestResultLinesCarryTheirLatency(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	const id = "batch_0123456789abcdef0123456789abcdef"
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) {
		return domain.Batch{ID: id, Status: domain.BatchInProgress}, nil
	}
	took := 1500*time.Millisecond + 700*time.Microsecond
	f.BatchResultsFn = func(_ context.Context, _, _ string, _ domain.ResultQuery, fn func(domain.BatchResult) error) error {
		rows := []domain.BatchResult{
			{ResultRow: domain.ResultRow{RequestID: "00000000-0000-0000-0000-000000000001", Line: 1, CustomID: "a", State: domain.StateCompleted,
				StatusCode: 200, Body: []byte(`{}`)}, Input: []byte(`{}`), Latency: &took},
			{ResultRow: domain.ResultRow{RequestID: "00000000-0000-0000-0000-000000000002", Line: 2, CustomID: "b", State: domain.StateProcessing},
				Input: []byte(`{}`)},
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	w := call(t, newAPI(f), "GET", "/v1/batches/"+id+"/results", tenantKey, "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
	lines := bytes.Split(bytes.TrimSpace(w.Body.Bytes()), []byte("\n"))
	require.Len(t, lines, 2)
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m))
		got = append(got, m)
	}
	assert.InDelta(t, 1500, got[0]["latency_ms"], 0)
	v, ok := got[1]["latency_ms"]
	assert.True(t, ok, "latency_ms is always present")
	assert.Nil(t, v, "null while the line runs")
}
