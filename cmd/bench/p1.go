package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/shared/domain"
)

// batchRun is one batch taken through the API from upload to sealed output.
type batchRun struct {
	FileID    string
	Batch     batchObject
	Validate  time.Duration // POST /v1/files/{id}/complete
	Created   time.Time     // just before POST /v1/batches
	Completed time.Time     // batches.completed_at: the output file was sealed
}

func (r batchRun) e2e() time.Duration { return r.Completed.Sub(r.Created) }

// batchEndQuery is the poll for the end of a batch (not counted as the system's database work).
const batchEndQuery = "SELECT status, completed_at FROM batches WHERE id = $1"

func runBatch(ctx context.Context, h *harness, content []byte, poll time.Duration) (batchRun, error) {
	c := newClient(h.APIURL, h.APIKey)
	var r batchRun
	var err error
	if r.FileID, r.Validate, err = c.upload(ctx, bytes.NewReader(content), int64(len(content))); err != nil {
		return r, err
	}
	r.Created = time.Now()
	b, err := c.createBatch(ctx, r.FileID)
	if err != nil {
		return r, err
	}
	if r.Completed, err = awaitCompleted(ctx, h, b.ID, poll); err != nil {
		return r, err
	}
	r.Batch, err = c.batch(ctx, b.ID)
	return r, err
}

// awaitCompleted waits for batch id to complete and returns its completed_at.
func awaitCompleted(ctx context.Context, h *harness, id string, poll time.Duration) (time.Time, error) {
	// The end is read from the database rather than by polling GET /v1/batches/{id}: that route
	// counts the batch's requests live, which at 100,000 rows and a short interval would be a
	// load of its own. completed_at is written by the sealing writer with the engine's clock (this
	// process's), so it is the moment the output file was sealed, not when a poll noticed.
	for {
		var status string
		var at *time.Time
		if err := h.App.Store.Pool().QueryRow(ctx, batchEndQuery, id).Scan(&status, &at); err != nil {
			return time.Time{}, err
		}
		if domain.BatchStatus(status) == domain.BatchCompleted && at != nil {
			return *at, nil
		}
		switch domain.BatchStatus(status) {
		case domain.BatchFailed, domain.BatchExpired, domain.BatchCancelled:
			return time.Time{}, fmt.Errorf("batch %s ended %s", id, status)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// upstreamUse is what the mock upstream saw of one model.
type upstreamUse struct {
	Model        string  `json:"model"`
	Limit        int     `json:"limit"`
	Requests     int     `json:"requests"`
	MaxInFlight  int     `json:"max_in_flight"`
	BusySeconds  float64 `json:"upstream_seconds"` // Σ Lᵢ
	WindowSec    float64 `json:"window_s"`         // first request received → last answered
	Utilisation  float64 `json:"utilisation"`      // Σ Lᵢ / (C · window)
	IdealSeconds float64 `json:"ideal_s"`
	RefillMs     Dist    `json:"slot_refill"`
	first, last  time.Time
	lat, gaps    []time.Duration
}

// upstreamUsage derives per-model utilisation and slot-refill latency from the mock's records.
// Slot refill: walking a model's events in time order, each finished request frees a slot
// (queued FIFO) and each new request takes the oldest freed slot; the gap between the two is the
// refill latency. The first C requests fill empty slots and are not paired; freed slots nobody
// takes (the end of the run) are not counted.
func upstreamUsage(recs []mockupstream.Recorded, stats mockupstream.Stats, models []modelSpec, fixed time.Duration) []*upstreamUse {
	out := make([]*upstreamUse, 0, len(models))
	idx := map[string]*upstreamUse{}
	byModel := map[string][]mockupstream.Recorded{}
	for _, m := range models {
		u := &upstreamUse{Model: m.Name, Limit: m.Limit, MaxInFlight: stats.Models[m.Name].MaxInFlight}
		out = append(out, u)
		idx[m.Name] = u
	}
	for _, r := range recs {
		u := idx[r.Model]
		if u == nil || r.Finished.IsZero() {
			continue
		}
		u.Requests++
		u.lat = append(u.lat, r.Finished.Sub(r.Received))
		if u.first.IsZero() || r.Received.Before(u.first) {
			u.first = r.Received
		}
		if r.Finished.After(u.last) {
			u.last = r.Finished
		}
		byModel[r.Model] = append(byModel[r.Model], r)
	}
	for _, u := range out {
		u.gaps = refillGaps(byModel[u.Model])
		u.RefillMs = distOf(u.gaps)
		var sum, maxL time.Duration
		for _, l := range u.lat {
			sum += l
			maxL = max(maxL, l)
		}
		u.BusySeconds = seconds(sum)
		window := u.last.Sub(u.first)
		u.WindowSec = seconds(window)
		if window > 0 && u.Limit > 0 {
			u.Utilisation = round3(sum.Seconds() / (float64(u.Limit) * window.Seconds()))
		}
		if fixed > 0 {
			u.IdealSeconds = seconds(time.Duration(math.Ceil(float64(u.Requests)/float64(u.Limit))) * fixed)
		} else if u.Limit > 0 {
			u.IdealSeconds = round3(max(sum.Seconds()/float64(u.Limit), maxL.Seconds()))
		}
	}
	return out
}

type p1Phase struct {
	id      string
	name    string
	latency mockupstream.Latency
	fixed   time.Duration // 0 for a distribution
	models  []modelSpec
}

func runP1(ctx context.Context, env *benchEnv) []*Result {
	n := env.size(10_000, 640)
	limit := 64
	phases := []p1Phase{
		{"P1a", "fixed 200 ms, 1 model", mockupstream.Fixed(200 * time.Millisecond), 200 * time.Millisecond,
			[]modelSpec{{"bench-a", limit}}},
		{"P1b", "lognormal p50 200 ms / p99 2 s, 1 model", mockupstream.LogNormal(200*time.Millisecond, 2*time.Second), 0,
			[]modelSpec{{"bench-a", limit}}},
		{"P1c", "fixed 200 ms, 3 models at once", mockupstream.Fixed(200 * time.Millisecond), 200 * time.Millisecond,
			[]modelSpec{{"bench-a", limit}, {"bench-b", limit}, {"bench-c", limit}}},
	}
	var out []*Result
	for _, ph := range phases {
		res := newResult(ph.id, "utilisation: "+ph.name)
		env.run(res, func() error { return p1Phase1(ctx, env, res, ph, n) })
		out = append(out, res)
	}
	return out
}

func p1Phase1(ctx context.Context, env *benchEnv, res *Result, ph p1Phase, nPerModel int) error {
	names := make([]string, len(ph.models))
	for i, m := range ph.models {
		names[i] = m.Name
	}
	total := nPerModel * len(ph.models)
	dbURL, drop, err := env.pg.fresh(ctx, ph.id)
	if err != nil {
		return err
	}
	defer drop()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: ph.models,
		Upstream: mockupstream.Config{Latency: ph.latency, Record: true, RecordLimit: total + 1000, Seed: 1}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return err
	}
	defer h.Stop()
	content := genJSONL(total, names, 0)
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
	uses := upstreamUsage(h.Upstream.Requests(), h.Upstream.Stats(), ph.models, ph.fixed)
	var busy float64
	var sumC int
	var first, last time.Time
	var ideal float64
	maxOK := true
	for _, u := range uses {
		busy += u.BusySeconds
		sumC += u.Limit
		if first.IsZero() || u.first.Before(first) {
			first = u.first
		}
		if u.last.After(last) {
			last = u.last
		}
		ideal = max(ideal, u.IdealSeconds)
		if u.MaxInFlight > u.Limit {
			maxOK = false
		}
	}
	// All models' refill gaps together, for the headline figure.
	var allGaps []time.Duration
	for _, u := range uses {
		allGaps = append(allGaps, u.gaps...)
	}
	gaps := distOf(allGaps)
	window := last.Sub(first)
	u := busy / (float64(sumC) * window.Seconds())
	eff := ideal / window.Seconds()
	effE2E := ideal / run.e2e().Seconds()
	bd := breakdown(h.Trace)
	res.Knobs = h.Knobs
	res.Knobs["requests_per_model"] = nPerModel
	res.Knobs["latency"] = fmt.Sprint(ph.latency)
	res.Knobs["status_poll_interval_ms"] = 20
	res.Metrics = map[string]any{
		"requests":                      total,
		"completed":                     run.Batch.RequestCounts.Completed,
		"failed":                        run.Batch.RequestCounts.Failed,
		"utilisation":                   round3(u),
		"efficiency":                    round3(eff),
		"efficiency_end_to_end":         round3(effE2E),
		"execution_window_s":            seconds(window),
		"end_to_end_s":                  seconds(run.e2e()),
		"ideal_s":                       round3(ideal),
		"upstream_seconds":              round3(busy),
		"overhead_per_request_ms":       round3((float64(sumC)*window.Seconds() - busy) / float64(total) * 1000),
		"slot_refill":                   gaps,
		"per_model":                     uses,
		"breakdown":                     bd,
		"cpu":                           cpu,
		"postgres_waits":                waitProfile,
		"validate_s":                    seconds(run.Validate),
		"first_upstream_after_create_s": seconds(first.Sub(run.Created)),
		"sealed_after_last_upstream_s":  seconds(run.Completed.Sub(last)),
	}
	maxIF := ""
	for i, x := range uses {
		if i > 0 {
			maxIF += ","
		}
		maxIF += fmt.Sprintf("%d/%d", x.MaxInFlight, x.Limit)
	}
	// The comparators run after our stack has stopped, against a mock of their own with the same
	// latency profile and seed (the mock draws each latency from its arrival number, so every
	// system sees the same sequence of latencies).
	h.Stop()
	cmp := &Comparison{Metric: "U", Ours: round3(u)}
	upCfg := mockupstream.Config{Latency: ph.latency, Record: true, RecordLimit: total + 1000, Seed: 1}
	if env.river {
		rivURL, dropRiver, err := env.pg.empty(ctx, ph.id+"_river")
		if err != nil {
			return err
		}
		defer dropRiver()
		rr, err := runRiver(ctx, riverOptions{DatabaseURL: rivURL, Models: ph.models, Upstream: upCfg, Content: content, Log: env.log})
		if err != nil {
			return fmt.Errorf("river: %w", err)
		}
		ru := utilisationOf(upstreamUsage(rr.Requests, rr.Stats, ph.models, ph.fixed))
		cmp.River = round3(ru.U)
		res.Knobs["river"] = rr.Knobs
		res.Metrics["river"] = map[string]any{"utilisation": round3(ru.U), "execution_window_s": seconds(ru.Window),
			"max_in_flight": ru.MaxInFlight, "slot_refill": ru.Refill, "insert_s": seconds(rr.Insert),
			"start_to_last_commit_s": seconds(rr.elapsed()), "first_upstream_after_start_s": seconds(ru.First.Sub(rr.Started))}
	}
	recs, stats, err := errgroupPerModel(ctx, content, names, ph.models, upCfg)
	if err != nil {
		return fmt.Errorf("errgroup: %w", err)
	}
	eu := utilisationOf(upstreamUsage(recs, stats, ph.models, ph.fixed))
	cmp.Errgroup = round3(eu.U)
	res.Metrics["errgroup"] = map[string]any{"utilisation": round3(eu.U), "execution_window_s": seconds(eu.Window),
		"max_in_flight": eu.MaxInFlight, "slot_refill": eu.Refill}
	res.Knobs["errgroup"] = "per model: bufio line scan + errgroup.SetLimit(limit) + net/http POST to a mock with the same latency profile and seed"
	cmp.ratios()
	res.Compare = cmp
	res.Metrics["comparison"] = cmp

	res.target("utilisation", "≥ 0.95", fmt.Sprintf("%.3f", u), u >= 0.95)
	res.target("max in-flight per model", "≤ limit", maxIF, maxOK)
	res.target("slot refill p99", "< 250 ms", fmt.Sprintf("%.1f ms", gaps.P99), gaps.P99 < 250 && gaps.N > 0)
	res.Summary = fmt.Sprintf("N=%d C=%d×%d U=%.3f eff=%.3f (ideal %.1fs, exec %.1fs, e2e %.1fs) maxInFlight=%s refill p50=%.1fms p99=%.1fms refill-path=%.1fms; River U=%s errgroup U=%.3f",
		total, len(ph.models), ph.models[0].Limit, u, eff, ideal, window.Seconds(), run.e2e().Seconds(), maxIF, gaps.P50, gaps.P99, bd.RefillPathMeanMs,
		orDash(cmp.River), cmp.Errgroup)
	return nil
}

func orDash(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", x)
}

// utilisation is U = Σ Lᵢ / (Σ C · window) over all models, window from the first request any
// model received to the last answer.
type utilisation struct {
	U           float64
	Window      time.Duration
	First, Last time.Time
	MaxInFlight string
	Refill      Dist
}

func utilisationOf(uses []*upstreamUse) utilisation {
	var out utilisation
	var busy float64
	var sumC int
	var gaps []time.Duration
	for i, x := range uses {
		busy += x.BusySeconds
		sumC += x.Limit
		if out.First.IsZero() || (!x.first.IsZero() && x.first.Before(out.First)) {
			out.First = x.first
		}
		if x.last.After(out.Last) {
			out.Last = x.last
		}
		if i > 0 {
			out.MaxInFlight += ","
		}
		out.MaxInFlight += fmt.Sprintf("%d/%d", x.MaxInFlight, x.Limit)
		gaps = append(gaps, x.gaps...)
	}
	out.Window = out.Last.Sub(out.First)
	if out.Window > 0 && sumC > 0 {
		out.U = busy / (float64(sumC) * out.Window.Seconds())
	}
	out.Refill = distOf(gaps)
	return out
}

// errgroupPerModel runs the errgroup fan-out (p2Baseline) of each model's lines at once, each
// with its model's limit, against a mock of its own, and returns what the mock saw.
func errgroupPerModel(ctx context.Context, content []byte, names []string, models []modelSpec, cfg mockupstream.Config) ([]mockupstream.Recorded, mockupstream.Stats, error) {
	url, mock, stop, err := serveMock(cfg)
	if err != nil {
		return nil, mockupstream.Stats{}, err
	}
	defer stop()
	perModel := map[string][]byte{}
	for i, line := range bytes.SplitAfter(content, []byte("\n")) {
		if len(line) > 0 {
			m := modelFor(names, i+1)
			perModel[m] = append(perModel[m], line...)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range models {
		g.Go(func() error {
			_, err := p2Baseline(gctx, perModel[m.Name], url, m.Limit)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, mockupstream.Stats{}, err
	}
	return mock.Requests(), mock.Stats(), nil
}

// refillGaps pairs, for one model's records, each freed slot with the next request start (see
// upstreamUsage).
func refillGaps(recs []mockupstream.Recorded) []time.Duration {
	var starts, ends []time.Time
	for _, r := range recs {
		if r.Finished.IsZero() {
			continue
		}
		starts = append(starts, r.Received)
		ends = append(ends, r.Finished)
	}
	slices.SortFunc(starts, time.Time.Compare)
	slices.SortFunc(ends, time.Time.Compare)
	var gaps []time.Duration
	// Merge: every end frees a slot; every start after the first fill takes the oldest free one.
	e := 0
	var freed []time.Time
	for _, s := range starts {
		for e < len(ends) && !ends[e].After(s) {
			freed = append(freed, ends[e])
			e++
		}
		if len(freed) > 0 {
			gaps = append(gaps, s.Sub(freed[0]))
			freed = freed[1:]
		}
	}
	return gaps
}
