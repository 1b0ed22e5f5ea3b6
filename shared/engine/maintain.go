package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
)

// MaintenanceStats summarises a Maintain.
type MaintenanceStats struct {
	Rescued   int
	Expired   int
	Finalized int
	Purged    domain.PurgeStats
	Dispatch  DispatchStats
	Webhooks  int // delivery attempts made
}

// Maintain is the scheduled maintenance pass (the purge function runs it): it expires batches whose completion window closed,
// rescues stuck requests (refilling their models at once), finalises batches whose last request
// finished without a finaliser (a crash between the last write and the seal) or whose
// finalisation was interrupted, purges deleted and expired data in bounded chunks, and delivers
// due webhook events.
func (e *Engine) Maintain(ctx context.Context) (MaintenanceStats, error) {
	var st MaintenanceStats
	var errs []error
	now := e.now()
	for {
		expired, err := e.store.ExpireDue(ctx, now)
		if err != nil {
			errs = append(errs, err)
			break
		}
		st.Expired += len(expired)
		for _, x := range expired {
			e.log.InfoContext(ctx, "batch expired", "batch_id", x.BatchID)
		}
		if len(expired) < 100 || ctx.Err() != nil {
			break
		}
	}
	// One progress sample per running batch per pass: the pace the API's estimates go by.
	if _, err := e.store.SampleProgress(ctx, now, now.Add(-2*domain.ProgressWindow)); err != nil {
		errs = append(errs, err)
	}
	rescued, err := e.store.Rescue(ctx, now, e.cfg.ClaimTimeout, e.cfg.ProcessingTimeout, e.cfg.StaleWorker)
	if err != nil {
		errs = append(errs, err)
	}
	st.Rescued = len(rescued)
	seen := map[string]bool{}
	var models []string
	for _, r := range rescued {
		if r.State.Terminal() {
			continue // its batch was cancelled or expired; the finalisation pass below seals it
		}
		if !seen[r.Model] {
			seen[r.Model] = true
			models = append(models, r.Model)
		}
	}
	if len(rescued) > 0 {
		e.log.WarnContext(ctx, "rescued stuck requests", "count", len(rescued))
		d, err := e.dispatchModels(ctx, e.withFallbacks(ctx, models)...)
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
	p, err := e.purge(ctx, now)
	st.Purged = p
	if err != nil {
		errs = append(errs, err)
	}
	// Last, after expiry and sealing have enqueued their events. The sender bounds its own pass
	// (attempts per pass, a timeout per attempt), so a slow receiver only delays the next events.
	if e.hooks != nil && ctx.Err() == nil {
		n, err := e.hooks.Deliver(ctx)
		st.Webhooks = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return st, errors.Join(errs...)
}

// purge drains deletions chunk by chunk while the invocation has time left. Data soft-deleted
// less than ProcessingTimeout ago is left alone, so no running request loses its row or prompt.
func (e *Engine) purge(ctx context.Context, now time.Time) (domain.PurgeStats, error) {
	var total domain.PurgeStats
	grace := now.Add(-e.cfg.ProcessingTimeout)
	for ctx.Err() == nil {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 5*time.Second {
			break
		}
		st, err := e.purgeRound(ctx, now, grace)
		total.Requests += st.Requests
		total.Batches += st.Batches
		total.Files += st.Files
		total.ErasedPrompts += st.ErasedPrompts
		total.IdempotencyKeys += st.IdempotencyKeys
		total.CacheEntries += st.CacheEntries
		if err != nil {
			return total, err
		}
		if st == (domain.PurgeStats{}) {
			break
		}
	}
	return total, nil
}

// purgeRound removes one chunk of each kind: requests of deleted batches, old idempotency keys,
// then deleted batches and deleted or expired input files — their objects first and their rows
// after, so a crash in between leaves rows to purge again, never an orphaned object. Object
// storage is called between statements, never while a transaction holds row locks.
func (e *Engine) purgeRound(ctx context.Context, now, grace time.Time) (domain.PurgeStats, error) {
	var st domain.PurgeStats
	var err error
	chunk := e.cfg.PurgeChunk
	if st.Requests, err = e.store.PurgeRequests(ctx, chunk, grace); err != nil {
		return st, err
	}
	if st.IdempotencyKeys, err = e.store.PurgeIdempotencyKeys(ctx, chunk, now.Add(-domain.IdempotencyKeyTTL)); err != nil {
		return st, err
	}
	if st.CacheEntries, err = e.store.PurgeCoalesceCache(ctx, chunk, now); err != nil {
		return st, err
	}

	batches, err := e.store.PurgeableBatches(ctx, chunk, grace)
	if err != nil {
		return st, err
	}
	var keys, ids []string
	for _, b := range batches {
		keys = append(keys, domain.BatchFileKey(b.TenantID, b.ID, true), domain.BatchFileKey(b.TenantID, b.ID, false))
		if b.API == domain.APIAnthropic {
			// Written only for large results; a missing one deletes fine.
			keys = append(keys, domain.MessageResultsKey(b.TenantID, b.ID))
		}
		ids = append(ids, b.ID)
	}
	if err := e.deleteObjects(ctx, keys); err != nil {
		return st, fmt.Errorf("purge batch objects: %w", err)
	}
	if st.Batches, err = e.store.DropBatches(ctx, ids, grace); err != nil {
		return st, err
	}

	files, err := e.store.PurgeableFiles(ctx, chunk, grace, now)
	if err != nil {
		return st, err
	}
	keys, ids = nil, nil
	for _, f := range files {
		if f.Deleted {
			// Erase the prompts copied from a deleted file before its row (and the link) goes.
			n, err := e.store.ErasePromptsOfFile(ctx, f.ID, chunk)
			if err != nil {
				return st, err
			}
			st.ErasedPrompts += n
			if n == chunk {
				continue // more to erase; the file comes round again in the next round
			}
		}
		if f.ObjectKey != "" {
			keys = append(keys, f.ObjectKey)
		}
		ids = append(ids, f.ID)
	}
	if err := e.deleteObjects(ctx, keys); err != nil {
		return st, fmt.Errorf("purge file objects: %w", err)
	}
	st.Files, err = e.store.DropFiles(ctx, ids, grace, now)
	return st, err
}

// deleteObjects deletes stored objects; deleting one that is already gone succeeds, so two
// purgers of the same rows do no harm.
func (e *Engine) deleteObjects(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := e.blobs.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
