package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// GET /v1/admin/pending passes its state and model filters to the store (repeated or
// comma-separated, all unfinished states and every model when absent); a state that is not
// unfinished, or an empty name, is a 400 naming the parameter and never reaches the store.
func TestPendingCountsFilterByStateAndModel(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	var got []domain.PendingFilter
	f.PendingByModelAndWindowFn = func(_ context.Context, windows []time.Duration, pf domain.PendingFilter, now time.Time) (domain.WindowCounts, error) {
		require.Equal(t, testNow, now)
		require.Equal(t, []time.Duration{time.Hour}, windows)
		got = append(got, pf)
		return domain.WindowCounts{"m": {3600: 2}}, nil
	}
	h := newAPI(f)
	for _, tt := range []struct {
		query string
		want  domain.PendingFilter
	}{
		{"", domain.PendingFilter{}},
		{"&state=pending", domain.PendingFilter{States: []domain.RequestState{domain.StatePending}}},
		{"&state=pending,claimed&state=processing&model=m&model=a/b,c", domain.PendingFilter{
			States: []domain.RequestState{domain.StatePending, domain.StateClaimed, domain.StateProcessing},
			Models: []string{"m", "a/b", "c"}}},
	} {
		got = nil
		w := call(t, h, "GET", "/v1/admin/pending?windows=1h"+tt.query, adminKey, "")
		require.Equal(t, http.StatusOK, w.Code, "%s: body %s", tt.query, w.Body)
		require.JSONEq(t, `{"object":"pending_counts","data":{"m":{"1h":2}}}`, w.Body.String())
		require.Equal(t, []domain.PendingFilter{tt.want}, got, tt.query)
	}
	got = nil
	for _, tt := range []struct{ query, param string }{
		{"state=completed", "state"},
		{"state=pending,bogus", "state"},
		{"state=", "state"},
		{"model=m,", "model"},
		{"model=", "model"},
	} {
		w := call(t, h, "GET", "/v1/admin/pending?windows=1h&"+tt.query, adminKey, "")
		require.Equal(t, http.StatusBadRequest, w.Code, "%s: body %s", tt.query, w.Body)
		require.JSONEq(t, `"`+tt.param+`"`, string(errorOf(t, w).Error.Param), tt.query)
	}
	require.Empty(t, got, "a bad filter never reaches the store")
}
