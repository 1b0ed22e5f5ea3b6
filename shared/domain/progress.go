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

// Timeline is a batch's finished lines over time (GET /v1/batches/{id}/timeline): Points[i]
// counts the lines that had finished by Points[i].At, the end of the i-th of len(Points) equal
// spans from Start to End, so the last point holds every finished line. Failed counts failed,
// canceled and expired lines, as the batch's request_counts do.
type Timeline struct {
	Start, End time.Time
	Total      int
	Points     []TimelinePoint
}

// TimelinePoint is the lines finished by At.
type TimelinePoint struct {
	At                time.Time
	Completed, Failed int
}

// Timeline bounds: DefaultTimelinePoints spans unless the caller asks for 1 to MaxTimelinePoints.
const (
	DefaultTimelinePoints = 60
	MaxTimelinePoints     = 500
)

// TimelineSpan is the span a batch's timeline covers: from when it started running (its
// creation, before that) to when it ended, or now while it has not; at least a second, so that
// every span has a width.
func TimelineSpan(b Batch, now time.Time) (start, end time.Time) {
	start = b.CreatedAt
	if b.InProgressAt != nil {
		start = *b.InProgressAt
	}
	end = now
	for _, t := range []*time.Time{b.CompletedAt, b.FailedAt, b.ExpiredAt, b.CancelledAt} {
		if t != nil {
			end = *t
			break
		}
	}
	if end.Sub(start) < time.Second {
		end = start.Add(time.Second)
	}
	return start, end
}

// NewTimeline is the timeline of n equal spans from start to end, with nothing finished yet;
// Add counts lines into it.
func NewTimeline(start, end time.Time, total, n int) Timeline {
	t := Timeline{Start: start, End: end, Total: total, Points: make([]TimelinePoint, n)}
	step := end.Sub(start) / time.Duration(n)
	for i := range t.Points {
		t.Points[i].At = start.Add(step * time.Duration(i+1))
	}
	t.Points[n-1].At = end
	return t
}

// Add counts lines that finished within span i (0-based; outside the spans they count in the
// nearest) into that point and every later one.
func (t Timeline) Add(i, completed, failed int) {
	i = min(max(i, 0), len(t.Points)-1)
	for j := i; j < len(t.Points); j++ {
		t.Points[j].Completed += completed
		t.Points[j].Failed += failed
	}
}
