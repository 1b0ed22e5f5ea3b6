package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// requestsOf counts a batch's request rows, and those whose prompt is still there.
func (f *fixture) requestsOf(t *testing.T, batchID string) (rows, prompts int) {
	t.Helper()
	require.NoError(t, f.store.Pool().QueryRow(context.Background(),
		`SELECT count(*), count(*) FILTER (WHERE octet_length(body) > 0) FROM requests WHERE batch_id = $1`, batchID).Scan(&rows, &prompts))
	return rows, prompts
}

// fusillade's test_purge_respects_batch_size: one purge statement deletes at most its chunk, and
// repeated steps drain deleted batches' requests (3, 3, 2, 0 for 8 rows); a live batch's
// requests, a running one's included, and those of a batch deleted within the grace period are
// never touched. Deleted batches are listed for dropping a chunk at a time too.
func TestPurgeDeletesAtMostAChunkPerStepAndNeverALiveBatchsRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 1)
	live := f.batch(t, 5, "m")
	f.running(t, "m", 1) // the live batch's first line is processing
	deleted := f.batch(t, 7, "m")
	recent := f.batch(t, 2, "m")
	other := f.batch(t, 1, "m")
	grace := f.now.Add(-time.Hour)
	for id, at := range map[string]time.Time{deleted: f.now.Add(-2 * time.Hour), other: f.now.Add(-2 * time.Hour), recent: f.now} {
		require.NoError(t, f.store.DeleteBatch(ctx, f.tenant, id, at))
	}

	var steps []int
	for range 5 {
		n, err := f.store.PurgeRequests(ctx, 3, grace)
		require.NoError(t, err)
		steps = append(steps, n)
	}
	require.Equal(t, []int{3, 3, 2, 0, 0}, steps, "8 rows of deleted batches, 3 at a time")
	for id, want := range map[string]int{live: 5, deleted: 0, other: 0, recent: 2} {
		rows, _ := f.requestsOf(t, id)
		require.Equal(t, want, rows, id)
	}

	got, err := f.store.PurgeableBatches(ctx, 1, grace)
	require.NoError(t, err)
	require.Len(t, got, 1, "one batch per chunk of 1")
	got, err = f.store.PurgeableBatches(ctx, 10, grace)
	require.NoError(t, err)
	ids := []string{}
	for _, b := range got {
		ids = append(ids, b.ID)
	}
	require.ElementsMatch(t, []string{deleted, other}, ids, "only deleted batches past the grace period whose requests are gone")
	n, err := f.store.DropBatches(ctx, append(ids, live, recent), grace)
	require.NoError(t, err)
	require.Equal(t, 2, n, "a live or recently deleted batch named to DropBatches is not dropped")
	_, err = f.store.GetBatch(ctx, f.tenant, live)
	require.NoError(t, err)
}

// Deleting an input file cancels its batches and erases the prompts copied from it, a chunk at a
// time and never those of requests in flight; the rows stay (the batch's results remain
// readable) and no other file's batch is touched.
func TestPurgeErasesADeletedFilesPromptsAChunkAtATimeAndLeavesOtherBatchesAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 1)
	gone := f.batch(t, 6, "m")
	f.running(t, "m", 1) // gone's first line is processing
	live := f.batch(t, 3, "m")
	var fileID string
	require.NoError(t, f.store.Pool().QueryRow(ctx, `SELECT input_file_id FROM batches WHERE id = $1`, gone).Scan(&fileID))
	_, err := f.store.DeleteFile(ctx, f.tenant, fileID, f.now.Add(-2*time.Hour))
	require.NoError(t, err)

	var steps []int
	for range 4 {
		n, err := f.store.ErasePromptsOfFile(ctx, fileID, 2)
		require.NoError(t, err)
		steps = append(steps, n)
	}
	require.Equal(t, []int{2, 2, 1, 0}, steps, "five prompts erased two at a time; the processing line keeps its own")
	rows, prompts := f.requestsOf(t, gone)
	require.Equal(t, []int{6, 1}, []int{rows, prompts})
	rows, prompts = f.requestsOf(t, live)
	require.Equal(t, []int{3, 3}, []int{rows, prompts})

	n, err := f.store.PurgeRequests(ctx, 100, f.now)
	require.NoError(t, err)
	require.Zero(t, n, "a cancelled batch that is not deleted keeps its requests")
	files, err := f.store.PurgeableFiles(ctx, 10, f.now.Add(-time.Hour), f.now)
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.Equal(t, domain.PurgeableFile{ID: fileID, TenantID: f.tenant, ObjectKey: files[0].ObjectKey, Deleted: true}, files[0])
}
