package engine

import (
	"context"
	"errors"
)

// SweepStats summarises a Sweep.
type SweepStats struct {
	Rescued   int
	Finalized int
	Dispatch  DispatchStats
}

// Sweep is the scheduled maintenance pass: it rescues stuck requests (refilling their models at
// once), and finalises batches whose last request finished without a finaliser (a crash between
// the last write and the seal) or whose finalisation was interrupted.
func (e *Engine) Sweep(ctx context.Context) (SweepStats, error) {
	var st SweepStats
	var errs []error
	now := e.now()
	rescued, err := e.store.Rescue(ctx, now, e.cfg.ClaimTimeout, e.cfg.ProcessingTimeout, e.cfg.StaleWorker)
	if err != nil {
		errs = append(errs, err)
	}
	st.Rescued = len(rescued)
	seen := map[string]bool{}
	var models []string
	for _, r := range rescued {
		if !seen[r.Model] {
			seen[r.Model] = true
			models = append(models, r.Model)
		}
	}
	if len(rescued) > 0 {
		e.log.WarnContext(ctx, "rescued stuck requests", "count", len(rescued))
		d, err := e.Refill(ctx, models...)
		st.Dispatch = d
		if err != nil {
			errs = append(errs, err)
		}
	}
	stale := now.Add(-e.cfg.FinalizeStale)
	ids, err := e.store.BatchesToFinalize(ctx, stale)
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		if tenantID, ok, err := e.store.RestartFinalize(ctx, id, now, stale); err != nil {
			errs = append(errs, err)
			continue
		} else if ok {
			// A stuck finalisation: take it over. BeginFinalize cannot, the batch is finalizing.
			if err := e.seal(ctx, tenantID, id); err != nil {
				errs = append(errs, err)
				continue
			}
			st.Finalized++
			continue
		}
		tenantID, ok, err := e.store.BeginFinalize(ctx, id, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			if err := e.seal(ctx, tenantID, id); err != nil {
				errs = append(errs, err)
				continue
			}
			st.Finalized++
		}
	}
	return st, errors.Join(errs...)
}
