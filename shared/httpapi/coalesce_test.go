package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
)

func TestCreateBatchHandsTheServiceTheCoalesceField(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		extra string
		want  *bool
	}{
		"absent": {"", nil},
		"on":     {`,"coalesce":true`, ptrTo(true)},
		"off":    {`,"coalesce":false`, ptrTo(false)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := withKeys(newFake(t))
			f.CreateFn = func(_ context.Context, c batches.Create) (batches.Created, error) {
				assert.Equal(t, tc.want, c.Coalesce)
				on := true
				return batches.Created{Batch: domain.Batch{ID: domain.NewBatchID(), TenantID: tenantID, InputFileID: aFileID,
					Status: domain.BatchValidating, CreatedAt: testNow, ExpiresAt: testNow.Add(24 * time.Hour), Coalesce: &on}}, nil
			}
			w := call(t, newAPI(f), "POST", "/v1/batches", tenantKey, strings.TrimSuffix(validBatch, "}")+tc.extra+"}")
			require.Equal(t, 200, w.Code, "body %s", w.Body)
			var got map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
			assert.Equal(t, true, got["coalesce"])
			assert.InDelta(t, 0, got["coalesced_count"], 0)
			assert.InDelta(t, 0, got["cached_count"], 0)
		})
	}
}

func TestBatchObjectShowsCoalescedAndCachedCounts(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	on := true
	f.ViewBatchFn = func(_ context.Context, _, id string) (domain.Batch, error) {
		return domain.Batch{ID: id, TenantID: tenantID, InputFileID: aFileID, Status: domain.BatchCompleted, CreatedAt: testNow,
			ExpiresAt: testNow.Add(time.Hour), Counts: domain.Counts{Total: 10, Completed: 10}, Coalesce: &on, Coalesced: 3, Cached: 2}, nil
	}
	w := call(t, newAPI(f), "GET", "/v1/batches/"+domain.NewBatchID(), tenantKey, "")
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	var got struct {
		Coalesce       bool           `json:"coalesce"`
		CoalescedCount int            `json:"coalesced_count"`
		CachedCount    int            `json:"cached_count"`
		RequestCounts  map[string]int `json:"request_counts"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.True(t, got.Coalesce)
	assert.Equal(t, 3, got.CoalescedCount)
	assert.Equal(t, 2, got.CachedCount)
	assert.Equal(t, map[string]int{"total": 10, "completed": 10, "failed": 0}, got.RequestCounts, "request_counts stays OpenAI's")
}

func TestAdminSetsATenantsCoalesceDefault(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.CreateTenantFn = func(_ context.Context, name string, coalesceDefault bool, now time.Time) (domain.Tenant, error) {
		return domain.Tenant{ID: tenantID, Name: name, CreatedAt: now, CoalesceDefault: coalesceDefault}, nil
	}
	f.SetTenantCoalesceDefaultFn = func(_ context.Context, id string, on bool) (domain.Tenant, error) {
		return domain.Tenant{ID: id, Name: "t", CreatedAt: testNow, CoalesceDefault: on}, nil
	}
	h := newAPI(f)
	w := call(t, h, "POST", "/v1/admin/tenants", adminKey, `{"name":"t","coalesce_default":true}`)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	require.Contains(t, w.Body.String(), `"coalesce_default":true`)
	w = call(t, h, "POST", "/v1/admin/tenants/"+tenantID, adminKey, `{"coalesce_default":true}`)
	require.Equal(t, 200, w.Code, "body %s", w.Body)
	require.Contains(t, w.Body.String(), `"coalesce_default":true`)
	w = call(t, h, "POST", "/v1/admin/tenants/"+tenantID, adminKey, `{}`)
	require.Equal(t, 400, w.Code, "body %s", w.Body)
	require.Contains(t, w.Body.String(), "coalesce_default")
	w = call(t, h, "POST", "/v1/admin/tenants/"+tenantID, tenantKey, `{"coalesce_default":true}`)
	require.Equal(t, 404, w.Code, "a tenant's key does not see admin routes: body %s", w.Body)
}

func ptrTo[T any](v T) *T { return &v }
