package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
)

// apiError is OpenAI's error envelope; param and code are always present, null when unknown.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
		Line    *int    `json:"line,omitempty"`
		// Errors (an extension) lists every bad line of a rejected input file, the first being
		// this error; Truncated says the list stopped at its limit.
		Errors    []lineProblem `json:"errors,omitempty"`
		Truncated *bool         `json:"truncated,omitempty"`
	} `json:"error"`
}

// statusOf is the one place an error becomes an HTTP status. Deterministic conflicts are 400,
// not 409: the OpenAI SDKs retry 409.
func statusOf(code domain.Code) int {
	switch code {
	case domain.ENotFound:
		return http.StatusNotFound
	case domain.EInvalid, domain.EConflict:
		return http.StatusBadRequest
	case domain.EUnauthorized:
		return http.StatusUnauthorized
	case domain.EForbidden:
		return http.StatusForbidden
	case domain.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case domain.ERateLimited:
		return http.StatusTooManyRequests
	case domain.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// reasonStatus holds the reasons whose status is not the one of their code (package
// idempotency says why).
var reasonStatus = map[string]int{
	idempotency.ReasonMismatch: http.StatusUnprocessableEntity,
	idempotency.ReasonInFlight: http.StatusConflict,
}

// error writes err as an OpenAI error, or on the Anthropic routes (/v1/messages/…) as an Anthropic
// one ({"type":"error","error":{"type","message"}}, the type from the status). Only *domain.Error
// messages reach the client; anything else is logged and reported as an internal error.
func (s *server) error(w http.ResponseWriter, r *http.Request, err error) {
	var de *domain.Error
	if !errors.As(err, &de) {
		if errors.Is(err, context.Canceled) {
			return // the client went away
		}
		s.log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		de = &domain.Error{Code: domain.EInternal, Message: "The server had an error while processing your request."}
	} else if err != error(de) { //nolint:errorlint // identity, not equivalence: is there context around the domain error?
		// A domain error with context around it (such as a value the store refused): the client
		// gets the safe message, the log the whole chain.
		s.log.WarnContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	status := statusOf(de.Code)
	if st, ok := reasonStatus[de.Reason]; ok {
		status = st
	}
	if status == http.StatusServiceUnavailable || status == http.StatusConflict {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusServiceUnavailable {
		// A dependency is down: transient, tell the SDKs to retry whatever the method.
		w.Header().Set("x-should-retry", "true")
	}
	if status == http.StatusBadRequest || status == http.StatusNotFound || status == http.StatusUnprocessableEntity {
		// Deterministic: tell the SDKs not to retry.
		w.Header().Set("x-should-retry", "false")
	}
	if isMessagesPath(r.URL.Path) {
		// The Anthropic routes answer Anthropic's envelope, with the same status and headers.
		body := anthropicError{Type: "error"}
		body.Error.Type, body.Error.Message = anthropicErrorType(status), de.Message
		writeJSON(w, status, body)
		return
	}
	var body apiError
	body.Error.Message = de.Message
	body.Error.Type = "invalid_request_error"
	if status >= 500 {
		body.Error.Type = "server_error"
	}
	if de.Param != "" {
		p := de.Param
		body.Error.Param = &p
	}
	code := de.Reason
	if de.Code == domain.EUnauthorized && code == "" {
		code = "invalid_api_key"
	}
	if code != "" {
		body.Error.Code = &code
	}
	if de.Line > 0 {
		l := de.Line
		body.Error.Line = &l
	}
	if len(de.Problems) > 0 {
		body.Error.Errors, body.Error.Truncated = toLineProblems(de.Problems), &de.ProblemsTruncated
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// maxJSONBody caps JSON request bodies; none of ours is anywhere near it.
const maxJSONBody = 1 << 20

// decodeJSON decodes a JSON object strictly: unknown fields are rejected, so server-owned fields
// (status, counts, owner, file ids) can never be set by a client.
func decodeJSON(r *http.Request, v any) error {
	return decodeJSONFrom(r, io.LimitReader(r.Body, maxJSONBody), v)
}

// decodeJSONUpTo is decodeJSON for a body of up to limit bytes (a message batch's inline
// requests); a larger one is a 413.
func decodeJSONUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	tooLarge := &domain.Error{Code: domain.ETooLarge, Reason: "request_too_large",
		Message: fmt.Sprintf("The request body is larger than %d bytes, the most one request can carry.", limit)}
	if r.ContentLength > limit {
		return tooLarge
	}
	err := decodeJSONFrom(r, http.MaxBytesReader(w, r.Body, limit), v)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge
	}
	return err
}

func decodeJSONFrom(r *http.Request, body io.Reader, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &domain.Error{Code: domain.EInvalid, Message: "Content-Type must be application/json."}
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var f *json.UnmarshalTypeError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF):
			return &domain.Error{Code: domain.EInvalid, Message: "The request body is empty; a JSON object is required."}
		case errors.As(err, &f):
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("Invalid type for '%s': expected %s.", f.Field, f.Type), Param: f.Field}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("Unrecognized request argument supplied: %s", field), Param: field}
		}
		return &domain.Error{Code: domain.EInvalid, Message: "The request body is not valid JSON."}
	}
	if dec.More() {
		return &domain.Error{Code: domain.EInvalid, Message: "The request body must be a single JSON object."}
	}
	return checkText(v)
}

// recoverer turns a panic in a handler into a 500 instead of a dropped connection or a crashed
// Lambda.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // a panic value, compared as net/http documents
					panic(v)
				}
				s.error(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// decodeOptionalJSON is decodeJSON for bodies that may be absent: no body leaves v untouched.
func decodeOptionalJSON(r *http.Request, v any) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	err := decodeJSON(r, v)
	var de *domain.Error
	if errors.As(err, &de) && strings.HasPrefix(de.Message, "The request body is empty") {
		return nil
	}
	return err
}

// query reads optional query parameters, remembering the first bad one.
type query struct {
	v   url.Values
	err error
}

func newQuery(r *http.Request) *query { return &query{v: r.URL.Query()} }

func (q *query) fail(param, format string, args ...any) {
	if q.err == nil {
		q.err = &domain.Error{Code: domain.EInvalid, Param: param, Message: fmt.Sprintf(format, args...)}
	}
}

func (q *query) str(name string) string { return q.v.Get(name) }

// int reads an integer within [lo, hi]; def when absent.
func (q *query) int(name string, def, lo, hi int) int {
	s := q.v.Get(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		q.fail(name, "Invalid '%s': expected an integer between %d and %d, got %q.", name, lo, hi, s)
		return def
	}
	return n
}

func (q *query) bool(name string) bool {
	s := q.v.Get(name)
	if s == "" {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.fail(name, "Invalid '%s': expected true or false, got %q.", name, s)
	}
	return b
}

// unix reads a unix timestamp in seconds; nil when absent.
func (q *query) unix(name string) *time.Time {
	s := q.v.Get(name)
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > domain.MaxTimestamp.Unix() {
		q.fail(name, "Invalid '%s': expected a unix timestamp in seconds between 0 and %d, got %q.", name, domain.MaxTimestamp.Unix(), s)
		return nil
	}
	t := time.Unix(n, 0)
	return &t
}

// maxKeyIDs bounds how many API key ids one created_by_key filter may name (default 100): enough
// for every key of a team, small enough to keep the list query's array cheap.
const maxKeyIDs = 100

// keyIDs reads a filter of API key ids (positive integers), repeated and/or comma-separated:
// created_by_key=3&created_by_key=7 and created_by_key=3,7 are the same filter; nil when absent.
// A present but empty or non-numeric value fails, naming the parameter.
func (q *query) keyIDs(name string) []int64 {
	vals, ok := q.v[name]
	if !ok {
		return nil
	}
	var ids []int64
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				q.fail(name, "Invalid '%s': expected API key ids (positive integers, comma-separated or repeated), got %q.", name, s)
				return nil
			}
			ids = append(ids, n)
		}
	}
	if len(ids) > maxKeyIDs {
		q.fail(name, "Invalid '%s': at most %d API key ids, got %d.", name, maxKeyIDs, len(ids))
		return nil
	}
	return ids
}

// list reads a filter of names, repeated and/or comma-separated: model=a&model=b and model=a,b are
// the same filter; nil when absent. An empty name fails, naming the parameter.
func (q *query) list(name string) []string {
	vals, ok := q.v[name]
	if !ok {
		return nil
	}
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				q.fail(name, "Invalid '%s': expected names, comma-separated or repeated, got an empty one.", name)
				return nil
			}
			out = append(out, s)
		}
	}
	return out
}

// oneOf reads a value that must be in allowed; def when absent.
func (q *query) oneOf(name, def string, allowed ...string) string {
	s := q.v.Get(name)
	if s == "" {
		return def
	}
	if !slices.Contains(allowed, s) {
		q.fail(name, "Invalid '%s': expected one of %s, got %q.", name, strings.Join(allowed, ", "), s)
		return def
	}
	return s
}
