package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// A model's results are written in groups. While writersPerModel groups are in flight, the results
// that arrive queue; the next write takes them all. No timer is involved, so a lone result is
// written at once, and under load one commit (the fsync every durable write waits for) serves as
// many results as arrived during the previous one. The same transaction claims the next request
// for every slot in the group that takes one (Store.FinishAndClaim): a freed slot is refilled by
// the statement that records its result.

// writersPerModel is how many writes of one model's results may be in flight at once. One: a
// second writer would overlap the first's commit, but its claim waits for that commit on the
// model lock anyway, and it splits the arrivals into smaller groups, each paying a claim. Measured
// back to back (quick bench, durable): two writers 2,274 req/s in P2 and U 0.748 in P1c, one
// writer 2,773 req/s and U 0.801.
const writersPerModel = 1

// committer queues the results of one model's slots in this process.
type committer struct {
	mu      sync.Mutex
	writers int // writes of this model in flight; at writersPerModel, arrivals queue for the next
	queue   []*member
}

// member is one result waiting for its group's write.
type member struct {
	out    domain.Outcome
	inv    *invocation
	refill bool // the slot takes the next request
	done   chan groupResult
}

// groupResult is what the write of its group told one member.
type groupResult struct {
	won  bool        // the outcome was written (false: fenced out, a rescue took the request)
	next *domain.Job // the request the slot runs next, nil when it ends
	err  error
}

// committerOf returns the committer of model's slots.
func (e *Engine) committerOf(model string) *committer {
	e.commitMu.Lock()
	defer e.commitMu.Unlock()
	c, ok := e.commits[model]
	if !ok {
		c = &committer{}
		e.commits[model] = c
	}
	return c
}

// finish writes out in the next group of its model and reports what became of it. A caller whose
// result finds fewer than writersPerModel writes in flight writes the groups itself until the
// queue is empty; the others wait for their group.
func (e *Engine) finish(ctx context.Context, out domain.Outcome, inv *invocation) groupResult {
	m := &member{out: out, inv: inv, refill: e.refills(inv), done: make(chan groupResult, 1)}
	c := e.committerOf(out.Model)
	c.mu.Lock()
	c.queue = append(c.queue, m)
	if c.writers >= writersPerModel {
		c.mu.Unlock()
		return <-m.done
	}
	c.writers++
	for len(c.queue) > 0 {
		group := c.queue
		c.queue = nil
		c.mu.Unlock()
		e.writeGroup(ctx, out.Model, group)
		c.mu.Lock()
	}
	c.writers--
	c.mu.Unlock()
	return <-m.done
}

// writeGroup persists a group of model's results with the replacement claims, answers each member,
// and leaves the follow-up work (retry wake-ups, dispatch, finalisation) to run beside the slots.
func (e *Engine) writeGroup(ctx context.Context, model string, group []*member) {
	outs := make([]domain.Outcome, len(group))
	refill := domain.Refill{Model: model, Owner: e.cfg.Instance, UrgencyWeight: *e.cfg.UrgencyWeight}
	until := time.Time{}
	for i, m := range group {
		outs[i] = m.out
		if m.refill {
			refill.Max++
		}
		// The write is tried for as long as the member with the most time left has: each of them
		// waits for it.
		u := time.Now().Add(e.cfg.ProcessingTimeout)
		if dl, ok := m.inv.ctx.Deadline(); ok {
			u = dl.Add(-e.cfg.PersistSafety)
		}
		if u.After(until) {
			until = u
		}
	}
	won, jobs, err := e.persist(ctx, outs, refill, until)
	if err != nil {
		for _, m := range group {
			m.done <- groupResult{err: err}
		}
		return
	}
	if len(jobs) > 0 {
		e.met.Claimed(model, len(jobs))
	}
	byID := make(map[string]bool, len(won))
	for _, f := range won {
		byID[f.RequestID] = true
	}
	next := jobs
	var owner *invocation // where requests claimed beyond the group's slots run (after an adopted retry)
	results := make([]groupResult, len(group))
	for i, m := range group {
		results[i] = groupResult{won: byID[m.out.RequestID]}
		if m.refill && len(next) > 0 {
			results[i].next, next = &next[0], next[1:]
			owner = m.inv
		}
	}
	// Started before the members are answered: until then each member's invocation is waiting for
	// its slot, so Process cannot have returned.
	for _, j := range next {
		if owner == nil {
			break // no slot asked for a request: none was claimed
		}
		owner.spawn(func() { _ = e.runSlot(owner.ctx, j, owner) })
	}
	group[0].inv.spawn(func() { e.afterGroup(ctx, model, group, won, jobs) })
	for i, m := range group {
		m.done <- results[i]
	}
}

// afterGroup does what a written group's results call for, beside the slots that go on running:
// a wake-up when each retry's back-off ends, a dispatch for the slots given back to the queue,
// and the finaliser election for the batches that may have just finished.
func (e *Engine) afterGroup(ctx context.Context, model string, group []*member, won []domain.Finished, jobs []domain.Job) {
	gaveBack := false // a slot freed without a replacement for an invocation winding down
	for _, m := range group {
		gaveBack = gaveBack || !m.refill
	}
	state := make(map[string]domain.RequestState, len(won))
	for _, f := range won {
		state[f.RequestID] = f.State
		if f.CoalescedFrom != "" {
			continue // ended with a result of the group's, not run here
		}
		switch f.State {
		case domain.StateCompleted:
			e.processed.Add(1)
		case domain.StatePending:
		default:
			e.failed.Add(1)
		}
	}
	e.countOutcomes(model, group, won)
	// A retry with a back-off: make sure someone claims it when the back-off ends (one message
	// per distinct end).
	var due []time.Time
	for _, m := range group {
		if state[m.out.RequestID] == domain.StatePending && !slices.ContainsFunc(due, m.out.NotBefore.Equal) {
			due = append(due, m.out.NotBefore)
		}
	}
	for _, nb := range due {
		pctx, cancel := e.followUp(ctx)
		if err := e.queue.SendDispatch(pctx, model, nb.Sub(e.now())); err != nil {
			e.log.WarnContext(ctx, "schedule dispatch after back-off", "model", model, "err", err)
		}
		cancel()
	}
	// Slots given back go to the queue. A model with an escalation target also wakes the target:
	// batches crossing their escalation threshold are claimed by it, and nothing else would wake
	// it before the next scheduled dispatch. The model itself is dispatched only when it gave
	// slots back: otherwise the group's own claim has just filled them.
	var wake []string
	if gaveBack {
		wake = append(wake, model)
	}
	if fb := e.fallbackOf(ctx, model); fb != "" {
		wake = append(wake, fb)
	}
	if len(wake) > 0 {
		pctx, cancel := e.followUp(ctx)
		if _, err := e.dispatchModels(pctx, wake...); err != nil {
			e.log.WarnContext(ctx, "dispatch after completion", "models", wake, "err", err)
		}
		cancel()
	}
	// A batch can only have finished if the group ended one of its requests and claimed none of
	// its requests: one election per such batch, after the commit, so that the write that
	// committed last sees every other request finished. The requests ended with a coalesced result
	// (CoalescedFrom) count: they may be the last of a batch that ran nothing in this group.
	var batches []string
	for _, f := range won {
		if f.State != domain.StatePending && !slices.Contains(batches, f.BatchID) &&
			!slices.ContainsFunc(jobs, func(j domain.Job) bool { return j.BatchID == f.BatchID }) {
			batches = append(batches, f.BatchID)
		}
	}
	// A batch stopped by its fail-fast breaker may have nothing left running: elect it too.
	for _, b := range e.failFast(ctx, group, won) {
		if !slices.Contains(batches, b) {
			batches = append(batches, b)
		}
	}
	for _, b := range batches {
		pctx, cancel := e.followUp(ctx)
		e.TryFinalize(pctx, b)
		cancel()
	}
}

// failFast runs the fail-fast breaker of each batch the group failed a request of with an upstream
// 4xx that is not retried (Outcome.Rejected), once per batch, and returns the batches it stopped.
// Only such failures call it, so a batch whose requests succeed never pays for it.
func (e *Engine) failFast(ctx context.Context, group []*member, won []domain.Finished) []string {
	var seen, stopped []string
	for _, m := range group {
		if !m.out.Rejected || m.out.State != domain.StateFailed {
			continue // the common case: nothing to look up, nothing allocated
		}
		i := slices.IndexFunc(won, func(f domain.Finished) bool { return f.RequestID == m.out.RequestID })
		if i < 0 || slices.Contains(seen, won[i].BatchID) {
			continue // fenced out, or its batch already decided in this group
		}
		b := won[i].BatchID
		seen = append(seen, b)
		pctx, cancel := e.followUp(ctx)
		tripped, err := e.store.DecideFailFast(pctx, b, m.out.StatusCode, upstreamMessage(m.out.Body), e.now())
		cancel()
		if err != nil {
			// The next rejected request of the batch decides again.
			e.log.WarnContext(ctx, "fail-fast breaker", "batch_id", b, "err", err)
			continue
		}
		if tripped {
			e.log.WarnContext(ctx, "fail-fast breaker stopped the batch", "batch_id", b, "status", m.out.StatusCode)
			stopped = append(stopped, b)
		}
	}
	return stopped
}

// maxUpstreamMessage bounds the upstream's message quoted in a stopped batch's errors.
const maxUpstreamMessage = 300

// upstreamMessage is the message of an upstream error body, as the batch's errors quote it:
// OpenAI's {"error":{"message":…}}, a top-level "message" or "detail" (vLLM, FastAPI), or else the
// body itself as text; cut to maxUpstreamMessage characters.
func upstreamMessage(body []byte) string {
	var doc struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &doc) == nil {
		var nested struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(doc.Error, &nested) == nil && nested.Message != "":
			msg = nested.Message
		case json.Unmarshal(doc.Error, &s) == nil && s != "":
			msg = s
		case doc.Message != "":
			msg = doc.Message
		case json.Unmarshal(doc.Detail, &s) == nil && s != "":
			msg = s
		}
	}
	if msg == "" {
		return "no message"
	}
	if r := []rune(msg); len(r) > maxUpstreamMessage {
		msg = string(r[:maxUpstreamMessage]) + "…"
	}
	return msg
}

// countOutcomes reports the group's written results to Metrics: each by class and code (a result
// fenced out was not written and is not counted), and the lines of each batch that ended.
func (e *Engine) countOutcomes(model string, group []*member, won []domain.Finished) {
	var batch string
	done := 0
	for _, f := range won {
		class := classOf(f.State)
		// A line ended with a coalesced result is done, but it is not an outcome of a call.
		if f.CoalescedFrom == "" {
			code := ""
			if class != OutcomeCompleted {
				// Retries and failures are the rare case: a scan of the group finds the outcome's code.
				if i := slices.IndexFunc(group, func(m *member) bool { return m.out.RequestID == f.RequestID }); i >= 0 {
					code = codeOf(group[i].out, class)
				}
			}
			e.met.Outcome(model, class, code)
		}
		if class == OutcomeRetried {
			continue
		}
		// A group is mostly of one batch: count runs of it rather than build a map per group.
		if f.BatchID != batch {
			if done > 0 {
				e.met.LinesDone(batch, done)
			}
			batch, done = f.BatchID, 0
		}
		done++
	}
	if done > 0 {
		e.met.LinesDone(batch, done)
	}
}
