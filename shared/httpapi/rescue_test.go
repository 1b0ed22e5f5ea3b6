package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
)

func newRescueAPI(f *fake) http.Handler {
	return httpapi.New(httpapi.Config{CompletionWindows: []string{"24h", "48h"}}, httpapi.Deps{Store: f, Ingester: f, Batches: f, Engine: f,
		Now: func() time.Time { return testNow }})
}

// Extend checks its body and the window against the allow-list before the service sees it, then
// hands the service the caller's tenant, the batch and the window.
func TestExtendChecksTheWindowAndHandsItToTheService(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, param string }{
		{"no body", "", ""},
		{"no window", `{}`, "completion_window"},
		{"window not allowed", `{"completion_window":"72h"}`, "completion_window"},
		{"unknown field", `{"completion_window":"48h","expires_at":1}`, "expires_at"},
		{"wrong type", `{"completion_window":48}`, "completion_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := call(t, newRescueAPI(withKeys(newFake(t))), "POST", "/v1/batches/"+aBatchID+"/extend", tenantKey, tc.body)
			require.Equal(t, 400, w.Code, "body %s", w.Body)
			if tc.param != "" {
				require.JSONEq(t, `"`+tc.param+`"`, string(errorOf(t, w).Error.Param))
			}
		})
	}
	f := withKeys(newFake(t))
	f.ExtendFn = func(_ context.Context, tenant, id, window string) (domain.Batch, error) {
		assert.Equal(t, tenantID, tenant)
		assert.Equal(t, aBatchID, id)
		assert.Equal(t, "48h", window)
		return domain.Batch{ID: aBatchID, Status: domain.BatchInProgress, CompletionWindow: window, ExpiresAt: testNow.Add(47 * time.Hour)}, nil
	}
	w := call(t, newRescueAPI(f), "POST", "/v1/batches/"+aBatchID+"/extend", tenantKey, `{"completion_window":"48h"}`)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	var got struct {
		CompletionWindow string `json:"completion_window"`
		ExpiresAt        int64  `json:"expires_at"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	require.Equal(t, "48h", got.CompletionWindow)
	require.Equal(t, testNow.Add(47*time.Hour).Unix(), got.ExpiresAt)
}

// Rerun takes no body, an empty one, or a window and metadata; what it is given reaches the
// service with the caller's tenant and key, and the batch shows both links.
func TestRerunHandsTheServiceItsOptionsAndShowsTheLinks(t *testing.T) {
	t.Parallel()
	src := domain.NewBatchID()
	for _, tc := range []struct {
		name, body string
		want       batches.Rerun
	}{
		{"no body", "", batches.Rerun{TenantID: tenantID, CreatedByKey: 1, BatchID: src}},
		{"empty object", `{}`, batches.Rerun{TenantID: tenantID, CreatedByKey: 1, BatchID: src}},
		{"window and metadata", `{"completion_window":"48h","metadata":{"try":"2"}}`,
			batches.Rerun{TenantID: tenantID, CreatedByKey: 1, BatchID: src, CompletionWindow: "48h", Metadata: map[string]string{"try": "2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			f.RerunFn = func(_ context.Context, r batches.Rerun) (domain.Batch, error) {
				assert.Equal(t, tc.want, r)
				return domain.Batch{ID: aBatchID, Status: domain.BatchInProgress, RerunOf: src}, nil
			}
			w := call(t, newRescueAPI(f), "POST", "/v1/batches/"+src+"/rerun", tenantKey, tc.body)
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			var got struct {
				ID           string  `json:"id"`
				RerunOf      *string `json:"rerun_of"`
				RerunBatchID *string `json:"rerun_batch_id"`
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
			require.Equal(t, aBatchID, got.ID)
			require.NotNil(t, got.RerunOf)
			require.Equal(t, src, *got.RerunOf)
			require.Nil(t, got.RerunBatchID, "rerun_batch_id is null until this batch is rerun")
		})
	}
	for _, tc := range []struct{ name, body, param string }{
		{"window not allowed", `{"completion_window":"1h"}`, "completion_window"},
		{"too much metadata", `{"metadata":{"1":"","2":"","3":"","4":"","5":"","6":"","7":"","8":"","9":"","10":"","11":"","12":"","13":"","14":"","15":"","16":"","17":""}}`, "metadata"},
		{"unknown field", `{"lines":[1]}`, "lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := call(t, newRescueAPI(withKeys(newFake(t))), "POST", "/v1/batches/"+src+"/rerun", tenantKey, tc.body)
			require.Equal(t, 400, w.Code, "body %s", w.Body)
			require.JSONEq(t, `"`+tc.param+`"`, string(errorOf(t, w).Error.Param))
		})
	}
}
