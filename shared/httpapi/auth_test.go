package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestsWithoutAValidKeyAre401InTheOpenAIEnvelope(t *testing.T) {
	t.Parallel()
	revoked := "sk-revoked"
	cases := []struct {
		name, header string
		asksStore    bool
	}{
		{"no Authorization header", "", false},
		{"not a bearer key", "Basic dXNlcjpwYXNz", false},
		{"empty bearer key", "Bearer   ", false},
		{"unknown key", "Bearer sk-nobody", true},
		{"revoked key", "Bearer " + revoked, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			asked := false
			if c.asksStore {
				f.AuthenticateFn = func(_ context.Context, key string) (domain.Principal, error) {
					asked = true
					// The store answers a revoked key exactly as an unknown one.
					return domain.Principal{}, &domain.Error{Code: domain.EUnauthorized, Message: "Incorrect API key provided."}
				}
			}
			// ListBatches is unset: reaching the handler fails the test.
			h := newAPI(f)
			w := call(t, h, "GET", "/v1/batches", "", "", "Authorization", c.header)
			require.Equal(t, http.StatusUnauthorized, w.Code, "body %s", w.Body)
			e := errorOf(t, w)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			assert.Equal(t, `"invalid_api_key"`, string(e.Error.Code))
			assert.Equal(t, "null", string(e.Error.Param))
			assert.Equal(t, c.asksStore, asked, "store asked")
		})
	}
}

// wildcard matches a path wildcard of a route pattern.
var wildcard = regexp.MustCompile(`\{[a-z_]+\}`)

func TestEveryNonPublicRouteRequiresAKey(t *testing.T) {
	t.Parallel()
	h := newAPI(newFake(t)) // nothing set: any store call fails the test
	for _, rt := range httpapi.Routes() {
		if rt.Public {
			continue
		}
		path := wildcard.ReplaceAllString(rt.Pattern, "x")
		w := call(t, h, rt.Method, path, "", "")
		assert.Equal(t, http.StatusUnauthorized, w.Code, "%s %s without a key", rt.Method, path)
	}
}

// A tenant key on an admin route gets the answer of a route that does not exist (404, not 403),
// so that tenants cannot map the admin surface.
func TestAdminRoutesLookMissingToATenantKey(t *testing.T) {
	t.Parallel()
	h := newAPI(withKeys(newFake(t)))
	n := 0
	for _, rt := range httpapi.Routes() {
		if !rt.Admin {
			continue
		}
		n++
		path := wildcard.ReplaceAllString(rt.Pattern, "x")
		w := call(t, h, rt.Method, path, tenantKey, "")
		if !assert.Equal(t, http.StatusNotFound, w.Code, "%s %s with a tenant key", rt.Method, path) {
			continue
		}
		e := errorOf(t, w)
		unknown := call(t, h, rt.Method, "/v1/admin/no-such-thing", tenantKey, "")
		want := errorOf(t, unknown).Error.Message
		assert.Equal(t, "Unknown request URL: "+rt.Method+" "+path+".", e.Error.Message, "%s %s: not an unknown URL's message", rt.Method, path)
		assert.Equal(t, "Unknown request URL: "+rt.Method+" /v1/admin/no-such-thing.", want, "%s %s: not an unknown URL's message", rt.Method, path)
	}
	require.NotZero(t, n, "no admin routes")
}

func TestAnAdminKeyReachesAnAdminRoute(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.ListModelsFn = func(context.Context) ([]domain.Model, error) {
		return []domain.Model{{Name: "m", ConcurrencyLimit: 1}}, nil
	}
	w := call(t, newAPI(f), "GET", "/v1/admin/models", adminKey, "")
	require.Equal(t, http.StatusOK, w.Code, "body %s", w.Body)
}
