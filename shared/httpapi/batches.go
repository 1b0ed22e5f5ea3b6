package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fusillade/fusillade/shared/domain"
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
	case !slices.Contains(s.cfg.CompletionWindows, req.CompletionWindow):
		return &domain.Error{Code: domain.EInvalid, Param: "completion_window",
			Message: fmt.Sprintf("Invalid completion_window %q: must be one of %s.", req.CompletionWindow, strings.Join(s.cfg.CompletionWindows, ", "))}
	}
	if len(req.Metadata) > 16 {
		return &domain.Error{Code: domain.EInvalid, Message: "metadata may have at most 16 keys.", Param: "metadata"}
	}
	for k, v := range req.Metadata {
		if utf8.RuneCountInString(k) > 64 {
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("metadata key %q is longer than 64 characters.", k), Param: "metadata"}
		}
		if utf8.RuneCountInString(v) > 512 {
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("metadata value of %q is longer than 512 characters.", k), Param: "metadata"}
		}
	}
	return nil
}

// createBatch records the batch as validating and asks the populate function to expand its file.
// Bad lines found while populating make the batch failed with errors.data[].line, as OpenAI does.
func (s *server) createBatch(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var req createBatchRequest
	if err := decodeJSON(r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.validateBatchRequest(req); err != nil {
		s.error(w, r, err)
		return
	}
	f, err := s.store.GetFile(r.Context(), p.TenantID, req.InputFileID)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if f.Purpose != domain.PurposeBatch {
		s.error(w, r, &domain.Error{Code: domain.EInvalid, Param: "input_file_id",
			Message: fmt.Sprintf("File %s has purpose %q; a batch needs a file uploaded with purpose 'batch'.", f.ID, f.Purpose)})
		return
	}
	if f.Status != domain.FileProcessed {
		s.error(w, r, errNotCompleted(f.ID))
		return
	}
	if req.ValidateOnly {
		rep, err := s.ingester.Check(r.Context(), f.ObjectKey, req.Endpoint, false, maxReportedErrors)
		if err != nil {
			s.error(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toReport(f, req.Endpoint, rep))
		return
	}
	window, _ := domain.ParseWindow(req.CompletionWindow) // on the allow-list, which config validated
	now := s.now()
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: p.TenantID, InputFileID: f.ID, Endpoint: req.Endpoint,
		CompletionWindow: req.CompletionWindow, Status: domain.BatchValidating, Metadata: req.Metadata,
		Counts: domain.Counts{Total: f.Lines}, CreatedAt: now, ExpiresAt: now.Add(window),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}
	res, err := s.reserve(r, routeCreateBatch, canonicalJSON(req), b.ID)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if res.replay != "" {
		got, err := s.store.GetBatch(r.Context(), p.TenantID, res.replay)
		if err != nil {
			s.error(w, r, s.replayError(err, res))
			return
		}
		writeJSON(w, http.StatusOK, toBatchObject(got))
		return
	}
	if err := s.store.InsertBatch(r.Context(), b); err != nil {
		res.release()
		s.error(w, r, err)
		return
	}
	// Read the batch back before enqueueing it: populate may move it to in_progress at once, and
	// the create call answers the batch as created (validating), as OpenAI does.
	got, err := s.store.GetBatch(r.Context(), p.TenantID, b.ID)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.populate.SendPopulate(r.Context(), b.ID); err != nil {
		// Without its message the batch would wait forever: fail it now and say so. The key stays
		// bound to the failed batch, so a retry with it sees the failure instead of a duplicate.
		s.log.ErrorContext(r.Context(), "enqueue populate", "batch_id", b.ID, "err", err)
		_ = s.store.FailBatch(context.WithoutCancel(r.Context()), b.ID, s.now(), []domain.BatchError{{Code: domain.CodeEnqueueFailed,
			Message: "The batch could not be queued for processing; please create it again."}})
		s.error(w, r, &domain.Error{Code: domain.EUnavailable, Message: "The batch could not be queued; please retry."})
		return
	}
	writeJSON(w, http.StatusOK, toBatchObject(got))
}

func (s *server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.store.GetBatch(r.Context(), principal(r).TenantID, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toBatchObject(b))
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
// id, the metadata or the input filename), created_after and created_before (unix seconds), and
// active_first (unfinished batches first).
func (s *server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	p := domain.BatchListParams{After: q.str("after"), Limit: q.int("limit", 20, 1, 100), Search: q.str("search"),
		CreatedAfter: q.unix("created_after"), CreatedBefore: q.unix("created_before"), ActiveFirst: q.bool("active_first")}
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
	out := make([]batchObject, len(bs))
	for i, b := range bs {
		out[i] = toBatchObject(b)
	}
	writeJSON(w, http.StatusOK, newList(out, more, func(b batchObject) string { return b.ID }))
}
