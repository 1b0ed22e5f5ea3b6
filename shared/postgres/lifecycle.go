package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
)

func notCancellable(status string) error {
	return &domain.Error{Code: domain.EConflict, Message: fmt.Sprintf("Cannot cancel a batch with status '%s'.", status)}
}

// CancelBatch cancels a tenant's batch: a validating one ends at once; a running one becomes
// cancelling — its unstarted requests end now and its running ones are marked for their workers
// to abort. Cancelling a cancelling batch is a no-op. It returns the batch's status afterwards.
func (s *Store) CancelBatch(ctx context.Context, tenantID, batchID string, now time.Time) (domain.BatchStatus, error) {
	var status string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, q("CancelBatch"), batchID, tenantID, now).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := tx.QueryRow(ctx, q("BatchStatus"), batchID, tenantID).Scan(&status); errors.Is(err, pgx.ErrNoRows) {
				return batchNotFound(batchID)
			} else if err != nil {
				return err
			}
			if status == string(domain.BatchCancelling) || status == string(domain.BatchCancelled) {
				return nil // idempotent
			}
			return notCancellable(status)
		}
		if err != nil {
			return fmt.Errorf("cancel batch: %w", err)
		}
		_, err = tx.Exec(ctx, q("EndUnstarted"), batchID, now, string(domain.StateCanceled), domain.CodeBatchCancelled)
		return err
	})
	return domain.BatchStatus(status), err
}

func batchNotFound(id string) error {
	return &domain.Error{Code: domain.ENotFound, Message: fmt.Sprintf("No batch found with id '%s'.", id), Param: "batch_id"}
}

// CancelRequests cancels individual requests of a tenant's batch. Ids that are not in the batch
// are absent from the result.
func (s *Store) CancelRequests(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) ([]domain.CancelOutcome, error) {
	rows, err := s.pool.Query(ctx, q("CancelRequests"), batchID, tenantID, ids, now)
	if err != nil {
		return nil, fmt.Errorf("cancel requests: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.CancelOutcome, error) {
		var o domain.CancelOutcome
		err := r.Scan(&o.RequestID, &o.Result)
		return o, err
	})
}

// CancelMarks returns which of the given running requests were asked to stop.
func (s *Store) CancelMarks(ctx context.Context, ids []string) ([]domain.Abort, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, q("CancelMarks"), ids)
	if err != nil {
		return nil, fmt.Errorf("cancel marks: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Abort, error) {
		var a domain.Abort
		var state string
		err := r.Scan(&a.RequestID, &state, &a.Code)
		a.State = domain.RequestState(state)
		return a, err
	})
}

// ExpireDue marks up to 100 batches whose completion window has closed and ends their unstarted
// requests (they go to the error file as batch_expired); running requests are marked for abort.
// Finished work is kept.
func (s *Store) ExpireDue(ctx context.Context, now time.Time) ([]domain.Expired, error) {
	var out []domain.Expired
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q("ExpireDue"), now)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Expired, error) {
			var e domain.Expired
			var st string
			err := r.Scan(&e.BatchID, &st)
			e.Status = domain.BatchStatus(st)
			return e, err
		})
		if err != nil {
			return err
		}
		for _, e := range out {
			if _, err := tx.Exec(ctx, q("EndUnstarted"), e.BatchID, now, string(domain.StateExpired), domain.CodeBatchExpired); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire batches: %w", err)
	}
	return out, nil
}

// RetryFailed gives failed requests of a tenant's batch a new life (all of them when ids is
// nil), reopening the batch if it was sealed. It returns the models to refill. A batch past its
// deadline cannot be retried: its requests would only expire again.
func (s *Store) RetryFailed(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) (retried int, models []string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, q("ReopenBatch"), batchID, tenantID, now).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := tx.QueryRow(ctx, q("BatchStatus"), batchID, tenantID).Scan(&status); errors.Is(err, pgx.ErrNoRows) {
				return batchNotFound(batchID)
			} else if err != nil {
				return err
			}
			return &domain.Error{Code: domain.EConflict, Message: fmt.Sprintf(
				"Cannot retry requests of a batch with status '%s' (only running or completed batches within their completion window can be retried).", status)}
		}
		if err != nil {
			return fmt.Errorf("reopen batch: %w", err)
		}
		if _, err := tx.Exec(ctx, q("ReopenFiles"), batchID); err != nil {
			return err
		}
		var arg any
		if ids != nil {
			arg = ids
		}
		rows, err := tx.Query(ctx, q("RetryFailed"), batchID, arg)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for rows.Next() {
			var id, model string
			if err := rows.Scan(&id, &model); err != nil {
				return err
			}
			retried++
			if !seen[model] {
				seen[model] = true
				models = append(models, model)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if retried == 0 {
			return &domain.Error{Code: domain.EConflict, Message: "There are no failed requests to retry."}
		}
		return nil
	})
	return retried, models, err
}

// DeleteBatch soft-deletes a tenant's batch: it disappears from the API at once, a running batch
// is cancelled, and purge later removes its rows and files.
func (s *Store) DeleteBatch(ctx context.Context, tenantID, batchID string, now time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, q("DeleteBatch"), batchID, tenantID, now).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return batchNotFound(batchID)
		}
		if err != nil {
			return fmt.Errorf("delete batch: %w", err)
		}
		if _, err := tx.Exec(ctx, q("HideBatchFiles"), batchID, now); err != nil {
			return err
		}
		if status == string(domain.BatchCancelling) {
			_, err = tx.Exec(ctx, q("EndUnstarted"), batchID, now, string(domain.StateCanceled), domain.CodeBatchCancelled)
		}
		return err
	})
}

// DeleteFile soft-deletes a tenant's file. Batches made from an input file are cancelled (their
// results stay readable) and purge later erases the prompts copied from it. It returns the
// batches that became cancelling, which the caller may try to seal at once.
func (s *Store) DeleteFile(ctx context.Context, tenantID, fileID string, now time.Time) (cancelling []string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var purpose string
		err := tx.QueryRow(ctx, q("DeleteFile"), fileID, tenantID, now).Scan(&purpose)
		if errors.Is(err, pgx.ErrNoRows) {
			return &domain.Error{Code: domain.ENotFound, Message: fmt.Sprintf("No such File object: %s", fileID), Param: "file_id"}
		}
		if err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		if purpose != domain.PurposeBatch {
			return nil
		}
		rows, err := tx.Query(ctx, q("CancelBatchesOfFile"), fileID, now)
		if err != nil {
			return err
		}
		type b struct{ id, status string }
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (b, error) {
			var x b
			err := r.Scan(&x.id, &x.status)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, x := range got {
			if x.status == string(domain.BatchCancelling) {
				cancelling = append(cancelling, x.id)
				if _, err := tx.Exec(ctx, q("EndUnstarted"), x.id, now, string(domain.StateCanceled), domain.CodeBatchCancelled); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return cancelling, err
}

// Purge hard-deletes, in bounded chunks of up to chunk rows per table, what was soft-deleted
// before graceBefore: requests of deleted batches, then deleted batches with their output and
// error files and objects, then deleted or expired input files with their objects (erasing the
// prompts copied from a deleted file first). Safe to run from several processes at once: each
// chunk is claimed with SKIP LOCKED. Call it until it returns zero counts.
func (s *Store) Purge(ctx context.Context, chunk int, now, graceBefore time.Time, deleteObjects domain.PurgeObjects, objectKey func(tenantID, batchID string, output bool) string) (domain.PurgeStats, error) {
	var st domain.PurgeStats
	tag, err := s.pool.Exec(ctx, q("PurgeRequests"), chunk, graceBefore)
	if err != nil {
		return st, fmt.Errorf("purge requests: %w", err)
	}
	st.Requests = int(tag.RowsAffected())
	tag, err = s.pool.Exec(ctx, q("PurgeIdempotencyKeys"), chunk, now.Add(-domain.IdempotencyKeyTTL))
	if err != nil {
		return st, fmt.Errorf("purge idempotency keys: %w", err)
	}
	st.IdempotencyKeys = int(tag.RowsAffected())

	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q("PurgeableBatches"), chunk, graceBefore)
		if err != nil {
			return err
		}
		type b struct{ id, tenant string }
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (b, error) {
			var x b
			err := r.Scan(&x.id, &x.tenant)
			return x, err
		})
		if err != nil || len(got) == 0 {
			return err
		}
		var keys []string
		for _, x := range got {
			keys = append(keys, objectKey(x.tenant, x.id, true), objectKey(x.tenant, x.id, false))
		}
		if err := deleteObjects(ctx, keys); err != nil {
			return err
		}
		for _, x := range got {
			if _, err := tx.Exec(ctx, q("DropBatch"), x.id); err != nil {
				return err
			}
		}
		st.Batches = len(got)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("purge batches: %w", err)
	}

	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q("PurgeableFiles"), chunk, graceBefore, now)
		if err != nil {
			return err
		}
		type f struct {
			id, tenant, key string
			deleted         bool
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (f, error) {
			var x f
			err := r.Scan(&x.id, &x.tenant, &x.key, &x.deleted)
			return x, err
		})
		if err != nil || len(got) == 0 {
			return err
		}
		var keys []string
		var drop []string
		for _, x := range got {
			if x.deleted {
				// Erase copied prompts before the file row (and with it the link) goes.
				tag, err := tx.Exec(ctx, q("ErasePromptsOfFile"), x.id, chunk)
				if err != nil {
					return err
				}
				st.ErasedPrompts += int(tag.RowsAffected())
				if tag.RowsAffected() == int64(chunk) {
					continue // more to erase; the file's turn comes again on the next call
				}
			}
			if x.key != "" {
				keys = append(keys, x.key)
			}
			drop = append(drop, x.id)
		}
		if err := deleteObjects(ctx, keys); err != nil {
			return err
		}
		for _, id := range drop {
			if _, err := tx.Exec(ctx, q("DropFile"), id); err != nil {
				return err
			}
			st.Files++
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("purge files: %w", err)
	}
	return st, nil
}

// PendingByModelAndWindow counts unfinished requests per model whose batch deadline falls within
// each window from now (cumulative; overdue work counts in every window). For capacity planning
// and admission.
func (s *Store) PendingByModelAndWindow(ctx context.Context, windows []time.Duration, now time.Time) (domain.WindowCounts, error) {
	secs := make([]int32, len(windows))
	for i, w := range windows {
		secs[i] = int32(w / time.Second)
	}
	rows, err := s.pool.Query(ctx, q("PendingByModelAndWindow"), secs, now)
	if err != nil {
		return nil, fmt.Errorf("pending by model: %w", err)
	}
	defer rows.Close()
	out := domain.WindowCounts{}
	for rows.Next() {
		var model string
		var sec int32
		var n int64
		if err := rows.Scan(&model, &sec, &n); err != nil {
			return nil, err
		}
		if out[model] == nil {
			out[model] = map[int]int{}
			for _, w := range secs {
				out[model][int(w)] = 0
			}
		}
		out[model][int(sec)] = int(n)
	}
	return out, rows.Err()
}
