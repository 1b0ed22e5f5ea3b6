package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

// A running batch's output file is read in pages, each continuing at the previous page's end
// (X-Last-Line). A line whose result write commits late — here a FinishAndClaim waiting for the
// model lock after its finish, as it does while another claim of the model runs — carries a
// finish time, and a transaction, from before a line that another worker wrote and committed
// meanwhile, and that a client may already have read. Paging on must still return the late
// line, and every line exactly once.
func TestPagingARunningBatchsOutputReturnsALateCommittedLineExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.model(t, "m", 4)
	id := f.batch(t, 3, "m")
	run := f.running(t, "m", 3)
	done := func(w domain.Work) domain.Outcome {
		return domain.Outcome{Work: w, Model: "m", State: domain.StateCompleted, StatusCode: 200, Body: []byte(`{}`)}
	}
	page := func(offset int) []int {
		t.Helper()
		var lines []int
		require.NoError(t, f.store.ResultFile(ctx, f.tenant, id, true, domain.ResultQuery{Offset: offset, Limit: 10},
			func(r domain.ResultRow) error { lines = append(lines, r.Line); return nil }))
		return lines
	}

	// Another claim of m holds the model lock; line 1's FinishAndClaim writes its finish, then
	// waits for the lock with its transaction open.
	lock, err := f.store.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(ctx) }()
	_, err = lock.Exec(ctx, `SELECT 1 FROM models WHERE name = 'm' FOR NO KEY UPDATE`)
	require.NoError(t, err)
	var lockPID int
	require.NoError(t, lock.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&lockPID))
	late := make(chan error, 1)
	go func() {
		_, _, err := f.store.FinishAndClaim(ctx, []domain.Outcome{done(run[0])}, domain.Refill{Model: "m", Owner: "w1", Max: 1}, f.now.Add(time.Second))
		late <- err
	}()
	var latePID int
	require.Eventually(t, func() bool {
		err := f.store.Pool().QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND $1 = ANY (pg_blocking_pids(pid))`, lockPID).Scan(&latePID)
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "line 1's write waits for the model lock")

	// Line 2 is written and committed by another worker meanwhile, on a connection whose batch
	// counter slot (its backend pid mod 16) is not the waiting write's, so it does not wait.
	var other *postgres.Store
	for range 64 {
		other, err = postgres.Open(ctx, f.store.Pool().Config().ConnString(), postgres.Options{MaxConns: 1})
		require.NoError(t, err)
		var pid int
		require.NoError(t, other.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
		if pid%16 != latePID%16 {
			break
		}
		other.Close()
		other = nil
	}
	require.NotNil(t, other, "a connection in another counter slot")
	defer other.Close()
	won, err := other.FinishMany(ctx, []domain.Outcome{done(run[1])}, f.now.Add(2*time.Second))
	require.NoError(t, err)
	require.Len(t, won, 1)

	got := page(0)
	require.NotContains(t, got, 1, "line 1 has not committed")
	require.NoError(t, lock.Commit(ctx))
	require.NoError(t, <-late)

	// Read on from the end of what was read, as a client does with X-Last-Line, until both lines
	// are there (a line shows once every older transaction of the cluster has ended, other
	// tests' too: under a full make test that took more than 10 s).
	require.Eventually(t, func() bool {
		next := page(len(got))
		for _, l := range next {
			assert.NotContains(t, got, l, "line %d returned twice", l)
		}
		got = append(got, next...)
		return len(got) >= 2
	}, time.Minute, 5*time.Millisecond)
	require.ElementsMatch(t, []int{1, 2}, got)
	require.Equal(t, got, page(0), "the file read whole is in the order it was paged")
}
