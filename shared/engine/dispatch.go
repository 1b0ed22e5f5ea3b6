package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/fusillade/fusillade/shared/domain"
	"slices"
	"sync"
)

// DispatchStats summarises a Dispatch or Refill.
type DispatchStats struct {
	Claimed  int
	Enqueued int
	Returned int // claims given back because their message could not be sent
}

// Dispatch claims free slots of every model that has work and enqueues the claims. It is the
// scheduled kick-off and safety net; in steady state slots are refilled by workers as requests
// finish. Safe to run concurrently with itself and with workers: the claim is serialised per
// model in the database.
func (e *Engine) Dispatch(ctx context.Context) (DispatchStats, error) {
	models, err := e.store.ModelsWithWork(ctx)
	if err != nil {
		return DispatchStats{}, err
	}
	return e.Refill(ctx, models...)
}

// Refill claims and enqueues up to each model's free capacity. Workers call it for the model of
// every request they finish, and the populate function for the models of a new batch.
//
// Refills of one model are coalesced within the process: claims of a model serialise on its row
// lock in the database, so when many requests finish at once, one caller claims for all of them
// (looping while others asked meanwhile) instead of each queueing behind the lock for one slot.
func (e *Engine) Refill(ctx context.Context, models ...string) (DispatchStats, error) {
	var total DispatchStats
	var errs []error
	for _, m := range models {
		if !e.refills.enter(m) {
			continue // a refill of m is running here and will go round again for us
		}
		for {
			st, err := e.refillModel(ctx, m)
			total.Claimed += st.Claimed
			total.Enqueued += st.Enqueued
			total.Returned += st.Returned
			if err != nil {
				errs = append(errs, err)
			}
			if !e.refills.again(m) {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

// refillModel claims until the model is at its limit or out of work.
func (e *Engine) refillModel(ctx context.Context, m string) (DispatchStats, error) {
	var total DispatchStats
	for {
		st, err := e.refillOnce(ctx, m)
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

// coalescer tracks which models have a refill running in this process and whether another was
// asked for meanwhile.
type coalescer struct {
	mu    sync.Mutex
	state map[string]bool // present: running; true: asked again while running
}

// enter reports whether the caller should run the refill of m; false means one is running and has
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

// again reports whether the running refill of m must go round again; when it returns false the
// refill is over and the next caller runs its own.
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

func (e *Engine) refillOnce(ctx context.Context, model string) (DispatchStats, error) {
	claims, err := e.store.ClaimForModel(ctx, model, e.cfg.MaxClaim, *e.cfg.UrgencyWeight, e.now())
	if err != nil || len(claims) == 0 {
		return DispatchStats{}, err
	}
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

// Kick is Refill for callers that only care whether it worked (populate, the API, kick
// messages), of the models and their escalation targets.
func (e *Engine) Kick(ctx context.Context, models ...string) error {
	_, err := e.Refill(ctx, e.withFallbacks(ctx, models)...)
	return err
}

// withFallbacks adds each model's escalation target: the requests of batches near their deadline
// are claimed by it, and refilling only the model they name would leave them to the next
// scheduled dispatch. A model whose configuration cannot be read is kept alone.
func (e *Engine) withFallbacks(ctx context.Context, models []string) []string {
	out := append([]string(nil), models...)
	for _, name := range models {
		m, err := e.models.get(ctx, name)
		if err == nil && m != nil && m.EscalationModel != "" && !slices.Contains(out, m.EscalationModel) {
			out = append(out, m.EscalationModel)
		}
	}
	return out
}
