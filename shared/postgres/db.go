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

// db is the pool as the store uses it: every statement's error goes through dataError, so that
// a value PostgreSQL refuses (a data exception) is reported as invalid input wherever it comes
// from. Callers validate what they send; this is the safety net for what they missed.
type db struct{ *pgxpool.Pool }

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

func (d db) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := d.Pool.Exec(ctx, sql, args...)
	return tag, dataError(err)
}

func (d db) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.Pool.Query(ctx, sql, args...)
	if err != nil {
		return rows, dataError(err)
	}
	return dataRows{rows}, nil
}

func (d db) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return dataRow{d.Pool.QueryRow(ctx, sql, args...)}
}

// Begin hands pgx.BeginFunc a transaction whose statements are mapped the same way.
func (d db) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return dataTx{tx}, nil
}

type dataTx struct{ pgx.Tx }

func (t dataTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.Tx.Exec(ctx, sql, args...)
	return tag, dataError(err)
}

func (t dataTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		return rows, dataError(err)
	}
	return dataRows{rows}, nil
}

func (t dataTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return dataRow{t.Tx.QueryRow(ctx, sql, args...)}
}

func (t dataTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	n, err := t.Tx.CopyFrom(ctx, table, cols, src)
	return n, dataError(err)
}

// dataRows maps the error a query reports once its rows are read (PostgreSQL reports most data
// exceptions there, not when the query is sent).
type dataRows struct{ pgx.Rows }

func (r dataRows) Err() error { return dataError(r.Rows.Err()) }

type dataRow struct{ pgx.Row }

func (r dataRow) Scan(dest ...any) error { return dataError(r.Row.Scan(dest...)) }
