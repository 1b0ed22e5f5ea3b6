package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fusillade/fusillade/shared/domain"
)

// dataError turns a data exception (SQLSTATE class 22: a NUL byte or invalid UTF-8 in text
// (22021), a malformed uuid or number (22P02), a time out of range (22008), an unsupported
// \u0000 in jsonb (22P05), …) into a domain.EInvalid error that keeps the original in its chain
// for the logs. Division by zero (22012) is a bug, not bad input, and stays internal. Other
// errors pass through unchanged.
func dataError(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "22") || pgErr.Code == "22012" {
		return err
	}
	return &invalidValue{cause: err}
}

// invalidValue is a data exception: errors.As finds the client-safe *domain.Error, errors.Is
// and the log message still see the PostgreSQL error.
type invalidValue struct{ cause error }

func (e *invalidValue) Error() string { return fmt.Sprintf("invalid value: %v", e.cause) }
func (e *invalidValue) Unwrap() []error {
	return []error{&domain.Error{Code: domain.EInvalid, Reason: "invalid_value",
		Message: "The request contains a value that cannot be stored (a NUL character, invalid UTF-8, or a number or time out of range)."}, e.cause}
}

// db is the pool as the store uses it: every statement's error goes through check, the one place
// a driver error is classified. CopyFrom is deliberately not wrapped: InsertRequests reads a
// *domain.Error in its error as a bad input line.
type db struct{ *pgxpool.Pool }

// check classifies err: a data exception becomes invalid input (dataError), a connection-class
// failure becomes unavailable and resets the pool — after a server restart every pooled
// connection is dead, and without the reset each would fail one more caller before the pool
// noticed (connections checked out at the time are closed when they are returned).
func (d db) check(err error) error {
	err = dataError(unavailable(err))
	if err != nil && d.Pool != nil && errors.Is(err, ErrUnavailable) {
		d.Pool.Reset()
	}
	return err
}

func (d db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t, err := d.Pool.Exec(ctx, sql, args...)
	return t, d.check(err)
}

func (d db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := d.Pool.Query(ctx, sql, args...)
	if err != nil {
		return r, d.check(err)
	}
	return rows{r, d}, nil
}

func (d db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{d.Pool.QueryRow(ctx, sql, args...), d}
}

func (d db) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return batchResults{d.Pool.SendBatch(ctx, b), d}
}

func (d db) Begin(ctx context.Context) (pgx.Tx, error) {
	t, err := d.Pool.Begin(ctx)
	if err != nil {
		return nil, d.check(err)
	}
	return tx{t, d}, nil
}

func (d db) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	t, err := d.Pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, d.check(err)
	}
	return tx{t, d}, nil
}

func (d db) Ping(ctx context.Context) error { return d.check(d.Pool.Ping(ctx)) }

type tx struct {
	pgx.Tx
	d db
}

func (t tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := t.Tx.Exec(ctx, sql, args...)
	return c, t.d.check(err)
}

func (t tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		return r, t.d.check(err)
	}
	return rows{r, t.d}, nil
}

func (t tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{t.Tx.QueryRow(ctx, sql, args...), t.d}
}

func (t tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return batchResults{t.Tx.SendBatch(ctx, b), t.d}
}

func (t tx) Commit(ctx context.Context) error { return t.d.check(t.Tx.Commit(ctx)) }

type rows struct {
	pgx.Rows
	d db
}

func (r rows) Err() error             { return r.d.check(r.Rows.Err()) }
func (r rows) Scan(dest ...any) error { return r.d.check(r.Rows.Scan(dest...)) }

type row struct {
	pgx.Row
	d db
}

func (r row) Scan(dest ...any) error { return r.d.check(r.Row.Scan(dest...)) }

type batchResults struct {
	pgx.BatchResults
	d db
}

func (b batchResults) Exec() (pgconn.CommandTag, error) {
	t, err := b.BatchResults.Exec()
	return t, b.d.check(err)
}

func (b batchResults) Query() (pgx.Rows, error) {
	r, err := b.BatchResults.Query()
	if err != nil {
		return r, b.d.check(err)
	}
	return rows{r, b.d}, nil
}

func (b batchResults) QueryRow() pgx.Row { return row{b.BatchResults.QueryRow(), b.d} }
func (b batchResults) Close() error      { return b.d.check(b.BatchResults.Close()) }
