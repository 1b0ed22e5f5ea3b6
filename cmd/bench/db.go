package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fusillade/fusillade/local/pgcluster"
	"github.com/fusillade/fusillade/shared/postgres"
)

// server is the PostgreSQL server the workloads run against: DATABASE_URL when set, otherwise
// (make bench) a throwaway cluster started here. The cluster started here is durable by default
// (fsync, synchronous_commit and full_page_writes on, as a production database runs); -fsync=false
// turns the three off. It preloads pg_stat_statements, which the database-work figures need.
// Each workload gets its own freshly migrated database, so one workload's dead tuples and caches
// do not leak into the next.
type server struct {
	base    string
	cluster *pgcluster.Cluster
	dir     string
	seq     int
}

func openServer(ctx context.Context, getenv func(string) string, durable bool) (*server, error) {
	if u := getenv("DATABASE_URL"); u != "" {
		return &server{base: u}, nil
	}
	dir, err := os.MkdirTemp("", "fusillade-bench-pg-*")
	if err != nil {
		return nil, err
	}
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: durable,
		Settings: []string{"shared_preload_libraries=pg_stat_statements"}})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &server{base: cl.URL("postgres"), cluster: cl, dir: dir}, nil
}

func (s *server) Close() {
	if s.cluster != nil {
		_ = s.cluster.Stop()
		_ = os.RemoveAll(s.dir)
	}
}

// fresh creates and migrates a new database and returns its URL; drop removes it.
func (s *server) fresh(ctx context.Context, name string) (dbURL string, drop func(), err error) {
	dbURL, drop, err = s.empty(ctx, name)
	if err != nil {
		return "", nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		drop()
		return "", nil, err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		drop()
		return "", nil, fmt.Errorf("migrate: %w", err)
	}
	return dbURL, drop, nil
}

// empty creates a new database with nothing in it (the River comparator migrates its own schema
// there) and returns its URL; drop removes it.
func (s *server) empty(ctx context.Context, name string) (dbURL string, drop func(), err error) {
	s.seq++
	db := fmt.Sprintf("bench_%s_%d_%d", strings.ToLower(name), os.Getpid(), s.seq)
	admin, err := pgx.Connect(ctx, s.base)
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", redact(s.base), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	dbURL = withDB(s.base, db)
	drop = func() {
		c, err := pgx.Connect(context.Background(), s.base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
	}
	return dbURL, drop, nil
}

func withDB(base, db string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + db
	return u.String()
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable url)"
	}
	return p.Redacted()
}
