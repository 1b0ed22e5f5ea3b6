package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/fusillade/fusillade/shared/domain"
)

// apiError is OpenAI's error envelope; param and code are always present, null when unknown.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
		Line    *int    `json:"line,omitempty"`
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

// error writes err as an OpenAI error. Only *domain.Error messages reach the client; anything
// else is logged and reported as an internal error.
func (s *server) error(w http.ResponseWriter, r *http.Request, err error) {
	var de *domain.Error
	if !errors.As(err, &de) {
		if errors.Is(err, context.Canceled) {
			return // the client went away
		}
		s.log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		de = &domain.Error{Code: domain.EInternal, Message: "The server had an error while processing your request."}
	}
	status := statusOf(de.Code)
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
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusBadRequest || status == http.StatusNotFound {
		// Deterministic: tell the SDKs not to retry.
		w.Header().Set("x-should-retry", "false")
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
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &domain.Error{Code: domain.EInvalid, Message: "Content-Type must be application/json."}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var f *json.UnmarshalTypeError
		switch {
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
	return nil
}

// recoverer turns a panic in a handler into a 500 instead of a dropped connection or a crashed
// Lambda.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.error(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
