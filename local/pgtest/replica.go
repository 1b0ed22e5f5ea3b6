package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/shared/postgres"
)

// A primary and its streaming replica, started by the first test of the binary that asks for
// one (a few seconds) and stopped by Main. A replica copies the whole cluster, so this pair is
// separate from the shared server every other test uses; replica tests share it, each with its
// own database.
var (
	pairOnce     sync.Once
	pairErr      error
	pairDir      string
	pairPrimary  *pgcluster.Cluster
	pairReplica  *pgcluster.Cluster
	pairTemplate string
	// replay is held from Pause to Resume: pausing replay stops it for every database of the pair,
	// so the tests that pause take turns.
	replay sync.Mutex
)

// Replicated is a fresh migrated database on a primary that a streaming replica follows.
type Replicated struct {
	PrimaryURL string
	ReplicaURL string
	t          testing.TB
	paused     *bool
}

func startPair() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "fusillade-pgtest-*")
	if err != nil {
		pairErr = err
		return
	}
	pairDir = dir
	if pairPrimary, pairErr = pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "primary")}); pairErr != nil {
		return
	}
	if pairReplica, pairErr = pgcluster.StartReplica(ctx, pairPrimary, pgcluster.Options{Dir: filepath.Join(dir, "replica")}); pairErr != nil {
		return
	}
	pairTemplate = "fusillade_tmpl"
	admin, err := pgx.Connect(ctx, pairPrimary.URL("postgres"))
	if err != nil {
		pairErr = err
		return
	}
	defer admin.Close(ctx)
	if _, pairErr = admin.Exec(ctx, "CREATE DATABASE "+pairTemplate); pairErr != nil {
		return
	}
	pool, err := pgxpool.New(ctx, pairPrimary.URL(pairTemplate))
	if err != nil {
		pairErr = err
		return
	}
	defer pool.Close()
	_, pairErr = postgres.Migrate(ctx, pool)
}

// stopPair stops the pair if a test started it (Main).
func stopPair() {
	if pairReplica != nil {
		_ = pairReplica.Stop()
	}
	if pairPrimary != nil {
		_ = pairPrimary.Stop()
	}
	if pairDir != "" {
		_ = os.RemoveAll(pairDir)
	}
}

// Replica returns a new migrated database on the pair's primary, already replayed by the
// replica; it is dropped when t ends.
func Replica(t testing.TB) Replicated {
	t.Helper()
	pairOnce.Do(startPair)
	if pairErr != nil {
		t.Fatalf("pgtest: replica pair: %v", pairErr)
	}
	ctx := context.Background()
	name := fmt.Sprintf("fusillade_r%d", seq.Add(1))
	admin, err := pgx.Connect(ctx, pairPrimary.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, pairTemplate)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pairPrimary.URL("postgres"))
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	r := Replicated{PrimaryURL: pairPrimary.URL(name), ReplicaURL: pairReplica.URL(name), t: t, paused: new(bool)}
	r.CatchUp()
	return r
}

// Pause stops the replica replaying the primary's WAL, so that it lags: what the primary commits
// from now on is missing on the replica until Resume (or the end of the test, which resumes).
// Tests that pause take turns; Pause waits for the one before to resume.
func (r Replicated) Pause() {
	r.t.Helper()
	replay.Lock()
	*r.paused = true
	r.t.Cleanup(func() {
		if *r.paused {
			r.resume()
		}
	})
	ctx := context.Background()
	c := r.replica(ctx)
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		r.t.Fatalf("pgtest: pause replay: %v", err)
	}
	// The request takes effect at the next record; wait until replay has stopped.
	r.wait(ctx, c, "SELECT pg_get_wal_replay_pause_state() = 'paused'")
}

// Resume lets the replica replay again and waits until it has caught up with the primary.
func (r Replicated) Resume() {
	r.t.Helper()
	r.resume()
	r.CatchUp()
}

func (r Replicated) resume() {
	ctx := context.Background()
	c := r.replica(ctx)
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		r.t.Errorf("pgtest: resume replay: %v", err)
	}
	*r.paused = false
	replay.Unlock()
}

// CatchUp waits until the replica has replayed everything the primary has written so far.
func (r Replicated) CatchUp() {
	r.t.Helper()
	ctx := context.Background()
	p, err := pgx.Connect(ctx, pairPrimary.URL("postgres"))
	if err != nil {
		r.t.Fatalf("pgtest: connect primary: %v", err)
	}
	defer p.Close(ctx)
	// The insert position: with synchronous_commit off a commit may not be written yet.
	var lsn string
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		r.t.Fatalf("pgtest: primary lsn: %v", err)
	}
	c := r.replica(ctx)
	defer c.Close(ctx)
	r.wait(ctx, c, fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn))
}

func (r Replicated) replica(ctx context.Context) *pgx.Conn {
	r.t.Helper()
	c, err := pgx.Connect(ctx, pairReplica.URL("postgres"))
	if err != nil {
		r.t.Fatalf("pgtest: connect replica: %v", err)
	}
	return c
}

// wait polls the replica until query answers true: replay is the server's own progress, with
// nothing to wait on but its position. One minute at most.
func (r Replicated) wait(ctx context.Context, c *pgx.Conn, query string) {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var ok bool
		err := c.QueryRow(ctx, query).Scan(&ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("pgtest: the replica never answered true to %q (last error %v)", query, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
