package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

func TestReadyIs503WithRetryAfterWhenTheDatabaseIsDown(t *testing.T) {
	f := newFake(t)
	f.PingFn = func(context.Context) error { return errors.New("dial tcp 10.0.0.5:5432: connection refused") }
	w := call(t, newAPI(f), "GET", "/readyz", "", "")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Header().Get("x-should-retry") != "true" {
		t.Fatalf("status %d, Retry-After %q, x-should-retry %q: want 503, 1, true", w.Code, w.Header().Get("Retry-After"), w.Header().Get("x-should-retry"))
	}
	if e := errorOf(t, w); string(e.Error.Code) != `"database_unreachable"` || strings.Contains(w.Body.String(), "10.0.0.5") {
		t.Errorf("envelope %s, want code database_unreachable without the dial error", w.Body)
	}
	f.PingFn = func(context.Context) error { return nil }
	if w := call(t, newAPI(f), "GET", "/readyz", "", ""); w.Code != 200 {
		t.Errorf("status %d with the database up, want 200", w.Code)
	}
}

// A cancel that leaves the batch cancelling asks the engine to seal it at once (nothing may be in
// flight); one that ended it needs no seal.
func TestCancelBatchSealsACancellingBatchAtOnce(t *testing.T) {
	for _, status := range []domain.BatchStatus{domain.BatchCancelling, domain.BatchCancelled} {
		t.Run(string(status), func(t *testing.T) {
			f := withKeys(newFake(t))
			f.CancelBatchFn = func(_ context.Context, tenant, id string, now time.Time) (domain.BatchStatus, error) {
				if tenant != tenantID || id != aBatchID || !now.Equal(testNow) {
					t.Errorf("CancelBatch(%s, %s, %v)", tenant, id, now)
				}
				return status, nil
			}
			var sealed []string
			if status == domain.BatchCancelling {
				f.TryFinalizeFn = func(_ context.Context, id string) { sealed = append(sealed, id) }
			}
			f.GetBatchFn = func(context.Context, string, string) (domain.Batch, error) {
				return domain.Batch{ID: aBatchID, Status: status, TenantID: tenantID}, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/cancel", tenantKey, "")
			if w.Code != 200 || decodeBatch(t, w.Body).Status != string(status) {
				t.Fatalf("status %d body %s", w.Code, w.Body)
			}
			if status == domain.BatchCancelling && (len(sealed) != 1 || sealed[0] != aBatchID) {
				t.Errorf("TryFinalize calls %v, want one for %s", sealed, aBatchID)
			}
		})
	}
}

func TestCancellingAFinishedBatchIsA400(t *testing.T) {
	f := withKeys(newFake(t))
	f.CancelBatchFn = func(context.Context, string, string, time.Time) (domain.BatchStatus, error) {
		return "", &domain.Error{Code: domain.EConflict, Message: "Cannot cancel a batch with status 'completed'."}
	}
	w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/cancel", tenantKey, "")
	if w.Code != 400 || w.Header().Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q: want 400, false (the SDKs retry 409)", w.Code, w.Header().Get("x-should-retry"))
	}
	errorOf(t, w)
}
