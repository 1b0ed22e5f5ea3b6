package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// pipeline queues generated statements into one pgx batch, sent in one round trip and run as one
// implicit transaction (one Sync: a failing statement rolls back the ones before it). The
// generated method lays out its own parameters: it is called against a recorder that keeps the
// statement and its arguments instead of running them, and the batch runs them.
type pipeline struct{ b pgx.Batch }

// errQueued stops a generated method once its statement is recorded.
var errQueued = errors.New("statement queued in a pipeline")

type recorder struct{ p *pipeline }

func (r recorder) record(sql string, args []any) { r.p.b.Queue(sql, args...) }

func (r recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.record(sql, args)
	return pgconn.CommandTag{}, errQueued
}

func (r recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.record(sql, args)
	return nil, errQueued
}

func (r recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.record(sql, args)
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errQueued }

// queue records the statement of call, a generated method run against q.
func (p *pipeline) queue(call func(q *pgq.Queries) error) {
	if err := call(pgq.New(recorder{p})); !errors.Is(err, errQueued) {
		panic("pipeline: a generated method ran no statement") // a programming error, caught by the tests
	}
}
