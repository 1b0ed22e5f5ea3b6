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

	"github.com/fusillade/fusillade/shared/domain"
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
			// GetFile is unset: validation happens before the store is asked.
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

func TestCreateBatchNeedsAProcessedBatchFile(t *testing.T) {
	cases := []struct {
		name string
		file domain.File
		code string // the envelope's code, JSON
	}{
		{"an output file", domain.File{ID: aFileID, Purpose: domain.PurposeBatchOutput, Status: "processed"}, "null"},
		{"a file still uploading", domain.File{ID: aFileID, Purpose: domain.PurposeBatch, Status: "uploaded"}, `"file_not_ready"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := withKeys(newFake(t))
			f.GetFileFn = func(context.Context, string, string) (domain.File, error) { return c.file, nil }
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
			if w.Code != 400 {
				t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
			}
			if e := errorOf(t, w); string(e.Error.Code) != c.code {
				t.Errorf("code = %s, want %s (message %q)", e.Error.Code, c.code, e.Error.Message)
			}
		})
	}
}

// batchStore makes f keep inserted batches, and serve aFileID as a processed 3-line batch file.
func batchStore(f *fake) map[string]domain.Batch {
	batches := map[string]domain.Batch{}
	f.GetFileFn = func(_ context.Context, tenant, id string) (domain.File, error) {
		if tenant != tenantID || id != aFileID {
			return domain.File{}, &domain.Error{Code: domain.ENotFound, Message: "No such File object: " + id}
		}
		return domain.File{ID: aFileID, TenantID: tenantID, Purpose: domain.PurposeBatch, Status: "processed", Lines: 3}, nil
	}
	f.InsertBatchFn = func(_ context.Context, b domain.Batch) error {
		batches[b.ID] = b
		return nil
	}
	f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
		b, ok := batches[id]
		if !ok || b.TenantID != tenant {
			return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No such Batch object: " + id}
		}
		return b, nil
	}
	return batches
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

func TestCreateBatchRecordsItValidatingAndQueuesItsPopulate(t *testing.T) {
	f := withKeys(newFake(t))
	batches := batchStore(f)
	var queued []string
	f.SendPopulateFn = func(_ context.Context, id string) error {
		if _, ok := batches[id]; !ok {
			t.Errorf("populate queued for %s before it was stored", id)
		}
		queued = append(queued, id)
		return nil
	}
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
	if w.Code != 200 {
		t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
	}
	got := decodeBatch(t, w.Body)
	if len(queued) != 1 || queued[0] != got.ID || !domain.IsBatchID(got.ID) {
		t.Fatalf("queued %v, answered %q: want exactly the answered batch queued", queued, got.ID)
	}
	if got.Status != "validating" || got.InputFileID != aFileID || got.RequestCounts.Total != 3 ||
		got.ExpiresAt != testNow.Add(24*time.Hour).Unix() {
		t.Errorf("answered %+v; want validating, total 3, expiring 24h after creation", got)
	}
	if b := batches[got.ID]; b.TenantID != tenantID || b.OutputFileID == "" || b.ErrorFileID == "" {
		t.Errorf("stored %+v; want the tenant's batch with its output and error file ids reserved", b)
	}
}

func TestCreateBatchFailsTheBatchWhenItsPopulateCannotBeQueued(t *testing.T) {
	f := withKeys(newFake(t))
	batches := batchStore(f)
	f.SendPopulateFn = func(context.Context, string) error { return errors.New("sqs: AccessDenied for arn:aws:sqs:secret") }
	type failCall struct {
		id   string
		errs []domain.BatchError
	}
	var failed []failCall
	f.FailBatchFn = func(ctx context.Context, id string, now time.Time, errs []domain.BatchError) error {
		if ctx.Err() != nil {
			t.Error("FailBatch ran with a cancelled context")
		}
		failed = append(failed, failCall{id, errs})
		return nil
	}
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Header().Get("x-should-retry") != "true" {
		t.Fatalf("status %d, Retry-After %q, x-should-retry %q: want 503, 1, true", w.Code, w.Header().Get("Retry-After"), w.Header().Get("x-should-retry"))
	}
	if strings.Contains(w.Body.String(), "sqs") {
		t.Errorf("the queue's error leaks: %s", w.Body)
	}
	errorOf(t, w)
	if len(batches) != 1 || len(failed) != 1 {
		t.Fatalf("%d batches stored, FailBatch called %d times: want one of each", len(batches), len(failed))
	}
	for id := range batches {
		if failed[0].id != id {
			t.Errorf("FailBatch(%s), want the stored batch %s", failed[0].id, id)
		}
	}
	if len(failed[0].errs) != 1 || failed[0].errs[0].Code != "enqueue_failed" {
		t.Errorf("FailBatch errors %+v, want one enqueue_failed", failed[0].errs)
	}
}

func TestCreateBatchReleasesItsIdempotencyKeyWhenTheInsertFails(t *testing.T) {
	f := withKeys(newFake(t))
	batchStore(f)
	var reservedFor, released string
	f.ReserveIdempotencyKeyFn = func(_ context.Context, _, _, _ string, _ []byte, id string, _ time.Time) (domain.IdempotencyRecord, bool, error) {
		reservedFor = id
		return domain.IdempotencyRecord{}, true, nil
	}
	f.ReleaseIdempotencyKeyFn = func(_ context.Context, _, _, _, id string) error {
		released = id
		return nil
	}
	f.InsertBatchFn = func(context.Context, domain.Batch) error { return errors.New("insert failed") }
	w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, validBatch, "Idempotency-Key", "k1")
	if w.Code != 500 {
		t.Fatalf("status %d, want 500", w.Code)
	}
	if reservedFor == "" || released != reservedFor {
		t.Errorf("reserved for %q, released %q: want the key released for the batch it was reserved for", reservedFor, released)
	}
}
