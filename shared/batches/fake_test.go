package batches_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/stretchr/testify/assert"
)

// errUnexpected is what a fake returns from a method the test did not set up; the call has
// already failed the test.
var errUnexpected = errors.New("unexpected call to a fake")

// fake implements the service's Store, Checker, PopulateQueue and Engine with one function field
// per method. A test sets the fields its call should reach; calling any other fails the test.
type fake struct {
	t *testing.T

	GetFileFn               func(ctx context.Context, tenantID, id string) (domain.File, error)
	InsertBatchFn           func(ctx context.Context, b domain.Batch) error
	GetBatchFn              func(ctx context.Context, tenantID, id string) (domain.Batch, error)
	FailBatchFn             func(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error
	CancelBatchFn           func(ctx context.Context, tenantID, batchID string, now time.Time) (domain.BatchStatus, error)
	CancelRequestsFn        func(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) ([]domain.CancelOutcome, error)
	RetryFailedFn           func(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) (int, []string, error)
	DeleteBatchFn           func(ctx context.Context, tenantID, batchID string, now time.Time) error
	DeleteFileFn            func(ctx context.Context, tenantID, fileID string, now time.Time) ([]string, error)
	ReserveIdempotencyKeyFn func(ctx context.Context, tenantID, route, key string, hash []byte, objectID string, now time.Time) (domain.IdempotencyRecord, bool, error)
	ReleaseIdempotencyKeyFn func(ctx context.Context, tenantID, route, key, objectID string) error
	CheckFn                 func(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error)
	SendPopulateFn          func(ctx context.Context, batchID string) error
	TryFinalizeFn           func(ctx context.Context, batchID string)
	DispatchFn              func(ctx context.Context, models ...string) error
	ExtendBatchFn           func(ctx context.Context, tenantID, batchID, window string, expiresAt, now time.Time) error
	RerunBatchFn            func(ctx context.Context, tenantID, sourceID string, rerun domain.Batch, now time.Time) (domain.Rerun, error)
}

func newFake(t *testing.T) *fake { return &fake{t: t} }

func (f *fake) unexpected(name string) error {
	f.t.Helper()
	assert.Fail(f.t, "unexpected call to "+name)
	return errUnexpected
}

func (f *fake) GetFile(ctx context.Context, tenantID, id string) (domain.File, error) {
	if f.GetFileFn == nil {
		return domain.File{}, f.unexpected("GetFile")
	}
	return f.GetFileFn(ctx, tenantID, id)
}

func (f *fake) InsertBatch(ctx context.Context, b domain.Batch) error {
	if f.InsertBatchFn == nil {
		return f.unexpected("InsertBatch")
	}
	return f.InsertBatchFn(ctx, b)
}

func (f *fake) GetBatch(ctx context.Context, tenantID, id string) (domain.Batch, error) {
	if f.GetBatchFn == nil {
		return domain.Batch{}, f.unexpected("GetBatch")
	}
	return f.GetBatchFn(ctx, tenantID, id)
}

func (f *fake) FailBatch(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error {
	if f.FailBatchFn == nil {
		return f.unexpected("FailBatch")
	}
	return f.FailBatchFn(ctx, batchID, now, errs)
}

func (f *fake) CancelBatch(ctx context.Context, tenantID, batchID string, now time.Time) (domain.BatchStatus, error) {
	if f.CancelBatchFn == nil {
		return "", f.unexpected("CancelBatch")
	}
	return f.CancelBatchFn(ctx, tenantID, batchID, now)
}

func (f *fake) CancelRequests(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) ([]domain.CancelOutcome, error) {
	if f.CancelRequestsFn == nil {
		return nil, f.unexpected("CancelRequests")
	}
	return f.CancelRequestsFn(ctx, tenantID, batchID, ids, now)
}

func (f *fake) RetryFailed(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) (int, []string, error) {
	if f.RetryFailedFn == nil {
		return 0, nil, f.unexpected("RetryFailed")
	}
	return f.RetryFailedFn(ctx, tenantID, batchID, ids, now)
}

func (f *fake) DeleteBatch(ctx context.Context, tenantID, batchID string, now time.Time) error {
	if f.DeleteBatchFn == nil {
		return f.unexpected("DeleteBatch")
	}
	return f.DeleteBatchFn(ctx, tenantID, batchID, now)
}

func (f *fake) DeleteFile(ctx context.Context, tenantID, fileID string, now time.Time) ([]string, error) {
	if f.DeleteFileFn == nil {
		return nil, f.unexpected("DeleteFile")
	}
	return f.DeleteFileFn(ctx, tenantID, fileID, now)
}

func (f *fake) ReserveIdempotencyKey(ctx context.Context, tenantID, route, key string, hash []byte, objectID string, now time.Time) (domain.IdempotencyRecord, bool, error) {
	if f.ReserveIdempotencyKeyFn == nil {
		return domain.IdempotencyRecord{}, false, f.unexpected("ReserveIdempotencyKey")
	}
	return f.ReserveIdempotencyKeyFn(ctx, tenantID, route, key, hash, objectID, now)
}

func (f *fake) ReleaseIdempotencyKey(ctx context.Context, tenantID, route, key, objectID string) error {
	if f.ReleaseIdempotencyKeyFn == nil {
		return f.unexpected("ReleaseIdempotencyKey")
	}
	return f.ReleaseIdempotencyKeyFn(ctx, tenantID, route, key, objectID)
}

func (f *fake) Check(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error) {
	if f.CheckFn == nil {
		return ingest.Report{}, f.unexpected("Check")
	}
	return f.CheckFn(ctx, key, endpoint, anyModel, maxErrors)
}

func (f *fake) SendPopulate(ctx context.Context, batchID string) error {
	if f.SendPopulateFn == nil {
		return f.unexpected("SendPopulate")
	}
	return f.SendPopulateFn(ctx, batchID)
}

func (f *fake) TryFinalize(ctx context.Context, batchID string) {
	if f.TryFinalizeFn == nil {
		_ = f.unexpected("TryFinalize")
		return
	}
	f.TryFinalizeFn(ctx, batchID)
}

func (f *fake) Dispatch(ctx context.Context, models ...string) error {
	if f.DispatchFn == nil {
		return f.unexpected("Dispatch")
	}
	return f.DispatchFn(ctx, models...)
}

func (f *fake) ExtendBatch(ctx context.Context, tenantID, batchID, window string, expiresAt, now time.Time) error {
	if f.ExtendBatchFn == nil {
		return f.unexpected("ExtendBatch")
	}
	return f.ExtendBatchFn(ctx, tenantID, batchID, window, expiresAt, now)
}

func (f *fake) RerunBatch(ctx context.Context, tenantID, sourceID string, rerun domain.Batch, now time.Time) (domain.Rerun, error) {
	if f.RerunBatchFn == nil {
		return domain.Rerun{}, f.unexpected("RerunBatch")
	}
	return f.RerunBatchFn(ctx, tenantID, sourceID, rerun, now)
}
