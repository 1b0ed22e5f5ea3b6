package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DBWork is the database work a measured phase did, per request: write transactions from the
// txid_current() delta and statements from pg_stat_statements (every top-level statement the
// phase's database saw, BEGIN and COMMIT included, as track_utility is on by default). The
// measurement's own statements are left out: the batch-end poll and the wait sampler run in the
// measured database and are excluded by text; txid_current() and pg_stat_statements run in the
// server's maintenance database, which is not counted. The xid counter is server-wide, so the
// phase must be the only writer on the server, which the workloads are (they run one after the
// other).
type DBWork struct {
	Requests             int     `json:"requests"`
	WriteTx              int64   `json:"write_transactions"`
	WriteTxPerRequest    float64 `json:"write_transactions_per_request"`
	Statements           int64   `json:"statements"` // -1 when pg_stat_statements is not loaded
	StatementsPerRequest float64 `json:"statements_per_request"`
	// TxControl counts the BEGIN, COMMIT and ROLLBACK among Statements: a system that commits each
	// statement on its own sends none.
	TxControl int64 `json:"transaction_control_statements"`
	// Top lists the statements with the most calls, for where the work goes.
	Top []StatementCalls `json:"top_statements,omitempty"`
	// Unavailable says why Statements is missing (pg_stat_statements not preloaded on a server
	// given by DATABASE_URL).
	Unavailable string `json:"statements_unavailable,omitempty"`
}

// StatementCalls is one normalised statement, how often it ran and the server time it took
// (pg_stat_statements' total_exec_time: execution in the server, not the round trip or the commit's
// WAL flush wait, which the commit statement carries).
type StatementCalls struct {
	Calls   int64   `json:"calls"`
	Query   string  `json:"query"`
	TotalMs float64 `json:"total_ms"`
	MeanMs  float64 `json:"mean_ms"`
}

// String renders the per-request figures for a summary line.
func (w DBWork) String() string {
	st := "n/a"
	if w.Statements >= 0 {
		st = fmt.Sprintf("%.2f", w.StatementsPerRequest)
		if w.Requests > 0 {
			st += fmt.Sprintf(" (%.2f without BEGIN/COMMIT)", float64(w.Statements-w.TxControl)/float64(w.Requests))
		}
	}
	return fmt.Sprintf("%.2f write tx/req, %s stmts/req", w.WriteTxPerRequest, st)
}

// excludedStatements are LIKE patterns of the measurement's own statements in the measured
// database, as pg_stat_statements stores them (constants normalised to $n, so the wait sample is
// matched by the view it reads).
var excludedStatements = []string{batchEndQuery, "%FROM pg_stat_activity WHERE datname = current_database()%"}

// dbWorkMeter counts the database work of one database between start and stop.
type dbWorkMeter struct {
	admin  *pgx.Conn
	db     string
	x0     int64
	noStat string
}

// startDBWork resets pg_stat_statements and reads the xid counter. base is the server's
// maintenance database (where the extension is created, so the measured databases stay as
// their migrations made them); dbURL names the measured database.
func startDBWork(ctx context.Context, base, dbURL string) (*dbWorkMeter, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, err
	}
	m := &dbWorkMeter{db: strings.TrimPrefix(u.Path, "/")}
	if m.admin, err = pgx.Connect(ctx, base); err != nil {
		return nil, fmt.Errorf("connect %s: %w", redact(base), err)
	}
	if _, err := m.admin.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		m.noStat = err.Error()
	} else if _, err := m.admin.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		// Not preloaded: the view exists but cannot be read or reset.
		m.noStat = err.Error()
	}
	if err := m.admin.QueryRow(ctx, "SELECT txid_current()").Scan(&m.x0); err != nil {
		m.admin.Close(ctx)
		return nil, fmt.Errorf("txid_current: %w", err)
	}
	return m, nil
}

// stop reads both counters and divides by the n requests of the phase.
func (m *dbWorkMeter) stop(ctx context.Context, n int) (DBWork, error) {
	defer m.admin.Close(context.Background())
	w := DBWork{Requests: n, Statements: -1, Unavailable: m.noStat}
	var x1 int64
	if err := m.admin.QueryRow(ctx, "SELECT txid_current()").Scan(&x1); err != nil {
		return w, fmt.Errorf("txid_current: %w", err)
	}
	// x1 itself was assigned by this call.
	w.WriteTx = x1 - m.x0 - 1
	if m.noStat == "" {
		rows, err := m.admin.Query(ctx, `SELECT sum(s.calls)::bigint, s.query, sum(s.total_exec_time)::float8, 0::float8 FROM pg_stat_statements s
			JOIN pg_database d ON d.oid = s.dbid
			WHERE d.datname = $1 AND s.userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)
			  AND NOT (s.query LIKE ANY($2))
			GROUP BY s.query ORDER BY 1 DESC`, m.db, excludedStatements)
		if err != nil {
			return w, fmt.Errorf("pg_stat_statements: %w", err)
		}
		all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[StatementCalls])
		if err != nil {
			return w, fmt.Errorf("pg_stat_statements: %w", err)
		}
		w.Statements = 0
		for i, s := range all {
			w.Statements += s.Calls
			switch strings.ToLower(strings.TrimSpace(s.Query)) {
			case "begin", "commit", "rollback":
				w.TxControl += s.Calls
			}
			if i < 12 {
				w.Top = append(w.Top, StatementCalls{Calls: s.Calls, Query: oneLine(s.Query, 160), TotalMs: round3(s.TotalMs),
					MeanMs: round3(s.TotalMs / float64(max(s.Calls, 1)))})
			}
		}
	}
	if n > 0 {
		w.WriteTxPerRequest = round3(float64(w.WriteTx) / float64(n))
		if w.Statements >= 0 {
			w.StatementsPerRequest = round3(float64(w.Statements) / float64(n))
		}
	}
	return w, nil
}

// oneLine squeezes whitespace and cuts s to at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
