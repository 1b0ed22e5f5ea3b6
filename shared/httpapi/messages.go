package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/batches"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/ingest"
)

// Anthropic's Message Batches API (/v1/messages/batches) on the same engine. A message batch is
// a batch whose endpoint is /v1/messages and whose api is "anthropic": its inline requests are
// written as an input file through the ingester (the same validation and limits as an upload)
// and the batch is created from it by the batch service, so populate, limits, deadlines,
// cancellation, expiry, retries and finalisation are the ones every batch has. The routes show
// ids as msgbatch_<hex> (domain.MessageBatchID), answer Anthropic's object shapes, and their
// errors are Anthropic's envelope (s.error, for every path under /v1/messages/).

// messagesPrefix is the path prefix of the Anthropic routes: they accept x-api-key besides
// Authorization: Bearer, and answer errors in Anthropic's envelope.
const messagesPrefix = "/v1/messages/"

// isMessagesPath reports whether a request path (or route pattern) is one of the Anthropic routes.
func isMessagesPath(p string) bool { return strings.HasPrefix(p, messagesPrefix) }

// messageBatchWindow is a message batch's completion window: Anthropic's batches expire 24 hours
// after they were created.
const messageBatchWindow = "24h"

// messageBatchObject is Anthropic's MessageBatch. Every key is always present (typed SDKs expect
// them), null when unset.
type messageBatchObject struct {
	ID                string                      `json:"id"`
	Type              string                      `json:"type"`
	ProcessingStatus  string                      `json:"processing_status"`
	RequestCounts     domain.MessageRequestCounts `json:"request_counts"`
	CreatedAt         string                      `json:"created_at"`
	ExpiresAt         string                      `json:"expires_at"`
	EndedAt           *string                     `json:"ended_at"`
	CancelInitiatedAt *string                     `json:"cancel_initiated_at"`
	ArchivedAt        *string                     `json:"archived_at"`
	ResultsURL        *string                     `json:"results_url"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func rfc3339Ptr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := rfc3339(*t)
	return &s
}

// endedAt is when a terminal batch ended: the time of its terminal status.
func endedAt(b domain.Batch) *time.Time {
	if !b.Status.Terminal() {
		return nil
	}
	for _, t := range []*time.Time{b.CompletedAt, b.CancelledAt, b.ExpiredAt, b.FailedAt} {
		if t != nil {
			return t
		}
	}
	return nil
}

// toMessageBatch renders a batch as a MessageBatch. byState is its requests by state (the store's
// BatchRequestStates); results_url is set once it ended, absolute when PublicURL is configured.
func (s *server) toMessageBatch(b domain.Batch, byState map[domain.RequestState]int) messageBatchObject {
	id := domain.MessageBatchID(b.ID)
	ended := endedAt(b)
	o := messageBatchObject{ID: id, Type: "message_batch", ProcessingStatus: domain.MessageBatchStatus(b.Status),
		RequestCounts: domain.MessageRequestCountsOf(byState, b.Counts.Total, b.Status),
		CreatedAt:     rfc3339(b.CreatedAt), ExpiresAt: rfc3339(b.ExpiresAt), EndedAt: rfc3339Ptr(ended)}
	switch {
	case b.CancellingAt != nil:
		o.CancelInitiatedAt = rfc3339Ptr(b.CancellingAt)
	case b.Status == domain.BatchCancelled:
		// Cancelled outright while validating: the cancel began and ended at once.
		o.CancelInitiatedAt = rfc3339Ptr(b.CancelledAt)
	}
	if b.Status.Terminal() {
		u := strings.TrimSuffix(s.cfg.PublicURL, "/") + messagesPrefix + "batches/" + id + "/results"
		o.ResultsURL = &u
	}
	return o
}

// messageBatches renders batches with their request counts (one query for all of them).
func (s *server) messageBatches(r *http.Request, bs []domain.Batch) ([]messageBatchObject, error) {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	counts := map[string]map[domain.RequestState]int{}
	if len(ids) > 0 {
		var err error
		if counts, err = s.store.BatchRequestStates(r.Context(), principal(r).TenantID, ids); err != nil {
			return nil, err
		}
	}
	out := make([]messageBatchObject, len(bs))
	for i, b := range bs {
		out[i] = s.toMessageBatch(b, counts[b.ID])
	}
	return out, nil
}

func (s *server) writeMessageBatch(w http.ResponseWriter, r *http.Request, b domain.Batch) {
	objs, err := s.messageBatches(r, []domain.Batch{b})
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, objs[0])
}

// messageBatchNotFound is the answer for an id that names no message batch of the caller's.
func messageBatchNotFound(id string) error {
	return domain.Errorf(domain.ENotFound, "No such message batch: %s", id)
}

// messageBatch reads the caller's message batch named by the path's id; a batch the OpenAI API
// created is not one.
func (s *server) messageBatch(r *http.Request, primary bool) (domain.Batch, error) {
	id := r.PathValue("id")
	internal, _ := domain.BatchIDOfMessageBatch(id) // the path's shape was checked by checkInput
	get := s.store.ViewBatch
	if primary {
		get = s.store.GetBatch
	}
	b, err := get(r.Context(), principal(r).TenantID, internal)
	if domain.ErrorCode(err) == domain.ENotFound || (err == nil && b.API != domain.APIAnthropic) {
		return domain.Batch{}, messageBatchNotFound(id)
	}
	return b, err
}

type messageBatchCreate struct {
	Requests []messageBatchRequest `json:"requests"`
}

type messageBatchRequest struct {
	CustomID string          `json:"custom_id"`
	Params   json.RawMessage `json:"params"`
}

// inputLine is one line of a message batch's input file.
type inputLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

func badRequest(param, format string, args ...any) error {
	return &domain.Error{Code: domain.EInvalid, Param: param, Message: param + ": " + fmt.Sprintf(format, args...)}
}

// checkMessageParams checks what the engine needs of a request's params, naming the request
// (requests[i].params.<field>): an object with a model, a max_tokens of at least 1, a non-empty
// messages array, and no streaming. Everything else is the upstream's to judge, and a request it
// refuses ends errored, as Anthropic validates params.
func checkMessageParams(i int, raw json.RawMessage) error {
	at := fmt.Sprintf("requests[%d].params", i)
	var p map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 || raw[0] != '{' || json.Unmarshal(raw, &p) != nil {
		return badRequest(at, "Field required: an object of Messages API parameters.")
	}
	// decodeJSON checked the strings it decoded; params stay raw, so theirs are checked here.
	var all any
	if err := json.Unmarshal(raw, &all); err != nil {
		return badRequest(at, "Field required: an object of Messages API parameters.")
	}
	if bad := badText(reflect.ValueOf(all), at); bad != "" {
		return domain.NotText(bad)
	}
	var model string
	if json.Unmarshal(p["model"], &model) != nil || model == "" {
		return badRequest(at+".model", "Field required: a model name.")
	}
	var maxTokens int64
	if json.Unmarshal(p["max_tokens"], &maxTokens) != nil || maxTokens < 1 {
		return badRequest(at+".max_tokens", "Field required: an integer of at least 1.")
	}
	var messages []json.RawMessage
	if json.Unmarshal(p["messages"], &messages) != nil || len(messages) == 0 {
		return badRequest(at+".messages", "Field required: a non-empty array of messages.")
	}
	if st, ok := p["stream"]; ok && string(st) != "false" && string(st) != "null" {
		return badRequest(at+".stream", "Streaming is not supported in message batches.")
	}
	return nil
}

// messageBatchInput checks a create request and writes its requests as an input file's lines
// (the OpenAI batch line shape, url /v1/messages), in order.
func messageBatchInput(req messageBatchCreate) ([]byte, error) {
	if len(req.Requests) == 0 || len(req.Requests) > domain.MaxMessageBatchRequests {
		return nil, badRequest("requests", "Must hold 1 to %d requests, got %d.", domain.MaxMessageBatchRequests, len(req.Requests))
	}
	seen := make(map[string]int, len(req.Requests))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, rq := range req.Requests {
		at := fmt.Sprintf("requests[%d].custom_id", i)
		if !domain.MessageCustomIDPattern.MatchString(rq.CustomID) {
			return nil, badRequest(at, "Must match %s.", domain.MessageCustomIDPattern)
		}
		if j, dup := seen[rq.CustomID]; dup {
			return nil, badRequest(at, "Duplicate custom_id %q (also requests[%d].custom_id); custom_ids must be unique within a batch.", rq.CustomID, j)
		}
		seen[rq.CustomID] = i
		if err := checkMessageParams(i, rq.Params); err != nil {
			return nil, err
		}
		if err := enc.Encode(inputLine{CustomID: rq.CustomID, Method: "POST", URL: domain.MessagesEndpoint, Body: rq.Params}); err != nil {
			return nil, fmt.Errorf("encode request %d: %w", i, err)
		}
	}
	return buf.Bytes(), nil
}

// requestError renames an input file line error to the request it came from: line n is
// requests[n-1], and body.<field> its params.<field>.
func requestError(err error) error {
	var de *domain.Error
	if !errors.As(err, &de) || de.Line <= 0 {
		return err
	}
	at := fmt.Sprintf("requests[%d]", de.Line-1)
	if de.Param != "" {
		at += "." + strings.Replace(de.Param, "body", "params", 1)
	}
	return &domain.Error{Code: de.Code, Param: at, Message: at + ": " + de.Message}
}

// createMessageBatch is POST /v1/messages/batches {"requests":[{custom_id, params}]}.
func (s *server) createMessageBatch(w http.ResponseWriter, r *http.Request) {
	var req messageBatchCreate
	if err := decodeJSONUpTo(w, r, &req, s.cfg.MaxDirectUploadBytes); err != nil {
		s.error(w, r, err)
		return
	}
	input, err := messageBatchInput(req)
	if err != nil {
		s.error(w, r, err)
		return
	}
	p := principal(r)
	exp := s.now().Add(s.cfg.FileTTL)
	f, err := s.ingester.Store(r.Context(), ingest.Upload{TenantID: p.TenantID, Filename: "message_batch_requests.jsonl",
		Purpose: domain.PurposeBatch, ExpiresAt: &exp, Body: bytes.NewReader(input), CreatedByKey: p.KeyID})
	if err != nil {
		s.error(w, r, requestError(err))
		return
	}
	var meta map[string]string
	if v := r.Header.Get("Anthropic-Version"); domain.KeepableAnthropicVersion(v) {
		// Kept for the upstream: the worker sends it with each of the batch's requests.
		meta = map[string]string{domain.AnthropicVersionKey: v}
	}
	got, err := s.batches.Create(r.Context(), batches.Create{TenantID: p.TenantID, CreatedByKey: p.KeyID, InputFileID: f.ID,
		Endpoint: domain.MessagesEndpoint, CompletionWindow: messageBatchWindow, Metadata: meta, API: domain.APIAnthropic})
	if err != nil {
		s.discard(r, f, "The message batch was not created.")
		s.error(w, r, err)
		return
	}
	s.writeMessageBatch(w, r, got.Batch)
}

// getMessageBatch is GET /v1/messages/batches/{id}.
func (s *server) getMessageBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.messageBatch(r, false)
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.writeMessageBatch(w, r, b)
}

// messageBatchPage is Anthropic's list page.
type messageBatchPage struct {
	Data    []messageBatchObject `json:"data"`
	HasMore bool                 `json:"has_more"`
	FirstID *string              `json:"first_id"`
	LastID  *string              `json:"last_id"`
}

// listMessageBatches is GET /v1/messages/batches?limit&after_id&before_id: the caller's message
// batches newest first; limit 1..1000 (default 20); after_id continues with older batches,
// before_id with newer ones.
func (s *server) listMessageBatches(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	p := domain.BatchListParams{API: domain.APIAnthropic, Limit: q.int("limit", 20, 1, 1000)}
	cursor := func(name string) string {
		v := q.str(name)
		if v == "" {
			return ""
		}
		id, ok := domain.BatchIDOfMessageBatch(v)
		if !ok {
			q.fail(name, "Invalid '%s': expected a message batch id ('msgbatch_' followed by 32 lower-case hexadecimal digits), got %q.", name, v)
		}
		return id
	}
	p.After, p.Before = cursor("after_id"), cursor("before_id")
	if p.After != "" && p.Before != "" {
		q.fail("before_id", "Give after_id or before_id, not both.")
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
	objs, err := s.messageBatches(r, bs)
	if err != nil {
		s.error(w, r, err)
		return
	}
	page := messageBatchPage{Data: objs, HasMore: more}
	if len(objs) > 0 {
		page.FirstID, page.LastID = &objs[0].ID, &objs[len(objs)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// cancelMessageBatch is POST /v1/messages/batches/{id}/cancel: the batch is canceling (or ended at
// once when nothing was in flight). Cancelling a batch that has ended answers it unchanged.
func (s *server) cancelMessageBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.messageBatch(r, true)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if b.Status.Terminal() || b.Status == domain.BatchCancelling {
		s.writeMessageBatch(w, r, b)
		return
	}
	got, err := s.batches.Cancel(r.Context(), b.TenantID, b.ID)
	if domain.ErrorCode(err) == domain.EConflict {
		// It ended (or began cancelling) between the read and the cancel.
		got, err = s.store.GetBatch(r.Context(), b.TenantID, b.ID)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.writeMessageBatch(w, r, got)
}

// deleteMessageBatch is DELETE /v1/messages/batches/{id}: only an ended batch can be deleted
// (cancel a running one first); it is gone at once, and its rows are purged later.
func (s *server) deleteMessageBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.messageBatch(r, true)
	if err != nil {
		s.error(w, r, err)
		return
	}
	id := domain.MessageBatchID(b.ID)
	if !b.Status.Terminal() {
		s.error(w, r, domain.Errorf(domain.EConflict, "Message batch %s is %s: only an ended batch can be deleted; cancel it first.",
			id, domain.MessageBatchStatus(b.Status)))
		return
	}
	if err := s.batches.Delete(r.Context(), b.TenantID, b.ID); err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "type": "message_batch_deleted"})
}

// messageResult is one line of a message batch's results.
type messageResult struct {
	CustomID string             `json:"custom_id"`
	Result   messageResultValue `json:"result"`
}

type messageResultValue struct {
	Type    string          `json:"type"`
	Message json.RawMessage `json:"message,omitempty"`
	Error   *resultError    `json:"error,omitempty"`
}

// anthropicError is Anthropic's error envelope: the body of every error the Anthropic routes
// answer (their request id is the request-id header), and, with request_id (null: the upstream's
// own is not kept), the error of an errored result.
type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// resultError is the error of an errored result.
type resultError struct {
	anthropicError
	RequestID *string `json:"request_id"`
}

// anthropicErrorType is Anthropic's error.type for an HTTP status.
func anthropicErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusPaymentRequired:
		return "billing_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == http.StatusGatewayTimeout:
		return "timeout_error"
	case status == 529:
		return "overloaded_error"
	case status >= 500:
		return "api_error"
	case status == 0:
		// No answer at all (a timeout, a refused connection): the service's error.
		return "api_error"
	}
	return "invalid_request_error"
}

// resultErrorOf is the error of an errored request: the upstream's own Anthropic error when its
// answer was one, otherwise one made from its status and the engine's message.
func resultErrorOf(row domain.ResultRow) *resultError {
	var up anthropicError
	if json.Unmarshal(row.Body, &up) == nil && up.Type == "error" && up.Error.Type != "" {
		return &resultError{anthropicError: up}
	}
	e := &resultError{anthropicError: anthropicError{Type: "error"}}
	e.Error.Type = anthropicErrorType(row.StatusCode)
	e.Error.Message = row.ErrorMessage
	if e.Error.Message == "" {
		e.Error.Message = row.ErrorCode
	}
	return e
}

// resultOf renders a finished request as its result line.
func resultOf(row domain.ResultRow) messageResult {
	l := messageResult{CustomID: row.CustomID}
	switch row.State {
	case domain.StateCompleted:
		if json.Valid(row.Body) {
			l.Result = messageResultValue{Type: domain.MessageResultSucceeded, Message: row.Body}
			return l
		}
		row.ErrorMessage = "The upstream's answer was not JSON."
		l.Result = messageResultValue{Type: domain.MessageResultErrored, Error: resultErrorOf(domain.ResultRow{StatusCode: http.StatusBadGateway, ErrorMessage: row.ErrorMessage})}
	case domain.StateCanceled:
		l.Result = messageResultValue{Type: domain.MessageResultCanceled}
	case domain.StateExpired:
		l.Result = messageResultValue{Type: domain.MessageResultExpired}
	default:
		l.Result = messageResultValue{Type: domain.MessageResultErrored, Error: resultErrorOf(row)}
	}
	return l
}

// messageBatchResults is GET /v1/messages/batches/{id}/results: once the batch ended, one JSONL
// line per request in input order, with no blank line (the SDK's decoder refuses one). They are
// rendered in memory: results over MaxInlineResponseBytes go through S3 (a 302).
func (s *server) messageBatchResults(w http.ResponseWriter, r *http.Request) {
	b, err := s.messageBatch(r, false)
	if err != nil {
		s.error(w, r, err)
		return
	}
	id := domain.MessageBatchID(b.ID)
	if !b.Status.Terminal() {
		s.error(w, r, domain.Errorf(domain.EConflict, "Message batch %s has not ended yet: its results are available once processing_status is 'ended'.", id))
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	lines := 0
	add := func(l messageResult) error {
		lines++
		return enc.Encode(l)
	}
	err = s.store.BatchResults(r.Context(), b.TenantID, b.ID, domain.ResultQuery{Limit: max(b.Counts.Total, 1)}, func(res domain.BatchResult) error {
		return add(resultOf(res.ResultRow))
	})
	if err == nil && lines == 0 && b.Counts.Total > 0 {
		// It ended before its requests became rows (populate refused it, or it was cancelled or
		// expired first): the custom_ids come from its input file.
		err = s.unrunResults(r, b, add)
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	if int64(buf.Len()) > s.cfg.MaxInlineResponseBytes {
		// Over what a Lambda response can carry: written to S3 and answered by a 302 to a
		// presigned URL, which the SDKs follow (dropping Authorization on the cross-origin hop).
		// It is written afresh each time, so a batch reopened and sealed again never serves stale
		// results.
		key := domain.MessageResultsKey(b.TenantID, b.ID)
		if err := s.blobs.PutSmall(r.Context(), key, buf.Bytes(), "application/jsonl"); err != nil {
			s.error(w, r, err)
			return
		}
		u, err := s.blobs.PresignGet(r.Context(), key, id+"_results.jsonl", s.cfg.PresignTTL)
		if err != nil {
			s.error(w, r, err)
			return
		}
		http.Redirect(w, r, u, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// unrunResults calls add with a result for every request of a batch that ended before they ran,
// read from its input file: canceled or expired with the batch, otherwise errored with the
// batch's first error as the reason.
func (s *server) unrunResults(r *http.Request, b domain.Batch, add func(messageResult) error) error {
	reason := "The message batch ended before its requests ran."
	if len(b.Errors) > 0 && b.Errors[0].Message != "" {
		reason = b.Errors[0].Message
	}
	f, err := s.store.GetFile(r.Context(), b.TenantID, b.InputFileID)
	if err != nil {
		return err
	}
	body, _, err := s.blobs.Get(r.Context(), f.ObjectKey)
	if err != nil {
		return err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var l inputLine
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the input of %s: %w", b.ID, err)
		}
		res := messageResultValue{Type: domain.UnrunResult(b.Status)}
		if res.Type == domain.MessageResultErrored {
			res.Error = &resultError{anthropicError: anthropicError{Type: "error"}}
			res.Error.Error.Type, res.Error.Error.Message = "invalid_request_error", reason
		}
		if err := add(messageResult{CustomID: l.CustomID, Result: res}); err != nil {
			return err
		}
	}
}
