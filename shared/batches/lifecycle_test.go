package batches_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var aBatchID = domain.NewBatchID()

// sealer records TryFinalize calls on f.
func sealer(f *fake) *[]string {
	var sealed []string
	f.TryFinalizeFn = func(_ context.Context, id string) { sealed = append(sealed, id) }
	return &sealed
}

// A cancel that leaves the batch cancelling asks the engine to seal it at once (nothing may be in
// flight); one that ended it needs no seal.
func TestCancelSealsACancellingBatchAtOnce(t *testing.T) {
	t.Parallel()
	for _, status := range []domain.BatchStatus{domain.BatchCancelling, domain.BatchCancelled} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.CancelBatchFn = func(_ context.Context, tenant, id string, now time.Time) (domain.BatchStatus, error) {
				assert.Equal(t, tenantID, tenant)
				assert.Equal(t, aBatchID, id)
				assert.True(t, now.Equal(testNow), "CancelBatch at %v, want %v", now, testNow)
				return status, nil
			}
			var sealed *[]string
			if status == domain.BatchCancelling {
				sealed = sealer(f) // else TryFinalize is unset and calling it fails the test
			}
			f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				return domain.Batch{ID: id, Status: status, TenantID: tenant}, nil
			}
			b, err := newService(f).Cancel(context.Background(), tenantID, aBatchID)
			require.NoError(t, err)
			require.Equal(t, aBatchID, b.ID)
			require.Equal(t, status, b.Status)
			if status == domain.BatchCancelling {
				assert.Equal(t, []string{aBatchID}, *sealed, "TryFinalize calls, want one for the batch")
			}
		})
	}
}

func TestCancelOfAFinishedBatchIsTheStoresConflict(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	refusal := &domain.Error{Code: domain.EConflict, Message: "Cannot cancel a batch with status 'completed'."}
	f.CancelBatchFn = func(context.Context, string, string, time.Time) (domain.BatchStatus, error) { return "", refusal }
	_, err := newService(f).Cancel(context.Background(), tenantID, aBatchID)
	require.ErrorIs(t, err, refusal, "want the store's refusal")
}

func TestCancelRequestsAnswersEveryIdInOrderAndSealsTheBatch(t *testing.T) {
	t.Parallel()
	ids := []string{"u1", "u2", "u3"}
	f := newFake(t)
	f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
		return domain.Batch{ID: id, TenantID: tenant}, nil
	}
	f.CancelRequestsFn = func(_ context.Context, tenant, batch string, got []string, now time.Time) ([]domain.CancelOutcome, error) {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aBatchID, batch)
		assert.Equal(t, ids, got)
		assert.True(t, now.Equal(testNow), "CancelRequests at %v, want %v", now, testNow)
		// The store answers the requests it found, in its own order.
		return []domain.CancelOutcome{{RequestID: "u3", Result: "not_cancellable"}, {RequestID: "u1", Result: "canceled"}}, nil
	}
	sealed := sealer(f)
	got, err := newService(f).CancelRequests(context.Background(), tenantID, aBatchID, ids)
	require.NoError(t, err)
	want := []domain.CancelOutcome{{RequestID: "u1", Result: "canceled"}, {RequestID: "u2", Result: domain.CancelNotFound},
		{RequestID: "u3", Result: "not_cancellable"}}
	assert.Equal(t, want, got, "outcomes")
	assert.Equal(t, []string{aBatchID}, *sealed, "TryFinalize calls, want one for the batch")
}

func TestCancelRequestsOfAnotherTenantsBatchTouchesNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t) // CancelRequests and TryFinalize unset
	f.GetBatchFn = func(_ context.Context, _, id string) (domain.Batch, error) {
		return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No such Batch object: " + id}
	}
	_, err := newService(f).CancelRequests(context.Background(), tenantID, aBatchID, []string{"u1"})
	require.Equal(t, domain.ENotFound, domain.ErrorCode(err), "error %v", err)
}

func TestRetryDispatchesTheRetriedModelsAndAnswersTheBatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		ids         []string // nil = every failed request
		dispatchErr error    // the schedule covers a failed dispatch: the retry still succeeds
	}{
		{"every failed request", nil, nil},
		{"some requests", []string{"u1", "u2"}, nil},
		{"a failed dispatch", nil, errors.New("sqs down")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.RetryFailedFn = func(_ context.Context, tenant, batch string, ids []string, now time.Time) (int, []string, error) {
				assert.Equal(t, tenantID, tenant)
				assert.Equal(t, aBatchID, batch)
				assert.Equal(t, c.ids, ids) // nil (every failed request) stays nil
				assert.True(t, now.Equal(testNow), "RetryFailed at %v, want %v", now, testNow)
				return 2, []string{"m1", "m2"}, nil
			}
			var dispatched []string
			f.DispatchFn = func(_ context.Context, models ...string) error {
				dispatched = append(dispatched, models...)
				return c.dispatchErr
			}
			f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				return domain.Batch{ID: id, TenantID: tenant, Status: domain.BatchInProgress}, nil
			}
			b, err := newService(f).Retry(context.Background(), tenantID, aBatchID, c.ids)
			require.NoError(t, err)
			require.Equal(t, aBatchID, b.ID)
			require.Equal(t, domain.BatchInProgress, b.Status)
			assert.Equal(t, []string{"m1", "m2"}, dispatched)
		})
	}
}

func TestRetryThatTheStoreRefusesDispatchesNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t) // Dispatch and GetBatch unset
	refusal := &domain.Error{Code: domain.EConflict, Message: "Only a finished batch can be retried."}
	f.RetryFailedFn = func(context.Context, string, string, []string, time.Time) (int, []string, error) {
		return 0, nil, refusal
	}
	_, err := newService(f).Retry(context.Background(), tenantID, aBatchID, nil)
	require.ErrorIs(t, err, refusal, "want the store's refusal")
}

func TestDeleteSealsTheBatchAtOnce(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.DeleteBatchFn = func(_ context.Context, tenant, id string, now time.Time) error {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aBatchID, id)
		assert.True(t, now.Equal(testNow), "DeleteBatch at %v, want %v", now, testNow)
		return nil
	}
	sealed := sealer(f)
	require.NoError(t, newService(f).Delete(context.Background(), tenantID, aBatchID))
	assert.Equal(t, []string{aBatchID}, *sealed, "TryFinalize calls, want one for the batch")
}

func TestDeleteFileSealsEveryBatchItCancelled(t *testing.T) {
	t.Parallel()
	cancelled := []string{domain.NewBatchID(), domain.NewBatchID()}
	f := newFake(t)
	f.DeleteFileFn = func(_ context.Context, tenant, id string, now time.Time) ([]string, error) {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aFileID, id)
		assert.True(t, now.Equal(testNow), "DeleteFile at %v, want %v", now, testNow)
		return cancelled, nil
	}
	sealed := sealer(f)
	require.NoError(t, newService(f).DeleteFile(context.Background(), tenantID, aFileID))
	assert.Equal(t, cancelled, *sealed, "TryFinalize calls")
}

func TestAFailedDeleteSealsNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t) // TryFinalize unset
	gone := &domain.Error{Code: domain.ENotFound, Message: "No such object."}
	f.DeleteBatchFn = func(context.Context, string, string, time.Time) error { return gone }
	f.DeleteFileFn = func(context.Context, string, string, time.Time) ([]string, error) { return nil, gone }
	svc := newService(f)
	assert.ErrorIs(t, svc.Delete(context.Background(), tenantID, aBatchID), gone, "Delete, want the store's error")
	assert.ErrorIs(t, svc.DeleteFile(context.Background(), tenantID, aFileID), gone, "DeleteFile, want the store's error")
}
