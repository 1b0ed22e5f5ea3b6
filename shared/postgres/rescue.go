package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// ExtendBatch moves a running batch's deadline to expiresAt, recording window as its completion
// window. It is one guarded statement (queries_rescue.sql): a batch that is no longer running,
// whose deadline passed or that the expiry sweep took, or whose deadline is already at or past
// expiresAt matches no row, and the answer is domain.ErrStateConflict; the caller explains it
// from the batch it read.
func (s *Store) ExtendBatch(ctx context.Context, tenantID, batchID, window string, expiresAt, now time.Time) error {
	n, err := s.q.ExtendBatch(ctx, pgq.ExtendBatchParams{ID: batchID, TenantID: tenantID, CompletionWindow: window,
		ExpiresAt: expiresAt, Now: now})
	if err != nil {
		return fmt.Errorf("extend batch %s: %w", batchID, err)
	}
	if n == 0 {
		return domain.ErrStateConflict
	}
	return nil
}

// RerunBatch creates rerun, a validating batch whose fields the caller set (its input file and
// endpoint those of the source), from the lines of the tenant's ended batch sourceID that did not
// complete, and starts it: in one transaction it locks the source, inserts the batch and its
// files, copies those requests as pending ones and links the two batches. A source that was
// rerun before answers that rerun (Existing) and creates nothing, so a repeated call never sends
// the lines twice. A source that is still running, whose input file is gone (its prompts are
// erased) or that has no such lines is EConflict; another tenant's or a missing one ENotFound.
func (s *Store) RerunBatch(ctx context.Context, tenantID, sourceID string, rerun domain.Batch, now time.Time) (domain.Rerun, error) {
	var out domain.Rerun
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := pgq.New(tx)
		src, err := q.LockRerunSource(ctx, pgq.LockRerunSourceParams{ID: sourceID, TenantID: tenantID, Now: now})
		if errors.Is(err, pgx.ErrNoRows) {
			return batchNotFound(sourceID)
		}
		if err != nil {
			return fmt.Errorf("lock batch: %w", err)
		}
		if src.RerunBatchID != "" {
			out = domain.Rerun{BatchID: src.RerunBatchID, Existing: true}
			return nil
		}
		if !domain.BatchStatus(src.Status).Terminal() {
			return domain.Errorf(domain.EConflict, "Batch %s is %s: only a batch that has ended can be rerun; extend its deadline instead (POST /v1/batches/%s/extend).",
				sourceID, src.Status, sourceID)
		}
		if !src.InputLive {
			return domain.Errorf(domain.EConflict, "The input file of batch %s was deleted or has expired, and its lines with it: upload the file again and create a new batch.", sourceID)
		}
		if err := insertBatch(ctx, q, rerun); err != nil {
			return err
		}
		marked, err := q.MarkRerun(ctx, pgq.MarkRerunParams{ID: rerun.ID, RerunOf: &sourceID})
		if err != nil {
			return fmt.Errorf("mark rerun: %w", err)
		}
		copied, err := q.CopyUnfinishedRequests(ctx, pgq.CopyUnfinishedRequestsParams{NewBatchID: rerun.ID, SourceID: sourceID})
		if err != nil {
			return fmt.Errorf("copy requests: %w", err)
		}
		if copied.Copied == 0 {
			return domain.Errorf(domain.EConflict, "Batch %s has no failed, cancelled or expired lines to rerun.", sourceID)
		}
		first := copied.Models[0]
		started, err := q.StartBatch(ctx, pgq.StartBatchParams{ID: rerun.ID, Now: &now, Total: copied.Copied, Models: copied.Models, Model: &first})
		if err != nil {
			return fmt.Errorf("start batch: %w", err)
		}
		linked, err := q.LinkRerun(ctx, pgq.LinkRerunParams{ID: sourceID, RerunBatchID: &rerun.ID})
		if err != nil {
			return fmt.Errorf("link rerun: %w", err)
		}
		if marked != 1 || started != 1 || linked != 1 {
			return domain.ErrStateConflict
		}
		out = domain.Rerun{BatchID: rerun.ID, Models: copied.Models}
		return nil
	})
	return out, err
}
