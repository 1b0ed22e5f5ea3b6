package domain

import (
	"encoding/json"
)

// Stable codes for lines that ended without an HTTP response: stored in requests.error_code,
// written to error files, matched on by callers. Each is declared here once; the SQL that writes
// some of them is held to this list by shared/postgres's TestEveryErrorCodeLiteralInTheSQLIsADomainCode.
const (
	CodeBatchExpired     = "batch_expired"
	CodeBatchCancelled   = "batch_cancelled"
	CodeRequestCancelled = "request_cancelled" // the user cancelled the request itself
	// CodeBatchFailedFast: the line was not sent because the fail-fast breaker stopped its batch.
	CodeBatchFailedFast = "batch_failed_fast"
	// The model could not be looked up (retried), or no longer exists (final).
	CodeModelUnavailable = "model_unavailable"
	CodeModelNotFound    = "model_not_found"
	// The model's credential could not be resolved (retried).
	CodeCredentialUnavailable = "credential_unavailable"
	// The body could not be rewritten for the model it was routed to. Also the validator's code
	// for a line whose body is not a JSON object.
	CodeInvalidBody = "invalid_body"
	// What shared/upstream reports for a call that produced no usable answer (Result.Code).
	CodeHTTPStatus          = "http_status"
	CodeNetworkError        = "network_error"
	CodeTimeout             = "timeout"
	CodeFirstByteTimeout    = "first_byte_timeout"
	CodeChunkTimeout        = "chunk_timeout"
	CodeInvalidRequest      = "invalid_request"
	CodeCanceled            = "canceled"
	CodeUpstreamStreamError = "upstream_stream_error"
	// The upstream's status line arrived but its answer did not: it was over the response cap,
	// or its body did not finish within the body timeout.
	CodeResponseTooLarge    = "response_too_large"
	CodeUpstreamBodyTimeout = "upstream_body_timeout"
	// CodeCredentialRefNotAllowed: the model's credential_ref is not one of the allowed forms
	// (shared/secrets), so the upstream was not called. Also the API's code for such a reference.
	CodeCredentialRefNotAllowed = "credential_ref_not_allowed"
)

// CodeEnqueueFailed is the batch error (Batch.Errors) of a batch that was created but whose
// population could not be queued, so it failed at once.
const CodeEnqueueFailed = "enqueue_failed"

type outputLine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Response *outputResponse `json:"response"`
	Error    *outputError    `json:"error"`
}

type outputResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  *string         `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

type outputError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// AppendResultLine appends the OpenAI batch output line for row, plus a newline, to dst.
//
// A request that got an HTTP response (2xx in the output file, non-2xx in the error file) carries
// it in "response" with "error": null, as OpenAI does; one that never got a response (network
// failure, timeout, cancelled, expired) has "response": null and an "error" with a stable code.
// A response body that is not JSON is emitted as a JSON string so that every line stays valid.
func AppendResultLine(dst []byte, row ResultRow) []byte {
	line := outputLine{ID: OutputLineID(row.RequestID), CustomID: row.CustomID}
	if row.StatusCode != 0 {
		body := json.RawMessage(row.Body)
		if len(body) == 0 || !json.Valid(body) {
			s, _ := json.Marshal(string(row.Body))
			body = s
		}
		r := &outputResponse{StatusCode: row.StatusCode, Body: body}
		if row.UpstreamRequestID != "" {
			id := row.UpstreamRequestID
			r.RequestID = &id
		}
		line.Response = r
	} else {
		code, msg := row.ErrorCode, row.ErrorMessage
		switch {
		case row.State == StateExpired && code == "":
			code = CodeBatchExpired
		case row.State == StateCanceled && code == "":
			code = CodeBatchCancelled
		}
		if msg == "" {
			msg = defaultMessage(code)
		}
		line.Error = &outputError{Code: code, Message: msg}
	}
	b, _ := json.Marshal(line) // cannot fail: every field is plain data or valid JSON
	dst = append(dst, b...)
	return append(dst, '\n')
}

func defaultMessage(code string) string {
	switch code {
	case CodeBatchExpired:
		return "This request could not be executed before the completion window expired."
	case CodeBatchCancelled:
		return "This request was not executed because the batch was cancelled."
	case CodeBatchFailedFast:
		return "This request was not sent: the batch's first requests all failed with the same upstream error, so the batch was stopped (see the batch's errors)."
	}
	return "The request failed."
}
