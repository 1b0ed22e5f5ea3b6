package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// anthropicEnvelope is Anthropic's error body.
type anthropicEnvelope struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// anthropicErrorOf decodes w as an Anthropic error with the status and error.type wanted.
func anthropicErrorOf(t *testing.T, w *httptest.ResponseRecorder, status int, typ string) anthropicEnvelope {
	t.Helper()
	require.Equal(t, status, w.Code, "body %s", w.Body)
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	require.True(t, strings.HasPrefix(w.Header().Get("request-id"), "req_"), "request-id header: %q", w.Header().Get("request-id"))
	var e anthropicEnvelope
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), "body %s", w.Body)
	require.Equal(t, "error", e.Type, "body %s", w.Body)
	require.Equal(t, typ, e.Error.Type, "body %s", w.Body)
	require.NotEmpty(t, e.Error.Message)
	return e
}

// xKey calls with the key as x-api-key (Anthropic's header) instead of a bearer key.
func xKey(t *testing.T, h http.Handler, method, target, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	return call(t, h, method, target, "", body, "X-Api-Key", key, "Anthropic-Version", "2023-06-01")
}

var (
	aMessageBatchID = domain.MessageBatchID(aBatchID)
	created         = testNow.Add(-time.Hour)
)

// messageBatch is a running message batch of 3 requests with aBatchID.
func messageBatch() domain.Batch {
	return domain.Batch{ID: aBatchID, TenantID: tenantID, Endpoint: domain.MessagesEndpoint, API: domain.APIAnthropic,
		Status: domain.BatchInProgress, Counts: domain.Counts{Total: 3}, CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
}

func TestMessageBatchAuthenticatesWithXAPIKeyOrBearer(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) { return messageBatch(), nil }
	f.BatchRequestStatesFn = func(context.Context, string, []string) (map[string]map[domain.RequestState]int, error) {
		return nil, nil
	}
	h := newAPI(f)
	path := "/v1/messages/batches/" + aMessageBatchID
	require.Equal(t, 200, xKey(t, h, "GET", path, tenantKey, "").Code)
	require.Equal(t, 200, call(t, h, "GET", path, tenantKey, "").Code)
	// A bearer key, when both come, is the one checked.
	require.Equal(t, 200, call(t, h, "GET", path, tenantKey, "", "X-Api-Key", "wrong").Code)
	anthropicErrorOf(t, call(t, h, "GET", path, "wrong", "", "X-Api-Key", tenantKey), 401, "authentication_error")

	anthropicErrorOf(t, call(t, h, "GET", path, "", ""), 401, "authentication_error")
	anthropicErrorOf(t, xKey(t, h, "GET", path, "not-a-key", ""), 401, "authentication_error")
	// x-api-key is only Anthropic's: the OpenAI routes want a bearer key.
	errorOf(t, call(t, h, "GET", "/v1/batches/"+aBatchID, "", "", "X-Api-Key", tenantKey))
}

func TestMessageBatchObjectShape(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		batch  func(b *domain.Batch)
		states map[domain.RequestState]int
		want   string
	}{
		{"running", func(*domain.Batch) {}, map[domain.RequestState]int{domain.StateCompleted: 1, domain.StatePending: 2},
			`{"processing_status":"in_progress","request_counts":{"processing":2,"succeeded":1,"errored":0,"canceled":0,"expired":0},
			  "ended_at":null,"cancel_initiated_at":null,"results_url":null}`},
		{"validating, no rows yet", func(b *domain.Batch) { b.Status = domain.BatchValidating }, nil,
			`{"processing_status":"in_progress","request_counts":{"processing":3,"succeeded":0,"errored":0,"canceled":0,"expired":0},
			  "ended_at":null,"cancel_initiated_at":null,"results_url":null}`},
		{"canceling", func(b *domain.Batch) {
			b.Status, b.CancellingAt = domain.BatchCancelling, &testNow
		}, map[domain.RequestState]int{domain.StateCanceled: 2, domain.StateProcessing: 1},
			`{"processing_status":"canceling","request_counts":{"processing":1,"succeeded":0,"errored":0,"canceled":2,"expired":0},
			  "ended_at":null,"cancel_initiated_at":"2026-03-01T12:00:00Z","results_url":null}`},
		{"ended", func(b *domain.Batch) {
			b.Status, b.CompletedAt, b.FinalizingAt = domain.BatchCompleted, &testNow, &testNow
		}, map[domain.RequestState]int{domain.StateCompleted: 1, domain.StateFailed: 1, domain.StateExpired: 1},
			`{"processing_status":"ended","request_counts":{"processing":0,"succeeded":1,"errored":1,"canceled":0,"expired":1},
			  "ended_at":"2026-03-01T12:00:00Z","cancel_initiated_at":null,
			  "results_url":"https://batch.example.com/v1/messages/batches/` + aMessageBatchID + `/results"}`},
		{"cancelled before it ran", func(b *domain.Batch) { b.Status, b.CancelledAt = domain.BatchCancelled, &testNow }, nil,
			`{"processing_status":"ended","request_counts":{"processing":0,"succeeded":0,"errored":0,"canceled":3,"expired":0},
			  "ended_at":"2026-03-01T12:00:00Z","cancel_initiated_at":"2026-03-01T12:00:00Z",
			  "results_url":"https://batch.example.com/v1/messages/batches/` + aMessageBatchID + `/results"}`},
		{"expired before it ran", func(b *domain.Batch) { b.Status, b.ExpiredAt = domain.BatchExpired, &testNow }, nil,
			`{"processing_status":"ended","request_counts":{"processing":0,"succeeded":0,"errored":0,"canceled":0,"expired":3},
			  "ended_at":"2026-03-01T12:00:00Z","cancel_initiated_at":null,
			  "results_url":"https://batch.example.com/v1/messages/batches/` + aMessageBatchID + `/results"}`},
		{"failed before it ran", func(b *domain.Batch) { b.Status, b.FailedAt = domain.BatchFailed, &testNow }, nil,
			`{"processing_status":"ended","request_counts":{"processing":0,"succeeded":0,"errored":3,"canceled":0,"expired":0},
			  "ended_at":"2026-03-01T12:00:00Z","cancel_initiated_at":null,
			  "results_url":"https://batch.example.com/v1/messages/batches/` + aMessageBatchID + `/results"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			b := messageBatch()
			tc.batch(&b)
			f.ViewBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				assert.Equal(t, tenantID, tenant)
				assert.Equal(t, aBatchID, id, "the message batch id names the batch")
				return b, nil
			}
			f.BatchRequestStatesFn = func(_ context.Context, _ string, ids []string) (map[string]map[domain.RequestState]int, error) {
				assert.Equal(t, []string{aBatchID}, ids)
				return map[string]map[domain.RequestState]int{aBatchID: tc.states}, nil
			}
			h := httpapi.New(httpapi.Config{PublicURL: "https://batch.example.com/"}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f,
				Now: func() time.Time { return testNow }})
			w := xKey(t, h, "GET", "/v1/messages/batches/"+aMessageBatchID, tenantKey, "")
			require.Equal(t, 200, w.Code, "%s", w.Body)
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
			require.NotEmpty(t, w.Header().Get("request-id"))
			var got map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
			var want map[string]any
			require.NoError(t, json.Unmarshal([]byte(tc.want), &want))
			want["id"], want["type"], want["archived_at"] = aMessageBatchID, "message_batch", nil
			want["created_at"], want["expires_at"] = "2026-03-01T11:00:00Z", "2026-03-02T11:00:00Z"
			require.Equal(t, want, got)
		})
	}
}

func TestMessageBatchOfTheOpenAIAPIIsNotFound(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) {
		b := messageBatch()
		b.API = domain.APIOpenAI
		return b, nil
	}
	f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) {
		return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No batch found with id '" + aBatchID + "'."}
	}
	h := newAPI(f)
	e := anthropicErrorOf(t, xKey(t, h, "GET", "/v1/messages/batches/"+aMessageBatchID, tenantKey, ""), 404, "not_found_error")
	require.Contains(t, e.Error.Message, aMessageBatchID)
	anthropicErrorOf(t, xKey(t, h, "POST", "/v1/messages/batches/"+aMessageBatchID+"/cancel", tenantKey, ""), 404, "not_found_error")
	anthropicErrorOf(t, xKey(t, h, "GET", "/v1/messages/batches/"+aBatchID, tenantKey, ""), 400, "invalid_request_error")
	anthropicErrorOf(t, xKey(t, h, "GET", "/v1/messages/nothing", tenantKey, ""), 404, "not_found_error")
}

func TestCreateMessageBatch(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	var stored []byte
	f.StoreFn = func(_ context.Context, u ingest.Upload) (domain.File, error) {
		assert.Equal(t, tenantID, u.TenantID)
		assert.Equal(t, domain.PurposeBatch, u.Purpose)
		var err error
		stored, err = io.ReadAll(u.Body)
		assert.NoError(t, err)
		return domain.File{ID: aFileID, TenantID: tenantID, Lines: 2}, nil
	}
	var version map[string]string // the metadata the create must carry
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		assert.Equal(t, batches.Create{TenantID: tenantID, CreatedByKey: 1, InputFileID: aFileID, Endpoint: "/v1/messages",
			CompletionWindow: "24h", API: domain.APIAnthropic, Metadata: version}, c)
		b := messageBatch()
		b.Status, b.Counts.Total = domain.BatchValidating, 2
		return batches.Created{Batch: b}, nil
	}
	f.BatchRequestStatesFn = func(context.Context, string, []string) (map[string]map[domain.RequestState]int, error) {
		return nil, nil
	}
	body := `{"requests":[
	  {"custom_id":"a-1","params":{"model":"claude-mock","max_tokens":16,"messages":[{"role":"user","content":"hi <b>"}],"system":"s"}},
	  {"custom_id":"b_2","params":{"model":"claude-mock","max_tokens":1,"messages":[{"role":"user","content":"yo"}],"stream":false}}]}`
	w := call(t, newAPI(f), "POST", "/v1/messages/batches", tenantKey, body)
	require.Equal(t, 200, w.Code, "%s", w.Body)
	var got map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.Equal(t, aMessageBatchID, got["id"])
	require.Equal(t, "in_progress", got["processing_status"])
	require.Equal(t, map[string]any{"processing": 2.0, "succeeded": 0.0, "errored": 0.0, "canceled": 0.0, "expired": 0.0}, got["request_counts"])

	// The requests became the input file's lines, in order, params byte for byte.
	sc := bufio.NewScanner(bytes.NewReader(stored))
	var lines []map[string]json.RawMessage
	for sc.Scan() {
		var l map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
		lines = append(lines, l)
	}
	require.Len(t, lines, 2)
	require.JSONEq(t, `"a-1"`, string(lines[0]["custom_id"]))
	require.JSONEq(t, `"POST"`, string(lines[0]["method"]))
	require.JSONEq(t, `"/v1/messages"`, string(lines[0]["url"]))
	require.Contains(t, string(lines[0]["body"]), `"hi <b>"`)
	require.JSONEq(t, `{"model":"claude-mock","max_tokens":1,"messages":[{"role":"user","content":"yo"}],"stream":false}`, string(lines[1]["body"]))

	// The client's anthropic-version is kept for the upstream; one that is not a version is not.
	version = map[string]string{domain.AnthropicVersionKey: "2026-10-21"}
	w = call(t, newAPI(f), "POST", "/v1/messages/batches", tenantKey, body, "Anthropic-Version", "2026-10-21")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	version = nil
	w = call(t, newAPI(f), "POST", "/v1/messages/batches", tenantKey, body, "Anthropic-Version", "a b\tc")
	require.Equal(t, 200, w.Code, "%s", w.Body)
}

func TestCreateMessageBatchNamesTheBadRequest(t *testing.T) {
	t.Parallel()
	ok := `{"custom_id":"ok","params":{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"x"}]}}`
	cases := []struct{ name, body, param string }{
		{"no requests", `{"requests":[]}`, "requests:"},
		{"missing requests", `{}`, "requests:"},
		{"unknown field", `{"requests":[` + ok + `],"extra":1}`, "extra"},
		{"bad custom_id", `{"requests":[` + ok + `,{"custom_id":"has space","params":{}}]}`, "requests[1].custom_id:"},
		{"long custom_id", `{"requests":[{"custom_id":"` + strings.Repeat("a", 65) + `","params":{}}]}`, "requests[0].custom_id:"},
		{"duplicate custom_id", `{"requests":[` + ok + `,` + ok + `]}`, "requests[1].custom_id:"},
		{"params not an object", `{"requests":[{"custom_id":"a","params":[1]}]}`, "requests[0].params:"},
		{"no model", `{"requests":[` + ok + `,{"custom_id":"a","params":{"max_tokens":4,"messages":[{}]}}]}`, "requests[1].params.model:"},
		{"max_tokens 0", `{"requests":[{"custom_id":"a","params":{"model":"m","max_tokens":0,"messages":[{}]}}]}`, "requests[0].params.max_tokens:"},
		{"max_tokens not an integer", `{"requests":[{"custom_id":"a","params":{"model":"m","max_tokens":1.5,"messages":[{}]}}]}`, "requests[0].params.max_tokens:"},
		{"no messages", `{"requests":[{"custom_id":"a","params":{"model":"m","max_tokens":1,"messages":[]}}]}`, "requests[0].params.messages:"},
		{"NUL in params", `{"requests":[{"custom_id":"a","params":{"model":"m","max_tokens":1,"messages":[{"content":"a\u0000"}]}}]}`, "requests[0].params[0]"},
		{"streaming", `{"requests":[{"custom_id":"a","params":{"model":"m","max_tokens":1,"messages":[{}],"stream":true}}]}`, "requests[0].params.stream:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newAPI(withKeys(newFake(t))) // nothing is stored or created
			e := anthropicErrorOf(t, xKey(t, h, "POST", "/v1/messages/batches", tenantKey, tc.body), 400, "invalid_request_error")
			require.Contains(t, e.Error.Message, tc.param)
		})
	}
	t.Run("a model the ingester refuses names its request", func(t *testing.T) {
		t.Parallel()
		f := withKeys(newFake(t))
		f.StoreFn = func(context.Context, ingest.Upload) (domain.File, error) {
			return domain.File{}, &domain.Error{Code: domain.EInvalid, Line: 2, Param: "body.model", Reason: "model_not_found",
				Message: `the model "nope" does not exist or is not available for batches`}
		}
		e := anthropicErrorOf(t, xKey(t, newAPI(f), "POST", "/v1/messages/batches", tenantKey, `{"requests":[`+ok+`]}`), 400, "invalid_request_error")
		require.Equal(t, `requests[1].params.model: the model "nope" does not exist or is not available for batches`, e.Error.Message)
	})
	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		h := httpapi.New(httpapi.Config{MaxDirectUploadBytes: 100}, httpapi.Deps{Store: withKeys(newFake(t))})
		anthropicErrorOf(t, xKey(t, h, "POST", "/v1/messages/batches", tenantKey, `{"requests":[`+ok+`]}`), 413, "request_too_large")
	})
}

func TestListMessageBatches(t *testing.T) {
	t.Parallel()
	ids := []string{domain.NewBatchID(), domain.NewBatchID()}
	f := withKeys(newFake(t))
	var gotParams []domain.BatchListParams
	f.ListBatchesFn = func(_ context.Context, _ string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
		gotParams = append(gotParams, p)
		out := make([]domain.Batch, len(ids))
		for i, id := range ids {
			out[i] = messageBatch()
			out[i].ID = id
		}
		return out, true, nil
	}
	f.BatchRequestStatesFn = func(_ context.Context, _ string, got []string) (map[string]map[domain.RequestState]int, error) {
		assert.Equal(t, ids, got)
		return nil, nil
	}
	h := newAPI(f)
	w := xKey(t, h, "GET", "/v1/messages/batches?limit=2&after_id="+aMessageBatchID, tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	var page struct {
		Data    []map[string]any `json:"data"`
		HasMore bool             `json:"has_more"`
		FirstID *string          `json:"first_id"`
		LastID  *string          `json:"last_id"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	require.Len(t, page.Data, 2)
	require.True(t, page.HasMore)
	require.Equal(t, domain.MessageBatchID(ids[0]), *page.FirstID)
	require.Equal(t, domain.MessageBatchID(ids[1]), *page.LastID)
	require.Equal(t, domain.BatchListParams{API: domain.APIAnthropic, Limit: 2, After: aBatchID}, gotParams[0])

	require.Equal(t, 200, xKey(t, h, "GET", "/v1/messages/batches?before_id="+aMessageBatchID, tenantKey, "").Code)
	require.Equal(t, domain.BatchListParams{API: domain.APIAnthropic, Limit: 20, Before: aBatchID}, gotParams[1])

	for _, q := range []string{"limit=0", "limit=1001", "after_id=" + aBatchID, "before_id=x", "after_id=" + aMessageBatchID + "&before_id=" + aMessageBatchID} {
		anthropicErrorOf(t, xKey(t, h, "GET", "/v1/messages/batches?"+q, tenantKey, ""), 400, "invalid_request_error")
	}

	ids = nil
	w = xKey(t, h, "GET", "/v1/messages/batches", tenantKey, "")
	require.JSONEq(t, `{"data":[],"has_more":true,"first_id":null,"last_id":null}`, w.Body.String())
}

func TestCancelAndDeleteMessageBatch(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	b := messageBatch()
	f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) { return b, nil }
	f.BatchRequestStatesFn = func(context.Context, string, []string) (map[string]map[domain.RequestState]int, error) {
		return nil, nil
	}
	cancels := 0
	f.CancelFn = func(_ context.Context, _, id string) (domain.Batch, error) {
		cancels++
		assert.Equal(t, aBatchID, id)
		c := b
		c.Status, c.CancellingAt = domain.BatchCancelling, &testNow
		return c, nil
	}
	deletes := 0
	f.DeleteFn = func(_ context.Context, _, id string) error {
		deletes++
		assert.Equal(t, aBatchID, id)
		return nil
	}
	h := newAPI(f)
	path := "/v1/messages/batches/" + aMessageBatchID

	// Deleting a running batch is refused without a retryable status.
	w := xKey(t, h, "DELETE", path, tenantKey, "")
	anthropicErrorOf(t, w, 400, "invalid_request_error")
	require.Equal(t, "false", w.Header().Get("x-should-retry"))
	require.Zero(t, deletes)

	w = xKey(t, h, "POST", path+"/cancel", tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	require.Contains(t, w.Body.String(), `"processing_status":"canceling"`)
	require.Contains(t, w.Body.String(), `"cancel_initiated_at":"2026-03-01T12:00:00Z"`)
	require.Equal(t, 1, cancels)

	// Once ended: cancel answers the batch unchanged, delete deletes it.
	b.Status, b.CancelledAt, b.CancellingAt = domain.BatchCancelled, &testNow, &testNow
	w = xKey(t, h, "POST", path+"/cancel", tenantKey, "")
	require.Equal(t, 200, w.Code)
	require.Contains(t, w.Body.String(), `"processing_status":"ended"`)
	require.Equal(t, 1, cancels)
	w = xKey(t, h, "DELETE", path, tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	require.JSONEq(t, fmt.Sprintf(`{"id":%q,"type":"message_batch_deleted"}`, aMessageBatchID), w.Body.String())
	require.Equal(t, 1, deletes)
}

func TestMessageBatchResults(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	b := messageBatch()
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) { return b, nil }
	rows := []domain.ResultRow{
		{Line: 1, CustomID: "ok", State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{"id":"msg_1","type":"message"}`)},
		{Line: 2, CustomID: "refused", State: domain.StateFailed, StatusCode: 400,
			Body: []byte(`{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"},"request_id":"req_up"}`)},
		{Line: 3, CustomID: "down", State: domain.StateFailed, StatusCode: 529, Body: []byte(`<html>`), ErrorCode: "http_status", ErrorMessage: "upstream returned HTTP 529"},
		{Line: 4, CustomID: "stopped", State: domain.StateCanceled, ErrorCode: "batch_cancelled"},
		{Line: 5, CustomID: "late", State: domain.StateExpired, ErrorCode: "batch_expired"},
	}
	f.BatchResultsFn = func(_ context.Context, _, id string, q domain.ResultQuery, fn func(domain.BatchResult) error) error {
		assert.Equal(t, aBatchID, id)
		assert.GreaterOrEqual(t, q.Limit, len(rows))
		for _, r := range rows {
			if err := fn(domain.BatchResult{ResultRow: r}); err != nil {
				return err
			}
		}
		return nil
	}
	h := newAPI(f)
	path := "/v1/messages/batches/" + aMessageBatchID + "/results"
	anthropicErrorOf(t, xKey(t, h, "GET", path, tenantKey, ""), 400, "invalid_request_error")

	b.Status, b.CompletedAt, b.FinalizingAt, b.Counts.Total = domain.BatchCompleted, &testNow, &testNow, len(rows)
	w := xKey(t, h, "GET", path, tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n")
	want := []string{
		`{"custom_id":"ok","result":{"type":"succeeded","message":{"id":"msg_1","type":"message"}}}`,
		`{"custom_id":"refused","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"},"request_id":null}}}`,
		`{"custom_id":"down","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"upstream returned HTTP 529"},"request_id":null}}}`,
		`{"custom_id":"stopped","result":{"type":"canceled"}}`,
		`{"custom_id":"late","result":{"type":"expired"}}`,
	}
	require.Len(t, lines, len(want))
	for i := range want {
		require.JSONEq(t, want[i], lines[i], "line %d", i+1)
	}
}

// A message batch that ended before its requests ran (populate refused it) still answers one
// errored line per request, named from its input file, with the batch's reason.
func TestMessageBatchResultsOfABatchThatNeverRan(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	b := messageBatch()
	b.Status, b.FailedAt, b.InputFileID, b.Counts.Total = domain.BatchFailed, &testNow, aFileID, 2
	b.Errors = []domain.BatchError{{Code: "model_not_found", Message: `line 2: the model "gone" does not exist`}}
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) { return b, nil }
	f.BatchResultsFn = func(context.Context, string, string, domain.ResultQuery, func(domain.BatchResult) error) error {
		return nil
	}
	f.GetFileFn = func(_ context.Context, _, id string) (domain.File, error) {
		assert.Equal(t, aFileID, id)
		return domain.File{ID: aFileID, ObjectKey: "k"}, nil
	}
	input := `{"custom_id":"a","method":"POST","url":"/v1/messages","body":{"model":"m"}}` + "\n" +
		`{"custom_id":"b","method":"POST","url":"/v1/messages","body":{"model":"gone"}}` + "\n"
	h := httpapi.New(httpapi.Config{}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f, Blobs: oneBlob{body: input}})
	w := xKey(t, h, "GET", "/v1/messages/batches/"+aMessageBatchID+"/results", tenantKey, "")
	require.Equal(t, 200, w.Code, "%s", w.Body)
	lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n")
	require.Len(t, lines, 2)
	for i, id := range []string{"a", "b"} {
		require.JSONEq(t, `{"custom_id":"`+id+`","result":{"type":"errored","error":{"type":"error",
			"error":{"type":"invalid_request_error","message":"line 2: the model \"gone\" does not exist"},"request_id":null}}}`, lines[i])
	}

	// Cancelled or expired before it ran: every request is canceled or expired.
	for status, want := range map[domain.BatchStatus]string{domain.BatchCancelled: "canceled", domain.BatchExpired: "expired"} {
		b.Status = status
		w := xKey(t, h, "GET", "/v1/messages/batches/"+aMessageBatchID+"/results", tenantKey, "")
		require.Equal(t, 200, w.Code, "%s", w.Body)
		require.Equal(t, `{"custom_id":"a","result":{"type":"`+want+`"}}`+"\n"+`{"custom_id":"b","result":{"type":"`+want+`"}}`+"\n", w.Body.String())
	}
}

// putBlobs records PutSmall and presigns every key.
type putBlobs struct {
	httpapi.Blobs
	put map[string][]byte
}

func (b *putBlobs) PutSmall(_ context.Context, key string, body []byte, _ string) error {
	b.put[key] = append([]byte(nil), body...)
	return nil
}

func (b *putBlobs) PresignGet(_ context.Context, key, _ string, _ time.Duration) (string, error) {
	return "https://s3.example.com/" + key + "?signed", nil
}

// Results too large to answer inline are written to S3 and answered by a 302 to a presigned URL.
func TestLargeMessageBatchResultsRedirectToS3(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	b := messageBatch()
	b.Status, b.CompletedAt, b.FinalizingAt, b.Counts.Total = domain.BatchCompleted, &testNow, &testNow, 50
	f.ViewBatchFn = func(context.Context, string, string) (domain.Batch, error) { return b, nil }
	f.BatchResultsFn = func(_ context.Context, _, _ string, _ domain.ResultQuery, fn func(domain.BatchResult) error) error {
		for i := range 50 {
			if err := fn(domain.BatchResult{ResultRow: domain.ResultRow{Line: i + 1, CustomID: fmt.Sprintf("r%d", i),
				State: domain.StateCompleted, Body: []byte(`{"type":"message","content":[{"type":"text","text":"` + strings.Repeat("x", 100) + `"}]}`)}}); err != nil {
				return err
			}
		}
		return nil
	}
	blobs := &putBlobs{put: map[string][]byte{}}
	h := httpapi.New(httpapi.Config{MaxInlineResponseBytes: 1000}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f, Blobs: blobs})
	w := xKey(t, h, "GET", "/v1/messages/batches/"+aMessageBatchID+"/results", tenantKey, "")
	require.Equal(t, http.StatusFound, w.Code, "%s", w.Body)
	key := domain.MessageResultsKey(tenantID, aBatchID)
	require.Equal(t, "https://s3.example.com/"+key+"?signed", w.Header().Get("Location"))
	lines := strings.Split(strings.TrimSuffix(string(blobs.put[key]), "\n"), "\n")
	require.Len(t, lines, 50)
	require.JSONEq(t, `{"custom_id":"r49","result":{"type":"succeeded","message":{"type":"message","content":[{"type":"text","text":"`+strings.Repeat("x", 100)+`"}]}}}`, lines[49])
}
