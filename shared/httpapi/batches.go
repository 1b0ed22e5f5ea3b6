package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/sqsqueue"
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
}

func (s *server) validateBatchRequest(req createBatchRequest) error {
	switch {
	case req.InputFileID == "":
		return &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'input_file_id'.", Param: "input_file_id"}
	case req.Endpoint == "":
		return &domain.Error{Code: domain.EInvalid, Message: "Missing required parameter: 'endpoint'.", Param: "endpoint"}
	case !domain.ValidEndpoint(req.Endpoint):
		return &domain.Error{Code: domain.EInvalid, Param: "endpoint",
			Message: fmt.Sprintf("Invalid endpoint %q: must be one of %s.", req.Endpoint, strings.Join(domain.Endpoints, ", "))}
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
	window, _ := domain.ParseWindow(req.CompletionWindow) // on the allow-list, which config validated
	now := s.now()
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: p.TenantID, InputFileID: f.ID, Endpoint: req.Endpoint,
		CompletionWindow: req.CompletionWindow, Status: domain.BatchValidating, Metadata: req.Metadata,
		Counts: domain.Counts{Total: f.Lines}, CreatedAt: now, ExpiresAt: now.Add(window),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID()}
	if err := s.store.InsertBatch(r.Context(), b); err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.populate.Send(r.Context(), sqsqueue.PopulateMessage{BatchID: b.ID}); err != nil {
		// Without its message the batch would wait forever: fail it now and say so.
		s.log.ErrorContext(r.Context(), "enqueue populate", "batch_id", b.ID, "err", err)
		_ = s.store.FailBatch(context.WithoutCancel(r.Context()), b.ID, s.now(), []domain.BatchError{{Code: "enqueue_failed",
			Message: "The batch could not be queued for processing; please create it again."}})
		s.error(w, r, &domain.Error{Code: domain.EUnavailable, Message: "The batch could not be queued; please retry."})
		return
	}
	got, err := s.store.GetBatch(r.Context(), p.TenantID, b.ID)
	if err != nil {
		s.error(w, r, err)
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
