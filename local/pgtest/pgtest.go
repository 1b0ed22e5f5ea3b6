// Package pgtest gives each test its own freshly migrated PostgreSQL database.
//
// The server is the one named by DATABASE_URL (make test starts one throwaway cluster for the
// whole run and sets it) or, when that is unset, a throwaway cluster this test binary starts for
// itself and stops when the binary exits (see Main). Each test gets a new database cloned from a
// migrated template, which takes tens of milliseconds, and drops it on cleanup.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/shared/postgres"
)

var (
	once     sync.Once
	baseURL  string
	template string
	setupErr error
	cluster  *pgcluster.Cluster
	clusterD string
	seq      atomic.Int64
)

// Main wraps testing.M.Run so that a cluster started by this package is stopped at the end. Use
// it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
//
// When every test passed it also fails the binary if goroutines are left running (goleak): a
// test that leaks a pool, a server or a worker hides the leak in production code too.
func Main(m *testing.M) {
	before := goleak.IgnoreCurrent()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(before); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	if cluster != nil {
		_ = cluster.Stop()
		_ = os.RemoveAll(clusterD)
	}
	stopPair()
	os.Exit(code)
}

func setup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	baseURL = os.Getenv("DATABASE_URL")
	if baseURL == "" {
		dir, err := os.MkdirTemp("", "fusillade-pgtest-*")
		if err != nil {
			setupErr = err
			return
		}
		clusterD = dir
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
		if err != nil {
			setupErr = err
			return
		}
		baseURL = cluster.URL("postgres")
	}
	// One template per test binary: test binaries of different packages run in parallel against
	// the same server and must not share a template that another is still migrating.
	template = fmt.Sprintf("fusillade_tmpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	admin, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		setupErr = fmt.Errorf("pgtest: connect %s: %w", redact(baseURL), err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+template); err != nil {
		setupErr = fmt.Errorf("pgtest: create template: %w", err)
		return
	}
	pool, err := pgxpool.New(ctx, withDB(baseURL, template))
	if err != nil {
		setupErr = err
		return
	}
	_, setupErr = postgres.Migrate(ctx, pool)
	pool.Close()
}

// URL returns the URL of a new, migrated, empty database that is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}
	return create(t, template)
}

// create makes a database from tmpl and drops it when t ends.
func create(t testing.TB, tmpl string) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("%s_t%d", template, seq.Add(1))
	admin, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), baseURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDB(baseURL, name)
}

// EmptyURL returns the URL of a new database with no migration applied, dropped when t ends
// (tests of migrating and of the schema check).
func EmptyURL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}
	return create(t, "template0")
}

// Store returns a store on a fresh database, closed when t ends.
func Store(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), URL(t), postgres.Options{MaxConns: 20})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func withDB(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}
