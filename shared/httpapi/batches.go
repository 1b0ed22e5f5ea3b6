package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
)

type createBatchRequest struct {
	InputFileID        string            `json:"input_file_id"`
	Endpoint           string            `json:"endpoint"`
	CompletionWindow   string            `json:"completion_window"`
	Metadata           map[string]string `json:"metadata"`
	OutputExpiresAfter *struct {
		Anchor  string `json:"anchor"`
		Seconds int64  `json:"seconds"`
	} `json:"output_expires_after"`
	// FailFastAfter (an extension) is the batch's fail-fast K: stop the batch when its first K
	// finished requests all failed with the same upstream 4xx status; 0 is off, absent the
	// deployment's FAIL_FAST_AFTER (default 20).
	FailFastAfter *int `json:"fail_fast_after,omitempty"`
	// Coalesce (an extension) turns request coalescing on or off for the batch: lines with the
	// same model, endpoint and body, here and in the tenant's other running coalescing batches,
	// are sent upstream once. Absent: the metadata key fusillade_coalesce ("true"/"false"), else
	// the tenant's default.
	Coalesce *bool `json:"coalesce,omitempty"`
	// ValidateOnly (an extension) checks the request and the stored file against this endpoint
	// and the models configured now, reports every bad line, and creates nothing.
	ValidateOnly bool `json:"validate_only,omitempty"`
}

func (s *server) validateBatchRequest(req createBatchRequest) error {
	switch {
	case req.InputFileID == "":
		return &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'input_file_id'.", Param: "input_file_id"}
	case !domain.IsFileID(req.InputFileID):
		return &domain.Error{Code: domain.EInvalid, Param: "input_file_id",
			Message: fmt.Sprintf("Invalid 'input_file_id': expected %s.", pathParams["files"].shape)}
	case req.Endpoint == "":
		return &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'endpoint'.", Param: "endpoint"}
	case !domain.ValidEndpoint(req.Endpoint):
		return errBadEndpoint(req.Endpoint)
	case req.CompletionWindow == "":
		return &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'completion_window'.", Param: "completion_window"}
	}
	if err := s.checkWindow(req.CompletionWindow); err != nil {
		return err
	}
	if k := req.FailFastAfter; k != nil && (*k < 0 || *k > domain.MaxFailFastAfter) {
		return &domain.Error{Code: domain.EInvalid, Param: "fail_fast_after",
			Message: fmt.Sprintf("Invalid 'fail_fast_after' %d: must be within 0..%d (0 turns the breaker off).", *k, domain.MaxFailFastAfter)}
	}
	return checkMetadata(req.Metadata)
}

// checkWindow checks a completion window against the allow-list (COMPLETION_WINDOWS).
func (s *server) checkWindow(window string) error {
	if !slices.Contains(s.cfg.CompletionWindows, window) {
		return &domain.Error{Code: domain.EInvalid, Param: "completion_window",
			Message: fmt.Sprintf("Invalid completion_window %q: must be one of %s.", window, strings.Join(s.cfg.CompletionWindows, ", "))}
	}
	return nil
}

// checkMetadata applies OpenAI's metadata limits: at most 16 keys, keys up to 64 characters,
// values up to 512.
func checkMetadata(m map[string]string) error {
	if len(m) > 16 {
		return &domain.Error{Code: domain.EInvalid, Message: "metadata may have at most 16 keys.", Param: "metadata"}
	}
	for k, v := range m {
		if utf8.RuneCountInString(k) > 64 {
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("metadata key %q is longer than 64 characters.", k), Param: "metadata"}
		}
		if utf8.RuneCountInString(v) > 512 {
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("metadata value of %q is longer than 512 characters.", k), Param: "metadata"}
		}
	}
	return nil
}

// createBatch is POST /v1/batches: the request is checked here and created by the batch service
// (validating; populate expands its file), or with validate_only checked against its file.
func (s *server) createBatch(w http.ResponseWriter, r *http.Request) {
	var req createBatchRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.validateBatchRequest(req); err != nil {
		s.error(w, r, err)
		return
	}
	got, err := s.batches.Create(r.Context(), batches.Create{TenantID: principal(r).TenantID, CreatedByKey: principal(r).KeyID, InputFileID: req.InputFileID,
		Endpoint: req.Endpoint, CompletionWindow: req.CompletionWindow, Metadata: req.Metadata, ValidateOnly: req.ValidateOnly,
		FailFastAfter: req.FailFastAfter, Coalesce: req.Coalesce,
		Idempotency: idempotencyKey(r, idempotency.RouteCreateBatch, canonicalJSON(req))})
	switch {
	case err != nil:
		s.error(w, r, err)
	case got.Report != nil:
		writeJSON(w, http.StatusOK, toReport(got.File, req.Endpoint, *got.Report))
	default:
		writeJSON(w, http.StatusOK, toBatchObject(got.Batch))
	}
}

func (s *server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.store.ViewBatch(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withProgress(r, []domain.Batch{b})[0])
}

// withProgress renders batches as the GET routes show them: with the progress extensions of the
// running ones, from their oldest progress sample within domain.ProgressWindow. The estimate is
// advisory: when the samples cannot be read the fields stay null and the batches are still
// answered.
func (s *server) withProgress(r *http.Request, bs []domain.Batch) []batchObject {
	out := make([]batchObject, len(bs))
	var running []string
	for i, b := range bs {
		out[i] = toBatchObject(b)
		if b.Status == domain.BatchInProgress {
			running = append(running, b.ID)
		}
	}
	if len(running) == 0 {
		return out
	}
	now := s.now()
	samples, err := s.store.ProgressSince(r.Context(), running, now.Add(-domain.ProgressWindow))
	if err != nil {
		s.log.WarnContext(r.Context(), "progress samples", "err", err)
		return out
	}
	for i, b := range bs {
		var since *domain.ProgressSample
		if p, ok := samples[b.ID]; ok {
			since = &p
		}
		p, ok := domain.EstimateProgress(b, since, now)
		if !ok {
			continue
		}
		perMinute, atRisk := p.PerMinute, p.AtRisk
		out[i].ThroughputPerMinute, out[i].DeadlineAtRisk = &perMinute, &atRisk
		out[i].EstimatedCompletionAt = unixPtr(p.EstimatedCompletion)
	}
	return out
}

// batchStatuses are the values of the status filter of GET /v1/batches: every batch status.
var batchStatuses = func() []string {
	s := make([]string, len(domain.BatchStatuses))
	for i, st := range domain.BatchStatuses {
		s[i] = string(st)
	}
	return s
}()

// listBatches is GET /v1/batches: after (a batch id) and limit (1..100, default 20) as OpenAI
// defines them, newest first, plus filters: status (comma-separated), search (a substring of the
// id, the metadata or the input filename), created_after and created_before (unix seconds),
// active_first (unfinished batches first), created_by_key (API key ids, repeated or
// comma-separated: batches created by any of them) and input_file_id (the batches made from one
// file).
func (s *server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	p := domain.BatchListParams{After: q.str("after"), Limit: q.int("limit", 20, 1, 100), Search: q.str("search"),
		CreatedAfter: q.unix("created_after"), CreatedBefore: q.unix("created_before"), ActiveFirst: q.bool("active_first"),
		CreatedByKeys: q.keyIDs("created_by_key"), InputFileID: q.str("input_file_id")}
	if p.InputFileID != "" && !domain.IsFileID(p.InputFileID) {
		q.fail("input_file_id", "Invalid 'input_file_id': expected a file id, got %q.", p.InputFileID)
	}
	if v := q.str("status"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(batchStatuses, st) {
				q.fail("status", "Invalid 'status' %q: expected one of %s.", st, strings.Join(batchStatuses, ", "))
				break
			}
			p.Statuses = append(p.Statuses, st)
		}
	}
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	bs, more, err := s.store.ListBatches(r.Context(), principal(r).TenantID, p)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newList(s.withProgress(r, bs), more, func(b batchObject) string { return b.ID }))
}

// extendBatch is POST /v1/batches/{id}/extend {"completion_window": "48h"}: a running batch's
// deadline moves to its creation time plus the new window, one of COMPLETION_WINDOWS and later
// than the current deadline.
func (s *server) extendBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CompletionWindow string `json:"completion_window"`
	}
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.CompletionWindow == "" {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'completion_window'.", Param: "completion_window"})
		return
	}
	if err := s.checkWindow(req.CompletionWindow); err != nil {
		s.error(w, r, err)
		return
	}
	b, err := s.batches.Extend(r.Context(), principal(r).TenantID, r.PathValue("id"), req.CompletionWindow)
	s.writeBatch(w, r, b, err)
}

// rerunBatch is POST /v1/batches/{id}/rerun with an optional body {"completion_window": …,
// "metadata": {…}}: a new batch runs the lines of the ended batch that did not complete, and is
// answered; a batch rerun before answers that rerun.
func (s *server) rerunBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if err := decodeOptionalJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.CompletionWindow != "" {
		if err := s.checkWindow(req.CompletionWindow); err != nil {
			s.error(w, r, err)
			return
		}
	}
	if err := checkMetadata(req.Metadata); err != nil {
		s.error(w, r, err)
		return
	}
	b, err := s.batches.Rerun(r.Context(), batches.Rerun{TenantID: principal(r).TenantID, CreatedByKey: principal(r).KeyID,
		BatchID: r.PathValue("id"), CompletionWindow: req.CompletionWindow, Metadata: req.Metadata})
	s.writeBatch(w, r, b, err)
}
