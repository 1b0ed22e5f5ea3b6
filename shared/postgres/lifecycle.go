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

// The purge's primitives. The engine drives them (objects first, then rows, so that no object is
// orphaned) and calls S3 between them, never inside a transaction. Each drop re-checks its row's
// condition and skips rows another purger holds, so concurrent purgers share the work and a
// repeated call changes nothing.

// PurgeRequests deletes up to chunk requests of batches deleted before graceBefore.
func (s *Store) PurgeRequests(ctx context.Context, chunk int, graceBefore time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, q("PurgeRequests"), chunk, graceBefore)
	if err != nil {
		return 0, fmt.Errorf("purge requests: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeIdempotencyKeys forgets up to chunk idempotency keys recorded before before.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, chunk int, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, q("PurgeIdempotencyKeys"), chunk, before)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeableBatches lists up to chunk batches deleted before graceBefore whose requests are gone.
func (s *Store) PurgeableBatches(ctx context.Context, chunk int, graceBefore time.Time) ([]domain.PurgeableBatch, error) {
	rows, err := s.pool.Query(ctx, q("PurgeableBatches"), chunk, graceBefore)
	if err != nil {
		return nil, fmt.Errorf("purgeable batches: %w", err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.PurgeableBatch, error) {
		var b domain.PurgeableBatch
		return b, r.Scan(&b.ID, &b.TenantID)
	})
	if err != nil {
		return nil, fmt.Errorf("purgeable batches: %w", err)
	}
	return got, nil
}

// DropBatches deletes the listed batches with their output and error file rows, in one
// statement, where they are still purgeable; it returns how many it deleted.
func (s *Store) DropBatches(ctx context.Context, ids []string, graceBefore time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, q("DropBatches"), ids, graceBefore)
	if err != nil {
		return 0, fmt.Errorf("drop batches: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeableFiles lists up to chunk input files deleted before graceBefore or expired before now.
func (s *Store) PurgeableFiles(ctx context.Context, chunk int, graceBefore, now time.Time) ([]domain.PurgeableFile, error) {
	rows, err := s.pool.Query(ctx, q("PurgeableFiles"), chunk, graceBefore, now)
	if err != nil {
		return nil, fmt.Errorf("purgeable files: %w", err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.PurgeableFile, error) {
		var f domain.PurgeableFile
		return f, r.Scan(&f.ID, &f.TenantID, &f.ObjectKey, &f.Deleted)
	})
	if err != nil {
		return nil, fmt.Errorf("purgeable files: %w", err)
	}
	return got, nil
}

// ErasePromptsOfFile empties up to chunk request bodies copied from the input file (the right to
// erasure) and returns how many; requests in flight keep theirs until they finish.
func (s *Store) ErasePromptsOfFile(ctx context.Context, fileID string, chunk int) (int, error) {
	tag, err := s.pool.Exec(ctx, q("ErasePromptsOfFile"), fileID, chunk)
	if err != nil {
		return 0, fmt.Errorf("erase prompts: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DropFiles deletes the listed input file rows, in one statement, where they are still
// purgeable; it returns how many it deleted.
func (s *Store) DropFiles(ctx context.Context, ids []string, graceBefore, now time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, q("DropFiles"), ids, graceBefore, now)
	if err != nil {
		return 0, fmt.Errorf("drop files: %w", err)
	}
	return int(tag.RowsAffected()), nil
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
