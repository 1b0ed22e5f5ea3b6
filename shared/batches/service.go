// Package batches holds the batch use cases the API serves: create (with its validate-only dry
// run and its Idempotency-Key), cancel a batch or some of its requests, retry failed requests,
// delete a batch, delete a file. Each is one call that orders the store's writes, the populate
// queue and the engine; the HTTP API only decodes a request into a call and encodes its result.
package batches

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/idempotency"
	"github.com/fusillade/fusillade/shared/ingest"
	"github.com/fusillade/fusillade/shared/jsonl"
)

// Store is the part of the store the use cases write and read.
type Store interface {
	idempotency.Store
	GetFile(ctx context.Context, tenantID, id string) (domain.File, error)
	InsertBatch(ctx context.Context, b domain.Batch) error
	GetBatch(ctx context.Context, tenantID, id string) (domain.Batch, error)
	FailBatch(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error
	CancelBatch(ctx context.Context, tenantID, batchID string, now time.Time) (domain.BatchStatus, error)
	CancelRequests(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) ([]domain.CancelOutcome, error)
	RetryFailed(ctx context.Context, tenantID, batchID string, ids []string, now time.Time) (int, []string, error)
	DeleteBatch(ctx context.Context, tenantID, batchID string, now time.Time) error
	DeleteFile(ctx context.Context, tenantID, fileID string, now time.Time) ([]string, error)
	ExtendBatch(ctx context.Context, tenantID, batchID, window string, expiresAt, now time.Time) error
	RerunBatch(ctx context.Context, tenantID, sourceID string, rerun domain.Batch, now time.Time) (domain.Rerun, error)
}

// Checker validates a stored input file against an endpoint and the models configured now.
type Checker interface {
	Check(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (ingest.Report, error)
}

// PopulateQueue receives a message for each new batch.
type PopulateQueue interface {
	SendPopulate(ctx context.Context, batchID string) error
}

// Engine starts work and seals batches at once instead of waiting for a worker or the schedule:
// after a cancel with nothing in flight, and after a retry.
type Engine interface {
	TryFinalize(ctx context.Context, batchID string)
	Dispatch(ctx context.Context, models ...string) error
}

// Deps are the service's collaborators; Logger defaults to discarding, Now to time.Now.
// FailFastAfter is the fail-fast breaker's K for batches created without one (FAIL_FAST_AFTER;
// the zero value, 0, is off).
type Deps struct {
	Store         Store
	Checker       Checker
	Populate      PopulateQueue
	Engine        Engine
	Logger        *slog.Logger
	Now           func() time.Time
	FailFastAfter int
}

// Service runs the batch use cases; it is safe for concurrent use.
type Service struct {
	store    Store
	checker  Checker
	populate PopulateQueue
	engine   Engine
	log      *slog.Logger
	now      func() time.Time
	failFast int
}

// New returns the service.
func New(d Deps) *Service {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{store: d.Store, checker: d.Checker, populate: d.Populate, engine: d.Engine, log: d.Logger, now: d.Now,
		failFast: d.FailFastAfter}
}

// MaxReportedErrors bounds a dry run's error list (jsonl's default): a file this broken needs
// fixing, not a longer list.
const MaxReportedErrors = jsonl.DefaultMaxErrors

// Create is a request to create a batch, already checked for its shape (ids, endpoint,
// completion window on the allow-list, metadata limits).
type Create struct {
	TenantID         string
	CreatedByKey     int64 // id of the API key creating the batch, recorded on it and its output/error files; 0 = unknown
	InputFileID      string
	Endpoint         string
	CompletionWindow string
	Metadata         map[string]string
	// FailFastAfter is the batch's fail-fast K (0 = off); nil takes the deployment's default.
	FailFastAfter *int
	// Coalesce turns request coalescing on or off for the batch; nil takes the metadata key
	// domain.MetadataCoalesce when it is set, else the tenant's default.
	Coalesce *bool
	// ValidateOnly checks the stored file against Endpoint and the models configured now, and
	// creates nothing.
	ValidateOnly bool
	// Idempotency is the request's Idempotency-Key; the zero Key means none.
	Idempotency idempotency.Key
	// API is the API creating it (domain.APIOpenAI or domain.APIAnthropic); "" is OpenAI's.
	API string
}

// coalesceOf is a new batch's coalescing: the extension field when set, else the metadata key
// (domain.MetadataCoalesce, "true" or "false"), else nil (the tenant's default).
func coalesceOf(field *bool, meta map[string]string) (*bool, error) {
	if field != nil {
		return field, nil
	}
	v, ok := meta[domain.MetadataCoalesce]
	if !ok {
		return nil, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil || (v != "true" && v != "false") {
		return nil, &domain.Error{Code: domain.EInvalid, Param: "metadata",
			Message: fmt.Sprintf("metadata %q must be \"true\" or \"false\", not %q.", domain.MetadataCoalesce, v)}
	}
	return &on, nil
}

// Created is what Create did: the batch as created (validating), or with ValidateOnly the input
// file and the report on it.
type Created struct {
	Batch  domain.Batch
	File   domain.File
	Report *ingest.Report // set with ValidateOnly
}

// Create records the batch as validating and asks the populate function to expand its file.
// Bad lines found while populating make the batch failed with errors.data[].line, as OpenAI
// does. A replay of an Idempotency-Key answers the first request's batch.
func (s *Service) Create(ctx context.Context, c Create) (Created, error) {
	f, err := s.store.GetFile(ctx, c.TenantID, c.InputFileID)
	if err != nil {
		return Created{}, err
	}
	if f.Purpose != domain.PurposeBatch {
		return Created{}, &domain.Error{Code: domain.EInvalid, Param: "input_file_id",
			Message: fmt.Sprintf("File %s has purpose %q; a batch needs a file uploaded with purpose 'batch'.", f.ID, f.Purpose)}
	}
	if f.Status != domain.FileProcessed {
		return Created{}, domain.FileNotReady(f.ID)
	}
	if c.ValidateOnly {
		rep, err := s.checker.Check(ctx, f.ObjectKey, c.Endpoint, false, MaxReportedErrors)
		if err != nil {
			return Created{}, err
		}
		return Created{File: f, Report: &rep}, nil
	}
	window, err := domain.ParseWindow(c.CompletionWindow)
	if err != nil {
		return Created{}, &domain.Error{Code: domain.EInvalid, Param: "completion_window", Message: err.Error()}
	}
	now := s.now()
	failFast := s.failFast
	if c.FailFastAfter != nil {
		failFast = *c.FailFastAfter
	}
	coalesce, err := coalesceOf(c.Coalesce, c.Metadata)
	if err != nil {
		return Created{}, err
	}
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: c.TenantID, InputFileID: f.ID, Endpoint: c.Endpoint,
		CompletionWindow: c.CompletionWindow, Status: domain.BatchValidating, Metadata: c.Metadata,
		Counts: domain.Counts{Total: f.Lines}, CreatedAt: now, ExpiresAt: now.Add(window),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID(), CreatedByKey: c.CreatedByKey, FailFastAfter: failFast,
		API: c.API, Coalesce: coalesce}
	res, err := idempotency.Reserve(ctx, s.store, s.log, c.Idempotency, b.ID, now)
	if err != nil {
		return Created{}, err
	}
	if res.Replay != "" {
		got, err := s.store.GetBatch(ctx, c.TenantID, res.Replay)
		if err != nil {
			return Created{}, res.ReplayError(err, s.now())
		}
		return Created{Batch: got}, nil
	}
	if err := s.store.InsertBatch(ctx, b); err != nil {
		res.Release(ctx)
		return Created{}, err
	}
	// Read the batch back before enqueueing it: populate may move it to in_progress at once, and
	// the create call answers the batch as created (validating), as OpenAI does.
	got, err := s.store.GetBatch(ctx, c.TenantID, b.ID)
	if err != nil {
		return Created{}, err
	}
	if err := s.populate.SendPopulate(ctx, b.ID); err != nil {
		// Without its message the batch would wait forever: fail it now and say so. The key stays
		// bound to the failed batch, so a retry with it sees the failure instead of a duplicate.
		s.log.ErrorContext(ctx, "enqueue populate", "batch_id", b.ID, "err", err)
		unavailable := &domain.Error{Code: domain.EUnavailable, Message: "The batch could not be queued; please retry."}
		if err := s.store.FailBatch(context.WithoutCancel(ctx), b.ID, s.now(), []domain.BatchError{{Code: domain.CodeEnqueueFailed,
			Message: "The batch could not be queued for processing; please create it again."}}); err != nil {
			// The batch stays validating until its window expires; the caller logs the chain.
			return Created{}, errors.Join(unavailable, fmt.Errorf("fail unqueued batch %s: %w", b.ID, err))
		}
		return Created{}, unavailable
	}
	return Created{Batch: got}, nil
}

// Cancel cancels a tenant's batch and returns it. Unstarted requests end at once; running
// upstream calls are aborted within a few seconds by their workers; a response that arrived
// before the abort is kept. The batch is cancelling until then, and cancelled once sealed — at
// once when nothing is in flight.
func (s *Service) Cancel(ctx context.Context, tenantID, batchID string) (domain.Batch, error) {
	status, err := s.store.CancelBatch(ctx, tenantID, batchID, s.now())
	if err != nil {
		return domain.Batch{}, err
	}
	if status == domain.BatchCancelling {
		s.engine.TryFinalize(ctx, batchID)
	}
	return s.store.GetBatch(ctx, tenantID, batchID)
}

// CancelRequests cancels some requests (uuids) of a tenant's batch and returns one outcome per
// id, in their order: canceled, cancelling, not_cancellable or domain.CancelNotFound.
func (s *Service) CancelRequests(ctx context.Context, tenantID, batchID string, ids []string) ([]domain.CancelOutcome, error) {
	if _, err := s.store.GetBatch(ctx, tenantID, batchID); err != nil {
		return nil, err
	}
	outcomes, err := s.store.CancelRequests(ctx, tenantID, batchID, ids, s.now())
	if err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, o := range outcomes {
		found[o.RequestID] = o.Result
	}
	out := make([]domain.CancelOutcome, len(ids))
	for i, id := range ids {
		res, ok := found[id]
		if !ok {
			res = domain.CancelNotFound
		}
		out[i] = domain.CancelOutcome{RequestID: id, Result: res}
	}
	s.engine.TryFinalize(ctx, batchID)
	return out, nil
}

// Retry runs failed requests of a tenant's batch again — those of ids (uuids), or every failed
// one when ids is nil — and returns the batch. Their models are dispatched at once; the
// schedule covers a dispatch that fails.
func (s *Service) Retry(ctx context.Context, tenantID, batchID string, ids []string) (domain.Batch, error) {
	_, models, err := s.store.RetryFailed(ctx, tenantID, batchID, ids, s.now())
	if err != nil {
		return domain.Batch{}, err
	}
	if err := s.engine.Dispatch(ctx, models...); err != nil {
		s.log.WarnContext(ctx, "dispatch after retry", "batch_id", batchID, "err", err)
	}
	return s.store.GetBatch(ctx, tenantID, batchID)
}

// Delete hides a tenant's batch at once, cancels it if running (sealed at once when nothing is
// in flight) and leaves its rows to the purge.
func (s *Service) Delete(ctx context.Context, tenantID, batchID string) error {
	if err := s.store.DeleteBatch(ctx, tenantID, batchID, s.now()); err != nil {
		return err
	}
	s.engine.TryFinalize(ctx, batchID)
	return nil
}

// DeleteFile deletes a tenant's file; the batches it cancelled are sealed at once when nothing
// of theirs is in flight.
func (s *Service) DeleteFile(ctx context.Context, tenantID, fileID string) error {
	cancelling, err := s.store.DeleteFile(ctx, tenantID, fileID, s.now())
	if err != nil {
		return err
	}
	for _, b := range cancelling {
		s.engine.TryFinalize(ctx, b)
	}
	return nil
}

// Extend moves a running batch's deadline to its creation time plus window, a completion window
// the caller checked against the allow-list, and returns the batch. The new deadline must be
// later than the current one. Requests already claimed keep the deadline they were claimed
// with for their retry decisions; every later claim sees the new one.
func (s *Service) Extend(ctx context.Context, tenantID, batchID, window string) (domain.Batch, error) {
	d, err := domain.ParseWindow(window)
	if err != nil {
		return domain.Batch{}, &domain.Error{Code: domain.EInvalid, Param: "completion_window", Message: err.Error()}
	}
	b, err := s.store.GetBatch(ctx, tenantID, batchID)
	if err != nil {
		return domain.Batch{}, err
	}
	now := s.now()
	expiresAt := b.CreatedAt.Add(d)
	if running := b.Status == domain.BatchValidating || b.Status == domain.BatchInProgress; !running || b.ExpiredAt != nil || !b.ExpiresAt.After(now) {
		return domain.Batch{}, notExtendable(b)
	}
	if !expiresAt.After(b.ExpiresAt) {
		return domain.Batch{}, &domain.Error{Code: domain.EInvalid, Param: "completion_window",
			Message: fmt.Sprintf("completion_window %q ends the batch at %s, not after its current deadline %s: choose a longer window.",
				window, expiresAt.UTC().Format(time.RFC3339), b.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	// Here expiresAt > b.ExpiresAt > now: the new deadline is in the future.
	if err := s.store.ExtendBatch(ctx, tenantID, batchID, window, expiresAt, now); err != nil {
		if errors.Is(err, domain.ErrStateConflict) {
			// It ended, or was extended further, between the read and the write.
			if cur, err := s.store.GetBatch(ctx, tenantID, batchID); err == nil {
				b = cur
			}
			return domain.Batch{}, notExtendable(b)
		}
		return domain.Batch{}, err
	}
	return s.store.GetBatch(ctx, tenantID, batchID)
}

func notExtendable(b domain.Batch) error {
	if b.Status == domain.BatchValidating || b.Status == domain.BatchInProgress {
		return domain.Errorf(domain.EConflict, "Batch %s reached its deadline (%s): it can no longer be extended; rerun its unfinished lines once it has ended (POST /v1/batches/%s/rerun).",
			b.ID, b.ExpiresAt.UTC().Format(time.RFC3339), b.ID)
	}
	return domain.Errorf(domain.EConflict, "Batch %s is %s: only a running batch's deadline can be extended; rerun its unfinished lines instead (POST /v1/batches/%s/rerun).",
		b.ID, b.Status, b.ID)
}

// Rerun is a request to run the unfinished lines of an ended batch again as a new batch.
type Rerun struct {
	TenantID     string
	CreatedByKey int64  // the caller's API key id, recorded on the new batch; 0 = unknown
	BatchID      string // the ended batch
	// CompletionWindow is the new batch's window (checked by the caller against the allow-list);
	// "" keeps the source batch's.
	CompletionWindow string
	// Metadata replaces the source batch's metadata on the new batch; nil keeps it.
	Metadata map[string]string
}

// Rerun creates a batch from exactly the lines of an ended batch that did not complete (failed,
// cancelled or expired), with the same input file, endpoint, custom_ids and line numbers, starts
// it at once and dispatches its models. The two batches name each other (rerun_of,
// rerun_batch_id). A batch that was rerun before answers that same rerun, so a repeated call
// never runs the lines twice; rerun the rerun to go again.
func (s *Service) Rerun(ctx context.Context, r Rerun) (domain.Batch, error) {
	src, err := s.store.GetBatch(ctx, r.TenantID, r.BatchID)
	if err != nil {
		return domain.Batch{}, err
	}
	window := r.CompletionWindow
	if window == "" {
		window = src.CompletionWindow
	}
	d, err := domain.ParseWindow(window)
	if err != nil {
		return domain.Batch{}, &domain.Error{Code: domain.EInvalid, Param: "completion_window", Message: err.Error()}
	}
	meta := r.Metadata
	if meta == nil {
		meta = src.Metadata
	}
	now := s.now()
	b := domain.Batch{ID: domain.NewBatchID(), TenantID: r.TenantID, InputFileID: src.InputFileID, Endpoint: src.Endpoint,
		CompletionWindow: window, Status: domain.BatchValidating, Metadata: meta, CreatedAt: now, ExpiresAt: now.Add(d),
		OutputFileID: domain.NewFileID(), ErrorFileID: domain.NewFileID(), CreatedByKey: r.CreatedByKey, FailFastAfter: src.FailFastAfter,
		// The copied lines keep their coalescing keys: the rerun coalesces as its source did.
		API: src.API, Coalesce: src.Coalesce}
	res, err := s.store.RerunBatch(ctx, r.TenantID, r.BatchID, b, now)
	if err != nil {
		return domain.Batch{}, err
	}
	if !res.Existing {
		if err := s.engine.Dispatch(ctx, res.Models...); err != nil {
			s.log.WarnContext(ctx, "dispatch after rerun", "batch_id", res.BatchID, "err", err)
		}
	}
	return s.store.GetBatch(ctx, r.TenantID, res.BatchID)
}
