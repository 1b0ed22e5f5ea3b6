package stack_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// rejectedLines is n lines the upstream answers 400 (an unknown parameter), after ok lines it
// answers.
func rejectedLines(model string, ok, n int) []byte {
	var b bytes.Buffer
	for i := range ok {
		b.WriteString(chatLine(fmt.Sprintf("ok-%d", i), model) + "\n")
	}
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"bad-%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[],"foo":1,"mock_status":400}}`+"\n", i, model)
	}
	return b.Bytes()
}

func createFailFast(t *testing.T, st *stack.Stack, fileID string, k *int) string {
	t.Helper()
	req := map[string]any{"input_file_id": fileID, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
	if k != nil {
		req["fail_fast_after"] = *k
	}
	status, b, body := postBatch(t, st, "/v1/batches", req)
	require.Equal(t, http.StatusOK, status, "%s", body)
	return b.ID
}

// A batch whose first 20 requests (the default K) all fail with the same 400 is stopped: it
// fails with an error naming the status and the upstream's message, far fewer than its 300
// lines reach the upstream, and every line is in the error file exactly once — the unsent ones
// as batch_failed_fast. The same file with fail_fast_after 0 sends every line; a batch whose
// first line succeeded is never stopped.
func TestTheFailFastBreakerStopsABatchWhoseFirstRequestsAllFailAlike(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}, {Name: "mock-one", Limit: 1}}})
	c := client(st, st.APIKey)

	f := uploadSDK(t, c, rejectedLines("mock-chat", 0, 300))
	before := st.Upstream.Calls()
	b := waitBatch(t, c, createFailFast(t, st, f.ID, nil), time.Minute)
	sent := st.Upstream.Calls() - before
	require.Equal(t, openai.BatchStatusFailed, b.Status)
	require.Len(t, b.Errors.Data, 1)
	require.Equal(t, "fail_fast", b.Errors.Data[0].Code)
	require.Contains(t, b.Errors.Data[0].Message, "The first 20 requests")
	require.Contains(t, b.Errors.Data[0].Message, "HTTP 400")
	require.EqualValues(t, 300, b.RequestCounts.Total)
	require.EqualValues(t, 300, b.RequestCounts.Failed)
	t.Logf("the breaker let %d of 300 lines reach the upstream", sent)
	// K plus what the 4 slots took while the breaker decided: 29 on an idle machine; the bound
	// leaves room for a loaded one and still fails a batch that ran on.
	require.Less(t, sent, int64(100), "the breaker stopped the batch: %d of 300 lines were sent", sent)
	require.NotEmpty(t, b.ErrorFileID, "a stopped batch's error file is named")
	seen, unsent := map[string]int{}, 0
	for _, l := range readLines(t, c, b.ErrorFileID) {
		seen[l["custom_id"].(string)]++
		if e, ok := l["error"].(map[string]any); ok && e["code"] == "batch_failed_fast" {
			unsent++
		}
	}
	require.Len(t, seen, 300)
	for id, n := range seen {
		require.Equal(t, 1, n, "%s appears %d times", id, n)
	}
	require.EqualValues(t, 300-sent, unsent, "every line not sent says so")
	assertInvariants(t, st, c, b, map[string]int{"mock-chat": 4})

	off := 0
	before = st.Upstream.Calls()
	b = waitBatch(t, c, createFailFast(t, st, uploadSDK(t, c, rejectedLines("mock-chat", 0, 60)).ID, &off), time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, b.Status, "off: the batch runs to its end")
	require.EqualValues(t, 60, st.Upstream.Calls()-before)
	require.Empty(t, b.Errors.Data)

	k := 5
	before = st.Upstream.Calls()
	b = waitBatch(t, c, createFailFast(t, st, uploadSDK(t, c, rejectedLines("mock-one", 1, 30)).ID, &k), time.Minute)
	require.Equal(t, openai.BatchStatusCompleted, b.Status, "a line completed first: never stopped")
	require.EqualValues(t, 31, st.Upstream.Calls()-before)
	require.EqualValues(t, 1, b.RequestCounts.Completed)
	require.EqualValues(t, 30, b.RequestCounts.Failed)
}
