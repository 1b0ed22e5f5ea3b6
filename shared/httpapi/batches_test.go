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
)

// validBatch is a create request that passes validation, for aFileID.
var validBatch = fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, aFileID)

func TestJSONBodiesAreDecodedStrictly(t *testing.T) {
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
			// Nothing but Authenticate is set: a body that got past decoding fails the test.
			h := newAPI(withKeys(newFake(t)))
			var hdr []string
			if c.contentType != "" {
				hdr = []string{"Content-Type", c.contentType}
			}
			w := call(t, h, "POST", "/v1/batches", tenantKey, c.body, hdr...)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
			}
			e := errorOf(t, w)
			if string(e.Error.Param) != c.param || !strings.Contains(e.Error.Message, c.message) {
				t.Errorf("param %s message %q; want param %s and a message containing %q", e.Error.Param, e.Error.Message, c.param, c.message)
			}
		})
	}
}

func TestAnEmptyBodyIsRejected(t *testing.T) {
	h := newAPI(withKeys(newFake(t)))
	w := call(t, h, "POST", "/v1/batches", tenantKey, "", "Content-Type", "application/json")
	if w.Code != 400 || !strings.Contains(errorOf(t, w).Error.Message, "empty") {
		t.Fatalf("status %d body %s: want 400 saying the body is empty", w.Code, w.Body)
	}
}

func TestListParamsAreBoundedAndPassedToTheStore(t *testing.T) {
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
			f := withKeys(newFake(t))
			var got *domain.BatchListParams
			if c.param == "" {
				f.ListBatchesFn = func(_ context.Context, tenant string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
					if tenant != tenantID {
						t.Errorf("tenant = %q", tenant)
					}
					got = &p
					return nil, false, nil
				}
			}
			w := call(t, newAPI(f), "GET", "/v1/batches?"+c.query, tenantKey, "")
			if c.param != "" {
				if w.Code != 400 {
					t.Fatalf("status %d, want 400", w.Code)
				}
				if e := errorOf(t, w); string(e.Error.Param) != jsonString(c.param) {
					t.Errorf("param = %s, want %q", e.Error.Param, c.param)
				}
				return
			}
			if w.Code != 200 || got == nil {
				t.Fatalf("status %d, store called %v; body %s", w.Code, got != nil, w.Body)
			}
			if got.Limit != c.limit {
				t.Errorf("store saw limit %d, want %d", got.Limit, c.limit)
			}
			if strings.Contains(c.query, "after=") && got.After != aBatchID {
				t.Errorf("store saw after %q, want %q", got.After, aBatchID)
			}
			var list struct {
				Object  string            `json:"object"`
				Data    []json.RawMessage `json:"data"`
				HasMore *bool             `json:"has_more"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || list.Object != "list" || list.Data == nil || list.HasMore == nil {
				t.Errorf("an empty page is not an OpenAI list with data []: %s", w.Body)
			}
		})
	}
}

func TestFileListLimitIsBounded(t *testing.T) {
	for q, ok := range map[string]bool{"limit=10000": true, "limit=10001": false, "order=asc": true, "order=up": false} {
		t.Run(q, func(t *testing.T) {
			f := withKeys(newFake(t))
			if ok {
				f.ListFilesFn = func(context.Context, string, domain.FileListParams) ([]domain.File, bool, error) {
					return nil, false, nil
				}
			}
			w := call(t, newAPI(f), "GET", "/v1/files?"+q, tenantKey, "")
			if (w.Code == 200) != ok {
				t.Fatalf("status %d, want accepted=%v; body %s", w.Code, ok, w.Body)
			}
		})
	}
}

func TestABadAfterCursorIsA400NamingAfter(t *testing.T) {
	f := withKeys(newFake(t))
	f.ListBatchesFn = func(_ context.Context, _ string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
		// What the store answers for a cursor that is not one of the tenant's batches.
		return nil, false, &domain.Error{Code: domain.EInvalid, Param: "after",
			Message: fmt.Sprintf("Invalid 'after': %q is not an object in this list.", p.After)}
	}
	w := call(t, newAPI(f), "GET", "/v1/batches?after=batch_forged", tenantKey, "")
	if w.Code != 400 || w.Header().Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q: want 400, false", w.Code, w.Header().Get("x-should-retry"))
	}
	if e := errorOf(t, w); string(e.Error.Param) != `"after"` || !strings.Contains(e.Error.Message, "batch_forged") {
		t.Errorf("envelope %+v, want param after naming the cursor", e.Error)
	}
}

func TestCreateBatchValidationNamesTheParam(t *testing.T) {
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
			// Create is unset: validation happens before the service is asked.
			w := call(t, newAPI(withKeys(newFake(t))), "POST", "/v1/batches", tenantKey, c.body)
			if w.Code != 400 {
				t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
			}
			if e := errorOf(t, w); string(e.Error.Param) != jsonString(c.param) {
				t.Errorf("param = %s, want %q (message %q)", e.Error.Param, c.param, e.Error.Message)
			}
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
	if err := json.Unmarshal(b.Bytes(), &r); err != nil {
		t.Fatalf("not a batch: %v: %s", err, b)
	}
	return r
}

// The decoded request reaches the service with the caller's tenant (the key, when sent, bound to
// the request: idempotency_test.go), and the batch it created is answered as OpenAI shapes it.
func TestCreateBatchHandsTheServiceTheRequestAndAnswersTheBatch(t *testing.T) {
	f := withKeys(newFake(t))
	id := domain.NewBatchID()
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		want := batches.Create{TenantID: tenantID, InputFileID: aFileID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h",
			Metadata: map[string]string{"k": "v"}}
		if c.Idempotency.Name != "" || c.TenantID != want.TenantID || c.InputFileID != want.InputFileID || c.Endpoint != want.Endpoint ||
			c.CompletionWindow != want.CompletionWindow || c.Metadata["k"] != "v" || len(c.Metadata) != 1 || c.ValidateOnly {
			t.Errorf("Create(%+v), want %+v", c, want)
		}
		return batches.Created{Batch: domain.Batch{ID: id, TenantID: tenantID, InputFileID: aFileID, Status: domain.BatchValidating,
			Counts: domain.Counts{Total: 3}, CreatedAt: testNow, ExpiresAt: testNow.Add(24 * time.Hour)}}, nil
	}
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, strings.TrimSuffix(validBatch, "}")+`,"metadata":{"k":"v"}}`)
	if w.Code != 200 {
		t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
	}
	got := decodeBatch(t, w.Body)
	if got.ID != id || got.Status != "validating" || got.InputFileID != aFileID || got.RequestCounts.Total != 3 ||
		got.ExpiresAt != testNow.Add(24*time.Hour).Unix() {
		t.Errorf("answered %+v; want the service's batch: validating, total 3, expiring 24h after creation", got)
	}
}

func TestCreateBatchValidateOnlyAnswersTheReport(t *testing.T) {
	f := withKeys(newFake(t))
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		if !c.ValidateOnly {
			t.Error("validate_only did not reach the service")
		}
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
	if err := json.Unmarshal(w.Body.Bytes(), &rep); w.Code != 200 || err != nil {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
	if rep.Object != "file.validation" || rep.FileID != aFileID || rep.Valid || len(rep.Errors) != 1 || rep.Errors[0].Line != 2 ||
		rep.Errors[0].Code != "invalid_model" {
		t.Errorf("answered %s; want the report on the file with its bad line", w.Body)
	}
}

// What the service refuses a create with reaches the client as OpenAI's error envelope, with the
// status its code (or reason) maps to; the batch service says when each arises.
func TestCreateBatchRefusalsKeepTheirStatusAndCode(t *testing.T) {
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
			f := withKeys(newFake(t))
			f.CreateFn = func(context.Context, batches.Create) (batches.Created, error) { return batches.Created{}, c.err }
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
			if w.Code != c.status || w.Header().Get("Retry-After") != c.retryAfter {
				t.Fatalf("status %d, Retry-After %q: want %d, %q; body %s", w.Code, w.Header().Get("Retry-After"), c.status, c.retryAfter, w.Body)
			}
			e := errorOf(t, w)
			if string(e.Error.Code) != c.code || string(e.Error.Param) != c.param || strings.Contains(w.Body.String(), "secret") {
				t.Errorf("envelope %s; want code %s, param %s, nothing internal", w.Body, c.code, c.param)
			}
		})
	}
}

func TestCreateBatchThatCannotBeQueuedIsA503ThatSaysRetry(t *testing.T) {
	unavailable := &domain.Error{Code: domain.EUnavailable, Message: "The batch could not be queued; please retry."}
	for name, err := range map[string]error{
		"failed":                   unavailable,
		"that could not be failed": errors.Join(unavailable, errors.New("fail unqueued batch: dial tcp 10.0.0.5:5432")),
	} {
		t.Run(name, func(t *testing.T) {
			f := withKeys(newFake(t))
			f.CreateFn = func(context.Context, batches.Create) (batches.Created, error) { return batches.Created{}, err }
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Header().Get("x-should-retry") != "true" {
				t.Fatalf("status %d, Retry-After %q, x-should-retry %q: want 503, 1, true", w.Code, w.Header().Get("Retry-After"), w.Header().Get("x-should-retry"))
			}
			if e := errorOf(t, w); e.Error.Message != unavailable.Message {
				t.Errorf("message %q, want only the safe one", e.Error.Message)
			}
		})
	}
}
