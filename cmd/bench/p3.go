package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres"
)

// runP3 times the claim step (store.ClaimForModel: lock the model row, count its slots, claim)
// against a large backlog, in the steady state of a busy system: every model at its limit, one
// request finishes, its slot is claimed again.
func runP3(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P3", "claim latency at backlog")
	env.run(res, func() error { return p3(ctx, env, res) })
	return res
}

const (
	p3Models  = 10
	p3Batches = 1000
	p3Tenants = 10
	p3Limit   = 64
	p3Urgency = 0.5 // URGENCY_WEIGHT default
	p3Max     = 1000
)

func p3(ctx context.Context, env *benchEnv, res *Result) error {
	perBatch := env.size(1000, 100)
	iters := env.size(3000, 300)
	pending := perBatch * p3Batches
	dbURL, drop, err := env.pg.fresh(ctx, "p3")
	if err != nil {
		return err
	}
	defer drop()
	store, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: 4})
	if err != nil {
		return err
	}
	defer store.Close()
	pool := store.Pool()
	t0 := time.Now()
	// Batch b belongs to tenant b%10 and uses model b%10; deadlines spread over a day so that the
	// urgency term of the ranking varies.
	for _, stmt := range []string{
		`INSERT INTO tenants (id, name) SELECT 'tenant_' || t, 'bench ' || t FROM generate_series(0, 9) t`,
		fmt.Sprintf(`INSERT INTO models (name, base_url, concurrency_limit) SELECT 'bench-m' || m, 'http://127.0.0.1:1', %d FROM generate_series(0, 9) m`, p3Limit),
		fmt.Sprintf(`INSERT INTO batches (id, tenant_id, endpoint, completion_window, status, model, models, total, created_at, expires_at, in_progress_at)
		 SELECT 'batch_bench_' || b, 'tenant_' || (b %% 10), '/v1/chat/completions', '24h', 'in_progress', 'bench-m' || (b %% 10),
		        ARRAY['bench-m' || (b %% 10)], %d, now(), now() + interval '1 hour' + (b %% 23) * interval '1 hour', now()
		 FROM generate_series(0, %d) b`, perBatch, p3Batches-1),
		fmt.Sprintf(`INSERT INTO requests (id, batch_id, tenant_id, line, custom_id, model, path, body, body_bytes)
		 SELECT gen_random_uuid(), 'batch_bench_' || b, 'tenant_' || (b %% 10), l, 'req-' || l, 'bench-m' || (b %% 10),
		        '/v1/chat/completions', '\x7b7d'::bytea, 2
		 FROM generate_series(0, %d) b, generate_series(1, %d) l`, p3Batches-1, perBatch),
		`VACUUM ANALYZE requests`, `VACUUM ANALYZE batches`, `VACUUM ANALYZE models`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	seed := time.Since(t0)
	models := make([]string, p3Models)
	for i := range models {
		models[i] = fmt.Sprintf("bench-m%d", i)
	}
	inflight := map[string][]domain.Claimed{}
	claim := func(m string) (time.Duration, int, error) {
		t := time.Now()
		c, err := store.ClaimForModel(ctx, m, p3Max, p3Urgency, time.Now())
		d := time.Since(t)
		inflight[m] = append(inflight[m], c...)
		return d, len(c), err
	}
	// Fill: every model from 0 to its limit in one claim.
	var fill []time.Duration
	for _, m := range models {
		d, k, err := claim(m)
		if err != nil {
			return err
		}
		if k != p3Limit {
			return fmt.Errorf("fill of %s claimed %d, want %d", m, k, p3Limit)
		}
		fill = append(fill, d)
	}
	// Steady state: one request of a model finishes, its slot is claimed.
	finish := func(m string) error {
		c := inflight[m][0]
		inflight[m] = inflight[m][1:]
		_, err := pool.Exec(ctx, `UPDATE requests SET state = 'completed', finished_at = now(), response_status = 200 WHERE id = $1`, c.RequestID)
		return err
	}
	var steady, atLimit []time.Duration
	for i := range iters {
		m := models[i%len(models)]
		if err := finish(m); err != nil {
			return err
		}
		d, k, err := claim(m)
		if err != nil {
			return err
		}
		if k != 1 {
			return fmt.Errorf("refill of %s claimed %d, want 1", m, k)
		}
		steady = append(steady, d)
		if i%10 == 0 {
			// A claim that finds the model at its limit (a refill that lost the race).
			d, k, err := claim(m)
			if err != nil {
				return err
			}
			if k != 0 {
				return fmt.Errorf("claim at limit of %s claimed %d", m, k)
			}
			atLimit = append(atLimit, d)
		}
	}
	plans, err := p3Explain(ctx, store, models[0], inflight[models[0]][0])
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	sd, fd, ld := distOf(steady), distOf(fill), distOf(atLimit)
	res.Knobs = map[string]any{
		"pending_requests": pending, "models": p3Models, "batches": p3Batches, "tenants": p3Tenants,
		"requests_per_batch": perBatch, "limit_per_model": p3Limit, "max_claim": p3Max, "urgency_weight": p3Urgency,
		"steady_iterations": iters, "pool_max_conns": 4, "claimer": "one sequential caller, round-robin over the models",
		"seed": "INSERT … SELECT generate_series, then VACUUM ANALYZE",
	}
	res.Metrics = map[string]any{
		"seed_s":            seconds(seed),
		"claim_refill_1":    sd,
		"claim_fill_64":     fd,
		"claim_at_limit":    ld,
		"explain_analyze":   plans,
		"claims_per_second": round3(float64(len(steady)) / (sd.Sum / 1000)),
	}
	res.target("claim p99 (refill of one slot)", "< 10 ms", fmt.Sprintf("%.2f ms", sd.P99), sd.P99 < 10)
	res.Summary = fmt.Sprintf("pending=%d models=%d batches=%d refill-claim p50=%.2fms p99=%.2fms; fill-64 p50=%.2fms p99=%.2fms; at-limit p50=%.2fms p99=%.2fms",
		pending, p3Models, p3Batches, sd.P50, sd.P99, fd.P50, fd.P99, ld.P50, ld.P99)
	return nil
}

// p3Explain captures EXPLAIN (ANALYZE, BUFFERS) of the claim statement as a worker's refill
// sends it (with an owner: straight to processing), inside a transaction that is rolled back:
// once for refilling one slot, and once with the model's slots all free (a fill). The statement
// is prepared, as pgx prepares it; the sixth execution shows the plan PostgreSQL settles on once it may switch to a generic plan.
func p3Explain(ctx context.Context, store *postgres.Store, model string, finishing domain.Claimed) (map[string]string, error) {
	conn, err := store.Pool().Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	sql, ok := postgres.Queries()["ClaimForModel"]
	if !ok {
		return nil, fmt.Errorf("no ClaimForModel query")
	}
	out := map[string]string{}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "PREPARE bench_claim (text, int, timestamptz, float8, text) AS "+strings.TrimSuffix(strings.TrimSpace(sql), ";")); err != nil {
		return nil, err
	}
	explain := func() (string, error) {
		rows, err := tx.Query(ctx, fmt.Sprintf("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim(%s, %d, now(), %g, 'bench-worker')",
			quoteLiteral(model), p3Max, p3Urgency), pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return "", err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		return strings.Join(lines, "\n"), err
	}
	if _, err := tx.Exec(ctx, `UPDATE requests SET state = 'completed' WHERE id = $1`, finishing.RequestID); err != nil {
		return nil, err
	}
	for i := 1; i <= 6; i++ {
		if _, err := tx.Exec(ctx, "SAVEPOINT s"); err != nil {
			return nil, err
		}
		p, err := explain()
		if err != nil {
			return nil, err
		}
		if i == 1 {
			out["refill_1_first_execution"] = p
		}
		if i == 6 {
			out["refill_1_sixth_execution"] = p
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s"); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE requests SET state = 'pending' WHERE model = $1 AND state IN ('claimed', 'processing')`, model); err != nil {
		return nil, err
	}
	p, err := explain()
	if err != nil {
		return nil, err
	}
	out["fill_64"] = p
	return out, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
