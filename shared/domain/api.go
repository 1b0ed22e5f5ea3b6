package domain

import (
	"time"
)

// FileListParams selects a page of a tenant's files.
type FileListParams struct {
	Purpose string // "" = every purpose
	After   string // object id of the last file of the previous page; "" = first page
	Limit   int    // page size
	Asc     bool   // oldest first; default newest first
	// CreatedByKeys keeps the files created by any of these API key ids; empty = any creator.
	CreatedByKeys []int64
}

// BatchListParams selects a page of a tenant's batches. Zero values mean "no filter".
type BatchListParams struct {
	After         string
	Limit         int
	Statuses      []string
	Search        string // substring of the id, the metadata or the input filename, case-insensitive
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	ActiveFirst   bool    // unfinished batches first, then the rest, each newest first
	CreatedByKeys []int64 // API key ids that created the batch; empty = any creator
	InputFileID   string  // only the batches made from this input file; "" = any
	// API keeps the batches created through that API (APIOpenAI, APIAnthropic); "" = APIOpenAI.
	API string
	// Before (a batch id) asks for the page of batches right before it in the order (newer ones),
	// instead of After's next page; the page still comes newest first.
	Before string
}

// BatchResult is one line of a batch as the results view shows it: the input and, once the line
// is finished, its outcome.
type BatchResult struct {
	ResultRow
	Model string
	Input []byte
	// Latency is the final attempt's time from the start of its upstream call to its recorded
	// outcome; nil for a line that has not finished or never started (cancelled or expired
	// before its call).
	Latency *time.Duration
}

// ResultQuery selects rows of a batch.
type ResultQuery struct {
	Offset int      // matching rows to skip
	Limit  int      // rows to return at most
	Search string   // substring of custom_id, case-insensitive; "" = all
	States []string // request states; empty = all
}

// IdempotencyRecord is what a key remembers.
type IdempotencyRecord struct {
	RequestHash []byte
	ObjectID    string
	CreatedAt   time.Time
}

// Tenant is an account whose keys, files and batches are isolated from every other tenant's.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// CoalesceDefault: the tenant's batches coalesce their lines unless created with coalescing
	// off (default false).
	CoalesceDefault bool `json:"coalesce_default"`
}

// APIKey describes a key without its secret, which is never stored.
type APIKey struct {
	ID        int64      `json:"id"`
	TenantID  string     `json:"tenant_id"`
	Prefix    string     `json:"prefix"`
	Name      string     `json:"name"`
	Admin     bool       `json:"admin"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// CancelOutcome says what happened to one request of CancelRequests.
type CancelOutcome struct {
	RequestID string
	Result    string // canceled | cancelling (its worker will abort it) | not_cancellable (already finished) | CancelNotFound
}

// CancelNotFound is the CancelOutcome result of a request id that is not one of the batch's (the
// store answers only for the ids it found).
const CancelNotFound = "not_found"

// WindowCounts maps model → window seconds → unfinished requests due within that window.
type WindowCounts map[string]map[int]int

// PendingFilter narrows the pending counts, as fusillade's states and model_filter do: an
// autoscaler counts only what waits (pending), an admission check everything unfinished.
type PendingFilter struct {
	States []RequestState // unfinished states to count; nil: all of them (pending, claimed, processing)
	Models []string       // models to count; nil: every model
}

// IdempotencyKeyTTL is how long a POST's Idempotency-Key is remembered.
const IdempotencyKeyTTL = 24 * time.Hour
