package fakesqs

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is an SQS error response. code is the Smithy shape name that goes
// into __type (the SDK maps it to a typed error such as
// *types.QueueDoesNotExist); queryCode is the legacy Query-protocol code that
// goes into the x-amzn-query-error header, from which the SDK takes the value
// returned by ErrorCode(), exactly as it does against AWS.
type apiError struct {
	status    int
	code      string
	queryCode string
	message   string
	receiver  bool // server-side fault rather than a client mistake
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// senderFault reports whether the caller is to blame; it becomes the
// SenderFault flag of batch result entries.
func (e *apiError) senderFault() bool { return !e.receiver }

func (e *apiError) write(w http.ResponseWriter) {
	fault := "Sender"
	if e.receiver {
		fault = "Receiver"
	}
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{"com.amazonaws.sqs#" + e.code, e.message})
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("x-amzn-query-error", e.queryCode+";"+fault)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

func newClientError(code, queryCode, format string, args ...any) *apiError {
	if queryCode == "" {
		queryCode = code
	}
	return &apiError{status: http.StatusBadRequest, code: code, queryCode: queryCode, message: fmt.Sprintf(format, args...)}
}

func errQueueDoesNotExist() *apiError {
	return newClientError("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
		"The specified queue does not exist.")
}

func errQueueNameExists(name string) *apiError {
	return newClientError("QueueNameExists", "QueueAlreadyExists",
		"A queue already exists with the same name (%s) and a different value for attributes.", name)
}

func errReceiptHandleInvalid(h string) *apiError {
	return newClientError("ReceiptHandleIsInvalid", "",
		"The input receipt handle %q is not a valid receipt handle.", h)
}

func errInvalidParameter(format string, args ...any) *apiError {
	return newClientError("InvalidParameterValue", "", format, args...)
}

func errMissingParameter(name string) *apiError {
	return newClientError("MissingParameter", "", "The request must contain the parameter %s.", name)
}

func errInvalidAttributeName(name string) *apiError {
	return newClientError("InvalidAttributeName", "", "Unknown Attribute %s.", name)
}

func errInvalidAttributeValue(name string, reason string) *apiError {
	return newClientError("InvalidAttributeValue", "", "Invalid value for the parameter %s. Reason: %s", name, reason)
}

func errInvalidMessageContents(reason string) *apiError {
	return newClientError("InvalidMessageContents", "", "Invalid binary character in message body: %s", reason)
}

func errEmptyBatch() *apiError {
	return newClientError("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest",
		"There should be at least one entry in the request.")
}

func errTooManyEntries(n int) *apiError {
	return newClientError("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
		"Maximum number of entries per request are 10. You have sent %d.", n)
}

func errIDsNotDistinct(id string) *apiError {
	return newClientError("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
		"Id %s repeated.", id)
}

func errInvalidBatchEntryID(id string) *apiError {
	return newClientError("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
		"A batch entry id (%q) can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.", id)
}

func errBatchTooLong(size, limit int) *apiError {
	return newClientError("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong",
		"Batch requests cannot be longer than %d bytes. You have sent %d bytes.", limit, size)
}

func errUnsupportedOperation(target string) *apiError {
	return newClientError("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
		"The operation %q is not supported by this SQS emulator.", target)
}

func errSerialization(err error) *apiError {
	return newClientError("SerializationException", "", "The request body could not be decoded: %v", err)
}
