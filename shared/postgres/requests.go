package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// ClaimForModel claims up to max pending requests of model for the work queue, never letting the
// model's claimed + processing total exceed its limit, however many callers race: FinishAndClaim
// with nothing to finish and no owner, so the rows stay claimed for a worker to start. The lock
// and the claim run in one implicit transaction (one round trip); the claim's snapshot is taken
// after the lock was granted.
func (s *Store) ClaimForModel(ctx context.Context, model string, max int, urgencyWeight float64, now time.Time) ([]domain.Claimed, error) {
	if max <= 0 {
		return nil, nil
	}
	_, jobs, err := s.FinishAndClaim(ctx, nil, domain.Refill{Model: model, Max: max, UrgencyWeight: urgencyWeight}, now)
	if err != nil {
		return nil, err
	}
	out := make([]domain.Claimed, len(jobs))
	for i, j := range jobs {
		out[i] = domain.Claimed{Work: j.Work, Model: model}
	}
	return out, nil
}

// FinishAndClaim persists outs and claims the slots they free in one transaction and one round
// trip: the fenced FinishMany, then, when refill.Max > 0, the model lock and a claim of up to
// refill.Max requests straight into processing for refill.Owner (ClaimForModel with an owner), or
// as claimed for the work queue when Owner is empty. It returns the outcomes that won, as
// FinishMany does, and the claimed requests ready to run. A freed slot is so refilled by the
// statement that records its result, and one commit serves the whole group.
//
// The claim sees the group's own finishes (a later statement of the same transaction), so the
// slots they free count as free; the limit stays exact because the claim still counts under the
// model lock. Every outcome belongs to refill.Model's slots when a refill is asked.
func (s *Store) FinishAndClaim(ctx context.Context, outs []domain.Outcome, refill domain.Refill, now time.Time) ([]domain.Finished, []domain.Job, error) {
	leaders := coalescingLeaders(outs)
	if refill.Max <= 0 && len(leaders) == 0 {
		won, err := s.finishOnly(ctx, outs, now)
		return won, nil, err
	}
	// One round trip: the finish, the propagation of coalesced results, the model lock and the
	// claim share one implicit transaction, so the lock is held only from its statement to the
	// commit, not across round trips.
	var p pipeline
	if len(outs) > 0 {
		p.queue(func(q *pgq.Queries) error { _, err := q.FinishMany(ctx, finishParams(outs, now)); return err })
	}
	if len(leaders) > 0 {
		p.queue(func(q *pgq.Queries) error {
			_, err := q.PropagateCoalesced(ctx, s.propagateParams(leaders, now))
			return err
		})
	}
	if refill.Max > 0 {
		p.queue(func(q *pgq.Queries) error { _, err := q.LockModel(ctx, refill.Model); return err })
		p.queue(func(q *pgq.Queries) error {
			_, err := q.ClaimForModel(ctx, pgq.ClaimForModelParams{Model: refill.Model, Column2: int32(refill.Max),
				ClaimedAt: &now, Column4: refill.UrgencyWeight, Column5: refill.Owner})
			return err
		})
	}
	br := s.pool.SendBatch(ctx, &p.b)
	defer br.Close()
	var won []domain.Finished
	if len(outs) > 0 {
		rows, err := br.Query()
		if err == nil {
			var fin []pgq.FinishManyRow
			fin, err = pgx.CollectRows(rows, pgx.RowToStructByPos[pgq.FinishManyRow])
			for _, r := range fin {
				won = append(won, finishedOf(pgq.FinishLandedRow(r)))
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("finish: %w", err)
		}
	}
	if len(leaders) > 0 {
		rows, err := br.Query()
		if err == nil {
			var followers []pgq.PropagateCoalescedRow
			followers, err = pgx.CollectRows(rows, pgx.RowToStructByPos[pgq.PropagateCoalescedRow])
			for _, r := range followers {
				won = append(won, domain.Finished{RequestID: r.RID, BatchID: r.BatchID, State: domain.RequestState(r.State),
					CoalescedFrom: r.LeaderID})
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("finish: propagate coalesced results: %w", err)
		}
	}
	var claimed []pgq.ClaimForModelRow
	if refill.Max > 0 {
		var limit int32
		if err := br.QueryRow().Scan(&limit); errors.Is(err, pgx.ErrNoRows) {
			// Model no longer configured: nothing to claim. The claim statement still runs (and finds
			// no model row); the finish commits.
		} else if err != nil {
			return nil, nil, fmt.Errorf("claim %q: lock model: %w", refill.Model, err)
		}
		rows, err := br.Query()
		if err != nil {
			return nil, nil, fmt.Errorf("claim %q: %w", refill.Model, err)
		}
		claimed, err = pgx.CollectRows(rows, pgx.RowToStructByPos[pgq.ClaimForModelRow])
		if err != nil {
			return nil, nil, fmt.Errorf("claim %q: %w", refill.Model, err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("finish and claim %q: commit: %w", refill.Model, err)
	}
	jobs := make([]domain.Job, len(claimed))
	for i, r := range claimed {
		jobs[i] = jobOf(pgq.AdoptClaimsRow(r), refill.Model)
	}
	return won, jobs, nil
}

// coalescingLeaders lists the requests of outs whose outcome may end the pending requests that
// share their key: a keyed request ending with an upstream outcome. The statement checks the
// rest (that the write won, that a failure carries the upstream's response); a group without
// one (coalescing off, the common case) sends no propagation at all.
func coalescingLeaders(outs []domain.Outcome) []string {
	var ids []string
	for _, o := range outs {
		if o.Coalesce && (o.State == domain.StateCompleted || (o.State == domain.StateFailed && o.StatusCode > 0)) {
			ids = append(ids, o.RequestID)
		}
	}
	return ids
}

// propagateParams are PropagateCoalesced's for leaders finished at now: with the result cache on,
// completed answers are kept until now + its lifetime.
func (s *Store) propagateParams(leaders []string, now time.Time) pgq.PropagateCoalescedParams {
	p := pgq.PropagateCoalescedParams{Ids: leaders, Now: now}
	if s.cacheTTL > 0 {
		p.CacheUntil = ptr(now.Add(s.cacheTTL))
	}
	return p
}

// AdoptClaims returns the requests owner claimed into processing for model at at: what an earlier
// FinishAndClaim at at claimed, when its commit may have gone through with the acknowledgement
// lost. Retries of one group share its time, so the adopted rows are exactly that group's claims.
func (s *Store) AdoptClaims(ctx context.Context, owner, model string, at time.Time) ([]domain.Job, error) {
	rows, err := s.q.AdoptClaims(ctx, pgq.AdoptClaimsParams{Owner: &owner, Model: model, At: &at})
	if err != nil {
		return nil, fmt.Errorf("adopt claims of %q: %w", model, err)
	}
	jobs := make([]domain.Job, len(rows))
	for i, r := range rows {
		jobs[i] = jobOf(r, model)
	}
	return jobs, nil
}

// jobOf maps a claimed row to the job a worker runs; model is the one the slot is charged to.
func jobOf(r pgq.AdoptClaimsRow, model string) domain.Job {
	j := domain.Job{Work: domain.Work{RequestID: r.RID, Attempt: int(r.Attempt)}, BatchID: r.BatchID, TenantID: r.TenantID,
		CustomID: r.CustomID, Model: model, RoutedModel: r.RoutedModel, Path: r.Path, Body: r.Body, Retries: int(r.Retries),
		BatchEndpoint: r.Endpoint, BatchCreatedAt: r.CreatedAt, BatchExpiresAt: r.ExpiresAt, CompletionWindow: r.CompletionWindow,
		Coalesce: r.Keyed}
	if len(r.Metadata) > 0 {
		_ = json.Unmarshal(r.Metadata, &j.Metadata) // written by the API from a map[string]string
	}
	return j
}

// ModelsWithWork lists models that have a free slot and a running batch that uses them.
func (s *Store) ModelsWithWork(ctx context.Context) ([]string, error) {
	models, err := s.q.ModelsWithWork(ctx)
	if err != nil {
		return nil, fmt.Errorf("models with work: %w", err)
	}
	return models, nil
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
	if err := s.q.Unclaim(ctx, pgq.UnclaimParams{Ids: ids, Attempts: attempts}); err != nil {
		return fmt.Errorf("unclaim: %w", err)
	}
	return nil
}

// StartProcessing moves a claimed request to processing for owner and returns what is needed to
// execute it. domain.ErrStateConflict means the delivery must be dropped without calling the
// upstream: it is a duplicate, stale, or its batch stopped running or is past its deadline at now.
func (s *Store) StartProcessing(ctx context.Context, w domain.Work, owner string, now time.Time) (domain.Job, error) {
	j := domain.Job{Work: w}
	r, err := s.q.StartProcessing(ctx, pgq.StartProcessingParams{ID: w.RequestID, Attempt: int32(w.Attempt), Now: &now, Owner: &owner})
	if errors.Is(err, pgx.ErrNoRows) {
		return j, domain.ErrStateConflict
	}
	if err != nil {
		return j, fmt.Errorf("start processing %s: %w", w.RequestID, err)
	}
	j.BatchID, j.TenantID, j.CustomID, j.Model, j.RoutedModel = r.BatchID, r.TenantID, r.CustomID, r.Model, r.RoutedModel
	j.Path, j.Body, j.Retries = r.Path, r.Body, int(r.Retries)
	j.BatchEndpoint, j.BatchCreatedAt, j.BatchExpiresAt, j.CompletionWindow = r.Endpoint, r.CreatedAt, r.ExpiresAt, r.CompletionWindow
	j.Coalesce = r.Keyed
	if len(r.Metadata) > 0 {
		_ = json.Unmarshal(r.Metadata, &j.Metadata) // written by the API from a map[string]string
	}
	return j, nil
}

// FinishMany persists outcomes in one statement. Each write is guarded on (processing, attempt):
// the returned slice holds the ones that won; every other outcome was a duplicate or a zombie and
// changed nothing. A keyed outcome's result also ends the pending requests that share its key,
// in the same transaction (FinishAndClaim); they follow the outcomes, with CoalescedFrom set.
func (s *Store) FinishMany(ctx context.Context, outs []domain.Outcome, now time.Time) ([]domain.Finished, error) {
	won, _, err := s.FinishAndClaim(ctx, outs, domain.Refill{}, now)
	return won, err
}

// finishOnly is FinishMany without a coalesced result to propagate: the one statement.
func (s *Store) finishOnly(ctx context.Context, outs []domain.Outcome, now time.Time) ([]domain.Finished, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	rows, err := s.q.FinishMany(ctx, finishParams(outs, now))
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	won := make([]domain.Finished, len(rows))
	for i, r := range rows {
		won[i] = finishedOf(pgq.FinishLandedRow(r))
	}
	return won, nil
}

// finishParams lays outs out as FinishMany's parallel arrays, each finished at now.
func finishParams(outs []domain.Outcome, now time.Time) pgq.FinishManyParams {
	n := len(outs)
	ids, attempts, states := make([]string, n), make([]int32, n), make([]string, n)
	statuses, bodies := make([]int32, n), make([][]byte, n)
	upIDs, codes, msgs, routed := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	notBefore, at := make([]time.Time, n), make([]time.Time, n) // zero not_before: no back-off (NULL)
	for i, o := range outs {
		ids[i], attempts[i], states[i] = o.RequestID, int32(o.Attempt), string(o.State)
		statuses[i], bodies[i] = int32(o.StatusCode), o.Body
		upIDs[i], codes[i], msgs[i], routed[i] = o.UpstreamRequestID, o.ErrorCode, o.ErrorMessage, o.RoutedModel
		notBefore[i], at[i] = o.NotBefore, now
	}
	return pgq.FinishManyParams{Ids: ids, Attempts: attempts, States: states, Statuses: statuses,
		Bodies: bodies, UpstreamIds: upIDs, ErrorCodes: codes, ErrorMessages: msgs, NotBefores: notBefore, NoBackOff: time.Time{},
		RoutedModels: routed, Ats: at}
}

// FinishLanded reports which of outs a FinishMany at now already wrote. A caller whose FinishMany
// failed on the connection cannot tell whether it committed; when its retry then wins no row, this
// tells its own earlier write (to be treated as persisted) from a rescue (fenced out).
func (s *Store) FinishLanded(ctx context.Context, outs []domain.Outcome, now time.Time) ([]domain.Finished, error) {
	n := len(outs)
	if n == 0 {
		return nil, nil
	}
	ids, attempts, notBefore := make([]string, n), make([]int32, n), make([]time.Time, n)
	for i, o := range outs {
		ids[i], attempts[i], notBefore[i] = o.RequestID, int32(o.Attempt), o.NotBefore
	}
	rows, err := s.q.FinishLanded(ctx, pgq.FinishLandedParams{Ids: ids, Attempts: attempts, NotBefores: notBefore, Now: now,
		NoBackOff: time.Time{}})
	if err != nil {
		return nil, fmt.Errorf("finish landed: %w", err)
	}
	landed := make([]domain.Finished, len(rows))
	for i, r := range rows {
		landed[i] = finishedOf(r)
	}
	return landed, nil
}

// Rescue returns stuck requests to pending (see the Rescue query for the rules).
func (s *Store) Rescue(ctx context.Context, now time.Time, claimTimeout, processingTimeout, staleWorker time.Duration) ([]domain.Rescued, error) {
	rows, err := s.q.Rescue(ctx, pgq.RescueParams{ClaimedBefore: ptr(now.Add(-claimTimeout)), StartedBefore: ptr(now.Add(-processingTimeout)),
		HeartbeatBefore: now.Add(-staleWorker), Now: now})
	if err != nil {
		return nil, fmt.Errorf("rescue: %w", err)
	}
	out := make([]domain.Rescued, len(rows))
	for i, r := range rows {
		out[i] = domain.Rescued{RequestID: r.RID, Model: r.Model, BatchID: r.BatchID, State: domain.RequestState(r.State)}
	}
	return out, nil
}

// ─── finalisation ──────────────────────────────────────────────────────────────────────────────

// BeginFinalize elects the caller as the batch's finaliser when the batch is running and every
// request is finished; ok is false otherwise (not done yet, or someone else won).
func (s *Store) BeginFinalize(ctx context.Context, batchID string, now time.Time) (tenantID string, ok bool, err error) {
	tenantID, err = s.q.BeginFinalize(ctx, pgq.BeginFinalizeParams{ID: batchID, Now: &now})
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
	tenantID, err = s.q.RestartFinalize(ctx, pgq.RestartFinalizeParams{ID: batchID, Now: &now, StaleBefore: &staleBefore})
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
		q := pgq.New(tx)
		counts, err := q.BatchCountsForSeal(ctx, batchID)
		if err != nil {
			return fmt.Errorf("seal %s: counts: %w", batchID, err)
		}
		files, err := q.BatchFiles(ctx, batchID)
		if err != nil {
			return fmt.Errorf("seal %s: files: %w", batchID, err)
		}
		outID, errID := files.OutputFileID, files.ErrorFileID
		for _, f := range []struct {
			id string
			s  domain.Sealed
		}{{outID, output}, {errID, errorsFile}} {
			if f.id == "" {
				continue
			}
			if err := q.SealFile(ctx, pgq.SealFileParams{ID: f.id, ObjectKey: &f.s.Key, Bytes: f.s.Bytes, LineCount: int32(f.s.Lines),
				Now: now}); err != nil {
				return fmt.Errorf("seal %s: file %s: %w", batchID, f.id, err)
			}
		}
		_, err = q.SealBatch(ctx, pgq.SealBatchParams{ID: batchID, Now: now, Total: int32(counts.Total), Completed: int32(counts.Completed),
			Failed: int32(counts.Failed), KeepOutput: output.Lines > 0, KeepError: errorsFile.Lines > 0, Usage: usage,
			Coalesced: int32(counts.Coalesced), Cached: int32(counts.Cached)})
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
	ids, err := s.q.BatchesToFinalize(ctx, &staleBefore)
	if err != nil {
		return nil, fmt.Errorf("batches to finalize: %w", err)
	}
	return ids, nil
}

// resultRowOf maps the column list shared by every query that feeds output and error lines
// (ResultPage and ResultFilePage).
func resultRowOf(r pgq.ResultPageRow) domain.ResultRow {
	return domain.ResultRow{RequestID: r.RID, Line: int(r.Line), CustomID: r.CustomID, State: domain.RequestState(r.State),
		StatusCode: int(r.ResponseStatus), Body: r.ResponseBody, UpstreamRequestID: r.UpstreamRequestID, ErrorCode: r.ErrorCode,
		ErrorMessage: r.ErrorMessage, Shared: r.Shared}
}

// ResultPageSize is how many rows one ResultPage query returns.
const ResultPageSize = 1000

// EachResult calls fn for every finished request of a batch that belongs in the output file
// (output true: completed rows) or the error file, in input line order, one page at a time so
// that memory stays bounded whatever the batch size.
func (s *Store) EachResult(ctx context.Context, batchID string, output bool, fn func(domain.ResultRow) error) error {
	after := 0
	for {
		page, err := s.q.ResultPage(ctx, pgq.ResultPageParams{BatchID: batchID, AfterLine: int32(after), Output: output, Max: ResultPageSize})
		if err != nil {
			return fmt.Errorf("results %s: %w", batchID, err)
		}
		for _, row := range page {
			if err := fn(resultRowOf(row)); err != nil {
				return err
			}
		}
		if len(page) < ResultPageSize {
			return nil
		}
		after = int(page[len(page)-1].Line)
	}
}

// ─── workers ───────────────────────────────────────────────────────────────────────────────────

// Heartbeat upserts a liveness record.
func (s *Store) Heartbeat(ctx context.Context, w domain.WorkerRecord, now time.Time) error {
	if err := s.q.Heartbeat(ctx, pgq.HeartbeatParams{ID: w.ID, Function: w.Function, Now: now, Invocations: w.Invocations,
		Processed: w.Processed, Failed: w.Failed}); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// StopWorker marks a worker stopped, which lets rescue take its requests at once.
func (s *Store) StopWorker(ctx context.Context, id string, now time.Time) error {
	if err := s.q.StopWorker(ctx, pgq.StopWorkerParams{ID: id, Now: &now}); err != nil {
		return fmt.Errorf("stop worker: %w", err)
	}
	return nil
}

// ListWorkers returns up to limit of the most recently active worker records with their status
// as of now, where a record silent for longer than stale is stale; status "" lists every status.
func (s *Store) ListWorkers(ctx context.Context, status domain.WorkerStatus, now time.Time, stale time.Duration, limit int) ([]domain.WorkerRecord, error) {
	rows, err := s.q.ListWorkers(ctx, pgq.ListWorkersParams{StaleBefore: now.Add(-stale), Status: string(status), Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	out := make([]domain.WorkerRecord, len(rows))
	for i, w := range rows {
		out[i] = domain.WorkerRecord{ID: w.ID, Function: w.Function, Status: domain.WorkerStatus(w.WorkerStatus), StartedAt: w.StartedAt,
			HeartbeatAt: w.HeartbeatAt, StoppedAt: w.StoppedAt, Invocations: w.Invocations, Processed: w.Processed, Failed: w.Failed}
	}
	return out, nil
}

// finishedOf maps a (request id, batch id, state) row, the shape FinishMany and FinishLanded
// return.
func finishedOf(r pgq.FinishLandedRow) domain.Finished {
	return domain.Finished{RequestID: r.RID, BatchID: r.BatchID, State: domain.RequestState(r.State)}
}

// ptr is &v for the generated parameters that are pointers because the column they meet is
// nullable.
func ptr[T any](v T) *T { return &v }
