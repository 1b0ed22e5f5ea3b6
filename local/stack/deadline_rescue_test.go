package stack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
)

// rescuedBatch is the Batch object with the deadline-rescue links (decoded apart: openai.Batch's
// own UnmarshalJSON would take the whole object).
type rescuedBatch struct {
	openai.Batch
	RerunOf      *string
	RerunBatchID *string
}

func decodeRescued(t *testing.T, body []byte) rescuedBatch {
	t.Helper()
	var b rescuedBatch
	require.NoError(t, json.Unmarshal(body, &b.Batch), "%s", body)
	var links struct {
		RerunOf      *string `json:"rerun_of"`
		RerunBatchID *string `json:"rerun_batch_id"`
	}
	require.NoError(t, json.Unmarshal(body, &links), "%s", body)
	b.RerunOf, b.RerunBatchID = links.RerunOf, links.RerunBatchID
	return b
}

func postBatch(t *testing.T, st *stack.Stack, path string, body any) (int, rescuedBatch, []byte) {
	t.Helper()
	r := callJSON(t, st, st.APIKey, "POST", path, body)
	var b rescuedBatch
	if r.Status == http.StatusOK {
		b = decodeRescued(t, r.Body)
	}
	return r.Status, b, r.Body
}

func customIDs(t *testing.T, c openai.Client, fileID string) []string {
	t.Helper()
	var ids []string
	if fileID == "" {
		return ids
	}
	for _, l := range readLines(t, c, fileID) {
		ids = append(ids, l["custom_id"].(string))
	}
	sort.Strings(ids)
	return ids
}

// A batch that reaches its deadline keeps everything that finished; its rerun runs exactly the
// lines that did not complete — failed and expired — once each, and completes them; the two
// batches name each other; a repeated rerun answers the same batch; a rerun with nothing left
// to run is refused.
func TestARerunRunsExactlyTheLinesAnExpiredBatchDidNotComplete(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}, {Name: "mock-held", Limit: 0}},
		PurgeEvery: 100 * time.Millisecond, Env: map[string]string{"COMPLETION_WINDOWS": "3s,1h"}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	failOnce := func(id string) string {
		return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],` +
			`"mock_status":400,"mock_fail_times":1,"mock_key":"rerun-` + id + `"}}`
	}
	f := uploadSDK(t, c, lines(chatLine("ok-0", "mock-chat"), failOnce("fail-1"), chatLine("ok-2", "mock-chat"), failOnce("fail-3"),
		chatLine("held-4", "mock-held"), chatLine("held-5", "mock-held"), chatLine("ok-6", "mock-chat")))
	status, created, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions", "completion_window": "3s"})
	require.Equal(t, http.StatusOK, status, "%s", body)

	src := waitBatch(t, c, created.ID, 30*time.Second)
	require.Equal(t, openai.BatchStatusExpired, src.Status)
	require.EqualValues(t, 3, src.RequestCounts.Completed, "nothing finished is lost at expiry")
	require.EqualValues(t, 4, src.RequestCounts.Failed)
	require.Equal(t, []string{"ok-0", "ok-2", "ok-6"}, customIDs(t, c, src.OutputFileID))
	require.Equal(t, []string{"fail-1", "fail-3", "held-4", "held-5"}, customIDs(t, c, src.ErrorFileID))

	// The held model gets capacity, and the failing lines now succeed (they fail once each).
	models, err := st.App.Store.ListModels(ctx)
	require.NoError(t, err)
	r := callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/mock-held", map[string]any{"base_url": models[0].BaseURL, "concurrency_limit": 2})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)

	status, rerun, body := postBatch(t, st, "/v1/batches/"+src.ID+"/rerun", map[string]any{"completion_window": "1h"})
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NotEqual(t, src.ID, rerun.ID)
	require.NotNil(t, rerun.RerunOf)
	require.Equal(t, src.ID, *rerun.RerunOf)
	require.Equal(t, "1h", rerun.CompletionWindow)
	require.Equal(t, src.InputFileID, rerun.InputFileID)
	require.EqualValues(t, 4, rerun.RequestCounts.Total)

	done := waitBatch(t, c, rerun.ID, 30*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 4, done.RequestCounts.Completed)
	require.Zero(t, done.RequestCounts.Failed)
	require.Equal(t, []string{"fail-1", "fail-3", "held-4", "held-5"}, customIDs(t, c, done.OutputFileID))
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 4, "mock-held": 2})

	r = call(t, st, st.APIKey, "GET", "/v1/batches/"+src.ID, nil, "")
	source := decodeRescued(t, r.Body)
	require.Equal(t, openai.BatchStatusExpired, source.Status, "the source stays as it ended")
	require.NotNil(t, source.RerunBatchID)
	require.Equal(t, rerun.ID, *source.RerunBatchID)
	require.EqualValues(t, 3, source.RequestCounts.Completed)

	status, again, body := postBatch(t, st, "/v1/batches/"+src.ID+"/rerun", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, rerun.ID, again.ID, "a repeated rerun answers the first")

	status, _, body = postBatch(t, st, "/v1/batches/"+rerun.ID+"/rerun", nil)
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	require.Contains(t, string(body), "no failed, cancelled or expired lines")
}

// An extended batch outlives its first deadline: the expiry sweep runs past it and leaves the
// batch running, and its held line completes after it. An extension that does not end later is
// refused.
func TestAnExtendedBatchOutlivesItsFirstDeadline(t *testing.T) {
	var sweepsAfter atomic.Int64
	var oldDeadline atomic.Int64 // unix nanoseconds; 0 until known
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 4}},
		PurgeEvery: 100 * time.Millisecond, Env: map[string]string{"COMPLETION_WINDOWS": "3s,1h"},
		Invoked: func(inv stack.Invocation) {
			if d := oldDeadline.Load(); inv.Function == "PurgeFunction" && d != 0 && time.Now().Add(-inv.Duration).UnixNano() > d {
				sweepsAfter.Add(1)
			}
		}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	held := `{"custom_id":"held","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],"mock_block":"extend-gate"}}`
	f := uploadSDK(t, c, lines(chatLine("ok", "mock-chat"), held))
	status, created, body := postBatch(t, st, "/v1/batches", map[string]any{"input_file_id": f.ID, "endpoint": "/v1/chat/completions", "completion_window": "3s"})
	require.Equal(t, http.StatusOK, status, "%s", body)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, st.Upstream.WaitBlocked(wctx, "extend-gate", 1))

	status, extended, body := postBatch(t, st, "/v1/batches/"+created.ID+"/extend", map[string]any{"completion_window": "1h"})
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, "1h", extended.CompletionWindow)
	require.Equal(t, created.CreatedAt+3600, extended.ExpiresAt)
	status, _, body = postBatch(t, st, "/v1/batches/"+created.ID+"/extend", map[string]any{"completion_window": "3s"})
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	require.Contains(t, string(body), "not after its current deadline")

	// Wait for two expiry sweeps that started after the first deadline.
	oldDeadline.Store(time.Unix(created.ExpiresAt, 0).Add(time.Second).UnixNano())
	for sweepsAfter.Load() < 2 {
		select {
		case <-wctx.Done():
			require.FailNow(t, "no expiry sweep ran after the first deadline")
		case <-time.After(50 * time.Millisecond):
		}
	}
	b, err := c.Batches.Get(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusInProgress, b.Status, "past its first deadline, the batch runs on")

	st.Upstream.Release("extend-gate")
	done := waitBatch(t, c, created.ID, 20*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 2, done.RequestCounts.Completed)
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 4})
}
