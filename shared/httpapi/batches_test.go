package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/jsonl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validBatch is a create request that passes validation, for aFileID.
var validBatch = fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, aFileID)

func TestJSONBodiesAreDecodedStrictly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, contentType string
		param                   string // the envelope's param, JSON
		message                 string // a part of the message
	}{
		{"an unknown field is named", `{"input_file_id":"x","status":"completed"}`, "", `"status"`, "Unrecognized request argument supplied: status"},
		{"a wrong type is named", `{"input_file_id":5}`, "", `"input_file_id"`, "Invalid type for 'input_file_id'"},
		{"a wrong type in a map names the map", `{"metadata":{"a":1}}`, "", `"metadata"`, "Invalid type for 'metadata': expected string"},
		{"trailing data", validBatch + `{"x":1}`, "", "null", "a single JSON object"},
		{"not JSON", `{"input_file_id":`, "", "null", "not valid JSON"},
		{"an array", `[]`, "", "null", "Invalid type"},
		{"a NUL character", `{"input_file_id":"a\u0000b"}`, "", `"input_file_id"`, "without NUL characters"},
		{"another content type", validBatch, "text/plain", "null", "Content-Type must be application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Nothing but Authenticate is set: a body that got past decoding fails the test.
			h := newAPI(withKeys(newFake(t)))
			var hdr []string
			if c.contentType != "" {
				hdr = []string{"Content-Type", c.contentType}
			}
			w := call(t, h, "POST", "/v1/batches", tenantKey, c.body, hdr...)
			require.Equal(t, http.StatusBadRequest, w.Code, "body %s", w.Body)
			e := errorOf(t, w)
			assert.Equal(t, c.param, string(e.Error.Param), "param")
			assert.Contains(t, e.Error.Message, c.message)
		})
	}
}

func TestAnEmptyBodyIsRejected(t *testing.T) {
	t.Parallel()
	h := newAPI(withKeys(newFake(t)))
	w := call(t, h, "POST", "/v1/batches", tenantKey, "", "Content-Type", "application/json")
	require.Equal(t, 400, w.Code, "body %s", w.Body)
	require.Contains(t, errorOf(t, w).Error.Message, "empty", "want 400 saying the body is empty")
}

func TestListParamsAreBoundedAndPassedToTheStore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		query string
		param string // "" = accepted
		limit int    // what the store sees when accepted
	}{
		{"", "", 20},
		{"limit=1", "", 1},
		{"limit=100", "", 100},
		{"limit=0", "limit", 0},
		{"limit=101", "limit", 0},
		{"limit=-1", "limit", 0},
		{"limit=ten", "limit", 0},
		{"status=running", "status", 0},
		{"created_after=-5", "created_after", 0},
		{"active_first=maybe", "active_first", 0},
		{"after=" + aBatchID + "&limit=5", "", 5},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			var got *domain.BatchListParams
			if c.param == "" {
				f.ListBatchesFn = func(_ context.Context, tenant string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
					assert.Equal(t, tenantID, tenant)
					got = &p
					return nil, false, nil
				}
			}
			w := call(t, newAPI(f), "GET", "/v1/batches?"+c.query, tenantKey, "")
			if c.param != "" {
				require.Equal(t, 400, w.Code, "body %s", w.Body)
				e := errorOf(t, w)
				assert.Equal(t, jsonString(c.param), string(e.Error.Param), "param")
				return
			}
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			require.NotNil(t, got, "store not called")
			assert.Equal(t, c.limit, got.Limit, "store saw limit")
			if strings.Contains(c.query, "after=") {
				assert.Equal(t, aBatchID, got.After, "store saw after")
			}
			var list struct {
				Object  string            `json:"object"`
				Data    []json.RawMessage `json:"data"`
				HasMore *bool             `json:"has_more"`
			}
			// An empty page is an OpenAI list with data [].
			if assert.NoError(t, json.Unmarshal(w.Body.Bytes(), &list), "body %s", w.Body) {
				assert.Equal(t, "list", list.Object, "body %s", w.Body)
				assert.NotNil(t, list.Data, "body %s", w.Body)
				assert.NotNil(t, list.HasMore, "body %s", w.Body)
			}
		})
	}
}

func TestFileListLimitIsBounded(t *testing.T) {
	t.Parallel()
	for q, ok := range map[string]bool{"limit=10000": true, "limit=10001": false, "order=asc": true, "order=up": false} {
		t.Run(q, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			if ok {
				f.ListFilesFn = func(context.Context, string, domain.FileListParams) ([]domain.File, bool, error) {
					return nil, false, nil
				}
			}
			w := call(t, newAPI(f), "GET", "/v1/files?"+q, tenantKey, "")
			require.Equal(t, ok, w.Code == 200, "status %d, want accepted=%v; body %s", w.Code, ok, w.Body)
		})
	}
}

func TestABadAfterCursorIsA400NamingAfter(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.ListBatchesFn = func(_ context.Context, _ string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
		// What the store answers for a cursor that is not one of the tenant's batches.
		return nil, false, &domain.Error{Code: domain.EInvalid, Param: "after",
			Message: fmt.Sprintf("Invalid 'after': %q is not an object in this list.", p.After)}
	}
	w := call(t, newAPI(f), "GET", "/v1/batches?after=batch_forged", tenantKey, "")
	require.Equal(t, 400, w.Code, "body %s", w.Body)
	require.Equal(t, "false", w.Header().Get("x-should-retry"))
	// Param after, naming the cursor.
	e := errorOf(t, w)
	assert.Equal(t, `"after"`, string(e.Error.Param))
	assert.Contains(t, e.Error.Message, "batch_forged")
}

func TestCreateBatchValidationNamesTheParam(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 65)
	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprint(i)] = "v"
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct{ name, body, param string }{
		{"missing input_file_id", `{"endpoint":"/v1/chat/completions","completion_window":"24h"}`, "input_file_id"},
		{"malformed input_file_id", `{"input_file_id":"file_1","endpoint":"/v1/chat/completions","completion_window":"24h"}`, "input_file_id"},
		{"missing endpoint", fmt.Sprintf(`{"input_file_id":%q,"completion_window":"24h"}`, aFileID), "endpoint"},
		{"unknown endpoint", fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/images","completion_window":"24h"}`, aFileID), "endpoint"},
		{"missing completion_window", fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions"}`, aFileID), "completion_window"},
		{"completion_window off the allow-list", fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"48h"}`, aFileID), "completion_window"},
		{"17 metadata keys", strings.TrimSuffix(validBatch, "}") + `,"metadata":` + string(manyJSON) + `}`, "metadata"},
		{"a metadata key over 64 characters", strings.TrimSuffix(validBatch, "}") + `,"metadata":{"` + long + `":"v"}}`, "metadata"},
		{"a metadata value over 512 characters", strings.TrimSuffix(validBatch, "}") + `,"metadata":{"k":"` + strings.Repeat("v", 513) + `"}}`, "metadata"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Create is unset: validation happens before the service is asked.
			w := call(t, newAPI(withKeys(newFake(t))), "POST", "/v1/batches", tenantKey, c.body)
			require.Equal(t, 400, w.Code, "body %s", w.Body)
			e := errorOf(t, w)
			assert.Equal(t, jsonString(c.param), string(e.Error.Param), "param (message %q)", e.Error.Message)
		})
	}
}

type batchReply struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	InputFileID   string `json:"input_file_id"`
	ExpiresAt     int64  `json:"expires_at"`
	RequestCounts struct {
		Total int `json:"total"`
	} `json:"request_counts"`
}

func decodeBatch(t *testing.T, b *bytes.Buffer) batchReply {
	t.Helper()
	var r batchReply
	require.NoError(t, json.Unmarshal(b.Bytes(), &r), "not a batch: %s", b)
	return r
}

// The decoded request reaches the service with the caller's tenant (the key, when sent, bound to
// the request: idempotency_test.go), and the batch it created is answered as OpenAI shapes it.
func TestCreateBatchHandsTheServiceTheRequestAndAnswersTheBatch(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	id := domain.NewBatchID()
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		want := batches.Create{TenantID: tenantID, InputFileID: aFileID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h",
			Metadata: map[string]string{"k": "v"}}
		assert.Empty(t, c.Idempotency.Name, "Create(%+v)", c)
		assert.Equal(t, want.TenantID, c.TenantID)
		assert.Equal(t, want.InputFileID, c.InputFileID)
		assert.Equal(t, want.Endpoint, c.Endpoint)
		assert.Equal(t, want.CompletionWindow, c.CompletionWindow)
		assert.Equal(t, want.Metadata, c.Metadata)
		assert.False(t, c.ValidateOnly, "Create(%+v)", c)
		return batches.Created{Batch: domain.Batch{ID: id, TenantID: tenantID, InputFileID: aFileID, Status: domain.BatchValidating,
			Counts: domain.Counts{Total: 3}, CreatedAt: testNow, ExpiresAt: testNow.Add(24 * time.Hour)}}, nil
	}
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, strings.TrimSuffix(validBatch, "}")+`,"metadata":{"k":"v"}}`)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	// The service's batch: validating, total 3, expiring 24h after creation.
	got := decodeBatch(t, w.Body)
	assert.Equal(t, id, got.ID)
	assert.Equal(t, "validating", got.Status)
	assert.Equal(t, aFileID, got.InputFileID)
	assert.Equal(t, 3, got.RequestCounts.Total)
	assert.Equal(t, testNow.Add(24*time.Hour).Unix(), got.ExpiresAt)
}

func TestCreateBatchValidateOnlyAnswersTheReport(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		assert.True(t, c.ValidateOnly, "validate_only did not reach the service")
		return batches.Created{File: domain.File{ID: aFileID}, Report: &ingest.Report{Errors: []jsonl.LineError{
			{Line: 2, Code: "invalid_model", Message: "Model 'x' is not configured."}}}}, nil
	}
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, strings.TrimSuffix(validBatch, "}")+`,"validate_only":true}`)
	var rep struct {
		Object string `json:"object"`
		FileID string `json:"file_id"`
		Valid  bool   `json:"valid"`
		Errors []struct {
			Line int    `json:"line"`
			Code string `json:"code"`
		} `json:"errors"`
	}
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &rep), "body %s", w.Body)
	// The report on the file with its bad line.
	assert.Equal(t, "file.validation", rep.Object, "answered %s", w.Body)
	assert.Equal(t, aFileID, rep.FileID, "answered %s", w.Body)
	assert.False(t, rep.Valid, "answered %s", w.Body)
	if assert.Len(t, rep.Errors, 1, "answered %s", w.Body) {
		assert.Equal(t, 2, rep.Errors[0].Line, "answered %s", w.Body)
		assert.Equal(t, "invalid_model", rep.Errors[0].Code, "answered %s", w.Body)
	}
}

// What the service refuses a create with reaches the client as OpenAI's error envelope, with the
// status its code (or reason) maps to; the batch service says when each arises.
func TestCreateBatchRefusalsKeepTheirStatusAndCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        error
		status     int
		code       string // the envelope's code, JSON
		param      string // the envelope's param, JSON
		retryAfter string
	}{
		{"an output file", &domain.Error{Code: domain.EInvalid, Param: "input_file_id", Message: "File has purpose 'batch_output'."},
			400, "null", `"input_file_id"`, ""},
		{"a file still uploading", domain.FileNotReady(aFileID), 400, `"file_not_ready"`, `"file_id"`, ""},
		{"a key reused with another request", &domain.Error{Code: domain.EConflict, Reason: idempotency.ReasonMismatch,
			Param: "Idempotency-Key", Message: "reused"}, http.StatusUnprocessableEntity, `"idempotency_key_reused"`, `"Idempotency-Key"`, ""},
		{"a key still in flight", &domain.Error{Code: domain.EConflict, Reason: idempotency.ReasonInFlight, Message: "in flight"},
			http.StatusConflict, `"idempotency_key_in_use"`, "null", "1"},
		{"a replayed batch gone since", &domain.Error{Code: domain.ENotFound, Message: "No such Batch object."}, 404, "null", "null", ""},
		{"an internal failure", errors.New("insert failed: pq secret"), 500, "null", "null", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			f.CreateFn = func(context.Context, batches.Create) (batches.Created, error) { return batches.Created{}, c.err }
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
			require.Equal(t, c.status, w.Code, "body %s", w.Body)
			require.Equal(t, c.retryAfter, w.Header().Get("Retry-After"), "Retry-After; body %s", w.Body)
			e := errorOf(t, w)
			assert.Equal(t, c.code, string(e.Error.Code), "code")
			assert.Equal(t, c.param, string(e.Error.Param), "param")
			assert.NotContains(t, w.Body.String(), "secret", "something internal")
		})
	}
}

func TestCreateBatchThatCannotBeQueuedIsA503ThatSaysRetry(t *testing.T) {
	t.Parallel()
	unavailable := &domain.Error{Code: domain.EUnavailable, Message: "The batch could not be queued; please retry."}
	for name, err := range map[string]error{
		"failed":                   unavailable,
		"that could not be failed": errors.Join(unavailable, errors.New("fail unqueued batch: dial tcp 10.0.0.5:5432")),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			f.CreateFn = func(context.Context, batches.Create) (batches.Created, error) { return batches.Created{}, err }
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
			require.Equal(t, http.StatusServiceUnavailable, w.Code, "body %s", w.Body)
			require.Equal(t, "1", w.Header().Get("Retry-After"))
			require.Equal(t, "true", w.Header().Get("x-should-retry"))
			e := errorOf(t, w)
			assert.Equal(t, unavailable.Message, e.Error.Message, "want only the safe message")
		})
	}
}
