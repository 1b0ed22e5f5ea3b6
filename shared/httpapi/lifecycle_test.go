package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

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

// The cancel route hands the service the caller's tenant and the batch id, and answers the batch
// the service returns (sealing a cancelling batch is the service's part: package batches).
func TestCancelBatchAnswersTheBatchTheServiceCancelled(t *testing.T) {
	for _, status := range []domain.BatchStatus{domain.BatchCancelling, domain.BatchCancelled} {
		t.Run(string(status), func(t *testing.T) {
			f := withKeys(newFake(t))
			f.CancelFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				if tenant != tenantID || id != aBatchID {
					t.Errorf("Cancel(%s, %s)", tenant, id)
				}
				return domain.Batch{ID: aBatchID, Status: status, TenantID: tenantID}, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/cancel", tenantKey, "")
			if w.Code != 200 || decodeBatch(t, w.Body).Status != string(status) {
				t.Fatalf("status %d body %s", w.Code, w.Body)
			}
		})
	}
}

func TestCancellingAFinishedBatchIsA400(t *testing.T) {
	f := withKeys(newFake(t))
	f.CancelFn = func(context.Context, string, string) (domain.Batch, error) {
		return domain.Batch{}, &domain.Error{Code: domain.EConflict, Message: "Cannot cancel a batch with status 'completed'."}
	}
	w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/cancel", tenantKey, "")
	if w.Code != 400 || w.Header().Get("x-should-retry") != "false" {
		t.Fatalf("status %d, x-should-retry %q: want 400, false (the SDKs retry 409)", w.Code, w.Header().Get("x-should-retry"))
	}
	errorOf(t, w)
}

// Request ids arrive as output lines show them (or as uuids), reach the service as uuids, and
// come back in the output-line form with the service's outcome, in order.
func TestCancelRequestsAnswersTheServicesOutcomePerId(t *testing.T) {
	u1, u2 := uuid.NewString(), uuid.NewString()
	f := withKeys(newFake(t))
	f.CancelRequestsFn = func(_ context.Context, tenant, id string, ids []string) ([]domain.CancelOutcome, error) {
		if tenant != tenantID || id != aBatchID || !slices.Equal(ids, []string{u1, u2}) {
			t.Errorf("CancelRequests(%s, %s, %v)", tenant, id, ids)
		}
		return []domain.CancelOutcome{{RequestID: u1, Result: "canceled"}, {RequestID: u2, Result: "not_found"}}, nil
	}
	body := fmt.Sprintf(`{"request_ids":[%q,%q]}`, domain.OutputLineID(u1), u2)
	w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/requests/cancel", tenantKey, body)
	if w.Code != 200 {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
	var got struct {
		Object string `json:"object"`
		Data   []struct{ ID, Status string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "list" || len(got.Data) != 2 || got.Data[0].ID != domain.OutputLineID(u1) || got.Data[0].Status != "canceled" ||
		got.Data[1].ID != domain.OutputLineID(u2) || got.Data[1].Status != "not_found" {
		t.Errorf("answered %s", w.Body)
	}
}

func TestRequestIDsAreCheckedBeforeTheServiceIsAsked(t *testing.T) {
	for _, route := range []string{"/requests/cancel", "/retry-requests"} {
		for name, body := range map[string]string{"none": `{"request_ids":[]}`, "malformed": `{"request_ids":["batch_req_x"]}`} {
			t.Run(route+" "+name, func(t *testing.T) {
				// CancelRequests and Retry are unset.
				w := call(t, newAPI(withKeys(newFake(t))), "POST", "/v1/batches/"+aBatchID+route, tenantKey, body)
				if w.Code != 400 || string(errorOf(t, w).Error.Param) != `"request_ids"` {
					t.Fatalf("status %d body %s: want 400 on request_ids", w.Code, w.Body)
				}
			})
		}
	}
}

// POST /retry retries every failed request (nil ids), POST /retry-requests the listed ones.
func TestRetryRoutesHandTheServiceTheirRequests(t *testing.T) {
	u := uuid.NewString()
	cases := []struct {
		route, body string
		ids         []string
	}{
		{"/retry", "", nil},
		{"/retry-requests", fmt.Sprintf(`{"request_ids":[%q]}`, domain.OutputLineID(u)), []string{u}},
	}
	for _, c := range cases {
		t.Run(c.route, func(t *testing.T) {
			f := withKeys(newFake(t))
			f.RetryFn = func(_ context.Context, tenant, id string, ids []string) (domain.Batch, error) {
				if tenant != tenantID || id != aBatchID || !slices.Equal(ids, c.ids) || (ids == nil) != (c.ids == nil) {
					t.Errorf("Retry(%s, %s, %v)", tenant, id, ids)
				}
				return domain.Batch{ID: aBatchID, TenantID: tenantID, Status: domain.BatchInProgress}, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+c.route, tenantKey, c.body)
			if w.Code != 200 || decodeBatch(t, w.Body).Status != "in_progress" {
				t.Fatalf("status %d body %s", w.Code, w.Body)
			}
		})
	}
}

func TestDeleteRoutesAnswerTheDeletedObject(t *testing.T) {
	f := withKeys(newFake(t))
	f.DeleteFn = func(_ context.Context, tenant, id string) error {
		if tenant != tenantID || id != aBatchID {
			t.Errorf("Delete(%s, %s)", tenant, id)
		}
		return nil
	}
	f.DeleteFileFn = func(_ context.Context, tenant, id string) error {
		if tenant != tenantID || id != aFileID {
			t.Errorf("DeleteFile(%s, %s)", tenant, id)
		}
		return nil
	}
	h := newAPI(f)
	for path, object := range map[string]string{"/v1/batches/" + aBatchID: "batch.deleted", "/v1/files/" + aFileID: "file"} {
		w := call(t, h, "DELETE", path, tenantKey, "")
		var got struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Deleted bool   `json:"deleted"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil || !strings.HasSuffix(path, got.ID) ||
			got.Object != object || !got.Deleted {
			t.Errorf("DELETE %s: status %d body %s", path, w.Code, w.Body)
		}
	}
}
