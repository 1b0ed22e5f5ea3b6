package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
)

// ClaimForModel claims up to max pending requests of model, never letting the model's claimed +
// processing total exceed its limit, however many callers race. It runs two statements in one
// implicit transaction (a pgx batch, one round trip): the first locks the model row, the second
// counts slots and claims with a snapshot taken after the lock was granted.
func (s *Store) ClaimForModel(ctx context.Context, model string, max int, urgencyWeight float64, now time.Time) ([]domain.Claimed, error) {
	if max <= 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	b.Queue(q("LockModel"), model)
	b.Queue(q("ClaimForModel"), model, max, now, urgencyWeight)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	var limit int
	if err := br.QueryRow().Scan(&limit); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil // model not configured: its requests wait until it is
		}
		return nil, fmt.Errorf("claim %q: lock model: %w", model, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("claim %q: %w", model, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Claimed, error) {
		c := domain.Claimed{Model: model}
		err := r.Scan(&c.RequestID, &c.Attempt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim %q: %w", model, err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("claim %q: commit: %w", model, err)
	}
	return out, nil
}

// ModelsWithWork lists models that have a free slot and a running batch that uses them.
func (s *Store) ModelsWithWork(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, q("ModelsWithWork"))
	if err != nil {
		return nil, fmt.Errorf("models with work: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Unclaim returns claims that could not be enqueued to pending, guarded on their attempt.
func (s *Store) Unclaim(ctx context.Context, work []domain.Work) error {
	if len(work) == 0 {
		return nil
	}
	ids, attempts := make([]string, len(work)), make([]int32, len(work))
	for i, w := range work {
		ids[i], attempts[i] = w.RequestID, int32(w.Attempt)
	}
	if _, err := s.pool.Exec(ctx, q("Unclaim"), ids, attempts); err != nil {
		return fmt.Errorf("unclaim: %w", err)
	}
	return nil
}

// StartProcessing moves a claimed request to processing for owner and returns what is needed to
// execute it. domain.ErrStateConflict means the delivery must be dropped without calling the
// upstream: it is a duplicate, stale, or its batch stopped running or is past its deadline at now.
func (s *Store) StartProcessing(ctx context.Context, w domain.Work, owner string, now time.Time) (domain.Job, error) {
	j := domain.Job{Work: w}
	var meta []byte
	err := s.pool.QueryRow(ctx, q("StartProcessing"), w.RequestID, w.Attempt, now, owner).Scan(&j.BatchID, &j.TenantID,
		&j.CustomID, &j.Model, &j.RoutedModel, &j.Path, &j.Body, &j.Retries, &j.BatchEndpoint, &j.BatchCreatedAt, &j.BatchExpiresAt,
		&j.CompletionWindow, &meta)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, domain.ErrStateConflict
	}
	if err != nil {
		return j, fmt.Errorf("start processing %s: %w", w.RequestID, err)
	}
	if len(meta) > 0 {
		_ = json.Unmarshal(meta, &j.Metadata) // written by the API from a map[string]string
	}
	return j, nil
}

// FinishMany persists outcomes in one statement. Each write is guarded on (processing, attempt):
// the returned slice holds the ones that won; every other outcome was a duplicate or a zombie and
// changed nothing.
func (s *Store) FinishMany(ctx context.Context, outs []domain.Outcome, now time.Time) ([]domain.Finished, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	n := len(outs)
	ids, attempts, states := make([]string, n), make([]int32, n), make([]string, n)
	statuses, bodies := make([]int32, n), make([][]byte, n)
	upIDs, codes, msgs, routed := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	notBefore, at := make([]*time.Time, n), make([]time.Time, n)
	for i, o := range outs {
		ids[i], attempts[i], states[i] = o.RequestID, int32(o.Attempt), string(o.State)
		statuses[i], bodies[i] = int32(o.StatusCode), o.Body
		upIDs[i], codes[i], msgs[i], routed[i] = o.UpstreamRequestID, o.ErrorCode, o.ErrorMessage, o.RoutedModel
		if !o.NotBefore.IsZero() {
			nb := o.NotBefore
			notBefore[i] = &nb
		}
		at[i] = now
	}
	rows, err := s.pool.Query(ctx, q("FinishMany"), ids, attempts, states, statuses, bodies, upIDs, codes, msgs, notBefore, routed, at)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	won, err := pgx.CollectRows(rows, scanFinished)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	return won, nil
}

// FinishLanded reports which of outs a FinishMany at now already wrote. A caller whose FinishMany
// failed on the connection cannot tell whether it committed; when its retry then wins no row, this
// tells its own earlier write (to be treated as persisted) from a rescue (fenced out).
func (s *Store) FinishLanded(ctx context.Context, outs []domain.Outcome, now time.Time) ([]domain.Finished, error) {
	n := len(outs)
	if n == 0 {
		return nil, nil
	}
	ids, attempts, notBefore := make([]string, n), make([]int32, n), make([]*time.Time, n)
	for i, o := range outs {
		ids[i], attempts[i] = o.RequestID, int32(o.Attempt)
		if !o.NotBefore.IsZero() {
			nb := o.NotBefore
			notBefore[i] = &nb
		}
	}
	rows, err := s.pool.Query(ctx, q("FinishLanded"), ids, attempts, notBefore, now)
	if err != nil {
		return nil, fmt.Errorf("finish landed: %w", err)
	}
	landed, err := pgx.CollectRows(rows, scanFinished)
	if err != nil {
		return nil, fmt.Errorf("finish landed: %w", err)
	}
	return landed, nil
}

// Rescue returns stuck requests to pending (see the Rescue query for the rules).
func (s *Store) Rescue(ctx context.Context, now time.Time, claimTimeout, processingTimeout, staleWorker time.Duration) ([]domain.Rescued, error) {
	rows, err := s.pool.Query(ctx, q("Rescue"), now.Add(-claimTimeout), now.Add(-processingTimeout), now.Add(-staleWorker), now)
	if err != nil {
		return nil, fmt.Errorf("rescue: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Rescued, error) {
		var x domain.Rescued
		var state string
		err := r.Scan(&x.RequestID, &x.Model, &x.BatchID, &state)
		x.State = domain.RequestState(state)
		return x, err
	})
}

// ─── finalisation ──────────────────────────────────────────────────────────────────────────────

// BeginFinalize elects the caller as the batch's finaliser when the batch is running and every
// request is finished; ok is false otherwise (not done yet, or someone else won).
func (s *Store) BeginFinalize(ctx context.Context, batchID string, now time.Time) (tenantID string, ok bool, err error) {
	err = s.pool.QueryRow(ctx, q("BeginFinalize"), batchID, now).Scan(&tenantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("begin finalize %s: %w", batchID, err)
	}
	return tenantID, true, nil
}

// RestartFinalize takes over a finalisation that has been running since before staleBefore (its
// finaliser died); ok reports whether this caller now owns it.
func (s *Store) RestartFinalize(ctx context.Context, batchID string, now, staleBefore time.Time) (tenantID string, ok bool, err error) {
	err = s.pool.QueryRow(ctx, q("RestartFinalize"), batchID, now, staleBefore).Scan(&tenantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("restart finalize %s: %w", batchID, err)
	}
	return tenantID, true, nil
}

// SealBatch completes a finalizing batch in one transaction: records the content of its output
// and error files (dropping one that is empty) and freezes its counts.
func (s *Store) SealBatch(ctx context.Context, batchID string, output, errorsFile domain.Sealed, usage []byte, now time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var total, completed, failed int64
		if err := tx.QueryRow(ctx, q("BatchCountsForSeal"), batchID).Scan(&total, &completed, &failed); err != nil {
			return fmt.Errorf("seal %s: counts: %w", batchID, err)
		}
		var outID, errID string
		if err := tx.QueryRow(ctx, q("BatchFiles"), batchID).Scan(&outID, &errID); err != nil {
			return fmt.Errorf("seal %s: files: %w", batchID, err)
		}
		for _, f := range []struct {
			id string
			s  domain.Sealed
		}{{outID, output}, {errID, errorsFile}} {
			if f.id == "" {
				continue
			}
			if _, err := tx.Exec(ctx, q("SealFile"), f.id, f.s.Key, f.s.Bytes, f.s.Lines, now); err != nil {
				return fmt.Errorf("seal %s: file %s: %w", batchID, f.id, err)
			}
		}
		var a, b string
		err := tx.QueryRow(ctx, q("SealBatch"), batchID, now, total, completed, failed, output.Lines > 0, errorsFile.Lines > 0, usage).Scan(&a, &b)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrStateConflict
		}
		if err != nil {
			return fmt.Errorf("seal %s: %w", batchID, err)
		}
		return nil
	})
}

// BatchesToFinalize lists running batches whose requests are all finished and finalisations
// stuck since before staleBefore.
func (s *Store) BatchesToFinalize(ctx context.Context, staleBefore time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, q("BatchesToFinalize"), staleBefore)
	if err != nil {
		return nil, fmt.Errorf("batches to finalize: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// scanResultRow reads the column list shared by every query that feeds output and error lines.
func scanResultRow(r pgx.CollectableRow) (domain.ResultRow, error) {
	var x domain.ResultRow
	var state string
	err := r.Scan(&x.RequestID, &x.Line, &x.CustomID, &state, &x.StatusCode, &x.Body, &x.UpstreamRequestID,
		&x.ErrorCode, &x.ErrorMessage)
	x.State = domain.RequestState(state)
	return x, err
}

// ResultPageSize is how many rows one ResultPage query returns.
const ResultPageSize = 1000

// EachResult calls fn for every finished request of a batch that belongs in the output file
// (output true: completed rows) or the error file, in input line order, one page at a time so
// that memory stays bounded whatever the batch size.
func (s *Store) EachResult(ctx context.Context, batchID string, output bool, fn func(domain.ResultRow) error) error {
	after := 0
	for {
		rows, err := s.pool.Query(ctx, q("ResultPage"), batchID, after, output, ResultPageSize)
		if err != nil {
			return fmt.Errorf("results %s: %w", batchID, err)
		}
		page, err := pgx.CollectRows(rows, scanResultRow)
		if err != nil {
			return fmt.Errorf("results %s: %w", batchID, err)
		}
		for _, row := range page {
			if err := fn(row); err != nil {
				return err
			}
		}
		if len(page) < ResultPageSize {
			return nil
		}
		after = page[len(page)-1].Line
	}
}

// ─── workers ───────────────────────────────────────────────────────────────────────────────────

// Heartbeat upserts a liveness record.
func (s *Store) Heartbeat(ctx context.Context, w domain.WorkerRecord, now time.Time) error {
	if _, err := s.pool.Exec(ctx, q("Heartbeat"), w.ID, w.Function, now, w.Invocations, w.Processed, w.Failed); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// StopWorker marks a worker stopped, which lets rescue take its requests at once.
func (s *Store) StopWorker(ctx context.Context, id string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, q("StopWorker"), id, now); err != nil {
		return fmt.Errorf("stop worker: %w", err)
	}
	return nil
}

// ListWorkers returns the most recently active worker records.
func (s *Store) ListWorkers(ctx context.Context, limit int) ([]domain.WorkerRecord, error) {
	rows, err := s.pool.Query(ctx, q("ListWorkers"), limit)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[domain.WorkerRecord])
}

// scanFinished reads a (request id, batch id, state) row, the shape FinishMany and FinishLanded
// return.
func scanFinished(r pgx.CollectableRow) (domain.Finished, error) {
	var f domain.Finished
	var state string
	err := r.Scan(&f.RequestID, &f.BatchID, &state)
	f.State = domain.RequestState(state)
	return f, err
}
