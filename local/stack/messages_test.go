package stack_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/domain"
)

// messageParams are a Messages API request's params for model, with extra keys (mock directives).
func messageParams(model, text string, extra ...any) map[string]any {
	p := map[string]any{"model": model, "max_tokens": 32, "messages": []any{map[string]any{"role": "user", "content": text}}}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i].(string)] = extra[i+1]
	}
	return p
}

// anthropicCall sends one request with the key as x-api-key, as curl and anthropic-sdk-go do.
func anthropicCall(t *testing.T, st *stack.Stack, key, method, path string, v any) apiResp {
	t.Helper()
	return callJSON(t, st, "", method, path, v, "X-Api-Key", key, "Anthropic-Version", "2023-06-01")
}

// waitMessageBatch polls a message batch until it ended.
func waitMessageBatch(t *testing.T, st *stack.Stack, id string, within time.Duration) map[string]any {
	t.Helper()
	var b map[string]any
	require.Eventually(t, func() bool {
		r := anthropicCall(t, st, st.APIKey, "GET", "/v1/messages/batches/"+id, nil)
		require.Equal(t, 200, r.Status, "%s", r.Body)
		b = r.json(t)
		return b["processing_status"] == "ended"
	}, within, 20*time.Millisecond, "message batch %s did not end: %v", id, b)
	return b
}

// resultsOf downloads a message batch's results from its results_url and keys them by custom_id.
func resultsOf(t *testing.T, st *stack.Stack, b map[string]any) map[string]map[string]any {
	t.Helper()
	u, ok := b["results_url"].(string)
	require.True(t, ok, "results_url once ended: %v", b)
	require.True(t, strings.HasPrefix(u, st.APIURL+"/v1/messages/batches/"), "absolute on the API's origin: %s", u)
	req, err := http.NewRequest("GET", u, nil)
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", st.APIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		require.NotEmpty(t, strings.TrimSpace(line), "no blank lines: %q", body)
		var l struct {
			CustomID string         `json:"custom_id"`
			Result   map[string]any `json:"result"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &l), line)
		require.NotContains(t, out, l.CustomID, "one line per request")
		out[l.CustomID] = l.Result
	}
	return out
}

// A message batch runs on the engine end to end: created from inline requests with x-api-key,
// forwarded to a Messages API upstream with the model's key as x-api-key and anthropic-version,
// ended with a succeeded and an errored line; it is listed by the Anthropic routes only; a batch
// that cannot run is cancelled to ended with canceled lines; ended batches are deleted.
func TestMessageBatchEndToEnd(t *testing.T) {
	const key = "sk-ant-local-test"
	st := startStack(t, stack.Options{
		Models: []stack.ModelSpec{{Name: "claude-keyed", Limit: 4, CredentialRef: "env:FUSILLADE_UPSTREAM_KEY_CLAUDE"},
			{Name: "claude-parked", Limit: 0}},
		Upstream: mockupstream.Config{Record: true},
		Getenv: func(k string) string {
			if k == "FUSILLADE_UPSTREAM_KEY_CLAUDE" {
				return key
			}
			return ""
		}})

	r := anthropicCall(t, st, st.APIKey, "POST", "/v1/messages/batches", map[string]any{"requests": []any{
		map[string]any{"custom_id": "ok-1", "params": messageParams("claude-keyed", "hello")},
		map[string]any{"custom_id": "refused", "params": messageParams("claude-keyed", "no", "mock_status", 400)},
		map[string]any{"custom_id": "ok-2", "params": messageParams("claude-keyed", "again")},
	}})
	require.Equal(t, 200, r.Status, "%s", r.Body)
	require.True(t, strings.HasPrefix(r.Header.Get("request-id"), "req_"))
	created := r.json(t)
	id := created["id"].(string)
	require.True(t, domain.IsMessageBatchID(id), id)
	require.Equal(t, "in_progress", created["processing_status"])
	require.Nil(t, created["results_url"])
	require.EqualValues(t, 3, created["request_counts"].(map[string]any)["processing"])

	done := waitMessageBatch(t, st, id, time.Minute)
	require.Equal(t, map[string]any{"processing": 0.0, "succeeded": 2.0, "errored": 1.0, "canceled": 0.0, "expired": 0.0}, done["request_counts"])
	require.NotNil(t, done["ended_at"])
	res := resultsOf(t, st, done)
	require.Len(t, res, 3)
	require.Equal(t, "succeeded", res["ok-1"]["type"])
	msg := res["ok-1"]["message"].(map[string]any)
	require.Equal(t, "message", msg["type"])
	require.Equal(t, "claude-keyed", msg["model"])
	require.Equal(t, "succeeded", res["ok-2"]["type"])
	require.Equal(t, "errored", res["refused"]["type"])
	e := res["refused"]["error"].(map[string]any)
	require.Equal(t, "error", e["type"])
	require.Equal(t, "invalid_request_error", e["error"].(map[string]any)["type"])

	// What the upstream received.
	var calls int
	for _, rec := range st.Upstream.Requests() {
		if rec.Path != "/v1/messages" {
			continue
		}
		calls++
		require.Equal(t, []string{key}, rec.Header.Values("X-Api-Key"))
		require.Empty(t, rec.Header.Values("Authorization"))
		require.Equal(t, "2023-06-01", rec.Header.Get("Anthropic-Version"))
	}
	require.Equal(t, 3, calls)

	// Each API lists its own batches; the OpenAI routes do not show this one in their list.
	list := anthropicCall(t, st, st.APIKey, "GET", "/v1/messages/batches?limit=1", nil)
	require.Equal(t, 200, list.Status, "%s", list.Body)
	page := list.json(t)
	require.Equal(t, id, page["first_id"])
	require.Equal(t, false, page["has_more"])
	oa := callJSON(t, st, st.APIKey, "GET", "/v1/batches", nil)
	require.Equal(t, 200, oa.Status)
	require.NotContains(t, string(oa.Body), strings.TrimPrefix(id, "msgbatch_"))

	// A batch whose model has no slots: cancel it, and it ends with canceled lines.
	r = anthropicCall(t, st, st.APIKey, "POST", "/v1/messages/batches", map[string]any{"requests": []any{
		map[string]any{"custom_id": "p1", "params": messageParams("claude-parked", "wait")},
		map[string]any{"custom_id": "p2", "params": messageParams("claude-parked", "wait")},
	}})
	require.Equal(t, 200, r.Status, "%s", r.Body)
	parked := r.json(t)["id"].(string)
	del := anthropicCall(t, st, st.APIKey, "DELETE", "/v1/messages/batches/"+parked, nil)
	require.Equal(t, 400, del.Status, "a running batch is not deleted: %s", del.Body)
	require.Equal(t, "invalid_request_error", del.json(t)["error"].(map[string]any)["type"])
	c := anthropicCall(t, st, st.APIKey, "POST", "/v1/messages/batches/"+parked+"/cancel", nil)
	require.Equal(t, 200, c.Status, "%s", c.Body)
	require.Contains(t, []any{"canceling", "ended"}, c.json(t)["processing_status"])
	require.NotNil(t, c.json(t)["cancel_initiated_at"])
	ended := waitMessageBatch(t, st, parked, time.Minute)
	require.EqualValues(t, 2, ended["request_counts"].(map[string]any)["canceled"])
	pres := resultsOf(t, st, ended)
	require.Equal(t, map[string]any{"type": "canceled"}, pres["p1"])
	require.Equal(t, map[string]any{"type": "canceled"}, pres["p2"])

	// Paging: two batches, one per page, newest first, and back.
	p1 := anthropicCall(t, st, st.APIKey, "GET", "/v1/messages/batches?limit=1", nil).json(t)
	require.Equal(t, parked, p1["first_id"])
	require.Equal(t, true, p1["has_more"])
	p2 := anthropicCall(t, st, st.APIKey, "GET", "/v1/messages/batches?limit=1&after_id="+parked, nil).json(t)
	require.Equal(t, id, p2["first_id"])
	require.Equal(t, false, p2["has_more"])
	back := anthropicCall(t, st, st.APIKey, "GET", "/v1/messages/batches?limit=1&before_id="+id, nil).json(t)
	require.Equal(t, parked, back["last_id"])

	// Delete both; they are gone.
	for _, b := range []string{id, parked} {
		d := anthropicCall(t, st, st.APIKey, "DELETE", "/v1/messages/batches/"+b, nil)
		require.Equal(t, 200, d.Status, "%s", d.Body)
		require.Equal(t, map[string]any{"id": b, "type": "message_batch_deleted"}, d.json(t))
		g := anthropicCall(t, st, st.APIKey, "GET", "/v1/messages/batches/"+b, nil)
		require.Equal(t, 404, g.Status)
		require.Equal(t, "not_found_error", g.json(t)["error"].(map[string]any)["type"])
	}

	// A model that is not configured fails the create, naming the request.
	bad := anthropicCall(t, st, st.APIKey, "POST", "/v1/messages/batches", map[string]any{"requests": []any{
		map[string]any{"custom_id": "a", "params": messageParams("claude-keyed", "x")},
		map[string]any{"custom_id": "b", "params": messageParams("no-such-model", "x")},
	}})
	require.Equal(t, 400, bad.Status, "%s", bad.Body)
	require.Contains(t, bad.json(t)["error"].(map[string]any)["message"], "requests[1].params.model")
}
