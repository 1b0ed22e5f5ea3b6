package domain

import (
	"time"
)

// Finished is a request whose outcome was persisted, with the state it ended in (which differs
// from the one asked for when a retry met a cancelled or expired batch).
type Finished struct {
	RequestID string
	BatchID   string
	State     RequestState
	// CoalescedFrom is set on a request the write ended with another one's result (coalescing):
	// the id of the request whose outcome it took. Empty for the outcomes written themselves.
	CoalescedFrom string
}

// Refill asks for the slots freed by a group of outcomes to be claimed again in the same
// transaction, for the worker instance Owner to run: up to Max requests of Model, ranked with
// UrgencyWeight as any claim is. An empty Owner claims for the work queue (a dispatch).
type Refill struct {
	Model         string
	Owner         string
	Max           int
	UrgencyWeight float64
}

// Rescued is a request returned to pending by Rescue (or ended, when its batch was cancelled or
// expired meanwhile).
type Rescued struct {
	RequestID string
	Model     string
	BatchID   string
	State     RequestState
}

// Sealed describes a result file written to S3 by finalisation.
type Sealed struct {
	Key   string
	Bytes int64
	Lines int
}

// Abort is a running request that must be stopped, with the state and code to record.
type Abort struct {
	RequestID string
	State     RequestState
	Code      string
}

// Expired is a batch whose window closed.
type Expired struct {
	BatchID string
	Status  BatchStatus // expired (never started) or in_progress (to be sealed as expired)
}

// PurgeableBatch is a deleted batch whose requests are gone: its output and error objects, then
// its rows, can go.
type PurgeableBatch struct {
	ID, TenantID string
	API          string // the API that created it (APIOpenAI, APIAnthropic)
}

// PurgeableFile is an input file that was deleted (its copied prompts are erased first) or whose
// expires_after passed; ObjectKey is "" when it has no object.
type PurgeableFile struct {
	ID, TenantID, ObjectKey string
	Deleted                 bool
}

// PurgeStats counts what one purge round removed.
type PurgeStats struct {
	Requests, Batches, Files, ErasedPrompts, IdempotencyKeys int
	CacheEntries                                             int // expired result-cache entries (coalescing)
}

// WorkerRecord is a liveness record of one worker or dispatcher instance.
type WorkerRecord struct {
	ID          string       `json:"id"`
	Function    string       `json:"function"`
	Status      WorkerStatus `json:"status"` // as of the read; see WorkerStatus
	StartedAt   time.Time    `json:"started_at"`
	HeartbeatAt time.Time    `json:"heartbeat_at"`
	StoppedAt   *time.Time   `json:"stopped_at"`
	Invocations int64        `json:"invocations"`
	Processed   int64        `json:"processed"`
	Failed      int64        `json:"failed"`
}

// WorkerStatus is what a worker record says of its instance at a given moment. It is derived
// from the record, never stored: an instance that stops heart-beating writes nothing.
type WorkerStatus string

// The worker statuses. Stale is the rescue's test: an instance silent for longer than the stale
// threshold (STALE_WORKER_MS) loses its processing requests to the next rescue. A Lambda
// instance is also silent between invocations, so stale does not mean the instance is gone.
const (
	WorkerRunning WorkerStatus = "running" // heart-beat within the stale threshold
	WorkerStale   WorkerStatus = "stale"   // silent for longer than the stale threshold, never stopped
	WorkerStopped WorkerStatus = "stopped" // shut down cleanly; its requests are rescued at once
)

// DefaultStaleWorker is the stale threshold's default: the rescue (engine.Config.StaleWorker)
// and the admin API's worker status read the same setting.
const DefaultStaleWorker = time.Minute

// WorkerStatuses lists every WorkerStatus.
var WorkerStatuses = []WorkerStatus{WorkerRunning, WorkerStale, WorkerStopped}
