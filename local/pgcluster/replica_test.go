package pgcluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestStartReplicaStreamsThePrimary starts a cluster and a streaming replica of it: the replica
// is a read-only hot standby, and a row committed on the primary afterwards reaches it.
func TestStartReplicaStreamsThePrimary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	primary, err := Start(ctx, Options{Dir: filepath.Join(dir, "primary")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = primary.Stop() })
	replica, err := StartReplica(ctx, primary, Options{Dir: filepath.Join(dir, "replica")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = replica.Stop() })
	require.NotEqual(t, primary.Port(), replica.Port())

	p, err := pgx.Connect(ctx, primary.URL("postgres"))
	require.NoError(t, err)
	defer p.Close(ctx)
	r, err := pgx.Connect(ctx, replica.URL("postgres"))
	require.NoError(t, err)
	defer r.Close(ctx)

	var standby bool
	require.NoError(t, r.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby))
	require.True(t, standby, "the replica must be a standby")
	_, err = r.Exec(ctx, "CREATE TABLE refused (x int)")
	require.ErrorContains(t, err, "read-only transaction")

	_, err = p.Exec(ctx, "CREATE TABLE streamed (x int); INSERT INTO streamed VALUES (42)")
	require.NoError(t, err)
	// The insert position, not pg_current_wal_lsn (the write position): with synchronous_commit
	// off a commit can sit in the WAL buffers, ahead of what has been written.
	var lsn string
	require.NoError(t, p.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn))
	require.Eventually(t, func() bool {
		var caught bool
		err := r.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&caught)
		return err == nil && caught
	}, time.Minute, 10*time.Millisecond, "the replica never replayed the primary's WAL")
	var x int
	require.NoError(t, r.QueryRow(ctx, "SELECT x FROM streamed").Scan(&x))
	require.Equal(t, 42, x)
}
