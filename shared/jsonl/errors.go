package jsonl

import (
	"fmt"

	"github.com/fusillade/fusillade/shared/domain"
)

// Error codes, in the style of the OpenAI Batch API's per-line errors.
const (
	CodeLineTooLarge       = "line_too_large"
	CodeInvalidUTF8        = "invalid_utf8"
	CodeInvalidJSONLine    = "invalid_json_line"
	CodeMissingCustomID    = "missing_custom_id"
	CodeInvalidCustomID    = "invalid_custom_id"
	CodeDuplicateCustomID  = "duplicate_custom_id"
	CodeInvalidMethod      = "invalid_method"
	CodeInvalidURL         = "invalid_url"
	CodeURLMismatch        = "url_mismatch"
	CodeInvalidBody        = domain.CodeInvalidBody // also the worker's, for a body it cannot route
	CodeBodyTooLarge       = "body_too_large"
	CodeMissingModel       = "missing_model"
	CodeModelNotFound      = domain.CodeModelNotFound // also the worker's, for a model deleted since
	CodeStreamNotSupported = "stream_not_supported"
	CodeTooManyLines       = "too_many_lines"
	CodeEmptyFile          = "empty_file"
)

// LineError describes why one line (or, with Line 0, the whole file) is not acceptable. Message
// is meant for the user and starts with "line N: " when Line is set; it never embeds more than
// a short excerpt of user data.
type LineError struct {
	Line     int    // 1-based physical line number; 0 for file-level errors
	CustomID string // the line's custom_id when it was readable, else ""
	Param    string // the offending field ("custom_id", "body.model", ...), else ""
	Code     string // one of the Code* constants
	Message  string
}

func (e *LineError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Code)
	}
	return e.Code
}

func lineErr(line int, code, param, format string, args ...any) *LineError {
	return &LineError{
		Line:    line,
		Param:   param,
		Code:    code,
		Message: fmt.Sprintf("line %d: ", line) + fmt.Sprintf(format, args...),
	}
}

// maxQuoted bounds how much of a user-supplied value is echoed back in a message, so that an
// error for a multi-megabyte field stays small.
const maxQuoted = 80

// quote renders a user-supplied value for a message: Go-quoted (control and invalid bytes
// escaped) and shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q…", s[:maxQuoted])
	}
	return fmt.Sprintf("%q", s)
}
