package httpapi

import "net/http"

type access int

const (
	accessPublic access = iota // no key (health checks only)
	accessTenant               // any valid key
	accessAdmin                // an admin key
)

type route struct {
	method  string
	pattern string
	access  access
	handler http.Handler
}

// routes is the whole API surface. Tests enumerate it to prove every route is authenticated.
func (s *server) routes() []route {
	return []route{
		{"GET", "/healthz", accessPublic, http.HandlerFunc(s.health)},

		{"POST", "/v1/files", accessTenant, http.HandlerFunc(s.createFile)},
		{"GET", "/v1/files/{id}", accessTenant, http.HandlerFunc(s.getFile)},
		{"GET", "/v1/files/{id}/content", accessTenant, http.HandlerFunc(s.fileContent)},

		{"POST", "/v1/batches", accessTenant, http.HandlerFunc(s.createBatch)},
		{"GET", "/v1/batches/{id}", accessTenant, http.HandlerFunc(s.getBatch)},

		{"GET", "/v1/admin/models", accessAdmin, http.HandlerFunc(s.listModels)},
		{"PUT", "/v1/admin/models/{name}", accessAdmin, http.HandlerFunc(s.putModel)},
		{"GET", "/v1/admin/workers", accessAdmin, http.HandlerFunc(s.listWorkers)},
	}
}

// Routes lists "METHOD pattern" of every route and whether it needs a key, for tests.
func Routes() []struct {
	Method, Pattern string
	Public, Admin   bool
} {
	var out []struct {
		Method, Pattern string
		Public, Admin   bool
	}
	for _, r := range (&server{}).routes() {
		out = append(out, struct {
			Method, Pattern string
			Public, Admin   bool
		}{r.method, r.pattern, r.access == accessPublic, r.access == accessAdmin})
	}
	return out
}
