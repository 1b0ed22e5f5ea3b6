package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// A batch's timeline counts its finished lines by when they finished: completed apart from
// failed, canceled and expired (together, as request_counts count them), pending lines nowhere,
// and lines that finished outside the span in its nearest end. Another tenant sees nothing.
func TestBatchTimelineCountsFinishedLinesByWhenTheyFinished(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.batch(t, 8, "m")
	// Lines 1-7 end at 1 s, 3 s, 3 s, 6 s, 9 s, 12 s (after the span) and -1 s (before it); line 8
	// stays pending.
	for _, l := range []struct {
		line  int
		state string
		at    time.Duration
	}{
		{1, "completed", time.Second}, {2, "completed", 3 * time.Second}, {3, "failed", 3 * time.Second},
		{4, "canceled", 6 * time.Second}, {5, "completed", 9 * time.Second}, {6, "expired", 12 * time.Second},
		{7, "completed", -time.Second},
	} {
		_, err := f.store.Pool().Exec(ctx, `UPDATE requests SET state = $3, finished_at = $4 WHERE batch_id = $1 AND line = $2`,
			id, l.line, l.state, f.now.Add(l.at))
		require.NoError(t, err)
	}
	tl, err := f.store.BatchTimeline(ctx, f.tenant, id, 8, f.now, f.now.Add(10*time.Second), 5)
	require.NoError(t, err)
	require.Equal(t, 8, tl.Total)
	var got [][2]int
	for _, p := range tl.Points {
		got = append(got, [2]int{p.Completed, p.Failed})
	}
	// Spans of 2 s: [0,2) holds lines 1 and 7; [2,4) lines 2 and 3; [4,6) none; [6,8) line 4;
	// [8,10] line 5 and line 6 (after the end).
	require.Equal(t, [][2]int{{2, 0}, {3, 1}, {3, 1}, {3, 2}, {4, 3}}, got)
	require.Equal(t, f.now.Add(10*time.Second), tl.Points[4].At)

	other := f.newTenant(t, "other")
	tl, err = f.store.BatchTimeline(ctx, other, id, 8, f.now, f.now.Add(10*time.Second), 5)
	require.NoError(t, err)
	require.Equal(t, domain.TimelinePoint{At: f.now.Add(10 * time.Second)}, tl.Points[4], "another tenant's batch counts nothing")
}
