package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// store is a function-field fake of ingest.Store; an unset field fails the test when called.
type store struct {
	t                  *testing.T
	BatchForPopulateFn func(ctx context.Context, batchID string) (tenantID, endpoint string, status domain.BatchStatus, err error)
	InsertRequestsFn   func(ctx context.Context, batchID string, src domain.RequestSource, now time.Time) (domain.PopulateResult, error)
	InputObjectKeyFn   func(ctx context.Context, batchID string) (string, error)
	ListModelsFn       func(ctx context.Context) ([]domain.Model, error)
	InsertFileFn       func(ctx context.Context, f domain.File) error
	FinishUploadFn     func(ctx context.Context, tenantID, id, key string, bytes int64, lines int) error
	DiscardFileFn      func(ctx context.Context, tenantID, id, reason string, now time.Time) error
	FailBatchFn        func(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error
}

var errUnexpected = errors.New("unexpected call to a fake")

func (s *store) unexpected(name string) error {
	s.t.Helper()
	assert.Fail(s.t, "unexpected call to "+name)
	return errUnexpected
}

func (s *store) BatchForPopulate(ctx context.Context, batchID string) (string, string, domain.BatchStatus, error) {
	if s.BatchForPopulateFn == nil {
		return "", "", "", s.unexpected("BatchForPopulate")
	}
	return s.BatchForPopulateFn(ctx, batchID)
}

func (s *store) InsertRequests(ctx context.Context, batchID string, src domain.RequestSource, now time.Time) (domain.PopulateResult, error) {
	if s.InsertRequestsFn == nil {
		return domain.PopulateResult{}, s.unexpected("InsertRequests")
	}
	return s.InsertRequestsFn(ctx, batchID, src, now)
}

func (s *store) InputObjectKey(ctx context.Context, batchID string) (string, error) {
	if s.InputObjectKeyFn == nil {
		return "", s.unexpected("InputObjectKey")
	}
	return s.InputObjectKeyFn(ctx, batchID)
}

func (s *store) ListModels(ctx context.Context) ([]domain.Model, error) {
	if s.ListModelsFn == nil {
		return nil, s.unexpected("ListModels")
	}
	return s.ListModelsFn(ctx)
}

func (s *store) InsertFile(ctx context.Context, f domain.File) error {
	if s.InsertFileFn == nil {
		return s.unexpected("InsertFile")
	}
	return s.InsertFileFn(ctx, f)
}

func (s *store) FinishUpload(ctx context.Context, tenantID, id, key string, bytes int64, lines int) error {
	if s.FinishUploadFn == nil {
		return s.unexpected("FinishUpload")
	}
	return s.FinishUploadFn(ctx, tenantID, id, key, bytes, lines)
}

func (s *store) DiscardFile(ctx context.Context, tenantID, id, reason string, now time.Time) error {
	if s.DiscardFileFn == nil {
		return s.unexpected("DiscardFile")
	}
	return s.DiscardFileFn(ctx, tenantID, id, reason, now)
}

func (s *store) FailBatch(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error {
	if s.FailBatchFn == nil {
		return s.unexpected("FailBatch")
	}
	return s.FailBatchFn(ctx, batchID, now, errs)
}

// blobs is a function-field fake of ingest.Blobs.
type blobs struct {
	t        *testing.T
	GetFn    func(ctx context.Context, key string) (io.ReadCloser, int64, error)
	PutFn    func(ctx context.Context, key string, r io.Reader, contentType string) error
	DeleteFn func(ctx context.Context, key string) error
}

func (b *blobs) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if b.GetFn == nil {
		assert.Fail(b.t, "unexpected call to Get("+key+")")
		return nil, 0, errUnexpected
	}
	return b.GetFn(ctx, key)
}

func (b *blobs) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if b.PutFn == nil {
		assert.Fail(b.t, "unexpected call to Put("+key+")")
		return errUnexpected
	}
	return b.PutFn(ctx, key, r, contentType)
}

func (b *blobs) Delete(ctx context.Context, key string) error {
	if b.DeleteFn == nil {
		assert.Fail(b.t, "unexpected call to Delete("+key+")")
		return errUnexpected
	}
	return b.DeleteFn(ctx, key)
}

// bucket is an in-memory object store behind a blobs fake. Put runs on the ingester's goroutine,
// hence the lock.
type bucket struct {
	mu      sync.Mutex
	objects map[string][]byte
	deleted []string
}

func memBlobs(t *testing.T) (*blobs, *bucket) {
	bk := &bucket{objects: map[string][]byte{}}
	return &blobs{t: t,
		GetFn: func(_ context.Context, key string) (io.ReadCloser, int64, error) {
			bk.mu.Lock()
			defer bk.mu.Unlock()
			b, ok := bk.objects[key]
			if !ok {
				return nil, 0, fmt.Errorf("s3 get %s: %w", key, domain.ErrNoObject)
			}
			return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
		},
		PutFn: func(_ context.Context, key string, r io.Reader, _ string) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			bk.mu.Lock()
			defer bk.mu.Unlock()
			bk.objects[key] = b
			return nil
		},
		DeleteFn: func(_ context.Context, key string) error {
			bk.mu.Lock()
			defer bk.mu.Unlock()
			delete(bk.objects, key)
			bk.deleted = append(bk.deleted, key)
			return nil
		},
	}, bk
}

// keys lists the stored keys, for failure messages.
func (bk *bucket) keys() []string {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	var ks []string
	for k := range bk.objects {
		ks = append(ks, k)
	}
	return ks
}

func (bk *bucket) has(key string) bool {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	_, ok := bk.objects[key]
	return ok
}

// withModels makes s configure the model "m".
func withModels(s *store) *store {
	s.ListModelsFn = func(context.Context) ([]domain.Model, error) {
		return []domain.Model{{Name: "m", ConcurrencyLimit: 1}}, nil
	}
	return s
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newIngester(s *store, b *blobs, limits ingest.Limits) *ingest.Ingester {
	return ingest.New(s, b, nil, limits, nil, func() time.Time { return testNow })
}

func line(customID, model string) string {
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi"}]}}`+"\n", customID, model)
}

const tenant = "tenant_0123456789abcdef"

func TestStoreValidatesASmallFileAndRecordsIt(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	var inserted []domain.File
	s.InsertFileFn = func(_ context.Context, f domain.File) error { inserted = append(inserted, f); return nil }
	b, bk := memBlobs(t)
	body := line("a", "m") + line("b", "m")
	f, err := newIngester(s, b, ingest.Limits{}).Store(context.Background(),
		ingest.Upload{TenantID: tenant, Filename: "in.jsonl", Purpose: domain.PurposeBatch, Body: strings.NewReader(body)})
	require.NoError(t, err)
	// 2 lines, the body's bytes, processed, at its FileKey.
	assert.Equal(t, 2, f.Lines)
	assert.Equal(t, int64(len(body)), f.Bytes)
	assert.Equal(t, "processed", f.Status)
	assert.True(t, domain.IsFileID(f.ID), "file id %q", f.ID)
	assert.Equal(t, domain.InputFileKey(tenant, f.ID), f.ObjectKey)
	assert.True(t, f.CreatedAt.Equal(testNow), "created at %v, want %v", f.CreatedAt, testNow)
	if assert.Len(t, inserted, 1, "want the file inserted once") {
		assert.Equal(t, f.ID, inserted[0].ID)
	}
	assert.Equal(t, body, string(bk.objects[f.ObjectKey]), "stored, want the upload's bytes")
}

func TestStoreRejectsABadFileNamingEveryBadLineAndKeepsNothing(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t}) // InsertFile unset: a bad file must not be recorded
	b, bk := memBlobs(t)
	body := line("a", "m") + "{not json\n" + line("c", "unknown-model") + line("a", "m")
	_, err := newIngester(s, b, ingest.Limits{}).Store(context.Background(),
		ingest.Upload{TenantID: tenant, FileID: domain.NewFileID(), Purpose: domain.PurposeBatch, Body: strings.NewReader(body)})
	var de *domain.Error
	require.ErrorAs(t, err, &de, "want an invalid *domain.Error")
	require.Equal(t, domain.EInvalid, de.Code, "err = %v", err)
	require.Equal(t, 2, de.Line, "the line the error names")
	require.Len(t, de.Problems, 3)
	require.False(t, de.ProblemsTruncated, "problems truncated")
	for i, want := range []int{2, 3, 4} {
		assert.Equal(t, want, de.Problems[i].Line, "problem %d: %+v", i, de.Problems[i])
		assert.NotEmpty(t, de.Problems[i].Reason, "problem %d: %+v", i, de.Problems[i])
	}
	// The rejected upload deleted.
	assert.Empty(t, bk.keys(), "objects left")
	assert.NotEmpty(t, bk.deleted, "objects deleted")
}

func TestAFileOverTheSizeLimitIs413(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	b, bk := memBlobs(t)
	body := line("a", "m") + line("b", "m")
	_, err := newIngester(s, b, ingest.Limits{MaxFileBytes: int64(len(body) - 1)}).Store(context.Background(),
		ingest.Upload{TenantID: tenant, Purpose: domain.PurposeBatch, Body: strings.NewReader(body)})
	var de *domain.Error
	require.ErrorAs(t, err, &de, "want a too_large *domain.Error with reason file_too_large")
	require.Equal(t, domain.ETooLarge, de.Code, "err = %v", err)
	require.Equal(t, "file_too_large", de.Reason, "err = %v", err)
	assert.Empty(t, bk.keys(), "objects left")
}

func pendingFile(bytes int64) domain.File {
	id := domain.NewFileID()
	return domain.File{ID: id, TenantID: tenant, Purpose: domain.PurposeBatch, Status: "uploaded",
		ObjectKey: domain.StagingKey(tenant, id), Bytes: bytes}
}

func TestCompleteWithNothingUploadedIsAClientError(t *testing.T) {
	t.Parallel()
	// Only Get is reachable: the pending file is neither discarded nor filled.
	b := &blobs{t: t, GetFn: func(_ context.Context, key string) (io.ReadCloser, int64, error) {
		return nil, 0, fmt.Errorf("s3 get %s: %w", key, domain.ErrNoObject)
	}}
	f := pendingFile(0)
	_, err := newIngester(&store{t: t}, b, ingest.Limits{}).Complete(context.Background(), f)
	var de *domain.Error
	require.ErrorAs(t, err, &de, "want an invalid *domain.Error, reason upload_missing, naming the file")
	require.Equal(t, domain.EInvalid, de.Code, "err = %v", err)
	require.Equal(t, "upload_missing", de.Reason, "err = %v", err)
	require.Contains(t, de.Message, f.ID, "the error names the file")
}

func TestCompleteKeepsTheUploadWhenTheBlobStoreFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("s3: 500 InternalError")
	b := &blobs{t: t, GetFn: func(context.Context, string) (io.ReadCloser, int64, error) { return nil, 0, boom }}
	_, err := newIngester(&store{t: t}, b, ingest.Limits{}).Complete(context.Background(), pendingFile(0))
	require.ErrorIs(t, err, boom, "want the blob store's error")
	require.Equal(t, domain.EInternal, domain.ErrorCode(err), "err = %v, want internal (a retry may succeed)", err)
}

func TestCompleteCopiesTheValidatedBytesToAKeyOfItsOwn(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	type finish struct {
		key   string
		bytes int64
		lines int
	}
	var finished []finish
	s.FinishUploadFn = func(_ context.Context, _, _, key string, n int64, lines int) error {
		finished = append(finished, finish{key, n, lines})
		return nil
	}
	b, bk := memBlobs(t)
	body := line("a", "m") + line("b", "m") + line("c", "m")
	f := pendingFile(int64(len(body)))
	bk.objects[f.ObjectKey] = []byte(body)
	got, err := newIngester(s, b, ingest.Limits{}).Complete(context.Background(), f)
	require.NoError(t, err)
	require.Equal(t, []finish{{got.ObjectKey, int64(len(body)), 3}}, finished,
		"FinishUpload calls (file %+v): want one finish at the file's new key with 3 lines", got)
	// A ContentKey of the file, not the staging key.
	assert.NotEqual(t, f.ObjectKey, got.ObjectKey, "content key")
	assert.True(t, strings.HasPrefix(got.ObjectKey, "tenants/"+tenant+"/files/"+f.ID+"."), "content key %q", got.ObjectKey)
	// The bytes at the content key and the staging upload deleted.
	assert.Equal(t, body, string(bk.objects[got.ObjectKey]), "bytes at the content key; keys %v", bk.keys())
	assert.False(t, bk.has(f.ObjectKey), "staging upload kept; keys %v", bk.keys())
}

func TestFillRejectsABodyOfAnotherSizeThanAnnounced(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	var discarded []string
	s.DiscardFileFn = func(_ context.Context, _, id, reason string, _ time.Time) error {
		discarded = append(discarded, id+": "+reason)
		return nil
	}
	b, bk := memBlobs(t)
	body := line("a", "m")
	f := pendingFile(int64(len(body)) + 1)
	_, err := newIngester(s, b, ingest.Limits{}).Fill(context.Background(), f, strings.NewReader(body))
	var de *domain.Error
	require.ErrorAs(t, err, &de, "want a size_mismatch on bytes")
	require.Equal(t, "size_mismatch", de.Reason, "err = %v", err)
	require.Equal(t, "bytes", de.Param, "err = %v", err)
	if assert.Len(t, discarded, 1, "want the file discarded once") {
		assert.True(t, strings.HasPrefix(discarded[0], f.ID+": "), "discarded %v, want the file", discarded)
	}
	assert.Empty(t, bk.keys(), "objects left")
}

func TestCheckReportsEveryBadLineUpToItsLimit(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	b, bk := memBlobs(t)
	bk.objects["k"] = []byte(line("a", "m") + "x\n" + "y\n" + "z\n")
	rep, err := newIngester(s, b, ingest.Limits{}).Check(context.Background(), "k", "", false, 2)
	require.NoError(t, err)
	// The first 2 of 3 bad lines, truncated.
	if assert.Len(t, rep.Errors, 2, "report %+v", rep) {
		assert.Equal(t, 2, rep.Errors[0].Line, "report %+v", rep)
	}
	assert.True(t, rep.Truncated, "report %+v", rep)
}

// validatingBatch is BatchForPopulate for a validating chat-completions batch of tenant.
func validatingBatch(context.Context, string) (string, string, domain.BatchStatus, error) {
	return tenant, "/v1/chat/completions", domain.BatchValidating, nil
}

// countingDispatcher records the models dispatched after a populate.
type countingDispatcher struct{ models []string }

func (k *countingDispatcher) Dispatch(_ context.Context, models ...string) error {
	k.models = append(k.models, models...)
	return nil
}

func TestPopulateFeedsTheFileToTheStoreAndDispatchesItsModels(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	b, bk := memBlobs(t)
	bk.objects["in"] = []byte(line("a", "m") + line("b", "m"))
	s.InputObjectKeyFn = func(context.Context, string) (string, error) { return "in", nil }
	s.BatchForPopulateFn = validatingBatch
	var got []domain.NewRequest
	s.InsertRequestsFn = func(_ context.Context, _ string, rs domain.RequestSource, _ time.Time) (domain.PopulateResult, error) {
		for {
			r, err := rs.Next()
			if errors.Is(err, io.EOF) {
				return domain.PopulateResult{Inserted: len(got), Models: []string{"m"}}, nil
			}
			if err != nil {
				return domain.PopulateResult{}, err
			}
			got = append(got, r)
		}
	}
	k := &countingDispatcher{}
	require.NoError(t, ingest.New(s, b, k, ingest.Limits{}, nil, nil).Populate(context.Background(), "batch_1"))
	// a and b from lines 1 and 2.
	if assert.Len(t, got, 2, "requests %+v", got) {
		assert.Equal(t, "a", got[0].CustomID)
		assert.Equal(t, "/v1/chat/completions", got[0].Path)
		assert.Equal(t, 2, got[1].Line)
		assert.Equal(t, "m", got[1].Model)
	}
	assert.Equal(t, []string{"m"}, k.models, "dispatched")
}

func TestPopulateGivesTheStoreTheBadLineAsADomainError(t *testing.T) {
	t.Parallel()
	s := withModels(&store{t: t})
	b, bk := memBlobs(t)
	bk.objects["in"] = []byte(line("a", "m") + line("a", "m"))
	s.InputObjectKeyFn = func(context.Context, string) (string, error) { return "in", nil }
	s.BatchForPopulateFn = validatingBatch
	var bad *domain.Error
	s.InsertRequestsFn = func(_ context.Context, _ string, rs domain.RequestSource, _ time.Time) (domain.PopulateResult, error) {
		for {
			_, err := rs.Next()
			if errors.As(err, &bad) {
				return domain.PopulateResult{Failed: bad}, nil // the store fails the batch with it
			}
			if err != nil {
				return domain.PopulateResult{}, err
			}
		}
	}
	k := &countingDispatcher{}
	require.NoError(t, ingest.New(s, b, k, ingest.Limits{}, nil, nil).Populate(context.Background(), "batch_1"))
	if assert.NotNil(t, bad, "no bad line") {
		assert.Equal(t, 2, bad.Line, "bad line %+v", bad)
		assert.Equal(t, "duplicate_custom_id", bad.Reason, "bad line %+v", bad)
	}
	assert.Empty(t, k.models, "dispatched for a failed batch")
}

// A duplicate populate message (the batch already started, failed or was cancelled) reads
// nothing: neither the models, nor the file, nor does it ask the store to insert.
func TestPopulateOfABatchNoLongerValidatingOpensNothing(t *testing.T) {
	t.Parallel()
	for _, status := range []domain.BatchStatus{domain.BatchInProgress, domain.BatchFailed, domain.BatchCancelled} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			s := &store{t: t} // ListModels and InsertRequests unset: calling them fails the test
			s.InputObjectKeyFn = func(context.Context, string) (string, error) { return "in", nil }
			s.BatchForPopulateFn = func(context.Context, string) (string, string, domain.BatchStatus, error) {
				return tenant, "/v1/chat/completions", status, nil
			}
			b := &blobs{t: t} // Get unset: opening the file fails the test
			k := &countingDispatcher{}
			require.NoError(t, ingest.New(s, b, k, ingest.Limits{}, nil, nil).Populate(context.Background(), "batch_1"))
			assert.Empty(t, k.models, "dispatched for a skipped batch")
		})
	}
}
