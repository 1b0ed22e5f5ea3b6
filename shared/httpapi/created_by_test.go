package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
)

// tenantKeyID is the id withKeys gives tenantKey.
const tenantKeyID = 1

// createdByKey decodes the raw created_by_key of an object body, so that null and absent differ.
func createdByKey(t *testing.T, body []byte) string {
	t.Helper()
	var o map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &o), "body %s", body)
	v, ok := o["created_by_key"]
	require.True(t, ok, "created_by_key missing: %s", body)
	return string(v)
}

func TestFileAndBatchObjectsShowTheCreatingKeyOrNull(t *testing.T) {
	t.Parallel()
	for key, want := range map[int64]string{7: `"7"`, 0: `null`} {
		f := withKeys(newFake(t))
		f.GetFileFn = func(_ context.Context, _, id string) (domain.File, error) {
			return domain.File{ID: id, TenantID: tenantID, Purpose: domain.PurposeBatch, Status: domain.FileProcessed,
				CreatedAt: testNow, CreatedByKey: key}, nil
		}
		f.GetBatchFn = func(_ context.Context, _, id string) (domain.Batch, error) {
			return domain.Batch{ID: id, TenantID: tenantID, Status: domain.BatchValidating, CreatedAt: testNow,
				ExpiresAt: testNow.Add(time.Hour), CreatedByKey: key}, nil
		}
		api := newAPI(f)
		w := call(t, api, "GET", "/v1/files/"+aFileID, tenantKey, "")
		require.Equal(t, 200, w.Code, "body %s", w.Body)
		assert.Equal(t, want, createdByKey(t, w.Body.Bytes()), "file of key %d", key)
		w = call(t, api, "GET", "/v1/batches/"+aBatchID, tenantKey, "")
		require.Equal(t, 200, w.Code, "body %s", w.Body)
		assert.Equal(t, want, createdByKey(t, w.Body.Bytes()), "batch of key %d", key)
	}
}

func TestUploadsAndBatchCreationRecordTheCallersKey(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	var inserted, stored, created int64
	f.LimitsFn = func() ingest.Limits { return ingest.Limits{MaxFileBytes: 1 << 20} }
	f.InsertFileFn = func(_ context.Context, file domain.File) error { inserted = file.CreatedByKey; return nil }
	f.StoreFn = func(_ context.Context, u ingest.Upload) (domain.File, error) {
		stored = u.CreatedByKey
		_, _ = io.Copy(io.Discard, u.Body)
		return domain.File{ID: aFileID, TenantID: u.TenantID, Purpose: u.Purpose, Status: domain.FileProcessed,
			CreatedAt: testNow, ExpiresAt: u.ExpiresAt, CreatedByKey: u.CreatedByKey}, nil
	}
	f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
		created = c.CreatedByKey
		return batches.Created{Batch: domain.Batch{ID: aBatchID, TenantID: tenantID, Status: domain.BatchValidating,
			CreatedAt: testNow, ExpiresAt: testNow.Add(24 * time.Hour), CreatedByKey: c.CreatedByKey}}, nil
	}
	api := newAPI(f)

	w := call(t, api, "POST", "/v1/uploads", tenantKey, `{"filename":"in.jsonl","purpose":"batch","bytes":10,"mime_type":"application/jsonl"}`)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	assert.EqualValues(t, tenantKeyID, inserted, "POST /v1/uploads")

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(t, mw.WriteField("purpose", "batch"))
	part, err := mw.CreateFormFile("file", "in.jsonl")
	require.NoError(t, err)
	_, _ = part.Write([]byte(`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}` + "\n"))
	require.NoError(t, mw.Close())
	r := httptest.NewRequest("POST", "/v1/files", &body)
	r.Header.Set("Authorization", "Bearer "+tenantKey)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, r)
	require.Equal(t, 200, rec.Code, "body %s", rec.Body)
	assert.EqualValues(t, tenantKeyID, stored, "POST /v1/files")
	assert.Equal(t, fmt.Sprintf("%q", "1"), createdByKey(t, rec.Body.Bytes()))

	w = call(t, api, "POST", "/v1/batches", tenantKey, validBatch)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	assert.EqualValues(t, tenantKeyID, created, "POST /v1/batches")
	assert.Equal(t, `"1"`, createdByKey(t, w.Body.Bytes()))
}

func TestCreatedByKeyFilterTakesRepeatedAndCommaSeparatedIDs(t *testing.T) {
	t.Parallel()
	cases := map[string][]int64{
		"":                                  nil,
		"created_by_key=3":                  {3},
		"created_by_key=3,7":                {3, 7},
		"created_by_key=3&created_by_key=7": {3, 7},
		"created_by_key=3,%207&created_by_key=9&status=completed": {3, 7, 9},
	}
	for q, want := range cases {
		t.Run(q, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			var files, batches []int64
			f.ListFilesFn = func(_ context.Context, _ string, p domain.FileListParams) ([]domain.File, bool, error) {
				files = p.CreatedByKeys
				return nil, false, nil
			}
			f.ListBatchesFn = func(_ context.Context, _ string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
				batches = p.CreatedByKeys
				return nil, false, nil
			}
			api := newAPI(f)
			w := call(t, api, "GET", "/v1/files?"+q, tenantKey, "")
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			w = call(t, api, "GET", "/v1/batches?"+q, tenantKey, "")
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			assert.Equal(t, want, files, "files")
			assert.Equal(t, want, batches, "batches")
		})
	}
}

func TestAMalformedCreatedByKeyIsA400NamingIt(t *testing.T) {
	t.Parallel()
	tooMany := strings.TrimSuffix(strings.Repeat("1,", 101), ",")
	for _, v := range []string{"abc", "", "0", "-1", "3,,4", "1.5", "sk-abc", "99999999999999999999", tooMany} {
		for _, path := range []string{"/v1/files", "/v1/batches"} {
			t.Run(path+"?"+v, func(t *testing.T) {
				t.Parallel()
				f := withKeys(newFake(t)) // the store is never asked: the fake fails the test if it is
				w := call(t, newAPI(f), "GET", path+"?created_by_key="+v, tenantKey, "")
				require.Equal(t, 400, w.Code, "body %s", w.Body)
				e := errorOf(t, w)
				assert.Equal(t, `"created_by_key"`, string(e.Error.Param))
				assert.Equal(t, "invalid_request_error", e.Error.Type)
			})
		}
	}
}
