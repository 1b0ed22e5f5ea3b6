package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fusillade/fusillade/local/mockupstream"
)

// P7: status polling must not slow the engine. The same batch runs twice, each time on a fresh
// database and stack: alone, then with p7Pollers clients polling the batch and the batch list as
// fast as they can. The completion rate of the two runs is compared, and the polls' own rate and
// latency are reported per route.
const (
	p7Pollers   = 16
	p7Limit     = 64
	p7Latency   = 200 * time.Millisecond
	p7ListRoute = "/v1/batches?limit=20"
)

// p7Routes are the two routes every poller alternates between, in this order.
var p7Routes = []string{"GET /v1/batches/{id}", "GET " + p7ListRoute}

func runP7(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P7", "polling: completion rate with 16 pollers")
	env.run(res, func() error { return p7(ctx, env, res, env.size(20_000, 2_000)) })
	return res
}

// p7Run is one run of the batch: its completion rate and, when polled, what the pollers saw.
type p7Run struct {
	lines    int
	e2e      time.Duration // POST /v1/batches → completed_at
	polls    pollStats
	knobs    map[string]any
	upstream *upstreamUse
}

func (r p7Run) linesPerSec() float64 { return float64(r.lines) / r.e2e.Seconds() }

func p7(ctx context.Context, env *benchEnv, res *Result, n int) error {
	alone, err := p7Once(ctx, env, "p7_alone", n, 0)
	if err != nil {
		return fmt.Errorf("alone: %w", err)
	}
	polled, err := p7Once(ctx, env, "p7_polled", n, p7Pollers)
	if err != nil {
		return fmt.Errorf("polled: %w", err)
	}
	ratio := polled.linesPerSec() / alone.linesPerSec()
	ps := polled.polls
	pollRate := float64(ps.total()) / ps.window.Seconds()
	byID, list := distOf(ps.lat[0]), distOf(ps.lat[1])
	all := distOf(append(append([]time.Duration(nil), ps.lat[0]...), ps.lat[1]...))
	res.Knobs = polled.knobs
	res.Knobs["lines"] = n
	res.Knobs["latency"] = fmt.Sprint(mockupstream.Fixed(p7Latency))
	res.Knobs["pollers"] = p7Pollers
	res.Knobs["poll_routes"] = p7Routes
	res.Knobs["poll_client"] = "one net/http client (MaxIdleConnsPerHost 16) shared by the pollers, each alternating the two routes back to back"
	res.Knobs["runs"] = "alone then polled, each on a fresh database and stack; end of batch read from batches.completed_at every 20 ms"
	res.Metrics = map[string]any{
		"alone": map[string]any{"end_to_end_s": seconds(alone.e2e), "lines_per_s": round3(alone.linesPerSec()),
			"utilisation": alone.upstream.Utilisation, "max_in_flight": alone.upstream.MaxInFlight},
		"polled": map[string]any{"end_to_end_s": seconds(polled.e2e), "lines_per_s": round3(polled.linesPerSec()),
			"utilisation": polled.upstream.Utilisation, "max_in_flight": polled.upstream.MaxInFlight},
		"ratio":         round3(ratio),
		"polls":         ps.total(),
		"poll_errors":   ps.errors,
		"poll_window_s": seconds(ps.window),
		"polls_per_s":   round3(pollRate),
		"poll_all":      all,
		"poll_batch":    byID,
		"poll_list":     list,
	}
	if ps.firstErr != "" {
		res.Metrics["first_poll_error"] = ps.firstErr
	}
	res.target("completion rate polled ÷ alone", "≥ 0.95", fmt.Sprintf("%.3f", ratio), ratio >= 0.95)
	res.target("poll p99", "< 25 ms", fmt.Sprintf("%.1f ms", all.P99), all.P99 < 25 && all.N > 0)
	res.target("polls/s", "≥ 1,000", fmt.Sprintf("%.0f", pollRate), pollRate >= 1000)
	res.Summary = fmt.Sprintf("N=%d C=%d: alone %.0f lines/s (%.1fs), polled %.0f lines/s (%.1fs), ratio %.3f; %d pollers %.0f polls/s (%d errors), {id} p50=%.1fms p99=%.1fms, list p50=%.1fms p99=%.1fms",
		n, p7Limit, alone.linesPerSec(), alone.e2e.Seconds(), polled.linesPerSec(), polled.e2e.Seconds(), ratio,
		p7Pollers, pollRate, ps.errors, byID.P50, byID.P99, list.P50, list.P99)
	return nil
}

// p7Once runs the batch of n lines on a fresh database and stack, with pollers polling it from
// its creation to its completion (none for the run alone).
func p7Once(ctx context.Context, env *benchEnv, name string, n, pollers int) (p7Run, error) {
	out := p7Run{lines: n}
	models := []modelSpec{{"bench-a", p7Limit}}
	dbURL, drop, err := env.pg.fresh(ctx, name)
	if err != nil {
		return out, err
	}
	defer drop()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: models,
		Upstream: mockupstream.Config{Latency: mockupstream.Fixed(p7Latency), Record: true, RecordLimit: n + 1000, Seed: 1}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return out, err
	}
	defer h.Stop()
	out.knobs = h.Knobs
	content := genJSONL(n, []string{"bench-a"}, 0)
	c := newClient(h.APIURL, h.APIKey)
	fileID, _, err := c.upload(ctx, bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return out, err
	}
	created := time.Now()
	b, err := c.createBatch(ctx, fileID)
	if err != nil {
		return out, err
	}
	pctx, stopPolls := context.WithCancel(ctx)
	done := make(chan pollStats, 1)
	go func() { done <- poll(pctx, newClient(h.APIURL, h.APIKey), b.ID, pollers) }()
	completed, err := awaitCompleted(ctx, h, b.ID, 20*time.Millisecond)
	stopPolls()
	out.polls = <-done
	if err != nil {
		return out, err
	}
	out.e2e = completed.Sub(created)
	got, err := c.batch(ctx, b.ID)
	if err != nil {
		return out, err
	}
	if got.RequestCounts.Completed != n {
		return out, fmt.Errorf("batch completed %d of %d requests (%d failed)", got.RequestCounts.Completed, n, got.RequestCounts.Failed)
	}
	out.upstream = upstreamUsage(h.Upstream.Requests(), h.Upstream.Stats(), models, p7Latency)[0]
	return out, nil
}

// pollStats is what the pollers saw: per-route latencies (in p7Routes order) of the polls that
// answered 2xx, the failures, and the time the pollers ran.
type pollStats struct {
	lat      [2][]time.Duration
	errors   int
	firstErr string
	window   time.Duration
}

func (s pollStats) total() int { return len(s.lat[0]) + len(s.lat[1]) }

// poll runs n pollers until ctx ends. A poll cut short by the end is neither counted nor an
// error.
func poll(ctx context.Context, c *client, batchID string, n int) pollStats {
	var mu sync.Mutex
	var out pollStats
	var wg sync.WaitGroup
	t0 := time.Now()
	paths := [2]string{"/v1/batches/" + batchID, p7ListRoute}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat [2][]time.Duration
			var errs int
			var firstErr string
			for k := i; ctx.Err() == nil; k++ {
				route := k % 2
				t := time.Now()
				err := c.do(ctx, "GET", paths[route], nil, nil)
				d := time.Since(t)
				switch {
				case err == nil:
					lat[route] = append(lat[route], d)
				case ctx.Err() != nil:
					// Cut short by the end of the run: not a failure of the route.
				default:
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			out.lat[0] = append(out.lat[0], lat[0]...)
			out.lat[1] = append(out.lat[1], lat[1]...)
			out.errors += errs
			if out.firstErr == "" {
				out.firstErr = firstErr
			}
		}()
	}
	<-ctx.Done()
	out.window = time.Since(t0)
	wg.Wait()
	return out
}
