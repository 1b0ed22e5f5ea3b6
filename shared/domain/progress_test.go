package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

func TestEstimateProgressGoesByThePaceOverTheWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	started := now.Add(-30 * time.Minute)
	running := func(total, done int, deadline time.Duration) domain.Batch {
		return domain.Batch{Status: domain.BatchInProgress, InProgressAt: &started, ExpiresAt: now.Add(deadline),
			Counts: domain.Counts{Total: total, Completed: done - done/4, Failed: done / 4}}
	}
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, tc := range []struct {
		name  string
		b     domain.Batch
		since *domain.ProgressSample
		want  domain.Progress
		ok    bool
	}{
		{"100 lines in the last 10 minutes, 500 to go", running(1000, 500, time.Hour),
			&domain.ProgressSample{At: now.Add(-10 * time.Minute), Done: 400},
			domain.Progress{PerMinute: 10, EstimatedCompletion: at(50 * time.Minute)}, true},
		{"the same pace past the deadline", running(1000, 500, 40*time.Minute),
			&domain.ProgressSample{At: now.Add(-10 * time.Minute), Done: 400},
			domain.Progress{PerMinute: 10, EstimatedCompletion: at(50 * time.Minute), AtRisk: true}, true},
		{"no sample yet: since the start", running(90, 30, time.Hour), nil,
			domain.Progress{PerMinute: 1, EstimatedCompletion: at(60 * time.Minute)}, true},
		{"a sample from before the start is ignored", running(90, 30, 2*time.Hour),
			&domain.ProgressSample{At: started.Add(-time.Minute), Done: 20},
			domain.Progress{PerMinute: 1, EstimatedCompletion: at(60 * time.Minute)}, true},
		{"stalled for the whole window", running(100, 50, time.Hour),
			&domain.ProgressSample{At: now.Add(-10 * time.Minute), Done: 50},
			domain.Progress{AtRisk: true}, true},
		{"stalled for less than the window", running(100, 50, time.Hour),
			&domain.ProgressSample{At: now.Add(-2 * time.Minute), Done: 50},
			domain.Progress{}, true},
		{"all done", running(100, 100, time.Hour),
			&domain.ProgressSample{At: now.Add(-10 * time.Minute), Done: 90},
			domain.Progress{PerMinute: 1, EstimatedCompletion: at(0)}, true},
		{"not running", domain.Batch{Status: domain.BatchCompleted, InProgressAt: &started}, nil, domain.Progress{}, false},
		{"validating", domain.Batch{Status: domain.BatchValidating}, nil, domain.Progress{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := domain.EstimateProgress(tc.b, tc.since, now)
			require.Equal(t, tc.ok, ok)
			require.InDelta(t, tc.want.PerMinute, got.PerMinute, 1e-9)
			require.Equal(t, tc.want.AtRisk, got.AtRisk)
			if tc.want.EstimatedCompletion == nil {
				require.Nil(t, got.EstimatedCompletion)
			} else {
				require.NotNil(t, got.EstimatedCompletion)
				require.WithinDuration(t, *tc.want.EstimatedCompletion, *got.EstimatedCompletion, time.Second)
			}
		})
	}
}

func TestTimelineSpan(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	created := now.Add(-time.Hour)
	for _, c := range []struct {
		name       string
		b          domain.Batch
		start, end time.Time
	}{
		{"validating: from creation to now", domain.Batch{CreatedAt: created}, created, now},
		{"running: from its start to now", domain.Batch{CreatedAt: created, InProgressAt: at(-50 * time.Minute)}, now.Add(-50 * time.Minute), now},
		{"completed: to its end", domain.Batch{CreatedAt: created, InProgressAt: at(-50 * time.Minute), CompletedAt: at(-10 * time.Minute)},
			now.Add(-50 * time.Minute), now.Add(-10 * time.Minute)},
		{"cancelled: to its end", domain.Batch{CreatedAt: created, InProgressAt: at(-50 * time.Minute), CancelledAt: at(-20 * time.Minute)},
			now.Add(-50 * time.Minute), now.Add(-20 * time.Minute)},
		{"expired: to its end", domain.Batch{CreatedAt: created, InProgressAt: at(-50 * time.Minute), ExpiredAt: at(-5 * time.Minute)},
			now.Add(-50 * time.Minute), now.Add(-5 * time.Minute)},
		{"failed at validation: at least a second", domain.Batch{CreatedAt: created, FailedAt: &created}, created, created.Add(time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start, end := domain.TimelineSpan(c.b, now)
			require.Equal(t, c.start, start)
			require.Equal(t, c.end, end)
		})
	}
}

func TestTimelineCumulatesItsSpans(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tl := domain.NewTimeline(start, start.Add(10*time.Second), 7, 4)
	tl.Add(0, 1, 0)
	tl.Add(2, 2, 1)
	tl.Add(-1, 1, 0) // before the first span: counted in it
	tl.Add(9, 0, 1)  // after the last: counted in it
	require.Equal(t, []domain.TimelinePoint{
		{At: start.Add(2500 * time.Millisecond), Completed: 2, Failed: 0},
		{At: start.Add(5 * time.Second), Completed: 2, Failed: 0},
		{At: start.Add(7500 * time.Millisecond), Completed: 4, Failed: 1},
		{At: start.Add(10 * time.Second), Completed: 4, Failed: 2},
	}, tl.Points)
}
