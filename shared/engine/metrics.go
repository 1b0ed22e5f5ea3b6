package engine

import (
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// Metrics receives the engine's figures as they happen. Its methods are called on the hot path
// (every claim, every upstream call, every result), concurrently: an implementation must be
// cheap and must not block on I/O (shared/emf aggregates in memory and writes at the end of an
// invocation; shared/prometheus updates counters). Deps.Metrics nil means NopMetrics.
type Metrics interface {
	// Claimed counts n requests of model claimed, by a dispatch (for the work queue) or by a
	// worker's refill (straight into processing).
	Claimed(model string, n int)
	// Outcome counts one written result of model: class is completed, retried or failed (see
	// OutcomeClass), code the error code of a retry or failure: http_<status> for an upstream
	// HTTP status (429, 500, 422, …), the error line's code otherwise (timeout, network_error,
	// batch_cancelled, …); "" for completed.
	Outcome(model string, class OutcomeClass, code string)
	// UpstreamLatency is how long one upstream call of model took.
	UpstreamLatency(model string, d time.Duration)
	// InFlight is told delta +1 as an upstream call of model starts in this process and -1 as
	// it ends: the recorder keeps the count (and its peak). Deltas rather than counts, so that
	// reports that race each other still sum to the exact figure.
	InFlight(model string, delta int)
	// RefillGap is the time between a slot's upstream call ending and the next request of the
	// slot starting (the result write and the claim that refilled it are most of it).
	RefillGap(model string, d time.Duration)
	// QueueAge is how long a work message waited in the queue before its invocation received it.
	QueueAge(d time.Duration)
	// LinesDone counts n lines of batch that reached a final state (completed, failed, canceled,
	// expired) through a worker's result write.
	LinesDone(batch string, n int)
}

// OutcomeClass is the class of a written result, as metrics count it.
type OutcomeClass string

// The classes of Metrics.Outcome.
const (
	OutcomeCompleted OutcomeClass = "completed"
	OutcomeRetried   OutcomeClass = "retried"
	OutcomeFailed    OutcomeClass = "failed"
)

// classOf is the class of a written outcome: a retry goes back to pending; canceled and expired
// (a request stopped on purpose) count as failed with their code.
func classOf(s domain.RequestState) OutcomeClass {
	switch s {
	case domain.StateCompleted:
		return OutcomeCompleted
	case domain.StatePending:
		return OutcomeRetried
	}
	return OutcomeFailed
}

// codeOf is the code an outcome is counted under: http_<status> for an upstream HTTP answer
// (whose error code, http_status or none, does not say which), its error code otherwise.
func codeOf(out domain.Outcome, class OutcomeClass) string {
	if class == OutcomeCompleted {
		return ""
	}
	if out.StatusCode != 0 && (out.ErrorCode == "" || out.ErrorCode == domain.CodeHTTPStatus) {
		return httpCode(out.StatusCode)
	}
	return out.ErrorCode
}

// httpCode spells http_<status> without fmt (it runs once per failed result).
func httpCode(status int) string {
	if status < 100 || status > 999 {
		return "http_other"
	}
	return "http_" + string([]byte{byte('0' + status/100), byte('0' + status/10%10), byte('0' + status%10)})
}

// NopMetrics discards every figure: the default, so tests and benchmarks that wire none pay
// nothing.
type NopMetrics struct{}

// Claimed implements Metrics.
func (NopMetrics) Claimed(string, int) {}

// Outcome implements Metrics.
func (NopMetrics) Outcome(string, OutcomeClass, string) {}

// UpstreamLatency implements Metrics.
func (NopMetrics) UpstreamLatency(string, time.Duration) {}

// InFlight implements Metrics.
func (NopMetrics) InFlight(string, int) {}

// RefillGap implements Metrics.
func (NopMetrics) RefillGap(string, time.Duration) {}

// QueueAge implements Metrics.
func (NopMetrics) QueueAge(time.Duration) {}

// LinesDone implements Metrics.
func (NopMetrics) LinesDone(string, int) {}
