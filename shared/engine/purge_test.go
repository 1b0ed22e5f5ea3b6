package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
)

// The purge calls object storage between statements, never while one of its transactions holds
// row locks: a slow or failing S3 must not hold batch and file rows locked against the rest of
// the system. Every Delete looks for a transaction open on the database at that moment.
func TestPurgeDeletesObjectsWhileNoTransactionIsOpen(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{PurgeChunk: 100})
	ctx := context.Background()
	var ids []string
	for range 2 {
		ids = append(ids, b.batch(t, b.tenant, "n", 20, 24*time.Hour))
	}
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "n", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 0}))
	for _, id := range ids {
		require.NoError(t, b.store.DeleteBatch(ctx, b.tenant, id, b.clock.Now()))
	}
	var mu sync.Mutex
	deletes, openTx := 0, 0
	b.blobs.onDelete = func(string) {
		var n int
		require.NoError(t, b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`).Scan(&n))
		mu.Lock()
		defer mu.Unlock()
		deletes++
		openTx += n
	}
	b.clock.Advance(time.Hour) // past the grace period
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.Purged.Batches)
	require.Equal(t, 4, deletes, "the output and error objects of both batches")
	require.Zero(t, openTx, "no transaction was open while an object was deleted")
}

// A purged message batch's results object (written when its results were too large to answer
// inline) goes with its output and error objects; other batches have none to delete.
func TestPurgeDeletesAMessageBatchsResultsObject(t *testing.T) {
	t.Parallel()
	b := setup(t, engine.Config{PurgeChunk: 100})
	ctx := context.Background()
	msg, other := b.batch(t, b.tenant, "n", 1, 24*time.Hour), b.batch(t, b.tenant, "n", 1, 24*time.Hour)
	_, err := b.store.Pool().Exec(ctx, `UPDATE batches SET api = 'anthropic' WHERE id = $1`, msg)
	require.NoError(t, err)
	require.NoError(t, b.store.UpsertModel(ctx, domain.Model{Name: "n", BaseURL: mustModel(t, b).BaseURL, ConcurrencyLimit: 0}))
	for _, id := range []string{msg, other} {
		require.NoError(t, b.store.DeleteBatch(ctx, b.tenant, id, b.clock.Now()))
	}
	var mu sync.Mutex
	var deleted []string
	b.blobs.onDelete = func(key string) {
		mu.Lock()
		defer mu.Unlock()
		deleted = append(deleted, key)
	}
	b.clock.Advance(time.Hour) // past the grace period
	st, err := b.eng.Maintain(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.Purged.Batches)
	require.ElementsMatch(t, []string{
		domain.BatchFileKey(b.tenant, msg, true), domain.BatchFileKey(b.tenant, msg, false), domain.MessageResultsKey(b.tenant, msg),
		domain.BatchFileKey(b.tenant, other, true), domain.BatchFileKey(b.tenant, other, false),
	}, deleted)
}
