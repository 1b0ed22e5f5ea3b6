package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BatchStatus follows OpenAI's batch statuses.
type BatchStatus string

const (
	BatchValidating BatchStatus = "validating"
	BatchFailed     BatchStatus = "failed"
	BatchInProgress BatchStatus = "in_progress"
	BatchFinalizing BatchStatus = "finalizing"
	BatchCompleted  BatchStatus = "completed"
	BatchExpired    BatchStatus = "expired"
	BatchCancelling BatchStatus = "cancelling"
	BatchCancelled  BatchStatus = "cancelled"
)

// BatchStatuses are all the batch statuses; the batches table's CHECK constraint lists the same.
var BatchStatuses = []BatchStatus{BatchValidating, BatchFailed, BatchInProgress, BatchFinalizing,
	BatchCompleted, BatchExpired, BatchCancelling, BatchCancelled}

// Terminal reports whether the batch will change no more (short of a user retry).
func (s BatchStatus) Terminal() bool {
	switch s {
	case BatchFailed, BatchCompleted, BatchExpired, BatchCancelled:
		return true
	}
	return false
}

// Endpoints is the allow-list of request paths a batch may target. A line's url must equal one
// of these exactly, and the worker joins it to the model's configured base URL: user input never
// chooses a host.
// /v1/messages is Anthropic's Messages API, the endpoint of message batches (MessagesEndpoint).
var Endpoints = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", MessagesEndpoint}

// ValidEndpoint reports whether p is on the allow-list.
func ValidEndpoint(p string) bool {
	for _, e := range Endpoints {
		if p == e {
			return true
		}
	}
	return false
}

// Fail-fast breaker: a batch whose first FailFastAfter finished requests all failed with the
// same upstream 4xx status (a body the upstream rejects, a bad key) is stopped and failed instead
// of sending every other line to the same answer. DefaultFailFastAfter is FAIL_FAST_AFTER's
// default, the K a batch gets when it does not set fail_fast_after; 0 turns the breaker off.
const (
	DefaultFailFastAfter = 20
	MaxFailFastAfter     = 10000
)

// CodeFailFast is the batch error (Batch.Errors) of a batch the fail-fast breaker stopped; its
// unsent lines end with CodeBatchFailedFast.
const CodeFailFast = "fail_fast"

// DefaultCompletionWindow is the one completion window allowed when none are configured
// (COMPLETION_WINDOWS), as in OpenAI.
const DefaultCompletionWindow = "24h"

// ParseWindow parses a completion window such as "24h", "90m", "7d" or "2s". Days are not a Go
// duration unit, so "d" is handled here. The result must be positive and at most 30 days.
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("invalid completion_window %q", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid completion_window %q", s)
		}
	}
	if d <= 0 || d > 30*24*time.Hour {
		return 0, fmt.Errorf("completion_window %q out of range (must be positive and at most 30d)", s)
	}
	return d, nil
}

// Counts are a batch's request counts. Failed includes lines that ended as canceled or expired,
// so that Completed + Failed equals the number of lines in the output plus error files.
type Counts struct {
	Total      int
	Pending    int // pending, claimed or processing
	Completed  int
	Failed     int
	Canceled   int // part of Failed
	Expired    int // part of Failed
	InProgress int // claimed or processing (part of Pending)
}

// Done reports whether every request is terminal.
func (c Counts) Done() bool { return c.Total > 0 && c.Pending == 0 }

// Rerun is what rerunning an ended batch did: BatchID is the new batch (in_progress) that runs
// its unfinished lines again, Models the models those lines name (to dispatch), Existing that
// the batch had been rerun before and BatchID is that earlier rerun (nothing new was created).
type Rerun struct {
	BatchID  string
	Models   []string
	Existing bool
}
