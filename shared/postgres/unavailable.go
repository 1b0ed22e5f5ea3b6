package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fusillade/fusillade/shared/domain"
)

// ErrUnavailable is what every store method's error carries (errors.As finds it) when the
// database could not be reached or dropped the connection: the one place connection-class
// failures become the domain's "unavailable", which the API answers with 503 and Retry-After.
// The original error stays in the chain for logs and errors.Is.
var ErrUnavailable = &domain.Error{Code: domain.EUnavailable,
	Message: "The service is temporarily unavailable (its database cannot be reached); please retry."}

// unavailableError keeps both the domain error and the driver's error in the chain.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "database unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// unavailable marks err when it is a connection-class failure and returns it unchanged otherwise.
func unavailable(err error) error {
	if err == nil || !connectionFailure(err) {
		return err
	}
	var already *unavailableError
	if errors.As(err, &already) {
		return err
	}
	return &unavailableError{cause: err}
}

// connectionFailure reports the failures that say nothing about the statement and everything
// about the server being unreachable: a failed connect, SQLSTATE class 08 (connection
// exception), 57P01/57P02/57P03 (the server is shutting down or starting), and network errors
// (refused, reset, closed, EOF mid-conversation).
func connectionFailure(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up; that is not the database's fault
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// pgconn reports a connection it already found dead this way.
	return strings.Contains(err.Error(), "conn closed") || pgconn.SafeToRetry(err)
}

// db is the pool with every error passed through check. CopyFrom is deliberately not wrapped:
// PopulateBatch reads a *domain.Error in its error as a bad input line.
type db struct{ *pgxpool.Pool }

// check marks connection-class failures and then resets the pool: after a server restart every
// pooled connection is dead, and without the reset each would fail one more caller before the
// pool noticed. Connections checked out at the time are closed when they are returned.
func (d db) check(err error) error {
	err = unavailable(err)
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
