package httpapi

import (
	"net/http"

	"github.com/fusillade/fusillade/shared/dashboard"
)

type access int

const (
	accessPublic access = iota // no key (health checks, the OpenAPI document, the dashboard's static assets)
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
		{"GET", "/readyz", accessPublic, http.HandlerFunc(s.ready)},
		{"GET", "/v1/openapi.json", accessPublic, http.HandlerFunc(s.openAPI)},
		// The dashboard's static assets (package dashboard), a subtree: its pages call the routes
		// below with the signed-in key. GET /ui answers a redirect here (net/http's for a subtree).
		{"GET", dashboard.Prefix, accessPublic, dashboard.Handler(http.HandlerFunc(s.unknownRoute))},

		{"POST", "/v1/files", accessTenant, http.HandlerFunc(s.createFile)},
		{"GET", "/v1/files", accessTenant, http.HandlerFunc(s.listFiles)},
		{"GET", "/v1/files/{id}", accessTenant, http.HandlerFunc(s.getFile)},
		{"GET", "/v1/files/{id}/content", accessTenant, http.HandlerFunc(s.fileContent)},
		{"POST", "/v1/files/{id}/complete", accessTenant, http.HandlerFunc(s.completeFile)},
		{"POST", "/v1/files/{id}/validate", accessTenant, http.HandlerFunc(s.validateFile)},
		{"GET", "/v1/files/{id}/cost-estimate", accessTenant, http.HandlerFunc(s.costEstimate)},

		{"POST", "/v1/uploads", accessTenant, http.HandlerFunc(s.createUpload)},
		{"POST", "/v1/uploads/{id}/parts", accessTenant, http.HandlerFunc(s.addUploadPart)},
		{"POST", "/v1/uploads/{id}/complete", accessTenant, http.HandlerFunc(s.completeUpload)},
		{"POST", "/v1/uploads/{id}/cancel", accessTenant, http.HandlerFunc(s.cancelUpload)},

		{"POST", "/v1/batches", accessTenant, http.HandlerFunc(s.createBatch)},
		{"GET", "/v1/batches", accessTenant, http.HandlerFunc(s.listBatches)},
		{"GET", "/v1/batches/{id}", accessTenant, http.HandlerFunc(s.getBatch)},
		{"GET", "/v1/batches/{id}/results", accessTenant, http.HandlerFunc(s.batchResults)},
		{"GET", "/v1/batches/{id}/timeline", accessTenant, http.HandlerFunc(s.batchTimeline)},
		{"POST", "/v1/batches/{id}/cancel", accessTenant, http.HandlerFunc(s.cancelBatch)},
		{"POST", "/v1/batches/{id}/requests/cancel", accessTenant, http.HandlerFunc(s.cancelRequests)},
		{"POST", "/v1/batches/{id}/retry", accessTenant, http.HandlerFunc(s.retryBatch)},
		{"POST", "/v1/batches/{id}/retry-requests", accessTenant, http.HandlerFunc(s.retryRequests)},
		{"POST", "/v1/batches/{id}/extend", accessTenant, http.HandlerFunc(s.extendBatch)},
		{"POST", "/v1/batches/{id}/rerun", accessTenant, http.HandlerFunc(s.rerunBatch)},
		{"DELETE", "/v1/batches/{id}", accessTenant, http.HandlerFunc(s.deleteBatch)},
		{"DELETE", "/v1/files/{id}", accessTenant, http.HandlerFunc(s.deleteFile)},

		// Anthropic's Message Batches API (messages.go).
		{"POST", "/v1/messages/batches", accessTenant, http.HandlerFunc(s.createMessageBatch)},
		{"GET", "/v1/messages/batches", accessTenant, http.HandlerFunc(s.listMessageBatches)},
		{"GET", "/v1/messages/batches/{id}", accessTenant, http.HandlerFunc(s.getMessageBatch)},
		{"GET", "/v1/messages/batches/{id}/results", accessTenant, http.HandlerFunc(s.messageBatchResults)},
		{"POST", "/v1/messages/batches/{id}/cancel", accessTenant, http.HandlerFunc(s.cancelMessageBatch)},
		{"DELETE", "/v1/messages/batches/{id}", accessTenant, http.HandlerFunc(s.deleteMessageBatch)},

		{"POST", "/v1/webhooks", accessTenant, http.HandlerFunc(s.createWebhook)},
		{"GET", "/v1/webhooks", accessTenant, http.HandlerFunc(s.listWebhooks)},
		{"DELETE", "/v1/webhooks/{id}", accessTenant, http.HandlerFunc(s.deleteWebhook)},
		{"GET", "/v1/webhooks/{id}/deliveries", accessTenant, http.HandlerFunc(s.listWebhookDeliveries)},

		{"GET", "/v1/admin/models", accessAdmin, http.HandlerFunc(s.listModels)},
		{"PUT", "/v1/admin/models/{name}", accessAdmin, http.HandlerFunc(s.putModel)},
		{"DELETE", "/v1/admin/models/{name}", accessAdmin, http.HandlerFunc(s.deleteModel)},
		{"GET", "/v1/admin/tenants", accessAdmin, http.HandlerFunc(s.listTenants)},
		{"POST", "/v1/admin/tenants", accessAdmin, http.HandlerFunc(s.createTenant)},
		{"POST", "/v1/admin/tenants/{id}", accessAdmin, http.HandlerFunc(s.updateTenant)},
		{"GET", "/v1/admin/tenants/{id}/keys", accessAdmin, http.HandlerFunc(s.listKeys)},
		{"POST", "/v1/admin/tenants/{id}/keys", accessAdmin, http.HandlerFunc(s.createKey)},
		{"DELETE", "/v1/admin/keys/{id}", accessAdmin, http.HandlerFunc(s.revokeKey)},
		{"GET", "/v1/admin/workers", accessAdmin, http.HandlerFunc(s.listWorkers)},
		{"GET", "/v1/admin/pending", accessAdmin, http.HandlerFunc(s.pendingCounts)},
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
