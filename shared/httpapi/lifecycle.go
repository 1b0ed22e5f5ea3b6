package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// Lifecycle is the store's part in cancelling, retrying and deleting.
type Lifecycle interface {
	CancelBatch(ctx context.Context, tenantID, batchID string, now time.Time) (domain.BatchStatus, error)
	CancelRequests(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) ([]domain.CancelOutcome, error)
	RetryFailed(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) (int, []string, error)
	DeleteBatch(ctx context.Context, tenantID, batchID string, now time.Time) error
	DeleteFile(ctx context.Context, tenantID, fileID string, now time.Time) ([]string, error)
	PendingByModelAndWindow(ctx context.Context, windows []time.Duration, now time.Time) (domain.WindowCounts, error)
}

// Engine lets the API start work and seal batches at once instead of waiting for a worker or the
// schedule: after a cancel with nothing in flight, and after a retry.
type Engine interface {
	TryFinalize(ctx context.Context, batchID string)
	Kick(ctx context.Context, models ...string) error
}

// cancelBatch handles POST /v1/batches/{id}/cancel (empty body, as the SDKs send it). Unstarted
// requests end at once; running upstream calls are aborted within a few seconds by their workers;
// a response that arrived before the abort is kept. The batch is cancelling until then, and
// cancelled once sealed.
func (s *server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	p, id := principal(r), r.PathValue("id")
	status, err := s.lifecycle.CancelBatch(r.Context(), p.TenantID, id, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	if status == domain.BatchCancelling {
		s.engine.TryFinalize(r.Context(), id)
	}
	s.writeBatch(w, r, id)
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

// cancelRequests handles POST /v1/batches/{id}/requests/cancel {"request_ids":[…]}.
func (s *server) cancelRequests(w http.ResponseWriter, r *http.Request) {
	p, id := principal(r), r.PathValue("id")
	var req requestIDs
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	ids, err := parseRequestIDs(req.RequestIDs)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if _, err := s.store.GetBatch(r.Context(), p.TenantID, id); err != nil {
		s.error(w, r, err)
		return
	}
	outcomes, err := s.lifecycle.CancelRequests(r.Context(), p.TenantID, id, ids, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	type result struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	found := map[string]string{}
	for _, o := range outcomes {
		found[o.RequestID] = o.Result
	}
	data := make([]result, len(ids))
	for i, u := range ids {
		st, ok := found[u]
		if !ok {
			st = "not_found"
		}
		data[i] = result{ID: domain.OutputLineID(u), Status: st}
	}
	s.engine.TryFinalize(r.Context(), id)
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// retryBatch handles POST /v1/batches/{id}/retry: every failed line runs again.
func (s *server) retryBatch(w http.ResponseWriter, r *http.Request) {
	s.retry(w, r, nil)
}

// retryRequests handles POST /v1/batches/{id}/retry-requests {"request_ids":[…]}.
func (s *server) retryRequests(w http.ResponseWriter, r *http.Request) {
	var req requestIDs
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	ids, err := parseRequestIDs(req.RequestIDs)
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.retry(w, r, ids)
}

func (s *server) retry(w http.ResponseWriter, r *http.Request, ids []string) {
	p, id := principal(r), r.PathValue("id")
	_, models, err := s.lifecycle.RetryFailed(r.Context(), p.TenantID, id, ids, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.engine.Kick(r.Context(), models...); err != nil {
		s.log.WarnContext(r.Context(), "kick after retry", "batch_id", id, "err", err) // the schedule covers it
	}
	s.writeBatch(w, r, id)
}

// deleteBatch handles DELETE /v1/batches/{id}: hidden at once, cancelled if running, purged later.
func (s *server) deleteBatch(w http.ResponseWriter, r *http.Request) {
	p, id := principal(r), r.PathValue("id")
	if err := s.lifecycle.DeleteBatch(r.Context(), p.TenantID, id, s.now()); err != nil {
		s.error(w, r, err)
		return
	}
	s.engine.TryFinalize(r.Context(), id)
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "batch.deleted", "deleted": true})
}

// deleteFile handles DELETE /v1/files/{id}: 200 with a JSON body (openai-go fails on 204).
func (s *server) deleteFile(w http.ResponseWriter, r *http.Request) {
	p, id := principal(r), r.PathValue("id")
	cancelling, err := s.lifecycle.DeleteFile(r.Context(), p.TenantID, id, s.now())
	if err != nil {
		s.error(w, r, err)
		return
	}
	for _, b := range cancelling {
		s.engine.TryFinalize(r.Context(), b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

func (s *server) writeBatch(w http.ResponseWriter, r *http.Request, id string) {
	b, err := s.store.GetBatch(r.Context(), principal(r).TenantID, id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toBatchObject(b))
}
