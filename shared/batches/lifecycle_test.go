package batches_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
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
	for _, status := range []domain.BatchStatus{domain.BatchCancelling, domain.BatchCancelled} {
		t.Run(string(status), func(t *testing.T) {
			f := newFake(t)
			f.CancelBatchFn = func(_ context.Context, tenant, id string, now time.Time) (domain.BatchStatus, error) {
				if tenant != tenantID || id != aBatchID || !now.Equal(testNow) {
					t.Errorf("CancelBatch(%s, %s, %v)", tenant, id, now)
				}
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
			if err != nil || b.ID != aBatchID || b.Status != status {
				t.Fatalf("Cancel = %+v, %v; want the batch %s", b, err, status)
			}
			if status == domain.BatchCancelling && !slices.Equal(*sealed, []string{aBatchID}) {
				t.Errorf("TryFinalize calls %v, want one for %s", *sealed, aBatchID)
			}
		})
	}
}

func TestCancelOfAFinishedBatchIsTheStoresConflict(t *testing.T) {
	f := newFake(t)
	refusal := &domain.Error{Code: domain.EConflict, Message: "Cannot cancel a batch with status 'completed'."}
	f.CancelBatchFn = func(context.Context, string, string, time.Time) (domain.BatchStatus, error) { return "", refusal }
	if _, err := newService(f).Cancel(context.Background(), tenantID, aBatchID); !errors.Is(err, refusal) {
		t.Fatalf("error %v, want the store's refusal", err)
	}
}

func TestCancelRequestsAnswersEveryIdInOrderAndSealsTheBatch(t *testing.T) {
	ids := []string{"u1", "u2", "u3"}
	f := newFake(t)
	f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
		return domain.Batch{ID: id, TenantID: tenant}, nil
	}
	f.CancelRequestsFn = func(_ context.Context, tenant, batch string, got []string, now time.Time) ([]domain.CancelOutcome, error) {
		if tenant != tenantID || batch != aBatchID || !slices.Equal(got, ids) || !now.Equal(testNow) {
			t.Errorf("CancelRequests(%s, %s, %v, %v)", tenant, batch, got, now)
		}
		// The store answers the requests it found, in its own order.
		return []domain.CancelOutcome{{RequestID: "u3", Result: "not_cancellable"}, {RequestID: "u1", Result: "canceled"}}, nil
	}
	sealed := sealer(f)
	got, err := newService(f).CancelRequests(context.Background(), tenantID, aBatchID, ids)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.CancelOutcome{{RequestID: "u1", Result: "canceled"}, {RequestID: "u2", Result: batches.NotFound},
		{RequestID: "u3", Result: "not_cancellable"}}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	if !slices.Equal(*sealed, []string{aBatchID}) {
		t.Errorf("TryFinalize calls %v, want one for %s", *sealed, aBatchID)
	}
}

func TestCancelRequestsOfAnotherTenantsBatchTouchesNothing(t *testing.T) {
	f := newFake(t) // CancelRequests and TryFinalize unset
	f.GetBatchFn = func(_ context.Context, _, id string) (domain.Batch, error) {
		return domain.Batch{}, &domain.Error{Code: domain.ENotFound, Message: "No such Batch object: " + id}
	}
	_, err := newService(f).CancelRequests(context.Background(), tenantID, aBatchID, []string{"u1"})
	if domain.ErrorCode(err) != domain.ENotFound {
		t.Fatalf("error %v, want ENotFound", err)
	}
}

func TestRetryDispatchesTheRetriedModelsAndAnswersTheBatch(t *testing.T) {
	cases := []struct {
		name    string
		ids     []string // nil = every failed request
		kickErr error    // the schedule covers a failed kick: the retry still succeeds
	}{
		{"every failed request", nil, nil},
		{"some requests", []string{"u1", "u2"}, nil},
		{"a failed kick", nil, errors.New("sqs down")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.RetryFailedFn = func(_ context.Context, tenant, batch string, ids []string, now time.Time) (int, []string, error) {
				if tenant != tenantID || batch != aBatchID || !slices.Equal(ids, c.ids) || (ids == nil) != (c.ids == nil) || !now.Equal(testNow) {
					t.Errorf("RetryFailed(%s, %s, %v, %v)", tenant, batch, ids, now)
				}
				return 2, []string{"m1", "m2"}, nil
			}
			var kicked []string
			f.DispatchFn = func(_ context.Context, models ...string) error {
				kicked = append(kicked, models...)
				return c.kickErr
			}
			f.GetBatchFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				return domain.Batch{ID: id, TenantID: tenant, Status: domain.BatchInProgress}, nil
			}
			b, err := newService(f).Retry(context.Background(), tenantID, aBatchID, c.ids)
			if err != nil || b.ID != aBatchID || b.Status != domain.BatchInProgress {
				t.Fatalf("Retry = %+v, %v; want the batch in progress", b, err)
			}
			if !slices.Equal(kicked, []string{"m1", "m2"}) {
				t.Errorf("kicked %v, want [m1 m2]", kicked)
			}
		})
	}
}

func TestRetryThatTheStoreRefusesDispatchesNothing(t *testing.T) {
	f := newFake(t) // Kick and GetBatch unset
	refusal := &domain.Error{Code: domain.EConflict, Message: "Only a finished batch can be retried."}
	f.RetryFailedFn = func(context.Context, string, string, []string, time.Time) (int, []string, error) {
		return 0, nil, refusal
	}
	if _, err := newService(f).Retry(context.Background(), tenantID, aBatchID, nil); !errors.Is(err, refusal) {
		t.Fatalf("error %v, want the store's refusal", err)
	}
}

func TestDeleteSealsTheBatchAtOnce(t *testing.T) {
	f := newFake(t)
	f.DeleteBatchFn = func(_ context.Context, tenant, id string, now time.Time) error {
		if tenant != tenantID || id != aBatchID || !now.Equal(testNow) {
			t.Errorf("DeleteBatch(%s, %s, %v)", tenant, id, now)
		}
		return nil
	}
	sealed := sealer(f)
	if err := newService(f).Delete(context.Background(), tenantID, aBatchID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*sealed, []string{aBatchID}) {
		t.Errorf("TryFinalize calls %v, want one for %s", *sealed, aBatchID)
	}
}

func TestDeleteFileSealsEveryBatchItCancelled(t *testing.T) {
	cancelled := []string{domain.NewBatchID(), domain.NewBatchID()}
	f := newFake(t)
	f.DeleteFileFn = func(_ context.Context, tenant, id string, now time.Time) ([]string, error) {
		if tenant != tenantID || id != aFileID || !now.Equal(testNow) {
			t.Errorf("DeleteFile(%s, %s, %v)", tenant, id, now)
		}
		return cancelled, nil
	}
	sealed := sealer(f)
	if err := newService(f).DeleteFile(context.Background(), tenantID, aFileID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*sealed, cancelled) {
		t.Errorf("TryFinalize calls %v, want %v", *sealed, cancelled)
	}
}

func TestAFailedDeleteSealsNothing(t *testing.T) {
	f := newFake(t) // TryFinalize unset
	gone := &domain.Error{Code: domain.ENotFound, Message: "No such object."}
	f.DeleteBatchFn = func(context.Context, string, string, time.Time) error { return gone }
	f.DeleteFileFn = func(context.Context, string, string, time.Time) ([]string, error) { return nil, gone }
	svc := newService(f)
	if err := svc.Delete(context.Background(), tenantID, aBatchID); !errors.Is(err, gone) {
		t.Errorf("Delete: %v, want the store's error", err)
	}
	if err := svc.DeleteFile(context.Background(), tenantID, aFileID); !errors.Is(err, gone) {
		t.Errorf("DeleteFile: %v, want the store's error", err)
	}
}
