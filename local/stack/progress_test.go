package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// A running batch shows its pace and when it will finish; one that cannot make its deadline at
// that pace says so. The maintenance pass (every 100 ms here) samples it.
func TestARunningBatchShowsItsPaceAndWhetherItMakesItsDeadline(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 1}, {Name: "mock-slow", Limit: 1}},
		PurgeEvery: 100 * time.Millisecond, Env: map[string]string{"COMPLETION_WINDOWS": "1h,20s"}})
	c := client(st, st.APIKey)
	// 30 lines of 100 ms, one at a time, in an hour; 60 of 500 ms (30 s of work) in 20 s.
	ok := createWindow(t, st, uploadSDK(t, c, paced("mock-chat", 30, 100)).ID, "1h")
	tight := createWindow(t, st, uploadSDK(t, c, paced("mock-slow", 60, 500)).ID, "20s")

	type view struct {
		Status                string   `json:"status"`
		ExpiresAt             int64    `json:"expires_at"`
		ThroughputPerMinute   *float64 `json:"throughput_per_minute"`
		EstimatedCompletionAt *int64   `json:"estimated_completion_at"`
		DeadlineAtRisk        *bool    `json:"deadline_at_risk"`
	}
	get := func(id string) view {
		r := call(t, st, st.APIKey, "GET", "/v1/batches/"+id, nil, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var v view
		require.NoError(t, json.Unmarshal(r.Body, &v))
		return v
	}
	var a, b view
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		a, b = get(ok), get(tight)
		if a.Status == "in_progress" && b.Status == "in_progress" && a.EstimatedCompletionAt != nil && b.EstimatedCompletionAt != nil {
			break
		}
		select {
		case <-ctx.Done():
			require.FailNow(t, "no estimate while the batches ran", "%+v %+v", a, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	require.Positive(t, *a.ThroughputPerMinute)
	require.Greater(t, *a.EstimatedCompletionAt, time.Now().Unix()-1)
	require.False(t, *a.DeadlineAtRisk, "an hour is plenty: estimate %d, deadline %d", *a.EstimatedCompletionAt, a.ExpiresAt)
	require.True(t, *b.DeadlineAtRisk, "30 s of work in a 20 s window: estimate %d, deadline %d", *b.EstimatedCompletionAt, b.ExpiresAt)
	require.Greater(t, *b.EstimatedCompletionAt, b.ExpiresAt)
	_, err := c.Batches.Cancel(context.Background(), tight)
	require.NoError(t, err)

	done := waitBatch(t, c, ok, time.Minute)
	r := call(t, st, st.APIKey, "GET", "/v1/batches/"+done.ID, nil, "")
	var ended view
	require.NoError(t, json.Unmarshal(r.Body, &ended))
	require.Nil(t, ended.ThroughputPerMinute, "an ended batch has no pace")
	waitBatch(t, c, tight, time.Minute)
}

// paced is a file of n chat lines for model that the mock answers after delayMS each.
func paced(model string, n, delayMS int) []byte {
	ls := make([]string, n)
	for i := range ls {
		ls[i] = fmt.Sprintf(`{"custom_id":"l%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[],"mock_delay_ms":%d}}`, i, model, delayMS)
	}
	return lines(ls...)
}

func createWindow(t *testing.T, st *stack.Stack, fileID, window string) string {
	t.Helper()
	status, b, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": fileID, "endpoint": "/v1/chat/completions", "completion_window": window})
	require.Equal(t, http.StatusOK, status, "%s", body)
	return b.ID
}
