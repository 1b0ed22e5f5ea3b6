package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// Each pass samples every running batch's finished lines; the oldest sample in the window is
// read back per batch; samples of a batch that ended and samples older than the cut are pruned.
func TestProgressSamplesFollowRunningBatchesAndArePruned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.model(t, "m", 10)
	a := f.batch(t, 4, "m")
	b := f.batchDue(t, f.tenant, 48*time.Hour, 2, "m")
	t0 := f.now
	n, err := f.store.SampleProgress(ctx, t0, t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n)

	w := f.running(t, "m", 3) // a's lines 1–3
	f.finish(t, domain.Outcome{Work: w[0], State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)},
		domain.Outcome{Work: w[1], State: domain.StateFailed, StatusCode: 400, Body: []byte(`{}`)})
	t1 := t0.Add(time.Minute)
	_, err = f.store.SampleProgress(ctx, t1, t1.Add(-time.Hour))
	require.NoError(t, err)

	got, err := f.store.ProgressSince(ctx, []string{a, b, "batch_unknown"}, t0)
	require.NoError(t, err)
	require.Equal(t, map[string]domain.ProgressSample{a: {At: t0, Done: 0}, b: {At: t0, Done: 0}}, toUTC(got), "the oldest in the window")
	got, err = f.store.ProgressSince(ctx, []string{a}, t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, map[string]domain.ProgressSample{a: {At: t1, Done: 2}}, toUTC(got), "completed and failed both count")

	// b is cancelled (ended at once: nothing of it runs); the next pass drops its samples and
	// those of a older than the cut.
	_, err = f.store.CancelBatch(ctx, f.tenant, b, f.now)
	require.NoError(t, err)
	t2 := t1.Add(time.Minute)
	_, err = f.store.SampleProgress(ctx, t2, t1)
	require.NoError(t, err)
	var rows []string
	r, err := f.store.Pool().Query(ctx, `SELECT batch_id || '@' || extract(epoch FROM at - $1)::int FROM batch_progress ORDER BY 1`, t0)
	require.NoError(t, err)
	for r.Next() {
		var s string
		require.NoError(t, r.Scan(&s))
		rows = append(rows, s)
	}
	require.NoError(t, r.Err())
	require.Equal(t, []string{a + "@120", a + "@60"}, rows)
}

func toUTC(m map[string]domain.ProgressSample) map[string]domain.ProgressSample {
	for k, v := range m {
		v.At = v.At.UTC()
		m[k] = v
	}
	return m
}
