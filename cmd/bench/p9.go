package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/fusillade/fusillade/local/mockupstream"
)

// P9: request coalescing. One file whose bodies repeat (p9Distinct of every line is distinct; the
// rest ask again what an earlier line asked) runs twice, each on a fresh database and stack:
// without coalescing, then with it. The upstream call count of the coalescing run must equal the
// number of distinct bodies, every line must complete, and the run should take about the distinct
// share of the plain run's time (the upstream is the limit: limit p9Limit, p9Latency fixed).
const (
	p9Limit    = 64
	p9Latency  = 200 * time.Millisecond
	p9Distinct = 0.6 // 40 % of the lines repeat an earlier body
)

func runP9(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P9", "coalescing: 40 % repeated bodies, off vs on")
	env.run(res, func() error { return p9(ctx, env, res, env.size(10_000, 1_000)) })
	return res
}

// p9Run is one run of the file.
type p9Run struct {
	e2e       time.Duration
	calls     int
	coalesced int
	knobs     map[string]any
}

func p9(ctx context.Context, env *benchEnv, res *Result, n int) error {
	distinct := int(float64(n) * p9Distinct)
	var content []byte
	for i := 1; i <= n; i++ {
		content = appendLineAsking(content, i, (i-1)%distinct+1, "bench-a", 0)
	}
	off, err := p9Once(ctx, env, "p9_off", content, n, false)
	if err != nil {
		return fmt.Errorf("without coalescing: %w", err)
	}
	on, err := p9Once(ctx, env, "p9_on", content, n, true)
	if err != nil {
		return fmt.Errorf("with coalescing: %w", err)
	}
	speedup := off.e2e.Seconds() / on.e2e.Seconds()
	ideal := float64(n) / float64(distinct)
	res.Knobs = on.knobs
	res.Knobs["lines"] = n
	res.Knobs["distinct_bodies"] = distinct
	res.Knobs["latency"] = fmt.Sprint(mockupstream.Fixed(p9Latency))
	res.Knobs["runs"] = "coalescing off then on (the coalesce field of POST /v1/batches), each on a fresh database and stack; end read from batches.completed_at every 20 ms"
	res.Metrics = map[string]any{
		"off":     map[string]any{"end_to_end_s": seconds(off.e2e), "upstream_calls": off.calls},
		"on":      map[string]any{"end_to_end_s": seconds(on.e2e), "upstream_calls": on.calls, "coalesced_count": on.coalesced},
		"speedup": round3(speedup),
		"ideal":   round3(ideal),
	}
	res.target("upstream calls with coalescing", fmt.Sprintf("= %d distinct bodies", distinct), fmt.Sprint(on.calls), on.calls == distinct)
	res.target("lines coalesced", fmt.Sprintf("= %d", n-distinct), fmt.Sprint(on.coalesced), on.coalesced == n-distinct)
	res.target("speed-up off ÷ on", fmt.Sprintf("≥ 0.9 × %.2f (lines ÷ distinct)", ideal), fmt.Sprintf("%.2f", speedup), speedup >= 0.9*ideal)
	res.Summary = fmt.Sprintf("N=%d distinct=%d C=%d: off %d calls %.1fs, on %d calls %.1fs (%d coalesced), speed-up %.2f× (ideal %.2f×)",
		n, distinct, p9Limit, off.calls, off.e2e.Seconds(), on.calls, on.e2e.Seconds(), on.coalesced, speedup, ideal)
	return nil
}

// p9Once runs content as one batch, coalescing or not, on a fresh database and stack.
func p9Once(ctx context.Context, env *benchEnv, name string, content []byte, n int, coalesce bool) (p9Run, error) {
	var out p9Run
	dbURL, drop, err := env.pg.fresh(ctx, name)
	if err != nil {
		return out, err
	}
	defer drop()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: []modelSpec{{"bench-a", p9Limit}},
		Upstream: mockupstream.Config{Latency: mockupstream.Fixed(p9Latency), Record: true, RecordLimit: n + 1000, Seed: 1}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return out, err
	}
	defer h.Stop()
	out.knobs = h.Knobs
	c := newClient(h.APIURL, h.APIKey)
	fileID, _, err := c.upload(ctx, bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return out, err
	}
	created := time.Now()
	var b struct {
		batchObject
		CoalescedCount int `json:"coalesced_count"`
	}
	if err := c.do(ctx, "POST", "/v1/batches", map[string]any{"input_file_id": fileID, "endpoint": chatPath,
		"completion_window": "24h", "coalesce": coalesce}, &b); err != nil {
		return out, err
	}
	completed, err := awaitCompleted(ctx, h, b.ID, 20*time.Millisecond)
	if err != nil {
		return out, err
	}
	out.e2e = completed.Sub(created)
	if err := c.do(ctx, "GET", "/v1/batches/"+b.ID, nil, &b); err != nil {
		return out, err
	}
	if b.RequestCounts.Completed != n {
		return out, fmt.Errorf("batch completed %d of %d requests (%d failed)", b.RequestCounts.Completed, n, b.RequestCounts.Failed)
	}
	out.calls = len(h.Upstream.Requests())
	out.coalesced = b.CoalescedCount
	return out, nil
}
