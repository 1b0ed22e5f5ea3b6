package httpapi_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/stretchr/testify/assert"
)

// errUnexpected is what a fake returns from a method the test did not set up; the call has
// already failed the test.
var errUnexpected = errors.New("unexpected call to a fake")

// fake implements the API's Store, Ingester, Batches and Dispatcher with one function field
// per method. A test sets the fields its request should reach; calling any other fails the test.
type fake struct {
	t *testing.T

	AuthenticateFn             func(ctx context.Context, key string) (domain.Principal, error)
	PingFn                     func(ctx context.Context) error
	ReachableFn                func(ctx context.Context) error // the work queue (readiness); nil: reachable
	InsertFileFn               func(ctx context.Context, f domain.File) error
	GetFileFn                  func(ctx context.Context, tenantID, id string) (domain.File, error)
	ViewFileFn                 func(ctx context.Context, tenantID, id string) (domain.File, error)
	ListFilesFn                func(ctx context.Context, tenantID string, p domain.FileListParams) ([]domain.File, bool, error)
	DiscardFileFn              func(ctx context.Context, tenantID, id, reason string, now time.Time) error
	SetFileExpiryFn            func(ctx context.Context, tenantID, id string, at time.Time) error
	GetBatchFn                 func(ctx context.Context, tenantID, id string) (domain.Batch, error)
	ViewBatchFn                func(ctx context.Context, tenantID, id string) (domain.Batch, error)
	ListBatchesFn              func(ctx context.Context, tenantID string, p domain.BatchListParams) ([]domain.Batch, bool, error)
	BatchResultsFn             func(ctx context.Context, tenantID, batchID string, q domain.ResultQuery, fn func(domain.BatchResult) error) error
	ResultFileFn               func(ctx context.Context, tenantID, batchID string, output bool, q domain.ResultQuery, fn func(domain.ResultRow) error) error
	ReserveIdempotencyKeyFn    func(ctx context.Context, tenantID, route, key string, hash []byte, objectID string, now time.Time) (domain.IdempotencyRecord, bool, error)
	ReleaseIdempotencyKeyFn    func(ctx context.Context, tenantID, route, key, objectID string) error
	ListModelsFn               func(ctx context.Context) ([]domain.Model, error)
	UpsertModelFn              func(ctx context.Context, m domain.Model) error
	DeleteModelFn              func(ctx context.Context, name string) error
	ListWorkersFn              func(ctx context.Context, status domain.WorkerStatus, now time.Time, stale time.Duration, limit int) ([]domain.WorkerRecord, error)
	ListTenantsFn              func(ctx context.Context) ([]domain.Tenant, error)
	CreateTenantFn             func(ctx context.Context, name string, coalesceDefault bool, now time.Time) (domain.Tenant, error)
	SetTenantCoalesceDefaultFn func(ctx context.Context, tenantID string, on bool) (domain.Tenant, error)
	CreateAPIKeyFn             func(ctx context.Context, tenantID, name string, admin bool, now time.Time) (domain.APIKey, string, error)
	ListAPIKeysFn              func(ctx context.Context, tenantID string) ([]domain.APIKey, error)
	RevokeAPIKeyFn             func(ctx context.Context, id int64, now time.Time) (domain.APIKey, error)
	PendingByModelAndWindowFn  func(ctx context.Context, windows []time.Duration, f domain.PendingFilter, now time.Time) (domain.WindowCounts, error)
	StoreFn                    func(ctx context.Context, u ingest.Upload) (domain.File, error)
	FillFn                     func(ctx context.Context, f domain.File, body io.Reader) (domain.File, error)
	CompleteFn                 func(ctx context.Context, f domain.File) (domain.File, error)
	CheckFn                    func(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error)
	LimitsFn                   func() ingest.Limits
	DispatchFn                 func(ctx context.Context, models ...string) error
	CreateFn                   func(ctx context.Context, c batches.Create) (batches.Created, error)
	CancelFn                   func(ctx context.Context, tenantID, batchID string) (domain.Batch, error)
	CancelRequestsFn           func(ctx context.Context, tenantID, batchID string, ids []string) ([]domain.CancelOutcome, error)
	RetryFn                    func(ctx context.Context, tenantID, batchID string, ids []string) (domain.Batch, error)
	DeleteFn                   func(ctx context.Context, tenantID, batchID string) error
	DeleteFileFn               func(ctx context.Context, tenantID, fileID string) error
	ExtendFn                   func(ctx context.Context, tenantID, batchID, window string) (domain.Batch, error)
	RerunFn                    func(ctx context.Context, r batches.Rerun) (domain.Batch, error)
	ProgressSinceFn            func(ctx context.Context, batchIDs []string, since time.Time) (map[string]domain.ProgressSample, error)
	BatchTimelineFn            func(ctx context.Context, tenantID, batchID string, total int, start, end time.Time, n int) (domain.Timeline, error)
	BatchRequestStatesFn       func(ctx context.Context, tenantID string, batchIDs []string) (map[string]map[domain.RequestState]int, error)
}

func (f *fake) BatchRequestStates(ctx context.Context, tenantID string, batchIDs []string) (map[string]map[domain.RequestState]int, error) {
	if f.BatchRequestStatesFn == nil {
		return nil, f.unexpected("BatchRequestStates")
	}
	return f.BatchRequestStatesFn(ctx, tenantID, batchIDs)
}

func (f *fake) BatchTimeline(ctx context.Context, tenantID, batchID string, total int, start, end time.Time, n int) (domain.Timeline, error) {
	if f.BatchTimelineFn == nil {
		return domain.Timeline{}, f.unexpected("BatchTimeline")
	}
	return f.BatchTimelineFn(ctx, tenantID, batchID, total, start, end, n)
}

func newFake(t *testing.T) *fake { return &fake{t: t} }

func (f *fake) unexpected(name string) error {
	f.t.Helper()
	assert.Fail(f.t, "unexpected call to "+name)
	return errUnexpected
}

func (f *fake) Authenticate(ctx context.Context, key string) (domain.Principal, error) {
	if f.AuthenticateFn == nil {
		return domain.Principal{}, f.unexpected("Authenticate")
	}
	return f.AuthenticateFn(ctx, key)
}

func (f *fake) Ping(ctx context.Context) error {
	if f.PingFn == nil {
		return f.unexpected("Ping")
	}
	return f.PingFn(ctx)
}

func (f *fake) Reachable(ctx context.Context) error {
	if f.ReachableFn == nil {
		return nil
	}
	return f.ReachableFn(ctx)
}

func (f *fake) InsertFile(ctx context.Context, file domain.File) error {
	if f.InsertFileFn == nil {
		return f.unexpected("InsertFile")
	}
	return f.InsertFileFn(ctx, file)
}

func (f *fake) GetFile(ctx context.Context, tenantID, id string) (domain.File, error) {
	if f.GetFileFn == nil {
		return domain.File{}, f.unexpected("GetFile")
	}
	return f.GetFileFn(ctx, tenantID, id)
}

// ViewFile is GetFile unless the test tells the two apart (a replica's older copy).
func (f *fake) ViewFile(ctx context.Context, tenantID, id string) (domain.File, error) {
	if f.ViewFileFn == nil {
		return f.GetFile(ctx, tenantID, id)
	}
	return f.ViewFileFn(ctx, tenantID, id)
}

func (f *fake) ListFiles(ctx context.Context, tenantID string, p domain.FileListParams) ([]domain.File, bool, error) {
	if f.ListFilesFn == nil {
		return nil, false, f.unexpected("ListFiles")
	}
	return f.ListFilesFn(ctx, tenantID, p)
}

func (f *fake) DiscardFile(ctx context.Context, tenantID, id, reason string, now time.Time) error {
	if f.DiscardFileFn == nil {
		return f.unexpected("DiscardFile")
	}
	return f.DiscardFileFn(ctx, tenantID, id, reason, now)
}

func (f *fake) SetFileExpiry(ctx context.Context, tenantID, id string, at time.Time) error {
	if f.SetFileExpiryFn == nil {
		return f.unexpected("SetFileExpiry")
	}
	return f.SetFileExpiryFn(ctx, tenantID, id, at)
}

func (f *fake) GetBatch(ctx context.Context, tenantID, id string) (domain.Batch, error) {
	if f.GetBatchFn == nil {
		return domain.Batch{}, f.unexpected("GetBatch")
	}
	return f.GetBatchFn(ctx, tenantID, id)
}

// ViewBatch is GetBatch unless the test tells the two apart (a replica's older copy).
func (f *fake) ViewBatch(ctx context.Context, tenantID, id string) (domain.Batch, error) {
	if f.ViewBatchFn == nil {
		return f.GetBatch(ctx, tenantID, id)
	}
	return f.ViewBatchFn(ctx, tenantID, id)
}

func (f *fake) ListBatches(ctx context.Context, tenantID string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
	if f.ListBatchesFn == nil {
		return nil, false, f.unexpected("ListBatches")
	}
	return f.ListBatchesFn(ctx, tenantID, p)
}

func (f *fake) BatchResults(ctx context.Context, tenantID, batchID string, q domain.ResultQuery, fn func(domain.BatchResult) error) error {
	if f.BatchResultsFn == nil {
		return f.unexpected("BatchResults")
	}
	return f.BatchResultsFn(ctx, tenantID, batchID, q, fn)
}

func (f *fake) ResultFile(ctx context.Context, tenantID, batchID string, output bool, q domain.ResultQuery, fn func(domain.ResultRow) error) error {
	if f.ResultFileFn == nil {
		return f.unexpected("ResultFile")
	}
	return f.ResultFileFn(ctx, tenantID, batchID, output, q, fn)
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

func (f *fake) ListModels(ctx context.Context) ([]domain.Model, error) {
	if f.ListModelsFn == nil {
		return nil, f.unexpected("ListModels")
	}
	return f.ListModelsFn(ctx)
}

func (f *fake) UpsertModel(ctx context.Context, m domain.Model) error {
	if f.UpsertModelFn == nil {
		return f.unexpected("UpsertModel")
	}
	return f.UpsertModelFn(ctx, m)
}

func (f *fake) DeleteModel(ctx context.Context, name string) error {
	if f.DeleteModelFn == nil {
		return f.unexpected("DeleteModel")
	}
	return f.DeleteModelFn(ctx, name)
}

func (f *fake) ListWorkers(ctx context.Context, status domain.WorkerStatus, now time.Time, stale time.Duration, limit int) ([]domain.WorkerRecord, error) {
	if f.ListWorkersFn == nil {
		return nil, f.unexpected("ListWorkers")
	}
	return f.ListWorkersFn(ctx, status, now, stale, limit)
}

func (f *fake) ListTenants(ctx context.Context) ([]domain.Tenant, error) {
	if f.ListTenantsFn == nil {
		return nil, f.unexpected("ListTenants")
	}
	return f.ListTenantsFn(ctx)
}

func (f *fake) CreateTenant(ctx context.Context, name string, coalesceDefault bool, now time.Time) (domain.Tenant, error) {
	if f.CreateTenantFn == nil {
		return domain.Tenant{}, f.unexpected("CreateTenant")
	}
	return f.CreateTenantFn(ctx, name, coalesceDefault, now)
}

func (f *fake) SetTenantCoalesceDefault(ctx context.Context, tenantID string, on bool) (domain.Tenant, error) {
	if f.SetTenantCoalesceDefaultFn == nil {
		return domain.Tenant{}, f.unexpected("SetTenantCoalesceDefault")
	}
	return f.SetTenantCoalesceDefaultFn(ctx, tenantID, on)
}

func (f *fake) CreateAPIKey(ctx context.Context, tenantID, name string, admin bool, now time.Time) (domain.APIKey, string, error) {
	if f.CreateAPIKeyFn == nil {
		return domain.APIKey{}, "", f.unexpected("CreateAPIKey")
	}
	return f.CreateAPIKeyFn(ctx, tenantID, name, admin, now)
}

func (f *fake) ListAPIKeys(ctx context.Context, tenantID string) ([]domain.APIKey, error) {
	if f.ListAPIKeysFn == nil {
		return nil, f.unexpected("ListAPIKeys")
	}
	return f.ListAPIKeysFn(ctx, tenantID)
}

func (f *fake) RevokeAPIKey(ctx context.Context, id int64, now time.Time) (domain.APIKey, error) {
	if f.RevokeAPIKeyFn == nil {
		return domain.APIKey{}, f.unexpected("RevokeAPIKey")
	}
	return f.RevokeAPIKeyFn(ctx, id, now)
}

func (f *fake) PendingByModelAndWindow(ctx context.Context, windows []time.Duration, pf domain.PendingFilter, now time.Time) (domain.WindowCounts, error) {
	if f.PendingByModelAndWindowFn == nil {
		return nil, f.unexpected("PendingByModelAndWindow")
	}
	return f.PendingByModelAndWindowFn(ctx, windows, pf, now)
}

func (f *fake) Store(ctx context.Context, u ingest.Upload) (domain.File, error) {
	if f.StoreFn == nil {
		return domain.File{}, f.unexpected("Store")
	}
	return f.StoreFn(ctx, u)
}

func (f *fake) Fill(ctx context.Context, file domain.File, body io.Reader) (domain.File, error) {
	if f.FillFn == nil {
		return domain.File{}, f.unexpected("Fill")
	}
	return f.FillFn(ctx, file, body)
}

func (f *fake) Complete(ctx context.Context, file domain.File) (domain.File, error) {
	if f.CompleteFn == nil {
		return domain.File{}, f.unexpected("Complete")
	}
	return f.CompleteFn(ctx, file)
}

func (f *fake) Check(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error) {
	if f.CheckFn == nil {
		return ingest.Report{}, f.unexpected("Check")
	}
	return f.CheckFn(ctx, key, endpoint, anyModel, maxErrors)
}

func (f *fake) Limits() ingest.Limits {
	if f.LimitsFn == nil {
		_ = f.unexpected("Limits")
		return ingest.Limits{}
	}
	return f.LimitsFn()
}

func (f *fake) Dispatch(ctx context.Context, models ...string) error {
	if f.DispatchFn == nil {
		return f.unexpected("Dispatch")
	}
	return f.DispatchFn(ctx, models...)
}

func (f *fake) Create(ctx context.Context, c batches.Create) (batches.Created, error) {
	if f.CreateFn == nil {
		return batches.Created{}, f.unexpected("Create")
	}
	return f.CreateFn(ctx, c)
}

func (f *fake) Cancel(ctx context.Context, tenantID, batchID string) (domain.Batch, error) {
	if f.CancelFn == nil {
		return domain.Batch{}, f.unexpected("Cancel")
	}
	return f.CancelFn(ctx, tenantID, batchID)
}

func (f *fake) CancelRequests(ctx context.Context, tenantID, batchID string, ids []string) ([]domain.CancelOutcome, error) {
	if f.CancelRequestsFn == nil {
		return nil, f.unexpected("CancelRequests")
	}
	return f.CancelRequestsFn(ctx, tenantID, batchID, ids)
}

func (f *fake) Retry(ctx context.Context, tenantID, batchID string, ids []string) (domain.Batch, error) {
	if f.RetryFn == nil {
		return domain.Batch{}, f.unexpected("Retry")
	}
	return f.RetryFn(ctx, tenantID, batchID, ids)
}

func (f *fake) Delete(ctx context.Context, tenantID, batchID string) error {
	if f.DeleteFn == nil {
		return f.unexpected("Delete")
	}
	return f.DeleteFn(ctx, tenantID, batchID)
}

func (f *fake) DeleteFile(ctx context.Context, tenantID, fileID string) error {
	if f.DeleteFileFn == nil {
		return f.unexpected("DeleteFile")
	}
	return f.DeleteFileFn(ctx, tenantID, fileID)
}

func (f *fake) Extend(ctx context.Context, tenantID, batchID, window string) (domain.Batch, error) {
	if f.ExtendFn == nil {
		return domain.Batch{}, f.unexpected("Extend")
	}
	return f.ExtendFn(ctx, tenantID, batchID, window)
}

func (f *fake) Rerun(ctx context.Context, r batches.Rerun) (domain.Batch, error) {
	if f.RerunFn == nil {
		return domain.Batch{}, f.unexpected("Rerun")
	}
	return f.RerunFn(ctx, r)
}

// ProgressSince answers no samples unless the test sets ProgressSinceFn: every GET of a running
// batch asks, and most tests are about something else.
func (f *fake) ProgressSince(ctx context.Context, batchIDs []string, since time.Time) (map[string]domain.ProgressSample, error) {
	if f.ProgressSinceFn == nil {
		return map[string]domain.ProgressSample{}, nil
	}
	return f.ProgressSinceFn(ctx, batchIDs, since)
}
