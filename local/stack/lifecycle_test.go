package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// assertInvariants checks what must hold for every finished batch: the request states add up
// to the total, the output and error files hold exactly one line per input line with unique
// custom_ids, and no model ever had more calls in flight at the upstream than its limit.
func assertInvariants(t *testing.T, st *stack.Stack, c openai.Client, b *openai.Batch, limits map[string]int) {
	t.Helper()
	var states []struct {
		State string
		N     int
	}
	rows, err := st.App.Store.Pool().Query(context.Background(), `SELECT state, count(*) FROM requests WHERE batch_id = $1 GROUP BY state`, b.ID)
	require.NoError(t, err)
	sum := 0
	for rows.Next() {
		var s struct {
			State string
			N     int
		}
		require.NoError(t, rows.Scan(&s.State, &s.N))
		states = append(states, s)
		sum += s.N
		require.NotContains(t, []string{"pending", "claimed", "processing"}, s.State, "a finished batch has no unfinished request")
	}
	require.NoError(t, rows.Err())
	require.EqualValues(t, b.RequestCounts.Total, sum, "Σ states = total (%v)", states)
	require.EqualValues(t, b.RequestCounts.Total, b.RequestCounts.Completed+b.RequestCounts.Failed)

	seen := map[string]string{}
	for _, f := range []struct{ id, kind string }{{b.OutputFileID, "output"}, {b.ErrorFileID, "error"}} {
		if f.id == "" {
			continue
		}
		for _, l := range readLines(t, c, f.id) {
			id, _ := l["custom_id"].(string)
			require.Empty(t, seen[id], "custom_id %s in the %s file and the %s file", id, seen[id], f.kind)
			seen[id] = f.kind
		}
	}
	require.Len(t, seen, int(b.RequestCounts.Total), "output + error lines = total")
	for model, limit := range limits {
		require.LessOrEqual(t, st.Upstream.MaxInFlight(model), limit, "max in flight of %s", model)
	}
}

func TestCancelThroughTheSDKKeepsFinishedWorkAndAccountsForEveryLine(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 3}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	var content strings.Builder
	for i := range 30 {
		extra := ""
		if i >= 2 {
			extra = `,"mock_block":"hold"` // everything after the first two lines hangs until aborted
		}
		fmt.Fprintf(&content, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[]%s}}`+"\n", i, extra)
	}
	f := uploadSDK(t, c, []byte(content.String()))
	b := newBatch(t, c, f.ID)
	require.NoError(t, st.Upstream.WaitBlocked(ctx, "hold", 3), "three slots busy with hanging calls")

	cancelled, err := c.Batches.Cancel(ctx, b.ID)
	require.NoError(t, err)
	require.Contains(t, []openai.BatchStatus{openai.BatchStatusCancelling, openai.BatchStatusCancelled}, cancelled.Status)
	callsAtCancel := st.Upstream.Calls()
	done := waitBatch(t, c, b.ID, 30*time.Second)
	require.Equal(t, openai.BatchStatusCancelled, done.Status)
	require.NotZero(t, done.CancelledAt)
	require.Equal(t, callsAtCancel, st.Upstream.Calls(), "nothing is sent after the cancel")
	require.EqualValues(t, 2, done.RequestCounts.Completed, "the two answered lines are kept")
	require.EqualValues(t, 28, done.RequestCounts.Failed)
	errLines := readLines(t, c, done.ErrorFileID)
	for _, l := range errLines {
		require.Equal(t, "batch_cancelled", l["error"].(map[string]any)["code"])
	}
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 3})

	_, err = c.Batches.Cancel(ctx, b.ID)
	require.NoError(t, err, "cancelling a cancelled batch is idempotent")
}

func TestCancellingAFinishedBatchIsA400NotA409(t *testing.T) {
	st := startStack(t, stack.Options{})
	c := client(st, st.APIKey)
	f := uploadSDK(t, c, lines(chatLine("a", "mock-chat")))
	b := waitBatch(t, c, newBatch(t, c, f.ID).ID, 30*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	_, err := c.Batches.Cancel(context.Background(), b.ID)
	_ = sdkError(t, err, http.StatusBadRequest, "Cannot cancel a batch with status 'completed'.")
}

func TestRetryFailedLinesThroughTheAPIReopensAndRefinalizes(t *testing.T) {
	st := startStack(t, stack.Options{})
	c := client(st, st.APIKey)
	content := lines(chatLine("ok", "mock-chat"),
		`{"custom_id":"flaky","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_status":400,"mock_fail_times":1,"mock_key":"flaky"}}`)
	f := uploadSDK(t, c, content)
	b := waitBatch(t, c, newBatch(t, c, f.ID).ID, 30*time.Second)
	require.EqualValues(t, 1, b.RequestCounts.Failed)
	require.NotEmpty(t, b.ErrorFileID)

	r := call(t, st, st.APIKey, "POST", "/v1/batches/"+b.ID+"/retry", nil, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	b = waitBatch(t, c, b.ID, 30*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.EqualValues(t, 2, b.RequestCounts.Completed)
	require.Empty(t, b.ErrorFileID)
	assertInvariants(t, st, c, b, map[string]int{"mock-chat": 8})

	r = call(t, st, st.APIKey, "POST", "/v1/batches/"+b.ID+"/retry", nil, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "nothing left to retry")
}

func TestDeleteBatchAndFileThroughTheSDK(t *testing.T) {
	st := startStack(t, stack.Options{})
	c := client(st, st.APIKey)
	ctx := context.Background()
	f := uploadSDK(t, c, lines(chatLine("a", "mock-chat")))
	b := waitBatch(t, c, newBatch(t, c, f.ID).ID, 30*time.Second)

	del, err := c.Files.Delete(ctx, f.ID)
	require.NoError(t, err)
	require.True(t, del.Deleted)
	_, err = c.Files.Get(ctx, f.ID)
	_ = sdkError(t, err, http.StatusNotFound, "No such File object")
	_, err = c.Batches.Get(ctx, b.ID)
	require.NoError(t, err, "a batch outlives its input file")

	r := call(t, st, st.APIKey, "DELETE", "/v1/batches/"+b.ID, nil, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, true, r.json(t)["deleted"])
	_, err = c.Batches.Get(ctx, b.ID)
	_ = sdkError(t, err, http.StatusNotFound, "No batch found")
	_, err = c.Files.Get(ctx, b.OutputFileID)
	_ = sdkError(t, err, http.StatusNotFound, "No such File object")
}

// A model paused at limit 0 holds its batch; raising the limit through the admin API fills the
// new slots at once, not at the next one-minute dispatch.
func TestRaisingALimitThroughTheAdminAPIStartsWorkAtOnce(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 0}}, DispatchEvery: time.Hour})
	c := client(st, st.APIKey)
	ctx := context.Background()
	f := uploadSDK(t, c, jsonlFile(20, "mock-chat"))
	b := newBatch(t, c, f.ID)
	got, err := c.Batches.Get(ctx, b.ID)
	require.NoError(t, err)
	require.NotEqual(t, openai.BatchStatusCompleted, got.Status)
	require.Zero(t, st.Upstream.Calls(), "a paused model sends nothing")

	models, err := st.App.Store.ListModels(ctx)
	require.NoError(t, err)
	r := callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/mock-chat", map[string]any{"base_url": models[0].BaseURL, "concurrency_limit": 4})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	done := waitBatch(t, c, b.ID, 20*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 4})
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logs at debug level across a whole flow never contain an API key or a prompt.
func TestLogsNeverContainKeysOrPrompts(t *testing.T) {
	var logs syncBuffer
	st := startStack(t, stack.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Env: map[string]string{"LOG_LEVEL": "debug"}})
	c := client(st, st.APIKey)
	secret := "the-prompt-is-private-7f3a"
	content := lines(
		`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[{"role":"user","content":"`+secret+`"}]}}`,
		`{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","mock_status":400,"messages":[{"role":"user","content":"`+secret+`"}]}}`)
	f := uploadSDK(t, c, content)
	_ = waitBatch(t, c, newBatch(t, c, f.ID).ID, 60*time.Second)
	bad := call(t, st, "fsk_not-a-real-key-but-looks-like-one", "GET", "/v1/files", nil, "")
	require.Equal(t, http.StatusUnauthorized, bad.Status)

	out := logs.String()
	require.NotEmpty(t, out)
	for _, s := range []string{st.APIKey, st.AdminKey, "fsk_not-a-real-key-but-looks-like-one", secret} {
		require.NotContains(t, out, s)
	}
}
