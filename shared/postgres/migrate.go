package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockID is the advisory lock key that serialises concurrent migrators (several Lambda
// cold starts or a deploy step racing the local stack).
const migrationLockID = 0x66757369 // "fusi"

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		base := strings.TrimPrefix(e, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", base, err)
		}
		b, err := migrationFS.ReadFile(e)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := range out {
		if out[i].version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1..N without gaps; found %s at position %d", out[i].name, i+1)
		}
	}
	return out, nil
}

// LatestMigration is the highest embedded migration number: the schema version this build was
// made for, which CheckSchema requires.
func LatestMigration() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		// loadMigrations fails only on a misnamed embedded file, which fails Migrate (and so every
		// test database) too; no schema can satisfy such a build.
		return math.MaxInt
	}
	return ms[len(ms)-1].version
}

// SchemaVersion is the highest migration applied to the database; 0 when none has been.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var v int
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: never migrated
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// ErrSchemaBehind is the class of CheckSchema's refusal.
var ErrSchemaBehind = errors.New("the database schema is older than this build")

// CheckSchema refuses a database whose schema is older than LatestMigration: the code would run
// queries against tables or columns that do not exist yet. A newer schema is accepted, because
// migrations are additive (they add tables, columns, indexes and settings and never drop or
// rename what a released build uses), so the previous build keeps working while a deployment or a
// rollback replaces it.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	have, err := SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	if want := LatestMigration(); have < want {
		return fmt.Errorf("%w: the database is at migration %d, this build needs %d; run the deployment's migration step (the migrate function, or fusillade migrate)", ErrSchemaBehind, have, want)
	}
	return nil
}

// Migrate applies every embedded migration that has not been applied yet, each in its own
// transaction, under an advisory lock. It is safe to call from many processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (applied int, err error) {
	return MigrateTo(ctx, pool, math.MaxInt)
}

// MigrateTo is Migrate stopping after migration target (tests build an older schema with it).
func MigrateTo(ctx context.Context, pool *pgxpool.Pool, target int) (applied int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: acquire: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockID) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("migrate: ledger: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, fmt.Errorf("migrate: read ledger: %w", err)
	}
	for _, m := range ms {
		if m.version <= current || m.version > target {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate: %s: %w", m.name, err)
		}
		applied++
	}
	return applied, nil
}
