package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
)

func TestRequestsWithoutAValidKeyAre401InTheOpenAIEnvelope(t *testing.T) {
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
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401; body %s", w.Code, w.Body)
			}
			e := errorOf(t, w)
			if e.Error.Type != "invalid_request_error" || string(e.Error.Code) != `"invalid_api_key"` || string(e.Error.Param) != "null" {
				t.Errorf("envelope = %+v, want type invalid_request_error, code invalid_api_key, param null", e.Error)
			}
			if asked != c.asksStore {
				t.Errorf("store asked = %v, want %v", asked, c.asksStore)
			}
		})
	}
}

// wildcard matches a path wildcard of a route pattern.
var wildcard = regexp.MustCompile(`\{[a-z_]+\}`)

func TestEveryNonPublicRouteRequiresAKey(t *testing.T) {
	h := newAPI(newFake(t)) // nothing set: any store call fails the test
	for _, rt := range httpapi.Routes() {
		if rt.Public {
			continue
		}
		path := wildcard.ReplaceAllString(rt.Pattern, "x")
		w := call(t, h, rt.Method, path, "", "")
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a key: status %d, want 401", rt.Method, path, w.Code)
		}
	}
}

// A tenant key on an admin route gets the answer of a route that does not exist (404, not 403),
// so that tenants cannot map the admin surface.
func TestAdminRoutesLookMissingToATenantKey(t *testing.T) {
	h := newAPI(withKeys(newFake(t)))
	n := 0
	for _, rt := range httpapi.Routes() {
		if !rt.Admin {
			continue
		}
		n++
		path := wildcard.ReplaceAllString(rt.Pattern, "x")
		w := call(t, h, rt.Method, path, tenantKey, "")
		if w.Code != http.StatusNotFound {
			t.Errorf("%s %s with a tenant key: status %d, want 404", rt.Method, path, w.Code)
			continue
		}
		e := errorOf(t, w)
		unknown := call(t, h, rt.Method, "/v1/admin/no-such-thing", tenantKey, "")
		if want := errorOf(t, unknown).Error.Message; e.Error.Message != "Unknown request URL: "+rt.Method+" "+path+"." ||
			want != "Unknown request URL: "+rt.Method+" /v1/admin/no-such-thing." {
			t.Errorf("%s %s: message %q does not read as an unknown URL", rt.Method, path, e.Error.Message)
		}
	}
	if n == 0 {
		t.Fatal("no admin routes")
	}
}

func TestAnAdminKeyReachesAnAdminRoute(t *testing.T) {
	f := withKeys(newFake(t))
	f.ListModelsFn = func(context.Context) ([]domain.Model, error) {
		return []domain.Model{{Name: "m", ConcurrencyLimit: 1}}, nil
	}
	w := call(t, newAPI(f), "GET", "/v1/admin/models", adminKey, "")
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
}
