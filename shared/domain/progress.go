package domain

import "time"

// ProgressWindow is the sliding window of a running batch's throughput: the lines it finished
// over the last 10 minutes. The maintenance pass samples every running batch's finished count
// (once a minute on AWS, the purge schedule), and a batch is read against its oldest sample in
// the window.
const ProgressWindow = 10 * time.Minute

// ProgressSample is a running batch's finished lines (completed + failed, which counts canceled
// and expired) at a moment.
type ProgressSample struct {
	At   time.Time
	Done int
}

// Progress is what a running batch's recent pace says about its end.
type Progress struct {
	// PerMinute is the lines finished per minute over the window (or since the batch started,
	// when it is younger than its first sample).
	PerMinute float64
	// EstimatedCompletion is when the pending lines will have finished at that pace; nil when
	// nothing finished in the window, so there is no pace to go by.
	EstimatedCompletion *time.Time
	// AtRisk: the estimate falls after the batch's deadline, or a full window passed without a
	// line finishing while lines are pending.
	AtRisk bool
}

// minProgressSpan is the shortest span a pace is measured over: a pace over a few milliseconds
// after the batch started says nothing.
const minProgressSpan = time.Second

// EstimateProgress is the progress of b at now, measured from since (its oldest sample within
// ProgressWindow, nil when there is none yet: then from its start, with nothing done). ok is
// false for a batch that is not running, or too young to have a pace.
func EstimateProgress(b Batch, since *ProgressSample, now time.Time) (p Progress, ok bool) {
	if b.Status != BatchInProgress || b.InProgressAt == nil {
		return Progress{}, false
	}
	base := ProgressSample{At: *b.InProgressAt}
	if since != nil && !since.At.After(now) && since.At.After(base.At) {
		base = *since
	}
	span := now.Sub(base.At)
	if span < minProgressSpan {
		return Progress{}, false
	}
	done := b.Counts.Completed + b.Counts.Failed
	pending := b.Counts.Total - done
	delta := done - base.Done
	if delta <= 0 {
		return Progress{AtRisk: pending > 0 && span >= ProgressWindow}, true
	}
	perLine := span / time.Duration(delta)
	p.PerMinute = float64(delta) / span.Minutes()
	eta := now.Add(perLine * time.Duration(pending))
	p.EstimatedCompletion = &eta
	p.AtRisk = eta.After(b.ExpiresAt)
	return p, true
}
