package batches_test

import (
	"bytes"
	"context"
	"errors"
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

const tenantID = "tenant_0123456789abcdef"

// testNow is the service's clock in these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var aFileID = domain.NewFileID()

func newService(f *fake) *batches.Service {
	return batches.New(batches.Deps{Store: f, Checker: f, Populate: f, Engine: f, Now: func() time.Time { return testNow }})
}

// validCreate is a create request for aFileID that the HTTP API has checked.
func validCreate() batches.Create {
	return batches.Create{TenantID: tenantID, InputFileID: aFileID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h"}
}

// withKey is c with the Idempotency-Key name, bound to hash.
func withKey(c batches.Create, name, hash string) batches.Create {
	c.Idempotency = idempotency.Key{TenantID: c.TenantID, Route: idempotency.RouteCreateBatch, Name: name, Hash: []byte(hash)}
	return c
}

// batchStore makes f keep inserted batches, and serve aFileID as a processed 3-line batch file.
func batchStore(f *fake) map[string]domain.Batch {
	stored := map[string]domain.Batch{}
	f.GetFileFn = func(_ context.Context, tenant, id string) (domain.File, error) {
		if tenant != tenantID || id != aFileID {
			return domain.File{}, &domain.Error{Code: domain.ENotFound, Message: "No such File object: " + id}
		}
		return domain.File{ID: aFileID, TenantID: tenantID, Purpose: domain.PurposeBatch, Status: "processed", Lines: 3, ObjectKey: "in"}, nil
	}
	f.InsertBatchFn = func(_ context.Context, b domain.Batch) error {
		stored[b.ID] = b
		return nil
	}
	f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
		b, ok := stored[id]
		if !ok || b.TenantID != tenant {
			return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No such Batch object: " + id}
		}
		return b, nil
	}
	return stored
}

// idempotencyKeys makes f keep Idempotency-Keys as the store does: the first reservation of a
// (tenant, route, key) wins, later ones get its record.
func idempotencyKeys(f *fake) map[string]domain.IdempotencyRecord {
	keys := map[string]domain.IdempotencyRecord{}
	f.ReserveIdempotencyKeyFn = func(_ context.Context, tenant, route, key string, hash []byte, id string, now time.Time) (domain.IdempotencyRecord, bool, error) {
		k := tenant + "\x00" + route + "\x00" + key
		if rec, ok := keys[k]; ok {
			return rec, false, nil
		}
		keys[k] = domain.IdempotencyRecord{RequestHash: bytes.Clone(hash), ObjectID: id, CreatedAt: now}
		return domain.IdempotencyRecord{}, true, nil
	}
	return keys
}

func TestCreateNeedsAProcessedBatchFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		file   domain.File
		reason string // the error's Reason, the envelope's code
	}{
		{"an output file", domain.File{ID: aFileID, Purpose: domain.PurposeBatchOutput, Status: "processed"}, ""},
		{"a file still uploading", domain.File{ID: aFileID, Purpose: domain.PurposeBatch, Status: "uploaded"}, "file_not_ready"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.GetFileFn = func(context.Context, string, string) (domain.File, error) { return c.file, nil }
			_, err := newService(f).Create(context.Background(), validCreate())
			var de *domain.Error
			require.ErrorAs(t, err, &de, "want an EInvalid domain error (400)")
			require.Equal(t, domain.EInvalid, de.Code, "error %v, want an EInvalid domain error (400)", err)
			assert.Equal(t, c.reason, de.Reason, "reason (message %q)", de.Message)
		})
	}
}

func TestCreateRecordsTheBatchValidatingAndQueuesItsPopulate(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	stored := batchStore(f)
	var queued []string
	f.SendPopulateFn = func(_ context.Context, id string) error {
		assert.Contains(t, stored, id, "populate queued for %s before it was stored", id)
		queued = append(queued, id)
		return nil
	}
	c := validCreate()
	c.Metadata = map[string]string{"k": "v"}
	got, err := newService(f).Create(context.Background(), c)
	require.NoError(t, err)
	b := got.Batch
	require.Equal(t, []string{b.ID}, queued, "want exactly the answered batch queued")
	require.True(t, domain.IsBatchID(b.ID), "answered id %q", b.ID)
	require.Nil(t, got.Report)
	// Validating, total 3, the metadata, expiring 24h after creation.
	assert.Equal(t, domain.BatchValidating, b.Status)
	assert.Equal(t, aFileID, b.InputFileID)
	assert.Equal(t, 3, b.Counts.Total)
	assert.Equal(t, "v", b.Metadata["k"])
	assert.True(t, b.CreatedAt.Equal(testNow), "created at %v, want %v", b.CreatedAt, testNow)
	assert.True(t, b.ExpiresAt.Equal(testNow.Add(24*time.Hour)), "expires at %v, want 24h after %v", b.ExpiresAt, testNow)
	// The tenant's batch with its output and error file ids reserved.
	s := stored[b.ID]
	assert.Equal(t, tenantID, s.TenantID)
	assert.NotEmpty(t, s.OutputFileID)
	assert.NotEmpty(t, s.ErrorFileID)
	assert.Equal(t, c.Endpoint, s.Endpoint)
}

// Populate may start the batch before Create answers: the answer is the batch as it was read
// back after the insert, before the message was sent.
func TestCreateAnswersTheBatchAsCreatedEvenIfPopulateStartedIt(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	stored := batchStore(f)
	f.SendPopulateFn = func(_ context.Context, id string) error {
		b := stored[id]
		b.Status = domain.BatchInProgress
		stored[id] = b
		return nil
	}
	got, err := newService(f).Create(context.Background(), validCreate())
	require.NoError(t, err)
	require.Equal(t, domain.BatchValidating, got.Batch.Status)
}

func TestCreateValidateOnlyChecksTheFileAndCreatesNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	batchStore(f)
	f.InsertBatchFn = nil // inserting fails the test
	rep := ingest.Report{Errors: []jsonl.LineError{{Line: 2, Code: "invalid_model"}}}
	f.CheckFn = func(_ context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error) {
		assert.Equal(t, "in", key)
		assert.Equal(t, "/v1/chat/completions", endpoint)
		assert.False(t, anyModel)
		assert.Equal(t, batches.MaxReportedErrors, maxErrors)
		return rep, nil
	}
	c := withKey(validCreate(), "k1", "h") // a dry run reserves no key: ReserveIdempotencyKey is unset
	c.ValidateOnly = true
	got, err := newService(f).Create(context.Background(), c)
	require.NoError(t, err)
	// The report on the file and no batch.
	require.NotNil(t, got.Report)
	assert.Len(t, got.Report.Errors, 1)
	assert.Equal(t, aFileID, got.File.ID)
	assert.Empty(t, got.Batch.ID)
}

func TestCreateFailsTheBatchWhenItsPopulateCannotBeQueued(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	stored := batchStore(f)
	type failCall struct {
		id   string
		errs []domain.BatchError
	}
	var failed []failCall
	f.FailBatchFn = func(ctx context.Context, id string, now time.Time, errs []domain.BatchError) error {
		assert.NoError(t, ctx.Err(), "FailBatch ran with a cancelled context")
		failed = append(failed, failCall{id, errs})
		return nil
	}
	// The client gave up as the enqueue failed: the batch must still be failed.
	ctx, cancel := context.WithCancel(context.Background())
	f.SendPopulateFn = func(context.Context, string) error {
		cancel()
		return errors.New("sqs: AccessDenied for arn:aws:sqs:secret")
	}
	_, err := newService(f).Create(ctx, validCreate())
	var de *domain.Error
	require.ErrorAs(t, err, &de, "want EUnavailable (503, retried)")
	require.Equal(t, domain.EUnavailable, de.Code, "error %v, want EUnavailable (503, retried)", err)
	assert.NotContains(t, de.Message, "sqs", "the queue's error leaks")
	require.Len(t, stored, 1, "batches stored")
	require.Len(t, failed, 1, "FailBatch calls")
	for id := range stored {
		assert.Equal(t, id, failed[0].id, "FailBatch's batch, want the stored one")
	}
	if assert.Len(t, failed[0].errs, 1, "FailBatch errors, want one enqueue_failed") {
		assert.Equal(t, domain.CodeEnqueueFailed, failed[0].errs[0].Code)
	}
}

func TestCreateReleasesItsIdempotencyKeyWhenTheInsertFails(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	batchStore(f)
	var reservedFor, released string
	f.ReserveIdempotencyKeyFn = func(_ context.Context, _, _, _ string, _ []byte, id string, _ time.Time) (domain.IdempotencyRecord, bool, error) {
		reservedFor = id
		return domain.IdempotencyRecord{}, true, nil
	}
	f.ReleaseIdempotencyKeyFn = func(ctx context.Context, _, _, _, id string) error {
		assert.NoError(t, ctx.Err(), "ReleaseIdempotencyKey ran with a cancelled context")
		released = id
		return nil
	}
	f.InsertBatchFn = func(context.Context, domain.Batch) error { return errors.New("insert failed") }
	_, err := newService(f).Create(context.Background(), withKey(validCreate(), "k1", "h"))
	require.Error(t, err, "want the internal insert error (500)")
	require.Equal(t, domain.EInternal, domain.ErrorCode(err), "error %v, want the internal insert error (500)", err)
	assert.NotEmpty(t, reservedFor, "no key reserved")
	assert.Equal(t, reservedFor, released, "want the key released for the batch it was reserved for")
}

func TestARetriedCreateWithItsIdempotencyKeyReplaysTheFirstBatch(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	stored := batchStore(f)
	idempotencyKeys(f)
	queued := 0
	f.SendPopulateFn = func(context.Context, string) error { queued++; return nil }
	svc := newService(f)
	first, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "h"))
	require.NoError(t, err)
	again, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "h"))
	require.NoError(t, err)
	// One batch, replayed.
	assert.Equal(t, first.Batch.ID, again.Batch.ID)
	assert.Len(t, stored, 1, "batches stored")
	assert.Equal(t, 1, queued, "populates queued")
	other, err := svc.Create(context.Background(), withKey(validCreate(), "k2", "h"))
	if assert.NoError(t, err, "another key") {
		assert.NotEqual(t, first.Batch.ID, other.Batch.ID, "another key, want a new batch")
	}
}

func TestAnIdempotencyKeyReusedWithAnotherRequestIsRefused(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	batchStore(f)
	idempotencyKeys(f)
	f.SendPopulateFn = func(context.Context, string) error { return nil }
	svc := newService(f)
	_, err := svc.Create(context.Background(), withKey(validCreate(), "k1", "h"))
	require.NoError(t, err, "first")
	_, err = svc.Create(context.Background(), withKey(validCreate(), "k1", "another request"))
	// A conflict with reason idempotency.ReasonMismatch on Idempotency-Key (422).
	var de *domain.Error
	if assert.ErrorAs(t, err, &de) {
		assert.Equal(t, domain.EConflict, de.Code)
		assert.Equal(t, idempotency.ReasonMismatch, de.Reason)
		assert.Equal(t, "Idempotency-Key", de.Param)
	}
}

// A replayed key whose batch cannot be read is still being created (a 409 the SDKs retry)
// within a minute of its first use, and gone (404) after.
func TestAReplayedKeyWithoutItsBatchIsInFlightThenGone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		age    time.Duration
		code   domain.Code
		reason string
	}{
		{10 * time.Second, domain.EConflict, idempotency.ReasonInFlight},
		{2 * time.Minute, domain.ENotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.age.String(), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			batchStore(f)
			f.ReserveIdempotencyKeyFn = func(_ context.Context, _, _, _ string, hash []byte, _ string, _ time.Time) (domain.IdempotencyRecord, bool, error) {
				return domain.IdempotencyRecord{RequestHash: hash, ObjectID: domain.NewBatchID(), CreatedAt: testNow.Add(-c.age)}, false, nil
			}
			_, err := newService(f).Create(context.Background(), withKey(validCreate(), "k1", "h"))
			var de *domain.Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, c.code, de.Code, "error %v", err)
			require.Equal(t, c.reason, de.Reason, "error %v", err)
		})
	}
}

func TestAnOverlongIdempotencyKeyIsRejected(t *testing.T) {
	t.Parallel()
	for name, key := range map[string]string{"256 characters": strings.Repeat("k", 256), "a NUL": "k\x00"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			batchStore(f) // ReserveIdempotencyKey unset: the key is refused before the store sees it
			_, err := newService(f).Create(context.Background(), withKey(validCreate(), key, "h"))
			// EInvalid on Idempotency-Key (400).
			var de *domain.Error
			if assert.ErrorAs(t, err, &de) {
				assert.Equal(t, domain.EInvalid, de.Code)
				assert.Equal(t, "Idempotency-Key", de.Param)
			}
		})
	}
}

// When the populate message cannot be sent and failing the batch fails too, the batch is left
// validating (until its window expires): that error must reach the caller, which logs the whole
// chain, while the client still sees only the safe 503.
func TestCreateReportsThatAnUnqueuedBatchCouldNotBeFailed(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	batchStore(f)
	f.SendPopulateFn = func(context.Context, string) error { return errors.New("sqs: throttled") }
	failErr := errors.New("fail batch: connection reset")
	f.FailBatchFn = func(context.Context, string, time.Time, []domain.BatchError) error { return failErr }
	_, err := newService(f).Create(context.Background(), validCreate())
	require.Equal(t, domain.EUnavailable, domain.ErrorCode(err), "error %v, want EUnavailable (503, retried)", err)
	assert.ErrorIs(t, err, failErr, "the error does not carry FailBatch's")
}

func TestCreateRecordsTheCreatingKeyOnTheBatch(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	stored := batchStore(f)
	f.SendPopulateFn = func(context.Context, string) error { return nil }
	c := validCreate()
	c.CreatedByKey = 42
	got, err := newService(f).Create(context.Background(), c)
	require.NoError(t, err)
	require.EqualValues(t, 42, stored[got.Batch.ID].CreatedByKey, "the store is asked to record the key")
	require.EqualValues(t, 42, got.Batch.CreatedByKey)
}
