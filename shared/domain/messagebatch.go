package domain

import (
	"regexp"
	"strings"
)

// APIs a batch can be created through (batches.api, migration 0014). Each API lists only its own
// batches; the engine runs them all the same way.
const (
	APIOpenAI    = "openai"    // POST /v1/batches
	APIAnthropic = "anthropic" // POST /v1/messages/batches (Anthropic's Message Batches API)
)

// MessagesEndpoint is the endpoint of a message batch: Anthropic's Messages API, forwarded to
// upstreams that speak it.
const MessagesEndpoint = "/v1/messages"

// MessageBatchPrefix is the prefix of a message batch id as the Anthropic routes show it.
// A message batch is an ordinary batch: its id there is "msgbatch_" followed by the same 32 hex
// characters as its internal id after "batch_" (batch_0123… ⇄ msgbatch_0123…), so the mapping
// is a prefix swap in both directions, needs no table, and an id of one shape never names a
// batch the other API created (the routes check batches.api as well).
const MessageBatchPrefix = "msgbatch_"

// MessageBatchID is the id the Anthropic routes show for the batch with the internal id id.
func MessageBatchID(id string) string {
	return MessageBatchPrefix + strings.TrimPrefix(id, BatchPrefix)
}

// IsMessageBatchID reports whether s has the shape MessageBatchID makes.
func IsMessageBatchID(s string) bool {
	return hasShape(s, MessageBatchPrefix, batchIDLen, "0123456789abcdef")
}

// BatchIDOfMessageBatch returns the internal batch id a message batch id names; ok is false for
// any other shape.
func BatchIDOfMessageBatch(s string) (string, bool) {
	if !IsMessageBatchID(s) {
		return "", false
	}
	return BatchPrefix + strings.TrimPrefix(s, MessageBatchPrefix), true
}

// AnthropicVersionKey is the batch metadata key under which a message batch keeps the
// anthropic-version header it was created with; the worker sends it to the upstream with each
// of its requests (the upstream client's default when absent).
const AnthropicVersionKey = "anthropic_version"

// anthropicVersionPattern is what an anthropic-version kept for the upstream may look like
// ("2023-06-01"); any other value is ignored, as a missing one is.
var anthropicVersionPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// KeepableAnthropicVersion reports whether v can be kept as a message batch's anthropic-version.
func KeepableAnthropicVersion(v string) bool { return anthropicVersionPattern.MatchString(v) }

// NewRequestID returns the id of one API request as Anthropic's routes show it (the request-id
// header): "req_" plus 24 base62 characters.
func NewRequestID() string { return "req_" + randomBase62(fileIDLen) }

// Limits of a message batch, Anthropic's: at most MaxMessageBatchRequests requests (the input
// file's MAX_LINES applies too, and is usually the lower one), custom_ids matching
// MessageCustomIDPattern, unique within the batch.
const MaxMessageBatchRequests = 100_000

// MessageCustomIDPattern is the shape of a message batch request's custom_id.
var MessageCustomIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// Processing statuses of a message batch (MessageBatch.processing_status).
const (
	MessageBatchInProgress = "in_progress"
	MessageBatchCanceling  = "canceling"
	MessageBatchEnded      = "ended"
)

// MessageBatchStatus maps a batch status to a message batch's processing_status: a batch that
// still runs (validating, in_progress, finalizing) is in_progress, cancelling is canceling, and
// every terminal status is ended.
func MessageBatchStatus(s BatchStatus) string {
	switch {
	case s == BatchCancelling:
		return MessageBatchCanceling
	case s.Terminal():
		return MessageBatchEnded
	}
	return MessageBatchInProgress
}

// MessageRequestCounts are a message batch's request_counts. They always sum to the batch's
// requests: Processing is every request not finished yet (pending, claimed or processing).
type MessageRequestCounts struct {
	Processing int `json:"processing"`
	Succeeded  int `json:"succeeded"`
	Errored    int `json:"errored"`
	Canceled   int `json:"canceled"`
	Expired    int `json:"expired"`
}

// MessageRequestCountsOf sums a batch's requests by state (as the store counts them) into
// request_counts; total is the batch's request count, which covers requests without rows (not
// populated yet, or never: a batch that ended before it ran has none). Those count as processing
// while the batch runs, and once it ended as UnrunResult says.
func MessageRequestCountsOf(byState map[RequestState]int, total int, status BatchStatus) MessageRequestCounts {
	c := MessageRequestCounts{Succeeded: byState[StateCompleted], Errored: byState[StateFailed],
		Canceled: byState[StateCanceled], Expired: byState[StateExpired]}
	rest := max(total-c.Succeeded-c.Errored-c.Canceled-c.Expired, 0)
	switch {
	case !status.Terminal():
		c.Processing = rest
	case UnrunResult(status) == MessageResultCanceled:
		c.Canceled += rest
	case UnrunResult(status) == MessageResultExpired:
		c.Expired += rest
	default:
		c.Errored += rest
	}
	return c
}

// Result types of a message batch's requests (the results' result.type).
const (
	MessageResultSucceeded = "succeeded"
	MessageResultErrored   = "errored"
	MessageResultCanceled  = "canceled"
	MessageResultExpired   = "expired"
)

// UnrunResult is the result of the requests of a batch that ended (status) before they ran:
// canceled when it was cancelled, expired when it expired, errored when it failed.
func UnrunResult(status BatchStatus) string {
	switch status {
	case BatchCancelled:
		return MessageResultCanceled
	case BatchExpired:
		return MessageResultExpired
	}
	return MessageResultErrored
}
