package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
	"github.com/fusillade/fusillade/shared/lambdafn"
	"github.com/fusillade/fusillade/shared/upstream"
)

// tracer collects wall-clock timestamps of every engine call on the request path, per call and
// per request (keyed by request id; a retried request keeps its last attempt).
type tracer struct {
	mu     sync.Mutex
	calls  map[string][]time.Duration
	rows   []int // rows per claim call that claimed something
	groups []int // results per FinishAndClaim
	reqs   map[string]*reqTrace
}

type reqTrace struct {
	Model        string
	ClaimStart   time.Time // the claim call that claimed it
	ClaimEnd     time.Time
	SendEnd      time.Time // SendWork returned: the message is in the queue
	Delivered    time.Time // the worker invocation that received it started
	MarkStart    time.Time // StartProcessing (claimed → processing)
	MarkEnd      time.Time
	HTTPStart    time.Time // upstream call, as the engine sees it
	HTTPEnd      time.Time
	PersistStart time.Time // FinishMany
	PersistEnd   time.Time
}

func newTracer() *tracer {
	return &tracer{calls: map[string][]time.Duration{}, reqs: map[string]*reqTrace{}}
}

func (t *tracer) call(op string, d time.Duration) {
	t.mu.Lock()
	t.calls[op] = append(t.calls[op], d)
	t.mu.Unlock()
}

// each applies f to the trace of every id under the lock.
func (t *tracer) each(ids []string, f func(*reqTrace)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		r := t.reqs[id]
		if r == nil {
			r = &reqTrace{}
			t.reqs[id] = r
		}
		f(r)
	}
}

func (t *tracer) snapshot() (map[string][]time.Duration, []int, []int, []reqTrace) {
	t.mu.Lock()
	defer t.mu.Unlock()
	calls := make(map[string][]time.Duration, len(t.calls))
	for k, v := range t.calls {
		calls[k] = slices.Clone(v)
	}
	reqs := make([]reqTrace, 0, len(t.reqs))
	for _, r := range t.reqs {
		reqs = append(reqs, *r)
	}
	return calls, slices.Clone(t.rows), slices.Clone(t.groups), reqs
}

// tracedStore times the store calls on the request path; every other method is the store's own.
type tracedStore struct {
	engine.Store
	tr *tracer
}

func (s tracedStore) ClaimForModel(ctx context.Context, model string, max int, w float64, now time.Time) ([]domain.Claimed, error) {
	t0 := time.Now()
	c, err := s.Store.ClaimForModel(ctx, model, max, w, now)
	t1 := time.Now()
	s.tr.call("claim", t1.Sub(t0))
	if len(c) > 0 {
		ids := make([]string, len(c))
		for i := range c {
			ids[i] = c[i].RequestID
		}
		s.tr.mu.Lock()
		s.tr.rows = append(s.tr.rows, len(c))
		s.tr.mu.Unlock()
		s.tr.each(ids, func(r *reqTrace) { *r = reqTrace{Model: model, ClaimStart: t0, ClaimEnd: t1} })
	}
	return c, err
}

func (s tracedStore) StartProcessing(ctx context.Context, w domain.Work, owner string, now time.Time) (domain.Job, error) {
	t0 := time.Now()
	j, err := s.Store.StartProcessing(ctx, w, owner, now)
	t1 := time.Now()
	s.tr.call("mark_processing", t1.Sub(t0))
	s.tr.each([]string{w.RequestID}, func(r *reqTrace) { r.MarkStart, r.MarkEnd = t0, t1 })
	return j, err
}

// FinishAndClaim is a worker's result write with the claim of the slots it frees: the group's
// results are persisted by it, and the requests it claims start processing when it returns.
func (s tracedStore) FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	t0 := time.Now()
	won, jobs, err := s.Store.FinishAndClaim(ctx, outs, refill, now)
	t1 := time.Now()
	s.tr.call("finish_and_claim", t1.Sub(t0))
	s.tr.mu.Lock()
	s.tr.groups = append(s.tr.groups, len(outs))
	s.tr.mu.Unlock()
	ids := make([]string, len(outs))
	for i := range outs {
		ids[i] = outs[i].RequestID
	}
	s.tr.each(ids, func(r *reqTrace) { r.PersistStart, r.PersistEnd = t0, t1 })
	ids = ids[:0]
	for _, j := range jobs {
		ids = append(ids, j.RequestID)
	}
	s.tr.each(ids, func(r *reqTrace) {
		*r = reqTrace{Model: refill.Model, ClaimStart: t0, ClaimEnd: t1, MarkStart: t1, MarkEnd: t1}
	})
	return won, jobs, err
}

func (s tracedStore) BeginFinalize(ctx context.Context, batchID string, now time.Time) (string, bool, error) {
	t0 := time.Now()
	a, b, err := s.Store.BeginFinalize(ctx, batchID, now)
	s.tr.call("finalize_check", time.Since(t0))
	return a, b, err
}

func (s tracedStore) Heartbeat(ctx context.Context, w domain.WorkerRecord, now time.Time) error {
	t0 := time.Now()
	err := s.Store.Heartbeat(ctx, w, now)
	s.tr.call("heartbeat", time.Since(t0))
	return err
}

// tracedQueue times SendWork.
type tracedQueue struct {
	engine.Queue
	tr *tracer
}

func (q tracedQueue) SendWork(ctx context.Context, work []domain.Work) ([]domain.Work, error) {
	t0 := time.Now()
	failed, err := q.Queue.SendWork(ctx, work)
	t1 := time.Now()
	q.tr.call("enqueue", t1.Sub(t0))
	ids := make([]string, len(work))
	for i := range work {
		ids[i] = work[i].RequestID
	}
	q.tr.each(ids, func(r *reqTrace) { r.SendEnd = t1 })
	return failed, err
}

// tracedUpstream times the upstream call from the engine's side.
type tracedUpstream struct {
	engine.Upstream
	tr *tracer
}

func (u tracedUpstream) Do(ctx context.Context, call upstream.Call) upstream.Result {
	t0 := time.Now()
	res := u.Upstream.Do(ctx, call)
	t1 := time.Now()
	u.tr.each([]string{call.RequestID}, func(r *reqTrace) { r.HTTPStart, r.HTTPEnd = t0, t1 })
	return res
}

// tracedProcessor marks when a worker invocation received each message.
type tracedProcessor struct {
	lambdafn.Processor
	tr *tracer
}

func (p tracedProcessor) Process(ctx context.Context, work []domain.Work) []error {
	now := time.Now()
	ids := make([]string, len(work))
	for i := range work {
		ids[i] = work[i].RequestID
	}
	p.tr.each(ids, func(r *reqTrace) { r.Delivered = now })
	p.tr.call("invocation_batch", time.Duration(len(work))) // count of messages, not a duration
	return p.Processor.Process(ctx, work)
}

// Breakdown is where the time of a request goes, stage by stage, in the order a freed slot is
// refilled: the finished request is persisted, the next one claimed and enqueued, the message
// crosses the queue, a worker invocation starts and marks it processing, and the upstream call
// begins. Per-call figures are the database or queue round trips themselves.
type Breakdown struct {
	PerCall    map[string]Dist `json:"per_call"`
	PerRequest map[string]Dist `json:"per_request"`
	ClaimRows  Dist            `json:"claim_rows_per_call"` // rows claimed per non-empty claim (as a count, not ms)
	// GroupResults is how many results each FinishAndClaim wrote (a count, not ms).
	GroupResults Dist `json:"results_per_group"`
	Invocations  Dist `json:"messages_per_invocation"`
	// RefillPathMeanMs sums the mean of each stage on the path from an upstream response to the
	// next upstream request on the same slot.
	RefillPathMeanMs float64 `json:"refill_path_mean_ms"`
}

func breakdown(t *tracer) Breakdown {
	calls, rows, groups, reqs := t.snapshot()
	b := Breakdown{PerCall: map[string]Dist{}, PerRequest: map[string]Dist{}}
	for op, ds := range calls {
		if op == "invocation_batch" {
			continue
		}
		b.PerCall[op] = distOf(ds)
	}
	counts := func(xs []int) Dist {
		ds := make([]time.Duration, len(xs))
		for i, x := range xs {
			ds[i] = time.Duration(x) * time.Millisecond
		}
		return distOf(ds)
	}
	b.ClaimRows = counts(rows)
	b.GroupResults = counts(groups)
	inv := make([]int, 0, len(calls["invocation_batch"]))
	for _, d := range calls["invocation_batch"] {
		inv = append(inv, int(d))
	}
	b.Invocations = counts(inv)
	stages := []struct {
		name     string
		from, to func(r *reqTrace) time.Time
	}{
		{"response_to_persist", func(r *reqTrace) time.Time { return r.HTTPEnd }, func(r *reqTrace) time.Time { return r.PersistStart }},
		{"persist", func(r *reqTrace) time.Time { return r.PersistStart }, func(r *reqTrace) time.Time { return r.PersistEnd }},
		{"claim", func(r *reqTrace) time.Time { return r.ClaimStart }, func(r *reqTrace) time.Time { return r.ClaimEnd }},
		// The message is often received before SendMessageBatch has returned to the sender, so the
		// enqueue and the queue hop are measured together: claim returned → invocation started.
		{"enqueue_and_queue_hop", func(r *reqTrace) time.Time { return r.ClaimEnd }, func(r *reqTrace) time.Time { return r.Delivered }},
		{"invocation_to_mark", func(r *reqTrace) time.Time { return r.Delivered }, func(r *reqTrace) time.Time { return r.MarkStart }},
		{"mark_processing", func(r *reqTrace) time.Time { return r.MarkStart }, func(r *reqTrace) time.Time { return r.MarkEnd }},
		{"mark_to_http", func(r *reqTrace) time.Time { return r.MarkEnd }, func(r *reqTrace) time.Time { return r.HTTPStart }},
		{"upstream_call", func(r *reqTrace) time.Time { return r.HTTPStart }, func(r *reqTrace) time.Time { return r.HTTPEnd }},
		{"claim_to_upstream", func(r *reqTrace) time.Time { return r.ClaimStart }, func(r *reqTrace) time.Time { return r.HTTPStart }},
	}
	for _, s := range stages {
		var ds []time.Duration
		for i := range reqs {
			a, z := s.from(&reqs[i]), s.to(&reqs[i])
			if a.IsZero() || z.IsZero() || z.Before(a) {
				continue
			}
			ds = append(ds, z.Sub(a))
		}
		d := distOf(ds)
		b.PerRequest[s.name] = d
		switch s.name {
		case "upstream_call", "claim_to_upstream":
		default:
			b.RefillPathMeanMs += d.Mean
		}
	}
	b.RefillPathMeanMs = round3(b.RefillPathMeanMs)
	return b
}
