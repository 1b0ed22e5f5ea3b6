package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/httpapi"
	"github.com/fusillade/fusillade/shared/httpapi/openapitest"
)

// The document's paths and methods are exactly routes(): no route undocumented, no documented
// route that does not exist.
func TestOpenAPIPathsAreTheRoutes(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	require.NoError(t, err)
	var routes []string
	for _, rt := range httpapi.Routes() {
		routes = append(routes, rt.Method+" "+rt.Pattern)
	}
	slices.Sort(routes)
	docOps := spec.Operations()
	for _, r := range routes {
		assert.Contains(t, docOps, r, "route %s is not in openapi.yaml", r)
	}
	for _, op := range docOps {
		assert.Contains(t, routes, op, "openapi.yaml has %s, which is no route", op)
	}
	require.Len(t, docOps, len(routes))
}

// Every route's access is the document's: public routes have no security, Anthropic's the bearer
// or the x-api-key scheme, the others the bearer scheme; every path wildcard is declared as a path parameter of its path.
func TestOpenAPISecurityAndPathParametersAreTheRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Security []map[string][]string `json:"security"`
		Paths    map[string]map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(httpapi.OpenAPI(), &doc))
	require.Equal(t, []map[string][]string{{"bearer": {}}}, doc.Security)
	type param struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	}
	type operation struct {
		Security   *[]map[string][]string `json:"security"`
		Parameters []param                `json:"parameters"`
	}
	wildcard := regexp.MustCompile(`\{([a-z_]+)\}`)
	for _, rt := range httpapi.Routes() {
		item := doc.Paths[rt.Pattern]
		require.NotNil(t, item, rt.Pattern)
		var op operation
		require.NoError(t, json.Unmarshal(item[strings.ToLower(rt.Method)], &op), "%s %s", rt.Method, rt.Pattern)
		switch {
		case rt.Public:
			assert.Equal(t, &[]map[string][]string{}, op.Security, "%s %s is public: security: []", rt.Method, rt.Pattern)
		case strings.HasPrefix(rt.Pattern, "/v1/messages/"):
			// Anthropic's routes take the key as x-api-key too.
			assert.Equal(t, &[]map[string][]string{{"bearer": {}}, {"xApiKey": {}}}, op.Security, "%s %s: bearer or x-api-key", rt.Method, rt.Pattern)
		default:
			assert.Nil(t, op.Security, "%s %s needs a key: the document's default security", rt.Method, rt.Pattern)
		}
		var shared []param
		if raw, ok := item["parameters"]; ok {
			require.NoError(t, json.Unmarshal(raw, &shared))
		}
		var names []string
		for _, p := range append(shared, op.Parameters...) {
			if p.Ref != "" {
				var c param
				name := strings.TrimPrefix(p.Ref, "#/components/parameters/")
				require.NoError(t, json.Unmarshal(component(t, "parameters", name), &c), p.Ref)
				p = c
			}
			if p.In == "path" {
				names = append(names, p.Name)
			}
		}
		var want []string
		for _, m := range wildcard.FindAllStringSubmatch(rt.Pattern, -1) {
			want = append(want, m[1])
		}
		assert.ElementsMatch(t, want, names, "path parameters of %s %s", rt.Method, rt.Pattern)
	}
}

func component(t *testing.T, kind, name string) json.RawMessage {
	t.Helper()
	var doc struct {
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	require.NoError(t, json.Unmarshal(httpapi.OpenAPI(), &doc))
	c, ok := doc.Components[kind][name]
	require.True(t, ok, "components/%s/%s", kind, name)
	return c
}

// Every schema of the document compiles as JSON Schema 2020-12 (which checks it against the
// meta-schema and resolves every $ref).
func TestOpenAPISchemasCompile(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	require.NoError(t, err)
	locs := spec.SchemaLocations()
	require.Greater(t, len(locs), 100)
	for _, loc := range locs {
		_, err := spec.Compile(loc)
		assert.NoError(t, err, loc)
	}
}

// GET /v1/openapi.json needs no key and serves the document.
func TestOpenAPIDocumentIsServedWithoutAKey(t *testing.T) {
	t.Parallel()
	w := call(t, newAPI(newFake(t)), "GET", "/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, string(httpapi.OpenAPI()), w.Body.String())
	var doc map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &doc))
	assert.Equal(t, "3.1.0", doc["openapi"])
}

// The check can fail: a File response that is valid against the document fails against a copy
// whose File schema requires a field the object does not have, or whose status enum lacks the
// response's status.
func TestAResponseFailsASchemaThatDisagreesWithIt(t *testing.T) {
	t.Parallel()
	f := withKeys(newFake(t))
	f.GetFileFn = func(_ context.Context, tenant, id string) (domain.File, error) {
		return domain.File{ID: id, TenantID: tenant, Filename: "in.jsonl", Purpose: domain.PurposeBatch, Bytes: 10,
			Status: domain.FileProcessed, CreatedAt: testNow, CreatedByKey: 1}, nil
	}
	w := call(t, newAPI(f), "GET", "/v1/files/"+aFileID, tenantKey, "")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	good, err := openapitest.Load()
	require.NoError(t, err)
	_, err = good.Check("GET", "/v1/files/"+aFileID, w.Code, w.Header(), w.Body.Bytes())
	require.NoError(t, err)

	for name, wrong := range map[string]string{
		"required field missing": `"required":["id","object","bytes","created_at","expires_at","filename","purpose","status","status_details","created_by_key","no_such_field"]`,
		"status not in the enum": `"status":{"enum":["uploaded","error"],"type":"string"}`,
	} {
		doc := string(httpapi.OpenAPI())
		var right string
		if strings.HasPrefix(wrong, `"required"`) {
			right = `"required":["id","object","bytes","created_at","expires_at","filename","purpose","status","status_details","created_by_key"]`
		} else {
			right = `"status":{"enum":["uploaded","processed","error"],"type":"string"}`
		}
		require.Equal(t, 1, strings.Count(doc, right), "%s: the document no longer has %s", name, right)
		bad, err := openapitest.Parse([]byte(strings.Replace(doc, right, wrong, 1)))
		require.NoError(t, err)
		_, err = bad.Check("GET", "/v1/files/"+aFileID, w.Code, w.Header(), w.Body.Bytes())
		assert.Error(t, err, name)
	}

	// A status the operation does not declare falls back to default, the error envelope, which a
	// File is not; a media type the response does not declare fails too.
	_, err = good.Check("GET", "/v1/files/"+aFileID, http.StatusCreated, w.Header(), w.Body.Bytes())
	assert.Error(t, err, "a File as a 201")
	_, err = good.Check("GET", "/v1/files/"+aFileID, w.Code, http.Header{"Content-Type": {"text/plain"}}, w.Body.Bytes())
	assert.Error(t, err, "a File as text/plain")
}

// An admin list with nothing in it answers "data": [], as OpenAI's lists do, not null.
func TestEmptyAdminListsAreEmptyArrays(t *testing.T) {
	t.Parallel()
	spec, err := openapitest.Load()
	require.NoError(t, err)
	f := withKeys(newFake(t))
	f.ListModelsFn = func(context.Context) ([]domain.Model, error) { return nil, nil }
	f.ListTenantsFn = func(context.Context) ([]domain.Tenant, error) { return nil, nil }
	f.ListWorkersFn = func(context.Context, domain.WorkerStatus, time.Time, time.Duration, int) ([]domain.WorkerRecord, error) {
		return nil, nil
	}
	f.ListAPIKeysFn = func(context.Context, string) ([]domain.APIKey, error) { return nil, nil }
	h := newAPI(f)
	for _, path := range []string{"/v1/admin/models", "/v1/admin/tenants", "/v1/admin/workers", "/v1/admin/tenants/" + tenantID + "/keys"} {
		w := call(t, h, "GET", path, adminKey, "")
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", path, w.Body)
		_, err := spec.Check("GET", path, w.Code, w.Header(), w.Body.Bytes())
		assert.NoError(t, err, path)
		assert.JSONEq(t, `{"object":"list","data":[]}`, w.Body.String(), path)
	}
}
