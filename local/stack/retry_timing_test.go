package stack_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/mockupstream"
	"github.com/fusillade/fusillade/local/stack"
	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
)

// retryClock wraps the engine's store to time retries: every retry's not_before as it is
// persisted, the back-off it stands for, and when the next attempt of that request starts.
type retryClock struct {
	engine.Store
	mu        sync.Mutex
	notBefore map[string]time.Time     // request id → not_before of its pending retry
	lateness  []time.Duration          // start − not_before, one per retry started
	backoffs  map[string]time.Duration // request id → sum of its back-offs
	attempts  map[string]int           // request id → attempts started
	starts    map[string][]time.Time   // request id → when each attempt started
	finishes  map[string]time.Time     // request id → when it last finished
}

func newRetryClock() *retryClock {
	return &retryClock{notBefore: map[string]time.Time{}, backoffs: map[string]time.Duration{}, attempts: map[string]int{},
		starts: map[string][]time.Time{}, finishes: map[string]time.Time{}}
}

func (c *retryClock) decorate(d engine.Deps) engine.Deps {
	c.Store = d.Store
	d.Store = c
	return d
}

func (c *retryClock) StartProcessing(ctx context.Context, w domain.Work, owner string, now time.Time) (domain.Job, error) {
	job, err := c.Store.StartProcessing(ctx, w, owner, now)
	if err != nil {
		return job, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started(w.RequestID, now)
	return job, nil
}

// FinishAndClaim is a worker's result write, which also starts the requests it claims.
func (c *retryClock) FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	won, jobs, err := c.Store.FinishAndClaim(ctx, outs, refill, now)
	if err != nil {
		return won, jobs, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished(outs, won, now)
	for _, j := range jobs {
		c.started(j.RequestID, now)
	}
	return won, jobs, nil
}

// started records an attempt of id starting at now (c.mu held).
func (c *retryClock) started(id string, now time.Time) {
	if nb, ok := c.notBefore[id]; ok {
		c.lateness = append(c.lateness, now.Sub(nb))
		delete(c.notBefore, id)
	}
	c.attempts[id]++
	c.starts[id] = append(c.starts[id], now)
}

// finished records the outcomes that won (c.mu held).
func (c *retryClock) finished(outs []domain.Outcome, won []domain.Finished, now time.Time) {
	byID := map[string]domain.Outcome{}
	for _, o := range outs {
		byID[o.RequestID] = o
	}
	for _, f := range won {
		o := byID[f.RequestID]
		c.finishes[f.RequestID] = now
		if f.State == domain.StatePending {
			c.notBefore[f.RequestID] = o.NotBefore
			c.backoffs[f.RequestID] += o.NotBefore.Sub(now)
		}
	}
}

// report summarises the lateness of every retry so far and how many are still waiting.
func (c *retryClock) report() (lateness []time.Duration, waiting int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lateness = append([]time.Duration(nil), c.lateness...)
	sort.Slice(lateness, func(i, j int) bool { return lateness[i] < lateness[j] })
	return lateness, len(c.notBefore)
}

func (c *retryClock) String() string {
	l, waiting := c.report()
	var b strings.Builder
	fmt.Fprintf(&b, "%d retries started, %d waiting; lateness:", len(l), waiting)
	for _, d := range l {
		fmt.Fprintf(&b, " %s", d.Round(time.Millisecond))
	}
	return b.String()
}

// waitAll polls the batches until every one is terminal or the time is up, and returns them.
func waitAll(t *testing.T, c openai.Client, ids []string, within time.Duration, clock *retryClock) []*openai.Batch {
	t.Helper()
	deadline := time.Now().Add(within)
	out := make([]*openai.Batch, len(ids))
	for {
		done := 0
		for i, id := range ids {
			if out[i] != nil {
				done++
				continue
			}
			b, err := c.Batches.Get(context.Background(), id)
			require.NoError(t, err)
			switch b.Status {
			case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
				out[i] = b
				done++
			}
		}
		if done == len(ids) {
			return out
		}
		if time.Now().After(deadline) {
			require.Failf(t, "not every batch finished in time", "%d of %d batches finished within %s; %s", done, len(ids), within, clock)
		}
		time.Sleep(50 * time.Millisecond) // polling the API: there is no completion signal to wait on
	}
}

// Twenty one-line batches whose line fails three times: every retry starts within a second of its
// back-off ending, not at the next scheduled dispatch (60 s away). SQS delays are whole seconds
// while back-offs are jittered fractions, so this checks the kick's rounding sixty times over.
// Each batch has a model of its own, so that no other batch's finishing refills it by chance.
func TestEveryRetryStartsWithinASecondOfItsBackOff(t *testing.T) {
	const batches, failures = 20, 3
	clock := newRetryClock()
	var models []stack.ModelSpec
	for i := range batches {
		models = append(models, stack.ModelSpec{Name: fmt.Sprintf("mock-%d", i), Limit: 1})
	}
	st := startStack(t, stack.Options{Models: models, Decorate: clock.decorate})
	c := client(st, st.APIKey)
	var ids []string
	for i, m := range models {
		line := fmt.Sprintf(`{"custom_id":"r","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi"}],"mock_status":500,"mock_fail_times":%d,"mock_key":"timing-%d"}}`, m.Name, failures, i)
		f := uploadSDK(t, c, lines(line))
		ids = append(ids, newBatch(t, c, f.ID).ID)
	}
	// Back-offs are 1 + 2 + 4 s ± 20 %: at most 8.4 s of waiting per line.
	for _, b := range waitAll(t, c, ids, 30*time.Second, clock) {
		require.Equal(t, openai.BatchStatusCompleted, b.Status)
		require.EqualValues(t, 1, b.RequestCounts.Completed)
	}
	lateness, waiting := clock.report()
	require.Zero(t, waiting)
	require.Len(t, lateness, batches*failures, "%s", clock)
	require.GreaterOrEqual(t, lateness[0], time.Duration(0), "no retry starts before its back-off ends: %s", clock)
	require.Less(t, lateness[len(lateness)-1], time.Second, "every retry starts within 1 s of its back-off: %s", clock)
	t.Log(clock)
}

// Three hundred lines against an upstream failing 30 % of calls at random finish within 1.5× the
// ideal. The ideal is the longest any line had to take given its retries: when its first attempt
// started (populating the batch and queueing for the model's slots are not retry work), plus the
// back-offs it drew, plus the upstream's latency for each of its attempts; or the calls made
// divided over the models' limits, if that is longer. Time lost between a back-off ending and the
// retry starting — the waits for a kick — is what the bound catches. The lines are spread over six
// models so that the traffic of others does not refill a model whose kick went astray.
func TestAThirtyPercentErrorRateFinishesWithinOneAndAHalfTimesTheIdeal(t *testing.T) {
	const n, models, limit, latency = 300, 6, 8, 20 * time.Millisecond
	clock := newRetryClock()
	var specs []stack.ModelSpec
	var names []string
	for i := range models {
		specs = append(specs, stack.ModelSpec{Name: fmt.Sprintf("mock-%d", i), Limit: limit})
		names = append(names, specs[i].Name)
	}
	st := startStack(t, stack.Options{Models: specs, Decorate: clock.decorate,
		Upstream: mockupstream.Config{ErrorRate: 0.3, Latency: mockupstream.Fixed(latency), Seed: 7},
		// Back-offs of 1, 2, 4, 4… s keep the longest chain (six failures in a row is 1 in 1,400)
		// well inside the test's time.
		Env: map[string]string{"BACKOFF_MAX_MS": "4000"}})
	c := client(st, st.APIKey)
	f := uploadSDK(t, c, jsonlFile(n, names...))
	start := time.Now()
	b := newBatch(t, c, f.ID)
	done := waitAll(t, c, []string{b.ID}, 50*time.Second, clock)[0]
	wall := time.Since(start)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	require.EqualValues(t, n, done.RequestCounts.Completed)

	clock.mu.Lock()
	var chain time.Duration
	var longest string
	calls := 0
	for id, a := range clock.attempts {
		calls += a
		if d := clock.starts[id][0].Sub(start) + time.Duration(a)*latency + clock.backoffs[id]; d > chain {
			chain, longest = d, id
		}
	}
	retries := len(clock.lateness)
	chainAttempts, chainFirst := clock.attempts[longest], clock.starts[longest][0].Sub(start)
	clock.mu.Unlock()
	ideal := max(chain, time.Duration(calls)*latency/(models*limit))
	t.Logf("%d calls, %d retries; longest chain %d attempts from %s, ideal %s, wall %s (%.2f×); %s", calls, retries, chainAttempts,
		chainFirst.Round(time.Millisecond), ideal.Round(time.Millisecond), wall.Round(time.Millisecond), wall.Seconds()/ideal.Seconds(), clock)
	require.Greater(t, retries, n/5, "the error rate really made lines retry")
	require.LessOrEqual(t, wall, ideal*3/2, "wall time within 1.5× the ideal")
}
