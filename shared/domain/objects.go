package domain

import (
	"encoding/json"
	"time"
)

// Principal is the authenticated caller of the API.
type Principal struct {
	TenantID string
	KeyID    int64
	Admin    bool
}

// Model is an upstream model and its global concurrency limit.
type Model struct {
	Name                string `json:"name"`
	BaseURL             string `json:"base_url"`
	CredentialRef       string `json:"credential_ref"` // "env:FUSILLADE_UPSTREAM_KEY_<NAME>", a secret ARN under the upstream prefix, or "" (shared/secrets); never the secret itself
	ConcurrencyLimit    int    `json:"concurrency_limit"`
	EscalationModel     string `json:"escalation_model,omitempty"`
	EscalationThreshold int    `json:"escalation_threshold_secs"`
	InFlight            int    `json:"in_flight"`
}

// DefaultEscalationThresholdSecs is a model's escalation threshold when none is given: requests
// whose batch deadline is nearer than this go to the escalation model. The column default in
// shared/postgres/migrations/0001_init.sql says the same.
const DefaultEscalationThresholdSecs = 900

// File purposes.
const (
	PurposeBatch       = "batch"
	PurposeBatchOutput = "batch_output"
	PurposeBatchError  = "batch_error"
)

// File statuses (File.Status), OpenAI's file object statuses: an input file is uploaded until
// its content arrived and was validated, then processed (or error, with StatusDetails). Output and
// error files are born processed.
const (
	FileUploaded  = "uploaded"
	FileProcessed = "processed"
	FileError     = "error"
)

// FileStatuses are all the file statuses; the files table's CHECK constraint lists the same.
var FileStatuses = []string{FileUploaded, FileProcessed, FileError}

// Upload statuses, OpenAI's Upload object: an upload is pending until completed or cancelled.
const (
	UploadPending   = "pending"
	UploadCompleted = "completed"
	UploadCancelled = "cancelled"
)

// File is an uploaded input file or a batch's output or error file.
type File struct {
	ID            string
	TenantID      string
	Filename      string
	Purpose       string
	Bytes         int64
	Status        string // FileUploaded | FileProcessed | FileError
	StatusDetails string
	ObjectKey     string // S3 key of the content
	Lines         int
	BatchID       string // owning batch of an output or error file
	CreatedAt     time.Time
	ExpiresAt     *time.Time
	CreatedByKey  int64 // id of the API key that created it (a batch's for its output/error files); 0 = unknown
}

// BatchError is one entry of a batch's errors list (OpenAI shape).
type BatchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

// Batch is a batch with its counts.
type Batch struct {
	ID               string
	TenantID         string
	InputFileID      string
	Endpoint         string
	CompletionWindow string
	Status           BatchStatus
	Model            string
	Metadata         map[string]string
	Errors           []BatchError
	OutputFileID     string // reserved at creation, growing while the batch runs; "" once sealed empty
	ErrorFileID      string // likewise
	Counts           Counts
	Usage            json.RawMessage
	CreatedAt        time.Time
	ExpiresAt        time.Time
	InProgressAt     *time.Time
	FinalizingAt     *time.Time
	CompletedAt      *time.Time
	FailedAt         *time.Time
	ExpiredAt        *time.Time
	CancellingAt     *time.Time
	CancelledAt      *time.Time
	CreatedByKey     int64  // id of the API key that created it; 0 = unknown
	RerunOf          string // the ended batch whose unfinished lines this batch runs again; "" = none
	RerunBatchID     string // the batch that runs this one's unfinished lines again; "" = none yet
	FailFastAfter    int    // K of the fail-fast breaker; 0 = off
	API              string // the API that created it (APIOpenAI, APIAnthropic); "" is APIOpenAI
	// Coalesce: whether the batch's lines are coalesced (see coalesce.go). On creation nil takes
	// the tenant's default (tenants.coalesce_default); read back it is always set.
	Coalesce *bool
	// Coalesced and Cached count the lines that took another line's upstream result and those
	// served from the result cache (each is also counted as completed or failed).
	Coalesced int
	Cached    int
}

// Sealed reports whether the batch's output and error files are final: it ended through
// finalisation (completed, expired, cancelled after it started, or failed after it started: stopped
// by the fail-fast breaker). Only then does OpenAI's Batch object name them; a batch that ended
// before it ran (failed validation, or cancelled or expired while validating) has no results.
func (b Batch) Sealed() bool {
	return b.FinalizingAt != nil && b.Status.Terminal()
}

// ResultRow is one finished request as output and error files render it.
type ResultRow struct {
	RequestID         string
	Line              int
	CustomID          string
	State             RequestState
	StatusCode        int
	Body              []byte
	UpstreamRequestID string
	ErrorCode         string
	ErrorMessage      string
	// Shared: the result was not this line's own upstream call (coalesced from another line, or
	// served from the result cache); its tokens are not counted again in the batch's usage.
	Shared bool
}
