package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// Worker records read back exactly as the heart-beats and the stop wrote them, with the status
// the rescue would see: running while the last heart-beat is within the stale threshold, stale
// after it, stopped once stopped, and running again when a stopped id beats again.
func TestWorkerRecordsReadBackAfterHeartbeatAndStopWithTheirStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	t0 := f.now
	stale := time.Minute
	list := func(status domain.WorkerStatus, now time.Time) []domain.WorkerRecord {
		ws, err := f.store.ListWorkers(ctx, status, now, stale, 10)
		require.NoError(t, err)
		return ws
	}
	ids := func(ws []domain.WorkerRecord) []string {
		out := []string{}
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}

	require.NoError(t, f.store.Heartbeat(ctx, domain.WorkerRecord{ID: "w1", Function: "worker", Invocations: 1, Processed: 10, Failed: 2}, t0))
	require.NoError(t, f.store.Heartbeat(ctx, domain.WorkerRecord{ID: "d1", Function: "dispatch", Invocations: 1}, t0.Add(time.Second)))
	// A later beat of w1 keeps its start, moves its heart-beat and replaces its counters.
	t1 := t0.Add(30 * time.Second)
	require.NoError(t, f.store.Heartbeat(ctx, domain.WorkerRecord{ID: "w1", Function: "worker", Invocations: 3, Processed: 30, Failed: 3}, t1))

	got := list("", t1)
	require.Equal(t, []domain.WorkerRecord{
		{ID: "w1", Function: "worker", Status: domain.WorkerRunning, StartedAt: t0, HeartbeatAt: t1, Invocations: 3, Processed: 30, Failed: 3},
		{ID: "d1", Function: "dispatch", Status: domain.WorkerRunning, StartedAt: t0.Add(time.Second), HeartbeatAt: t0.Add(time.Second), Invocations: 1},
	}, normalise(got), "newest heart-beat first, every field as written")

	t2 := t1.Add(45 * time.Second) // d1 silent for 74s, w1 for 45s
	require.Equal(t, []string{"w1"}, ids(list(domain.WorkerRunning, t2)))
	require.Equal(t, []string{"d1"}, ids(list(domain.WorkerStale, t2)))
	require.Empty(t, list(domain.WorkerStopped, t2))

	require.NoError(t, f.store.StopWorker(ctx, "w1", t2))
	got = list(domain.WorkerStopped, t2)
	stopped := t2
	require.Equal(t, []domain.WorkerRecord{
		{ID: "w1", Function: "worker", Status: domain.WorkerStopped, StartedAt: t0, HeartbeatAt: t2, StoppedAt: &stopped, Invocations: 3, Processed: 30, Failed: 3},
	}, normalise(got), "a stop stamps stopped_at and the heart-beat, and keeps the counters")
	require.Equal(t, []string{"w1"}, ids(list(domain.WorkerStopped, t2.Add(time.Hour))), "stopped stays stopped, however old")
	require.Empty(t, list(domain.WorkerRunning, t2))

	// The same id beating again (an instance that restarted under its id) is running again.
	t3 := t2.Add(time.Second)
	require.NoError(t, f.store.Heartbeat(ctx, domain.WorkerRecord{ID: "w1", Function: "worker", Invocations: 4, Processed: 31, Failed: 3}, t3))
	got = list(domain.WorkerRunning, t3)
	require.Equal(t, []domain.WorkerRecord{
		{ID: "w1", Function: "worker", Status: domain.WorkerRunning, StartedAt: t0, HeartbeatAt: t3, Invocations: 4, Processed: 31, Failed: 3},
	}, normalise(got))

	ws, err := f.store.ListWorkers(ctx, "", t3, stale, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"w1"}, ids(ws), "the limit keeps the most recent")
}

// normalise puts the times read back in UTC, so that records compare by value.
func normalise(ws []domain.WorkerRecord) []domain.WorkerRecord {
	for i := range ws {
		ws[i].StartedAt, ws[i].HeartbeatAt = ws[i].StartedAt.UTC(), ws[i].HeartbeatAt.UTC()
		if ws[i].StoppedAt != nil {
			u := ws[i].StoppedAt.UTC()
			ws[i].StoppedAt = &u
		}
	}
	return ws
}
