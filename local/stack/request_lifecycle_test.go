package stack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/domain"
)

// requestIDs maps the custom_ids of a batch's lines to their request ids as output lines show
// them (batch_req_…).
func requestIDs(t *testing.T, st *stack.Stack, batchID string) map[string]string {
	t.Helper()
	rows, err := st.App.Store.Pool().Query(context.Background(), `SELECT custom_id, id::text FROM requests WHERE batch_id = $1`, batchID)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var cid, id string
		require.NoError(t, rows.Scan(&cid, &id))
		out[cid] = domain.OutputLineID(id)
	}
	require.NoError(t, rows.Err())
	return out
}

// POST /v1/batches/{id}/requests/cancel answers, in the order asked, each of the four outcomes:
// a finished line is not_cancellable, a running one cancelling (its call is aborted), an
// unstarted one canceled, an unknown id not_found. The batch then seals with the cancelled
// lines in its error file as request_cancelled.
func TestCancellingRequestsAnswersEveryOutcomeAndTheBatchSeals(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 1}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	// One slot, lines in input order: "done" answers, "hold" hangs, "later" waits for the slot.
	f := uploadSDK(t, c, lines(chatLine("done", "mock-chat"),
		`{"custom_id":"hold","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],"mock_block":"hold"}}`,
		chatLine("later", "mock-chat")))
	b := newBatch(t, c, f.ID)
	require.NoError(t, st.Upstream.WaitBlocked(ctx, "hold", 1))
	ids := requestIDs(t, st, b.ID)
	unknown := domain.OutputLineID(uuid.NewString())

	r := callJSON(t, st, st.APIKey, "POST", "/v1/batches/"+b.ID+"/requests/cancel",
		map[string]any{"request_ids": []string{ids["done"], ids["hold"], ids["later"], unknown}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var got struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &got))
	require.Equal(t, "list", got.Object)
	type outcome struct{ ID, Status string }
	var outcomes []outcome
	for _, d := range got.Data {
		outcomes = append(outcomes, outcome(d))
	}
	require.Equal(t, []outcome{{ids["done"], "not_cancellable"}, {ids["hold"], "cancelling"}, {ids["later"], "canceled"},
		{unknown, "not_found"}}, outcomes)

	done := waitBatch(t, c, b.ID, 20*time.Second) // the hanging call is aborted, never released
	require.Equal(t, openai.BatchStatusCompleted, done.Status, "a batch whose lines were cancelled one by one still completes")
	require.EqualValues(t, 3, done.RequestCounts.Total)
	require.EqualValues(t, 1, done.RequestCounts.Completed)
	require.EqualValues(t, 2, done.RequestCounts.Failed)
	codes := map[string]any{}
	for _, l := range readLines(t, c, done.ErrorFileID) {
		e, _ := l["error"].(map[string]any)
		codes[l["custom_id"].(string)] = e["code"]
	}
	require.Equal(t, map[string]any{"hold": domain.CodeRequestCancelled, "later": domain.CodeRequestCancelled}, codes)
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 1})
}

// POST /v1/batches/{id}/retry-requests with one of two failed lines reopens the completed batch:
// it is in_progress again with that line no longer counted as failed, and it is sealed again,
// completed, once the line ends; the line not named stays failed.
func TestRetryingOneFailedLineByIdReopensTheSealedBatchAndSealsItAgain(t *testing.T) {
	st := startStack(t, stack.Options{Models: []stack.ModelSpec{{Name: "mock-chat", Limit: 2}}})
	c := client(st, st.APIKey)
	ctx := context.Background()
	failOnce := func(id string) string {
		return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"mock-chat","messages":[],` +
			`"mock_status":400,"mock_fail_times":1,"mock_key":"` + id + `"}}`
	}
	f := uploadSDK(t, c, lines(chatLine("ok", "mock-chat"), failOnce("again"), failOnce("left")))
	b := waitBatch(t, c, newBatch(t, c, f.ID).ID, 30*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, b.Status)
	require.EqualValues(t, 1, b.RequestCounts.Completed)
	require.EqualValues(t, 2, b.RequestCounts.Failed)
	ids := requestIDs(t, st, b.ID)

	// Pause the model so the reopened batch can be seen before the retried line runs.
	models, err := st.App.Store.ListModels(ctx)
	require.NoError(t, err)
	r := callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/mock-chat", map[string]any{"base_url": models[0].BaseURL, "concurrency_limit": 0})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)

	r = callJSON(t, st, st.APIKey, "POST", "/v1/batches/"+b.ID+"/retry-requests", map[string]any{"request_ids": []string{ids["again"]}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var reopened openai.Batch
	require.NoError(t, json.Unmarshal(r.Body, &reopened))
	require.Equal(t, openai.BatchStatusInProgress, reopened.Status)
	require.EqualValues(t, 3, reopened.RequestCounts.Total)
	require.EqualValues(t, 1, reopened.RequestCounts.Completed)
	require.EqualValues(t, 1, reopened.RequestCounts.Failed, "the retried line is pending again, the other still failed")
	require.Zero(t, reopened.CompletedAt, "no longer completed")
	again, err := c.Batches.Get(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, openai.BatchStatusInProgress, again.Status)

	r = callJSON(t, st, st.AdminKey, "PUT", "/v1/admin/models/mock-chat", map[string]any{"base_url": models[0].BaseURL, "concurrency_limit": 2})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	done := waitBatch(t, c, b.ID, 20*time.Second)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, 3, done.RequestCounts.Total)
	require.EqualValues(t, 2, done.RequestCounts.Completed)
	require.EqualValues(t, 1, done.RequestCounts.Failed)
	require.NotZero(t, done.CompletedAt)
	var failed []any
	for _, l := range readLines(t, c, done.ErrorFileID) {
		failed = append(failed, l["custom_id"])
	}
	require.Equal(t, []any{"left"}, failed)
	assertInvariants(t, st, c, done, map[string]int{"mock-chat": 2})
}
