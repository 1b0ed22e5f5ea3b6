package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
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
		q := pgq.New(tx)
		var err error
		status, err = q.CancelBatch(ctx, pgq.CancelBatchParams{ID: batchID, TenantID: tenantID, Now: &now})
		if errors.Is(err, pgx.ErrNoRows) {
			if status, err = q.BatchStatus(ctx, pgq.BatchStatusParams{ID: batchID, TenantID: tenantID}); errors.Is(err, pgx.ErrNoRows) {
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
		return endUnstarted(ctx, q, batchID, now, domain.StateCanceled, domain.CodeBatchCancelled)
	})
	return domain.BatchStatus(status), err
}

// endUnstarted runs EndUnstarted: the unstarted requests of batchID end in state with code, the
// running ones are marked for abort.
func endUnstarted(ctx context.Context, q *pgq.Queries, batchID string, now time.Time, state domain.RequestState, code string) error {
	_, err := q.EndUnstarted(ctx, pgq.EndUnstartedParams{BatchID: batchID, Now: &now, State: string(state), ErrorCode: &code})
	return err
}

// endUnstartedInOrder runs endUnstarted for several batches in one transaction, in batch id
// order: each ends requests and so writes the batch's counter row (migration 0006), and the
// counter triggers write rows in batch id order too, so two transactions never hold two counter
// rows in opposite orders. batchIDs is not modified.
func endUnstartedInOrder(ctx context.Context, q *pgq.Queries, batchIDs []string, now time.Time, state domain.RequestState, code string) error {
	for _, id := range slices.Sorted(slices.Values(batchIDs)) {
		if err := endUnstarted(ctx, q, id, now, state, code); err != nil {
			return err
		}
	}
	return nil
}

func batchNotFound(id string) error {
	return &domain.Error{Code: domain.ENotFound, Message: fmt.Sprintf("No batch found with id '%s'.", id), Param: "batch_id"}
}

// CancelRequests cancels individual requests of a tenant's batch. Ids that are not in the batch
// are absent from the result.
func (s *Store) CancelRequests(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) ([]domain.CancelOutcome, error) {
	rows, err := s.q.CancelRequests(ctx, pgq.CancelRequestsParams{BatchID: batchID, TenantID: tenantID, Ids: ids, Now: &now})
	if err != nil {
		return nil, fmt.Errorf("cancel requests: %w", err)
	}
	out := make([]domain.CancelOutcome, len(rows))
	for i, r := range rows {
		out[i] = domain.CancelOutcome{RequestID: r.TID, Result: r.Result}
	}
	return out, nil
}

// CancelMarks returns which of the given running requests were asked to stop.
func (s *Store) CancelMarks(ctx context.Context, ids []string) ([]domain.Abort, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.q.CancelMarks(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("cancel marks: %w", err)
	}
	out := make([]domain.Abort, len(rows))
	for i, r := range rows {
		out[i] = domain.Abort{RequestID: r.RID, State: domain.RequestState(r.State), Code: r.Code}
	}
	return out, nil
}

// ExpireDue marks up to 100 batches whose completion window has closed and ends their unstarted
// requests (they go to the error file as batch_expired); running requests are marked for abort.
// Finished work is kept.
func (s *Store) ExpireDue(ctx context.Context, now time.Time) ([]domain.Expired, error) {
	var out []domain.Expired
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := pgq.New(tx)
		rows, err := q.ExpireDue(ctx, &now)
		if err != nil {
			return err
		}
		out = make([]domain.Expired, len(rows))
		ids := make([]string, len(rows))
		for i, r := range rows {
			out[i] = domain.Expired{BatchID: r.ID, Status: domain.BatchStatus(r.Status)}
			ids[i] = r.ID
		}
		return endUnstartedInOrder(ctx, q, ids, now, domain.StateExpired, domain.CodeBatchExpired)
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
		q := pgq.New(tx)
		_, err := q.ReopenBatch(ctx, pgq.ReopenBatchParams{ID: &batchID, TenantID: tenantID, Now: now})
		if errors.Is(err, pgx.ErrNoRows) {
			b, err := getBatch(ctx, q, tenantID, batchID)
			if err != nil {
				return err
			}
			if b.RerunBatchID != "" {
				return domain.Errorf(domain.EConflict, "Batch %s was rerun as batch %s, which runs its failed lines: retry them there.", batchID, b.RerunBatchID)
			}
			return &domain.Error{Code: domain.EConflict, Message: fmt.Sprintf(
				"Cannot retry requests of a batch with status '%s' (only running or completed batches within their completion window can be retried).", b.Status)}
		}
		if err != nil {
			return fmt.Errorf("reopen batch: %w", err)
		}
		if err := q.ReopenFiles(ctx, &batchID); err != nil {
			return err
		}
		rows, err := q.RetryFailed(ctx, pgq.RetryFailedParams{BatchID: batchID, Ids: ids}) // nil ids: NULL, every failed request
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, r := range rows {
			retried++
			if !seen[r.Model] {
				seen[r.Model] = true
				models = append(models, r.Model)
			}
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
		q := pgq.New(tx)
		status, err := q.DeleteBatch(ctx, pgq.DeleteBatchParams{ID: batchID, TenantID: tenantID, Now: &now})
		if errors.Is(err, pgx.ErrNoRows) {
			return batchNotFound(batchID)
		}
		if err != nil {
			return fmt.Errorf("delete batch: %w", err)
		}
		if err := q.HideBatchFiles(ctx, pgq.HideBatchFilesParams{BatchID: &batchID, Now: &now}); err != nil {
			return err
		}
		if status == string(domain.BatchCancelling) {
			return endUnstarted(ctx, q, batchID, now, domain.StateCanceled, domain.CodeBatchCancelled)
		}
		return nil
	})
}

// DeleteFile soft-deletes a tenant's file. Batches made from an input file are cancelled (their
// results stay readable) and purge later erases the prompts copied from it. It returns the
// batches that became cancelling, which the caller may try to seal at once.
func (s *Store) DeleteFile(ctx context.Context, tenantID, fileID string, now time.Time) (cancelling []string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := pgq.New(tx)
		purpose, err := q.DeleteFile(ctx, pgq.DeleteFileParams{ID: fileID, TenantID: tenantID, Now: &now})
		if errors.Is(err, pgx.ErrNoRows) {
			return &domain.Error{Code: domain.ENotFound, Message: fmt.Sprintf("No such File object: %s", fileID), Param: "file_id"}
		}
		if err != nil {
			return fmt.Errorf("delete file: %w", err)
		}
		if purpose != domain.PurposeBatch {
			return nil
		}
		got, err := q.CancelBatchesOfFile(ctx, pgq.CancelBatchesOfFileParams{InputFileID: &fileID, Now: &now})
		if err != nil {
			return err
		}
		for _, x := range got {
			if x.Status == string(domain.BatchCancelling) {
				cancelling = append(cancelling, x.ID)
			}
		}
		return endUnstartedInOrder(ctx, q, cancelling, now, domain.StateCanceled, domain.CodeBatchCancelled)
	})
	return cancelling, err
}

// The purge's primitives. The engine drives them (objects first, then rows, so that no object is
// orphaned) and calls S3 between them, never inside a transaction. Each drop re-checks its row's
// condition and skips rows another purger holds, so concurrent purgers share the work and a
// repeated call changes nothing.

// PurgeRequests deletes up to chunk requests of batches deleted before graceBefore.
func (s *Store) PurgeRequests(ctx context.Context, chunk int, graceBefore time.Time) (int, error) {
	n, err := s.q.PurgeRequests(ctx, pgq.PurgeRequestsParams{Chunk: int32(chunk), GraceBefore: &graceBefore})
	if err != nil {
		return 0, fmt.Errorf("purge requests: %w", err)
	}
	return int(n), nil
}

// PurgeIdempotencyKeys forgets up to chunk idempotency keys recorded before before.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, chunk int, before time.Time) (int, error) {
	n, err := s.q.PurgeIdempotencyKeys(ctx, pgq.PurgeIdempotencyKeysParams{Chunk: int32(chunk), Before: before})
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return int(n), nil
}

// PurgeCoalesceCache drops up to chunk result-cache entries that expired by now.
func (s *Store) PurgeCoalesceCache(ctx context.Context, chunk int, now time.Time) (int, error) {
	n, err := s.q.PurgeCoalesceCache(ctx, pgq.PurgeCoalesceCacheParams{Chunk: int32(chunk), Now: now})
	if err != nil {
		return 0, fmt.Errorf("purge coalesce cache: %w", err)
	}
	return int(n), nil
}

// PurgeableBatches lists up to chunk batches deleted before graceBefore whose requests are gone.
func (s *Store) PurgeableBatches(ctx context.Context, chunk int, graceBefore time.Time) ([]domain.PurgeableBatch, error) {
	rows, err := s.q.PurgeableBatches(ctx, pgq.PurgeableBatchesParams{Chunk: int32(chunk), GraceBefore: &graceBefore})
	if err != nil {
		return nil, fmt.Errorf("purgeable batches: %w", err)
	}
	got := make([]domain.PurgeableBatch, len(rows))
	for i, r := range rows {
		got[i] = domain.PurgeableBatch{ID: r.ID, TenantID: r.TenantID, API: r.Api}
	}
	return got, nil
}

// DropBatches deletes the listed batches with their output and error file rows, in one
// statement, where they are still purgeable; it returns how many it deleted.
func (s *Store) DropBatches(ctx context.Context, ids []string, graceBefore time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.q.DropBatches(ctx, pgq.DropBatchesParams{Ids: ids, GraceBefore: &graceBefore})
	if err != nil {
		return 0, fmt.Errorf("drop batches: %w", err)
	}
	return int(n), nil
}

// PurgeableFiles lists up to chunk input files deleted before graceBefore or expired before now.
func (s *Store) PurgeableFiles(ctx context.Context, chunk int, graceBefore, now time.Time) ([]domain.PurgeableFile, error) {
	rows, err := s.q.PurgeableFiles(ctx, pgq.PurgeableFilesParams{Chunk: int32(chunk), GraceBefore: &graceBefore, Now: &now})
	if err != nil {
		return nil, fmt.Errorf("purgeable files: %w", err)
	}
	got := make([]domain.PurgeableFile, len(rows))
	for i, r := range rows {
		got[i] = domain.PurgeableFile{ID: r.ID, TenantID: r.TenantID, ObjectKey: r.ObjectKey, Deleted: r.Deleted}
	}
	return got, nil
}

// ErasePromptsOfFile empties up to chunk request bodies copied from the input file (the right to
// erasure) and returns how many; requests in flight keep theirs until they finish.
func (s *Store) ErasePromptsOfFile(ctx context.Context, fileID string, chunk int) (int, error) {
	n, err := s.q.ErasePromptsOfFile(ctx, pgq.ErasePromptsOfFileParams{InputFileID: &fileID, Chunk: int32(chunk)})
	if err != nil {
		return 0, fmt.Errorf("erase prompts: %w", err)
	}
	return int(n), nil
}

// DropFiles deletes the listed input file rows, in one statement, where they are still
// purgeable; it returns how many it deleted.
func (s *Store) DropFiles(ctx context.Context, ids []string, graceBefore, now time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.q.DropFiles(ctx, pgq.DropFilesParams{Ids: ids, GraceBefore: &graceBefore, Now: &now})
	if err != nil {
		return 0, fmt.Errorf("drop files: %w", err)
	}
	return int(n), nil
}

// PendingByModelAndWindow counts unfinished requests per model whose batch deadline falls within
// each window from now (cumulative; overdue work counts in every window), of the states and
// models f names (all unfinished states and every model by default), leaving out batches being
// cancelled. For capacity planning: a replica serves it, so the counts may be as old as its lag
// (replica.go); nothing that must be exact (a claim, an admission decision) may rely on them.
func (s *Store) PendingByModelAndWindow(ctx context.Context, windows []time.Duration, f domain.PendingFilter, now time.Time) (domain.WindowCounts, error) {
	secs := make([]int32, len(windows))
	for i, w := range windows {
		secs[i] = int32(w / time.Second)
	}
	states := []string{string(domain.StatePending), string(domain.StateClaimed), string(domain.StateProcessing)}
	if f.States != nil {
		states = states[:0]
		for _, st := range f.States {
			states = append(states, string(st))
		}
	}
	models := f.Models
	if models == nil {
		models = []string{}
	}
	var rows []pgq.PendingByModelAndWindowRow
	err := s.read(ctx, func(q *pgq.Queries) (err error) {
		rows, err = q.PendingByModelAndWindow(ctx, pgq.PendingByModelAndWindowParams{WindowSecs: secs, States: states, Models: models, Now: now})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending by model: %w", err)
	}
	out := domain.WindowCounts{}
	for _, r := range rows {
		if out[r.Model] == nil {
			out[r.Model] = map[int]int{}
			for _, w := range secs {
				out[r.Model][int(w)] = 0
			}
		}
		out[r.Model][int(r.Secs)] = int(r.Count)
	}
	return out, nil
}
