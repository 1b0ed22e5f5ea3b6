package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi/openapitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadyIs503WithRetryAfterWhenTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.PingFn = func(context.Context) error { return errors.New("dial tcp 10.0.0.5:5432: connection refused") }
	w := call(t, newAPI(f), "GET", "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, w.Code, "body %s", w.Body)
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	require.Equal(t, "true", w.Header().Get("x-should-retry"))
	e := errorOf(t, w)
	assert.Equal(t, `"database_unreachable"`, string(e.Error.Code))
	assert.NotContains(t, w.Body.String(), "10.0.0.5", "the dial error leaks")
	f.PingFn = func(context.Context) error { return nil }
	w = call(t, newAPI(f), "GET", "/readyz", "", "")
	assert.Equal(t, 200, w.Code, "status with the database up")
}

// readyAnswer is the /readyz body: each check's status, and the error envelope when one failed.
type readyAnswer struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string `json:"status"`
	} `json:"checks"`
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// GET /readyz checks the database and the work queue at once and lists both: 200 when both
// answer, otherwise 503 naming the first that failed in the code and each one's status.
func TestReadyListsEachCheckAndNamesTheOneThatFailed(t *testing.T) {
	t.Parallel()
	down := errors.New("dial tcp 10.0.0.7:443: i/o timeout")
	for _, tc := range []struct {
		name            string
		dbDown, sqsDown bool
		status          int
		code, message   string
		checks          map[string]string
	}{
		{"both answer", false, false, 200, "", "", map[string]string{"database": "ok", "work_queue": "ok"}},
		{"database down", true, false, 503, "database_unreachable", "The database is unreachable.",
			map[string]string{"database": "unreachable", "work_queue": "ok"}},
		{"work queue down", false, true, 503, "work_queue_unreachable", "The work queue is unreachable.",
			map[string]string{"database": "ok", "work_queue": "unreachable"}},
		{"both down", true, true, 503, "database_unreachable", "The database and the work queue are unreachable.",
			map[string]string{"database": "unreachable", "work_queue": "unreachable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.PingFn = func(context.Context) error {
				if tc.dbDown {
					return down
				}
				return nil
			}
			f.ReachableFn = func(context.Context) error {
				if tc.sqsDown {
					return down
				}
				return nil
			}
			w := call(t, newAPI(f), "GET", "/readyz", "", "")
			require.Equal(t, tc.status, w.Code, "body %s", w.Body)
			assert.NotContains(t, w.Body.String(), "10.0.0.7", "the check's error leaks")
			spec, err := openapitest.Load()
			require.NoError(t, err)
			_, err = spec.Check("GET", "/readyz", w.Code, w.Header(), w.Body.Bytes())
			assert.NoError(t, err, "the answer is the document's")
			var got readyAnswer
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
			checks := map[string]string{}
			for k, v := range got.Checks {
				checks[k] = v.Status
			}
			assert.Equal(t, tc.checks, checks)
			if tc.status == 200 {
				assert.Equal(t, "ready", got.Status)
				assert.Nil(t, got.Error)
				return
			}
			assert.Equal(t, "unavailable", got.Status)
			require.NotNil(t, got.Error, "an OpenAI error envelope")
			require.NotNil(t, got.Error.Code)
			assert.Equal(t, tc.code, *got.Error.Code)
			assert.Equal(t, tc.message, got.Error.Message)
			assert.Equal(t, "server_error", got.Error.Type)
			assert.Equal(t, "1", w.Header().Get("Retry-After"))
		})
	}
}

// /healthz stays cheap: it answers without touching the database or the queue.
func TestHealthzChecksNoDependency(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.PingFn = func(context.Context) error { return errors.New("down") }
	f.ReachableFn = func(context.Context) error { return errors.New("down") }
	w := call(t, newAPI(f), "GET", "/healthz", "", "")
	assert.Equal(t, 200, w.Code, "body %s", w.Body)
}

// The cancel route hands the service the caller's tenant and the batch id, and answers the batch
// the service returns (sealing a cancelling batch is the service's part: package batches).
func TestCancelBatchAnswersTheBatchTheServiceCancelled(t *testing.T) {
	t.Parallel()
	for _, status := range []domain.BatchStatus{domain.BatchCancelling, domain.BatchCancelled} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			f.CancelFn = func(_ context.Context, tenant, id string) (domain.Batch, error) {
				assert.Equal(t, tenantID, tenant)
				assert.Equal(t, aBatchID, id)
				return domain.Batch{ID: aBatchID, Status: status, TenantID: tenantID}, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/cancel", tenantKey, "")
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			require.Equal(t, string(status), decodeBatch(t, w.Body).Status, "body %s", w.Body)
		})
	}
}

func TestCancellingAFinishedBatchIsA400(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.CancelFn = func(context.Context, string, string) (domain.Batch, error) {
		return domain.Batch{}, &domain.Error{Code: domain.EConflict, Message: "Cannot cancel a batch with status 'completed'."}
	}
	w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/cancel", tenantKey, "")
	require.Equal(t, 400, w.Code, "body %s (the SDKs retry 409)", w.Body)
	require.Equal(t, "false", w.Header().Get("x-should-retry"))
	errorOf(t, w)
}

// Request ids arrive as output lines show them (or as uuids), reach the service as uuids, and
// come back in the output-line form with the service's outcome, in order: each of the four.
func TestCancelRequestsAnswersTheServicesOutcomePerId(t *testing.T) {
	t.Parallel()
	u := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	results := []string{"canceled", "cancelling", "not_cancellable", domain.CancelNotFound}
	f := withKeys(newFake(t))
	f.CancelRequestsFn = func(_ context.Context, tenant, id string, ids []string) ([]domain.CancelOutcome, error) {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aBatchID, id)
		assert.Equal(t, u, ids)
		out := make([]domain.CancelOutcome, len(ids))
		for i, x := range ids {
			out[i] = domain.CancelOutcome{RequestID: x, Result: results[i]}
		}
		return out, nil
	}
	body := fmt.Sprintf(`{"request_ids":[%q,%q,%q,%q]}`, domain.OutputLineID(u[0]), u[1], domain.OutputLineID(u[2]), domain.OutputLineID(u[3]))
	w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+"/requests/cancel", tenantKey, body)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	var got struct {
		Object string `json:"object"`
		Data   []struct{ ID, Status string }
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.Equal(t, "list", got.Object, "answered %s", w.Body)
	want := make([]struct{ ID, Status string }, len(u))
	for i := range u {
		want[i].ID, want[i].Status = domain.OutputLineID(u[i]), results[i]
	}
	assert.Equal(t, want, got.Data, "answered %s", w.Body)
}

func TestRequestIDsAreCheckedBeforeTheServiceIsAsked(t *testing.T) {
	t.Parallel()
	for _, route := range []string{"/requests/cancel", "/retry-requests"} {
		for name, body := range map[string]string{"none": `{"request_ids":[]}`, "malformed": `{"request_ids":["batch_req_x"]}`} {
			t.Run(route+" "+name, func(t *testing.T) {
				t.Parallel()
				// CancelRequests and Retry are unset.
				w := call(t, newAPI(withKeys(newFake(t))), "POST", "/v1/batches/"+aBatchID+route, tenantKey, body)
				require.Equal(t, 400, w.Code, "body %s", w.Body)
				require.Equal(t, `"request_ids"`, string(errorOf(t, w).Error.Param), "want 400 on request_ids")
			})
		}
	}
}

// POST /retry retries every failed request (nil ids), POST /retry-requests the listed ones.
func TestRetryRoutesHandTheServiceTheirRequests(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
			f := withKeys(newFake(t))
			f.RetryFn = func(_ context.Context, tenant, id string, ids []string) (domain.Batch, error) {
				assert.Equal(t, tenantID, tenant)
				assert.Equal(t, aBatchID, id)
				assert.Equal(t, c.ids, ids) // nil (every failed request) stays nil
				return domain.Batch{ID: aBatchID, TenantID: tenantID, Status: domain.BatchInProgress}, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches/"+aBatchID+c.route, tenantKey, c.body)
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			require.Equal(t, "in_progress", decodeBatch(t, w.Body).Status, "body %s", w.Body)
		})
	}
}

func TestDeleteRoutesAnswerTheDeletedObject(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.DeleteFn = func(_ context.Context, tenant, id string) error {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aBatchID, id)
		return nil
	}
	f.DeleteFileFn = func(_ context.Context, tenant, id string) error {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aFileID, id)
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
		assert.Equal(t, 200, w.Code, "DELETE %s: body %s", path, w.Body)
		if assert.NoError(t, json.Unmarshal(w.Body.Bytes(), &got), "DELETE %s: body %s", path, w.Body) {
			assert.True(t, strings.HasSuffix(path, got.ID), "DELETE %s: id %q", path, got.ID)
			assert.Equal(t, object, got.Object, "DELETE %s", path)
			assert.True(t, got.Deleted, "DELETE %s: not deleted", path)
		}
	}
}
