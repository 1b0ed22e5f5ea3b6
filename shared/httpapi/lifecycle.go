package httpapi

import (
	"fmt"
	"net/http"

	"github.com/fusillade/fusillade/shared/domain"
)

// cancelBatch handles POST /v1/batches/{id}/cancel (empty body, as the SDKs send it). The batch
// is cancelling until its running requests are aborted, and cancelled once sealed (package
// batches).
func (s *server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.batches.Cancel(r.Context(), principal(r).TenantID, r.PathValue("id"))
	s.writeBatch(w, r, b, err)
}

type requestIDs struct {
	RequestIDs []string `json:"request_ids"`
}

// parseRequestIDs accepts the ids shown in output lines ("batch_req_<32 hex>") or plain uuids.
func parseRequestIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, &domain.Error{Code: domain.EInvalid, Message: "request_ids must list at least one request id.", Param: "request_ids"}
	}
	if len(ids) > 10000 {
		return nil, &domain.Error{Code: domain.EInvalid, Message: "request_ids may list at most 10000 ids.", Param: "request_ids"}
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		u, ok := domain.ParseRequestID(id)
		if !ok {
			return nil, &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("Invalid request id %q.", id), Param: "request_ids"}
		}
		out[i] = u
	}
	return out, nil
}

// decodeRequestIDs reads a {"request_ids":[…]} body into uuids.
func decodeRequestIDs(r *http.Request) ([]string, error) {
	var req requestIDs
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	return parseRequestIDs(req.RequestIDs)
}

// cancelRequests handles POST /v1/batches/{id}/requests/cancel {"request_ids":[…]}: one result
// per id, in their order.
func (s *server) cancelRequests(w http.ResponseWriter, r *http.Request) {
	ids, err := decodeRequestIDs(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	outcomes, err := s.batches.CancelRequests(r.Context(), principal(r).TenantID, r.PathValue("id"), ids)
	if err != nil {
		s.error(w, r, err)
		return
	}
	type result struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	data := make([]result, len(outcomes))
	for i, o := range outcomes {
		data[i] = result{ID: domain.OutputLineID(o.RequestID), Status: o.Result}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// retryBatch handles POST /v1/batches/{id}/retry: every failed line runs again.
func (s *server) retryBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.batches.Retry(r.Context(), principal(r).TenantID, r.PathValue("id"), nil)
	s.writeBatch(w, r, b, err)
}

// retryRequests handles POST /v1/batches/{id}/retry-requests {"request_ids":[…]}.
func (s *server) retryRequests(w http.ResponseWriter, r *http.Request) {
	ids, err := decodeRequestIDs(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	b, err := s.batches.Retry(r.Context(), principal(r).TenantID, r.PathValue("id"), ids)
	s.writeBatch(w, r, b, err)
}

// deleteBatch handles DELETE /v1/batches/{id}: hidden at once, cancelled if running, purged later.
func (s *server) deleteBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.batches.Delete(r.Context(), principal(r).TenantID, id); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "batch.deleted", "deleted": true})
}

// deleteFile handles DELETE /v1/files/{id}: 200 with a JSON body (openai-go fails on 204).
func (s *server) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.batches.DeleteFile(r.Context(), principal(r).TenantID, id); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

// writeBatch answers a use case that returns the batch.
func (s *server) writeBatch(w http.ResponseWriter, r *http.Request, b domain.Batch, err error) {
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toBatchObject(b))
}
