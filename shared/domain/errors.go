package domain

import (
	"errors"
	"fmt"
)

// Code classifies an error so that each adapter can map it once (the HTTP API to a status, a
// worker to "acknowledge" or "retry").
type Code string

// Error codes. Anything that is not an *Error is internal: clients only ever see a generic
// message for it, and it is logged.
const (
	ENotFound     Code = "not_found"    // the object does not exist or belongs to another tenant
	EInvalid      Code = "invalid"      // the request is malformed or breaks a rule
	EConflict     Code = "conflict"     // the object is not in a state that allows the operation
	EUnauthorized Code = "unauthorized" // missing or unknown credentials
	EForbidden    Code = "forbidden"    // authenticated but not allowed
	ETooLarge     Code = "too_large"    // payload over a configured limit
	ERateLimited  Code = "rate_limited" // try again later
	EUnavailable  Code = "unavailable"  // a dependency is down; safe to retry
	EInternal     Code = "internal"     // a bug or an unexpected failure
)

// Error is an application error with a client-safe message.
type Error struct {
	Code    Code
	Message string // safe to show to the client
	Param   string // the offending parameter, when there is one
	Line    int    // 1-based line of an input file, when the error is about one
	Reason  string // stable machine code shown to clients (e.g. "invalid_json_line"); optional
	// Problems lists every bad line of a rejected input file, the first being the error itself;
	// ProblemsTruncated says the list stopped at its limit and more bad lines exist.
	Problems          []LineProblem
	ProblemsTruncated bool
}

// LineProblem is one bad line of an input file; Line is 0 when the file as a whole is at fault.
type LineProblem struct {
	Line     int
	CustomID string // the line's custom_id when it was readable, else ""
	Param    string
	Reason   string // as Error.Reason, e.g. "duplicate_custom_id"
	Message  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Code, e.Line, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf builds an *Error with a formatted client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EInternal.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrStateConflict reports that a guarded state write matched no row: the object was not in the
// expected state or the attempt token was stale. For request writes it means a duplicate or a
// zombie delivery, which must be dropped without side effects.
var ErrStateConflict = &Error{Code: EConflict, Message: "state conflict"}

// ErrNoObject is what a blob store's error carries (errors.Is finds it) when the object asked for
// does not exist. It is not an *Error: a missing object is an internal failure unless the caller
// gives it a meaning (an upload that never arrived).
var ErrNoObject = errors.New("no such object")

// FileNotReady is the error for a batch input file that is still being uploaded (created with
// the presigned or Uploads path and not completed yet).
func FileNotReady(id string) *Error {
	return &Error{Code: EInvalid, Param: "file_id", Reason: "file_not_ready",
		Message: fmt.Sprintf("File %s is still being uploaded: complete it with POST /v1/files/%s/complete first.", id, id)}
}
