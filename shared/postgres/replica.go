package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// Reads and the read replica.
//
// With Options.ReplicaURL the store keeps a second pool on a read replica, and these reads, and
// no others, go to it: ViewFile, ViewBatch, ListFiles, ListBatches, BatchResults, ResultFile
// (what the API's GET routes show) and PendingByModelAndWindow (the admin's capacity counts).
// Every write, and every read a write is decided on or answers with, reads the primary: GetFile
// and GetBatch (create → get, idempotent replays, cancel, retry, upload completion), the
// worker's fenced reads, finalisation, populate, dispatch's claims, the purge, authentication
// (a revoked key must stop at once) and the admin lists of models, tenants, keys and workers.
//
// A replica lags the primary. What the API promises despite it:
//
//   - Never a false 404. A single-object read that finds nothing on the replica reads the primary
//     before it answers "not found", so a client that has just created a file or a batch always
//     gets it back, however far behind the replica is. The same holds for the first page of
//     results or content (an empty page is read again on the primary, which also makes the rows
//     agree with an object that only the primary had), and for a list's `after` cursor (an id
//     the replica does not know yet lists from the primary instead of answering 400).
//   - No replica failure becomes an API failure: a read the replica cannot answer (unreachable,
//     restarting, or a query cancelled by a conflict with recovery) is answered by the primary.
//   - Lists, counts and an object's fields may be as old as the replica's lag. A list may omit
//     an object created moments ago, a GET may show a batch's previous status or counts, and a
//     deleted object may still be shown for that long. Reads of one object are not monotonic:
//     consecutive GETs may be served by the replica and the primary in turn, so one may show an
//     older version than the one before. Clients that need the newest state use the object a
//     write answered with (create, cancel, retry return it from the primary).
//
// Replicas should therefore be streaming replicas kept within seconds (a hot standby, Aurora
// readers), not delayed ones.

// ReplicaConnectTimeout bounds each connection attempt to the replica when its URL sets no
// connect_timeout, so that an unreachable replica costs a read this long before the primary
// answers it instead of the caller's whole deadline. Default 3 s.
const ReplicaConnectTimeout = 3 * time.Second

// openReplica opens the replica's pool. Its sessions are read-only
// (default_transaction_read_only), so a write routed to it by mistake fails even on a server
// that would accept it. A replica that does not answer the first ping is only logged: its reads
// go to the primary until it answers, as they do whenever it fails later.
func openReplica(ctx context.Context, url string, maxConns int32, log *slog.Logger) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse replica url: %w", err)
	}
	cfg.MaxConns = maxConns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ReplicaConnectTimeout
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect replica: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		log.WarnContext(ctx, "read replica does not answer; its reads go to the primary until it does", "err", err)
	}
	return pool, nil
}

// replicated reports whether the store has a replica.
func (s *Store) replicated() bool { return s.replica.Pool != nil }

// read runs fn on the replica's queries, and again on the primary's when the replica found
// nothing (notThere) or could not answer (replicaFailed). Without a replica it runs fn on the
// primary alone. fn must not have shown anything to its caller when it fails, since it may run
// twice.
func (s *Store) read(ctx context.Context, fn func(q *pgq.Queries) error) error {
	if !s.replicated() {
		return fn(s.q)
	}
	err := fn(s.rq)
	if notThere(err) || s.replicaFailed(ctx, err) {
		return fn(s.q)
	}
	return err
}

// notThere reports an error that says a row is missing: on a replica that may only mean it has
// not replayed the row's insert yet.
func notThere(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || domain.ErrorCode(err) == domain.ENotFound
}

// replicaFailed reports (and logs) a replica error the primary should answer instead: a
// connection-class failure, or a query the standby cancelled because replaying the primary's
// WAL conflicted with it (SQLSTATE 40001 on a read-only query; max_standby_streaming_delay).
func (s *Store) replicaFailed(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	if err == nil || !(errors.Is(err, ErrUnavailable) || errors.As(err, &pgErr) && pgErr.Code == "40001") {
		return false
	}
	s.log.WarnContext(ctx, "read replica failed; reading the primary", "err", err)
	return true
}

// rereadOnPrimary says whether the first page of a paged read, which q returned with rows rows
// or err, is to be read again on the primary: q is the replica's and it had no rows (it may not
// have replayed them yet) or could not answer. Nothing has been shown to the caller by then.
func (s *Store) rereadOnPrimary(ctx context.Context, q *pgq.Queries, rows int, err error) bool {
	if !s.replicated() || q != s.rq {
		return false
	}
	return err == nil && rows == 0 || s.replicaFailed(ctx, err)
}
