package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/fusillade/fusillade/shared/domain"
	"slices"
	"sync"
)

// DispatchStats summarises a dispatch.
type DispatchStats struct {
	Claimed  int
	Enqueued int
	Returned int // claims given back because their message could not be sent
}

// DispatchAll claims free slots of every model that has work and enqueues the claims. It is the
// scheduled start and safety net; in steady state slots are refilled by workers as requests
// finish. Safe to run concurrently with itself and with workers: the claim is serialised per
// model in the database.
func (e *Engine) DispatchAll(ctx context.Context) (DispatchStats, error) {
	models, err := e.store.ModelsWithWork(ctx)
	if err != nil {
		return DispatchStats{}, err
	}
	return e.dispatchModels(ctx, models...)
}

// dispatchModels claims and enqueues up to each model's free capacity (Dispatch adds the
// escalation targets; DispatchAll and rescue call it directly).
//
// Dispatches of one model are coalesced within the process: claims of a model serialise on its row
// lock in the database, so when many requests finish at once, one caller claims for all of them
// (looping while others asked meanwhile) instead of each queueing behind the lock for one slot.
func (e *Engine) dispatchModels(ctx context.Context, models ...string) (DispatchStats, error) {
	var total DispatchStats
	var errs []error
	for _, m := range models {
		if !e.dispatching.enter(m) {
			continue // a dispatch of m is running here and will go round again for us
		}
		rctx := ctx
		for {
			st, err := e.dispatchModel(rctx, m)
			total.Claimed += st.Claimed
			total.Enqueued += st.Enqueued
			total.Returned += st.Returned
			if err != nil {
				errs = append(errs, err)
			}
			if !e.dispatching.again(m) {
				break
			}
			// The next round is owed to callers who asked meanwhile and returned at once, so it
			// must not end with this caller's context: a worker's follow-up bound runs out a few
			// seconds after its own request finished, and a round refused for it would leave their
			// freed slots empty until the scheduled dispatch. Each claim has its own bound.
			rctx = context.WithoutCancel(ctx)
		}
	}
	return total, errors.Join(errs...)
}

// dispatchModel claims until the model is at its limit or out of work.
func (e *Engine) dispatchModel(ctx context.Context, m string) (DispatchStats, error) {
	var total DispatchStats
	for {
		st, err := e.claimAndEnqueue(ctx, m)
		total.Claimed += st.Claimed
		total.Enqueued += st.Enqueued
		total.Returned += st.Returned
		// A full claim may mean the limit is larger than MaxClaim: go again while there is time.
		// A partial one means the model is at its limit or out of work.
		if err != nil || st.Claimed < e.cfg.MaxClaim || ctx.Err() != nil {
			return total, err
		}
	}
}

// coalescer tracks which models have a dispatch running in this process and whether another was
// asked for meanwhile.
type coalescer struct {
	mu    sync.Mutex
	state map[string]bool // present: running; true: asked again while running
}

// enter reports whether the caller should run the dispatch of m; false means one is running and has
// been told to go round again.
func (c *coalescer) enter(m string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = map[string]bool{}
	}
	if _, running := c.state[m]; running {
		c.state[m] = true
		return false
	}
	c.state[m] = false
	return true
}

// again reports whether the running dispatch of m must go round again; when it returns false the
// dispatch is over and the next caller runs its own.
func (c *coalescer) again(m string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state[m] {
		c.state[m] = false
		return true
	}
	delete(c.state, m)
	return false
}

// claimAndEnqueue claims and sends one batch of work. A caller whose context has ended starts no
// claim; once started, the claim and its messages are not cut short by the caller's cancellation,
// only bounded by PersistMargin. The claim commits in the database even when its caller stops
// waiting for the answer (during a slow commit, say), and rows claimed without a message would hold
// their slots until rescue: ClaimTimeout plus up to one maintenance period, about two minutes with
// the defaults. A message cut off mid-send may also have been queued after its claim was given back.
func (e *Engine) claimAndEnqueue(ctx context.Context, model string) (DispatchStats, error) {
	if err := ctx.Err(); err != nil {
		return DispatchStats{}, fmt.Errorf("claim %q: %w", model, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.PersistMargin)
	defer cancel()
	claims, err := e.store.ClaimForModel(ctx, model, e.cfg.MaxClaim, *e.cfg.UrgencyWeight, e.now())
	if err != nil || len(claims) == 0 {
		return DispatchStats{}, err
	}
	e.met.Claimed(model, len(claims))
	work := make([]domain.Work, len(claims))
	for i, c := range claims {
		work[i] = c.Work
	}
	st := DispatchStats{Claimed: len(claims)}
	failed, sendErr := e.queue.SendWork(ctx, work)
	st.Enqueued = len(work) - len(failed)
	if len(failed) > 0 {
		// Give the slots back now rather than waiting for the claim timeout. If even that fails,
		// rescue returns them after ClaimTimeout: nothing is lost either way.
		if err := e.store.Unclaim(context.WithoutCancel(ctx), failed); err != nil {
			e.log.ErrorContext(ctx, "unclaim after failed enqueue", "model", model, "count", len(failed), "err", err)
		} else {
			st.Returned = len(failed)
		}
	}
	if sendErr != nil {
		return st, fmt.Errorf("enqueue %d claims of %q: %w", len(failed), model, sendErr)
	}
	return st, nil
}

// Dispatch claims free slots of the models and of their escalation targets and enqueues the
// claims. It is the one dispatch operation: DispatchAll runs it for every model with work on the
// schedule, workers for the model of each request they finish, populate for a new batch's models,
// the API after a retry or a model change, and due dispatch messages when a back-off ends.
func (e *Engine) Dispatch(ctx context.Context, models ...string) error {
	_, err := e.dispatchModels(ctx, e.withFallbacks(ctx, models)...)
	return err
}

// withFallbacks adds each model's escalation target: the requests of batches near their deadline
// are claimed by it, and refilling only the model they name would leave them to the next
// scheduled dispatch. A model whose configuration cannot be read is kept alone.
func (e *Engine) withFallbacks(ctx context.Context, models []string) []string {
	out := append([]string(nil), models...)
	for _, name := range models {
		if fb := e.fallbackOf(ctx, name); fb != "" && !slices.Contains(out, fb) {
			out = append(out, fb)
		}
	}
	return out
}

// fallbackOf returns the model that name hands its requests near their deadline to, "" when it
// has none or its configuration cannot be read.
func (e *Engine) fallbackOf(ctx context.Context, name string) string {
	m, err := e.models.get(ctx, name)
	if err != nil || m == nil {
		return ""
	}
	return m.EscalationModel
}
