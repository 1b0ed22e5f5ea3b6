package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fusillade/fusillade/local/mockupstream"
)

// runP2 measures the price of durability: the same file through fusillade (upload, batch,
// every request claimed, executed and persisted, output sealed), through River doing the same
// work per job (river.go), and through the simplest non-durable thing a user could run instead,
// each against a zero-latency mock; and the database work per request of ours and River's.
func runP2(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P2", "throughput: zero-latency upstream, durable e2e")
	env.run(res, func() error { return p2(ctx, env, res) })
	return res
}

func p2(ctx context.Context, env *benchEnv, res *Result) error {
	n := env.size(100_000, 5_000)
	const limit = 64
	models := []modelSpec{{"bench-a", limit}}
	dbURL, drop, err := env.pg.fresh(ctx, "p2")
	if err != nil {
		return err
	}
	defer drop()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: models,
		Env: map[string]string{"MAX_LINES": strconv.Itoa(n)}, Upstream: mockupstream.Config{Seed: 1}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return err
	}
	defer h.Stop()
	content := genJSONL(n, []string{"bench-a"}, 0)

	meter, err := startDBWork(ctx, env.pg.base, dbURL)
	if err != nil {
		return err
	}
	t0 := time.Now()
	waits, err := startWaitSampler(ctx, dbURL, 0)
	if err != nil {
		return err
	}
	cpu0 := sampleCPU()
	run, err := runBatch(ctx, h, content, 20*time.Millisecond)
	cpu := cpuSince(cpu0)
	waitProfile := waits.Stop()
	if err != nil {
		return err
	}
	dbWork, err := meter.stop(ctx, n)
	if err != nil {
		return err
	}
	wall := run.Completed.Sub(t0)
	if got := run.Batch.RequestCounts.Completed; got != n {
		return fmt.Errorf("batch completed %d of %d requests", got, n)
	}
	durable := float64(n) / wall.Seconds()
	bd := breakdown(h.Trace)
	_, _, _, reqs := h.Trace.snapshot()
	var first, last time.Time
	for _, r := range reqs {
		if !r.HTTPStart.IsZero() && (first.IsZero() || r.HTTPStart.Before(first)) {
			first = r.HTTPStart
		}
		if r.PersistEnd.After(last) {
			last = r.PersistEnd
		}
	}
	exec := last.Sub(first)
	maxInFlight := h.Upstream.MaxInFlight("bench-a")
	res.Knobs = h.Knobs
	// The comparators run one after the other once our stack has stopped, each against a mock of
	// its own with the same (zero) latency.
	h.Stop()

	upCfg := mockupstream.Config{Seed: 1}
	baseWall, err := p2BaselineOwnMock(ctx, content, upCfg, limit)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	baseline := float64(n) / baseWall.Seconds()
	ratio := durable / baseline
	cmp := &Comparison{Metric: "req/s", Ours: round3(durable), OursEngine: round3(float64(n) / exec.Seconds()),
		Errgroup: round3(baseline), OursDB: &dbWork}
	var riverMetrics map[string]any
	if env.river {
		rivURL, dropRiver, err := env.pg.empty(ctx, "p2_river")
		if err != nil {
			return err
		}
		defer dropRiver()
		rr, err := runRiver(ctx, riverOptions{DatabaseURL: rivURL, MeterBase: env.pg.base, Models: models,
			Upstream: upCfg, Content: content, Log: env.log})
		if err != nil {
			return fmt.Errorf("river: %w", err)
		}
		cmp.River = round3(float64(n) / rr.elapsed().Seconds())
		cmp.RiverDB = &rr.DB
		res.Knobs["river"] = rr.Knobs
		riverMetrics = map[string]any{"requests_per_s": cmp.River, "insert_s": seconds(rr.Insert),
			"start_to_last_commit_s": seconds(rr.elapsed()), "max_in_flight": rr.Stats.Models["bench-a"].MaxInFlight,
			"db": rr.DB, "engine_only_over_river": round3(cmp.OursEngine / cmp.River)}
	}
	cmp.ratios()
	res.Compare = cmp
	res.Knobs["requests"] = n
	res.Knobs["limit"] = limit
	res.Knobs["upstream_latency"] = "0"
	res.Knobs["status_poll_interval_ms"] = 20
	res.Knobs["baseline"] = fmt.Sprintf("bufio line scan + errgroup.SetLimit(%d) + net/http POST to a mock of the same kind + buffered output JSONL file", limit)
	res.Knobs["timelines"] = "ours: upload start → output sealed (end to end) and first upstream call → last persist (engine only); " +
		"River: jobs inserted (InsertManyFast, not timed) → last job committed; errgroup: file scan start → last line written"
	res.Metrics = map[string]any{
		"requests_per_s":               round3(durable),
		"wall_s":                       seconds(wall),
		"validate_s":                   seconds(run.Validate),
		"populate_to_first_upstream_s": seconds(first.Sub(run.Created)),
		"execution_s":                  seconds(exec),
		"execution_requests_per_s":     round3(float64(n) / exec.Seconds()),
		"seal_after_last_persist_s":    seconds(run.Completed.Sub(last)),
		"baseline_requests_per_s":      round3(baseline),
		"baseline_wall_s":              seconds(baseWall),
		"ratio":                        round3(ratio),
		"max_in_flight":                maxInFlight,
		"breakdown":                    bd,
		"cpu":                          cpu,
		"postgres_waits":               waitProfile,
		"db":                           dbWork,
		"river":                        riverMetrics,
		"comparison":                   cmp,
	}
	res.target("durable / baseline", "≥ 0.3×", fmt.Sprintf("%.3f×", ratio), ratio >= 0.3)
	river := "-"
	if cmp.River > 0 {
		river = fmt.Sprintf("%.0f req/s (%.1fs; %s) ours÷River %.3f", cmp.River, float64(n)/cmp.River, cmp.RiverDB, cmp.OursOverRiver)
	}
	res.Summary = fmt.Sprintf("N=%d C=%d durable %.0f req/s (wall %.1fs; execution %.0f req/s; %s) River %s; baseline %.0f req/s (%.1fs) ratio %.3f",
		n, limit, durable, wall.Seconds(), float64(n)/exec.Seconds(), dbWork, river, baseline, baseWall.Seconds(), ratio)
	return nil
}

// p2BaselineOwnMock runs p2Baseline against a mock of its own.
func p2BaselineOwnMock(ctx context.Context, content []byte, cfg mockupstream.Config, limit int) (time.Duration, error) {
	url, _, stop, err := serveMock(cfg)
	if err != nil {
		return 0, err
	}
	defer stop()
	return p2Baseline(ctx, content, url, limit)
}

// p2Baseline is the script a user would write instead of running a batch service: read the
// JSONL, POST each body with at most limit in flight, write one output line per answer. Nothing
// is durable, nothing is retried.
func p2Baseline(ctx context.Context, content []byte, upstreamURL string, limit int) (time.Duration, error) {
	out, err := os.CreateTemp("", "fusillade-bench-baseline-*.jsonl")
	if err != nil {
		return 0, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: limit, MaxIdleConnsPerHost: limit}}
	defer hc.CloseIdleConnections()
	t0 := time.Now()
	var mu sync.Mutex
	w := bufio.NewWriterSize(out, 1<<20)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		g.Go(func() error {
			var in struct {
				CustomID string          `json:"custom_id"`
				URL      string          `json:"url"`
				Body     json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(line, &in); err != nil {
				return err
			}
			status, body, err := postJSON(gctx, hc, upstreamURL+in.URL, in.Body)
			if err != nil {
				return err
			}
			rec, err := json.Marshal(map[string]any{"custom_id": in.CustomID,
				"response": map[string]any{"status_code": status, "body": json.RawMessage(body)}})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			_, _ = w.Write(rec)
			return w.WriteByte('\n')
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
