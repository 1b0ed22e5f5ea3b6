package domain

import (
	"context"
	"time"
)

// RequestState is where a request is in its lifecycle.
//
//	pending ──claim──► claimed ──start──► processing ──► completed | failed
//	   ▲                  │                   │
//	   └──── rescue ──────┴─── retry/rescue ──┘
//	pending | claimed | processing ──► canceled | expired (batch cancelled or past its window)
//
// completed, failed, canceled and expired are terminal: no write moves a request out of them
// except an explicit user retry of failed lines, which starts a new life at pending.
type RequestState string

const (
	StatePending    RequestState = "pending"
	StateClaimed    RequestState = "claimed"
	StateProcessing RequestState = "processing"
	StateCompleted  RequestState = "completed"
	StateFailed     RequestState = "failed"
	StateCanceled   RequestState = "canceled"
	StateExpired    RequestState = "expired"
)

// RequestStates are all the request states; the requests table's CHECK constraint lists the same.
var RequestStates = []RequestState{StatePending, StateClaimed, StateProcessing, StateCompleted,
	StateFailed, StateCanceled, StateExpired}

// Terminal reports whether no further work will happen for a request in state s.
func (s RequestState) Terminal() bool {
	switch s {
	case StateCompleted, StateFailed, StateCanceled, StateExpired:
		return true
	}
	return false
}

// InFlight reports whether a request in state s holds one of its model's concurrency slots.
func (s RequestState) InFlight() bool { return s == StateClaimed || s == StateProcessing }

// Work is one claimed request as a queue message carries it: the id plus the attempt that the
// claim produced. The attempt is the fencing token: every later write for this delivery is
// guarded on it, so a duplicate or a zombie from an earlier attempt changes nothing.
type Work struct {
	RequestID string
	Attempt   int
}

// Dispatch is a message asking for Model to be dispatched once Due has passed. Workers send one
// when they schedule a retry, so the request is claimed when its back-off ends rather than at the
// next scheduled dispatch.
type Dispatch struct {
	Model string
	Due   time.Time // zero: at once
}

// MaxDispatchWait bounds how long a received dispatch message is held back: the queue rounds its delay down
// to whole seconds, so it arrives under a second early; one due later than that (a back-off
// beyond the queue's 15-minute cap) is run at once, claims nothing, and the scheduled dispatch
// takes over.
const MaxDispatchWait = time.Second

// Wait blocks until the dispatch is due (at most MaxDispatchWait) or ctx ends.
func (k Dispatch) Wait(ctx context.Context) {
	d := time.Until(k.Due)
	if d <= 0 || d > MaxDispatchWait {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Claimed is a request that has just been claimed, with what the dispatcher needs to enqueue it.
type Claimed struct {
	Work
	Model string
}

// Job is everything a worker needs to execute one claimed request.
type Job struct {
	Work
	BatchID          string
	TenantID         string
	CustomID         string
	Model            string // the model the slot was charged to and that is called (the fallback when escalated)
	RoutedModel      string // set when the request was escalated to Model near its batch's deadline
	Path             string // allow-listed endpoint path, e.g. /v1/chat/completions
	Body             []byte
	Retries          int // retries already made (0 on the first try)
	BatchEndpoint    string
	BatchCreatedAt   time.Time
	BatchExpiresAt   time.Time
	CompletionWindow string
	Metadata         map[string]string
	// Coalesce: the request has a coalescing key, so its upstream result is also written to the
	// pending requests that share the key (see coalesce.go).
	Coalesce bool
}

// Outcome is the result of one execution, as the worker persists it.
type Outcome struct {
	Work
	Model             string       // model whose slot is freed
	State             RequestState // completed, failed or pending (retry)
	StatusCode        int
	Body              []byte
	ErrorCode         string // stable code for non-HTTP failures (network_error, timeout, …)
	ErrorMessage      string
	UpstreamRequestID string
	NotBefore         time.Time // for a retry
	RoutedModel       string
	// Rejected: the upstream answered a 4xx status that is not retried (a body or a key it
	// refuses). The fail-fast breaker counts these.
	Rejected bool
	// Coalesce is the Job's: the write also ends the pending requests that share its key.
	Coalesce bool
}
