// Package ingest turns JSONL files into work: it validates uploads while streaming them to S3,
// and populates a batch by streaming its input file from S3 through the same validator into
// Postgres with COPY. Memory stays bounded by the longest line, whatever the file size.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/jsonl"
)

// Store is the part of the store ingest uses.
type Store interface {
	BatchForPopulate(ctx context.Context, batchID string) (tenantID, endpoint string, status domain.BatchStatus, err error)
	InsertRequests(ctx context.Context, batchID string, src domain.RequestSource, now time.Time) (domain.PopulateResult, error)
	InputObjectKey(ctx context.Context, batchID string) (string, error)
	ListModels(ctx context.Context) ([]domain.Model, error)
	InsertFile(ctx context.Context, f domain.File) error
	FinishUpload(ctx context.Context, tenantID, id, key string, bytes int64, lines int) error
	DiscardFile(ctx context.Context, tenantID, id, reason string, now time.Time) error
	FailBatch(ctx context.Context, batchID string, now time.Time, errs []domain.BatchError) error
}

// Blobs reads and writes file contents.
type Blobs interface {
	Get(ctx context.Context, key string) (io.ReadCloser, int64, error)
	Put(ctx context.Context, key string, r io.Reader, contentType string) error
	Delete(ctx context.Context, key string) error
}

// Dispatcher starts dispatching models' work (the engine).
type Dispatcher interface {
	Dispatch(ctx context.Context, models ...string) error
}

// finalizer is the part of the engine that seals a batch with nothing left to run: a populate
// whose lines were all served from the result cache (coalescing) finishes the batch at once
// rather than leaving it to the maintenance pass. A Dispatcher without it leaves it there.
type finalizer interface {
	TryFinalize(ctx context.Context, batchID string)
}

// Defaults of the limits the deployment can set (MAX_FILE_BYTES, MAX_LINES); config.Load reads
// them from here. Both are OpenAI's; the line limit is the validator's own default (50,000).
const (
	DefaultMaxFileBytes int64 = 200_000_000
	DefaultMaxLines     int   = jsonl.DefaultMaxLines
)

// Limits bound what a file may contain.
type Limits struct {
	MaxFileBytes int64 // default DefaultMaxFileBytes (200 MB)
	MaxLines     int   // default DefaultMaxLines (50,000)
	MaxLineBytes int   // default 16 MiB: larger than any allowed body, so the body check reports first
	MaxBodyBytes int   // default 10 MiB
}

func (l *Limits) defaults() {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxLines <= 0 {
		l.MaxLines = DefaultMaxLines
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = 16 << 20
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 10 << 20
	}
}

// Ingester is safe for concurrent use.
type Ingester struct {
	store  Store
	blobs  Blobs
	refill Dispatcher
	limits Limits
	log    *slog.Logger
	now    func() time.Time
}

// New builds an Ingester; refill may be nil (then new batches wait for the next dispatch).
func New(store Store, blobs Blobs, refill Dispatcher, limits Limits, log *slog.Logger, now func() time.Time) *Ingester {
	limits.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Ingester{store: store, blobs: blobs, refill: refill, limits: limits, log: log, now: now}
}

// Limits returns the limits in force.
func (in *Ingester) Limits() Limits { return in.limits }

// modelFilter returns the set of configured models as a ModelAllowed func.
func (in *Ingester) modelFilter(ctx context.Context) (func(string) bool, error) {
	models, err := in.store.ListModels(ctx)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(models))
	for _, m := range models {
		set[m.Name] = true
	}
	return func(m string) bool { return set[m] }, nil
}

// Upload is an incoming input file.
type Upload struct {
	TenantID  string
	FileID    string // optional: the id to give the file; default a new one
	Filename  string
	Purpose   string
	ExpiresAt *time.Time
	Body      io.Reader
	// CreatedByKey is the id of the API key uploading it; 0 = unknown.
	CreatedByKey int64
}

// Store validates u.Body line by line while streaming it to S3, and records the file only if
// every line is valid; otherwise the object is deleted and a *domain.Error names the first bad
// line and lists every one (see validate). Nothing partial is kept.
func (in *Ingester) Store(ctx context.Context, u Upload) (domain.File, error) {
	f := domain.File{ID: u.FileID, TenantID: u.TenantID, Filename: u.Filename, Purpose: u.Purpose,
		Status: domain.FileProcessed, CreatedAt: in.now(), ExpiresAt: u.ExpiresAt, CreatedByKey: u.CreatedByKey}
	if f.ID == "" {
		f.ID = domain.NewFileID()
	}
	f.ObjectKey = domain.InputFileKey(u.TenantID, f.ID)
	n, summary, err := in.streamValidated(ctx, f.ObjectKey, u.Body)
	if err != nil {
		return domain.File{}, err
	}
	f.Bytes, f.Lines = n, summary.Lines
	if err := in.store.InsertFile(ctx, f); err != nil {
		_ = in.blobs.Delete(context.WithoutCancel(ctx), f.ObjectKey)
		return domain.File{}, err
	}
	return f, nil
}

// Fill streams body through validation into a fresh ContentKey for the pending (uploaded) file
// f, and marks the file processed with that content. If any line is bad, nothing is kept: the
// content is deleted, the file discarded, and the *domain.Error lists the bad lines. f.Bytes,
// when set, is the size the client announced, and the body must have exactly that size.
func (in *Ingester) Fill(ctx context.Context, f domain.File, body io.Reader) (domain.File, error) {
	key, n, summary, err := in.copyValidated(ctx, f, body)
	if err != nil {
		in.reject(ctx, f, err)
		return domain.File{}, err
	}
	return in.finish(ctx, f, key, n, summary)
}

// copyValidated streams body through validation into a fresh ContentKey of the pending file f
// and checks the announced size; on failure nothing is left at that key.
func (in *Ingester) copyValidated(ctx context.Context, f domain.File, body io.Reader) (string, int64, jsonl.Summary, error) {
	key := domain.ContentKey(f.TenantID, f.ID)
	n, summary, err := in.streamValidated(ctx, key, body)
	if err == nil {
		if err = checkSize(f.Bytes, n); err != nil {
			in.deleteContent(ctx, key)
		}
	}
	return key, n, summary, err
}

// Complete validates the content that a client uploaded straight to S3 for the pending file f
// (with a presigned URL, to f.ObjectKey) and marks the file processed. The bytes are copied as
// they are validated to a key of the file's own, so a later PUT to the same URL cannot change
// them; the uploaded object is deleted afterwards. On any bad line, or a size other than the
// announced one, the upload is deleted and the file discarded, as with Fill.
func (in *Ingester) Complete(ctx context.Context, f domain.File) (domain.File, error) {
	body, _, err := in.blobs.Get(ctx, f.ObjectKey)
	if errors.Is(err, domain.ErrNoObject) {
		return domain.File{}, &domain.Error{Code: domain.EInvalid, Reason: "upload_missing",
			Message: fmt.Sprintf("Nothing has been uploaded for file %s yet: PUT the content to its upload_url, then complete it.", f.ID)}
	}
	if err != nil {
		return domain.File{}, err
	}
	defer body.Close()
	key, n, summary, err := in.copyValidated(ctx, f, body)
	if err != nil {
		if domain.ErrorCode(err) == domain.EInternal {
			return domain.File{}, err // S3 failed: the upload may be fine, keep it for a retry
		}
		in.reject(ctx, f, err)
		return domain.File{}, err
	}
	got, err := in.finish(ctx, f, key, n, summary)
	if err != nil {
		return domain.File{}, err
	}
	in.deleteContent(ctx, f.ObjectKey)
	return got, nil
}

// finish marks the pending file f processed with the content at key. If the file is no longer
// pending (a concurrent complete won, or it was deleted), that content is deleted again.
func (in *Ingester) finish(ctx context.Context, f domain.File, key string, n int64, summary jsonl.Summary) (domain.File, error) {
	if err := in.store.FinishUpload(ctx, f.TenantID, f.ID, key, n, summary.Lines); err != nil {
		in.deleteContent(ctx, key)
		return domain.File{}, err
	}
	f.Status, f.StatusDetails, f.ObjectKey, f.Bytes, f.Lines = domain.FileProcessed, "", key, n, summary.Lines
	return f, nil
}

func (in *Ingester) deleteContent(ctx context.Context, key string) {
	ctx = context.WithoutCancel(ctx)
	if err := in.blobs.Delete(ctx, key); err != nil {
		in.log.WarnContext(ctx, "delete upload content", "key", key, "err", err)
	}
}

// reject deletes a pending file's content and hides the file, recording why.
func (in *Ingester) reject(ctx context.Context, f domain.File, cause error) {
	ctx = context.WithoutCancel(ctx)
	if err := in.blobs.Delete(ctx, f.ObjectKey); err != nil {
		in.log.WarnContext(ctx, "delete rejected upload", "key", f.ObjectKey, "err", err)
	}
	reason := "The file failed validation."
	var de *domain.Error
	if errors.As(cause, &de) {
		reason = de.Message
	}
	if err := in.store.DiscardFile(ctx, f.TenantID, f.ID, reason, in.now()); err != nil {
		in.log.WarnContext(ctx, "discard rejected upload", "file_id", f.ID, "err", err)
	}
}

func checkSize(announced, got int64) error {
	if announced > 0 && announced != got {
		return &domain.Error{Code: domain.EInvalid, Param: "bytes", Reason: "size_mismatch",
			Message: fmt.Sprintf("The upload has %d bytes but %d were announced.", got, announced)}
	}
	return nil
}

func (in *Ingester) rules(allowed func(string) bool, endpoint string) jsonl.Rules {
	return jsonl.Rules{Endpoint: endpoint, ModelAllowed: allowed, MaxLines: in.limits.MaxLines, MaxBodyBytes: in.limits.MaxBodyBytes}
}

// streamValidated streams r to key while validating every line, and returns the byte count and
// summary. On a bad line (or an S3 failure) the object is deleted and the error returned.
func (in *Ingester) streamValidated(ctx context.Context, key string, r io.Reader) (int64, jsonl.Summary, error) {
	allowed, err := in.modelFilter(ctx)
	if err != nil {
		return 0, jsonl.Summary{}, err
	}
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	go func() {
		err := in.blobs.Put(ctx, key, pr, "application/jsonl")
		pr.CloseWithError(err) // unblocks the validator if S3 gave up
		putDone <- err
	}()
	limited := &capReader{r: r, max: in.limits.MaxFileBytes}
	summary, verr := in.validate(io.TeeReader(limited, pw), in.rules(allowed, ""))
	if verr != nil {
		pw.CloseWithError(verr)
		if err := <-putDone; err != nil { // the validation error is the one to report
			in.log.DebugContext(ctx, "upload of a rejected file stopped", "key", key, "err", err)
		}
		// The upload may have completed before the bad line was found (the object is small).
		if err := in.blobs.Delete(context.WithoutCancel(ctx), key); err != nil {
			in.log.WarnContext(ctx, "delete rejected upload", "key", key, "err", err)
		}
		return 0, jsonl.Summary{}, verr
	}
	_ = pw.Close() // a pipe writer's Close always succeeds
	if err := <-putDone; err != nil {
		return 0, jsonl.Summary{}, err
	}
	return limited.n, summary, nil
}

// Report is the result of a dry run over a stored file: every bad line, and per-model totals of
// the good ones.
type Report struct {
	Summary   jsonl.Summary
	Errors    []jsonl.LineError
	Truncated bool // more errors exist than were collected
}

// Check validates a stored input file against endpoint ("" = any allowed endpoint) and the
// models configured now, collecting every bad line (up to maxErrors), without changing anything.
// With anyModel, models are not checked (cost estimates of files whose models are not configured
// yet).
func (in *Ingester) Check(ctx context.Context, key, endpoint string, anyModel bool, maxErrors int) (Report, error) {
	var allowed func(string) bool
	if !anyModel {
		var err error
		if allowed, err = in.modelFilter(ctx); err != nil {
			return Report{}, err
		}
	}
	body, _, err := in.blobs.Get(ctx, key)
	if err != nil {
		return Report{}, err
	}
	defer body.Close()
	if maxErrors <= 0 {
		maxErrors = jsonl.DefaultMaxErrors
	}
	// One more than asked, to tell whether the list was cut.
	summary, errs, err := jsonl.ValidateAll(body, in.rules(allowed, endpoint), in.limits.MaxLineBytes, maxErrors+1)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Summary: summary, Errors: errs}
	if len(errs) > maxErrors {
		rep.Errors, rep.Truncated = errs[:maxErrors], true
	}
	return rep, nil
}

// validate runs the whole stream through the validator. A bad file gives one *domain.Error that
// names the first bad line and lists every one (up to jsonl.DefaultMaxErrors, then marked
// truncated), so that a client fixes them all in one round trip. Reading stops early only at
// that limit, and when the file is over MaxFileBytes (a 413 without a list) or cannot be read.
func (in *Ingester) validate(r io.Reader, rules jsonl.Rules) (jsonl.Summary, error) {
	// One more than listed, to tell whether the list was cut.
	summary, errs, err := jsonl.ValidateAll(r, rules, in.limits.MaxLineBytes, jsonl.DefaultMaxErrors+1)
	if err != nil {
		return jsonl.Summary{}, asDomain(err)
	}
	if len(errs) > 0 {
		return jsonl.Summary{}, rejection(errs, jsonl.DefaultMaxErrors)
	}
	return summary, nil
}

// rejection is the client-facing error for a file with bad lines: the first one, with the first
// max of them listed.
func rejection(errs []jsonl.LineError, max int) *domain.Error {
	de := lineError(&errs[0])
	if len(errs) > max {
		errs, de.ProblemsTruncated = errs[:max], true
	}
	de.Problems = make([]domain.LineProblem, len(errs))
	for i, le := range errs {
		de.Problems[i] = domain.LineProblem{Line: le.Line, CustomID: le.CustomID, Param: le.Param, Reason: le.Code, Message: le.Message}
	}
	return de
}

// Populate expands a validating batch's input file into request rows and starts the batch; then
// it dispatches the batch's models so that work starts within moments rather than at the
// next scheduled tick. A duplicate call is a no-op. A file that turns out bad fails the batch
// with the line number (the message is consumed: retrying cannot fix the file).
func (in *Ingester) Populate(ctx context.Context, batchID string) error {
	key, err := in.store.InputObjectKey(ctx, batchID)
	if err != nil {
		return err
	}
	_, endpoint, status, err := in.store.BatchForPopulate(ctx, batchID)
	if err != nil && domain.ErrorCode(err) != domain.ENotFound { // purged since: nothing to do
		return fmt.Errorf("populate %s: %w", batchID, err)
	}
	// Already populated, failed, cancelled or purged: skipped without opening the file.
	res := domain.PopulateResult{Skipped: true}
	if err == nil && status == domain.BatchValidating {
		if res, err = in.insertRequests(ctx, batchID, key, endpoint); err != nil {
			return fmt.Errorf("populate %s: %w", batchID, err)
		}
	}
	switch {
	case res.Skipped:
		in.log.InfoContext(ctx, "populate skipped: batch not validating", "batch_id", batchID)
	case res.Failed != nil:
		in.log.InfoContext(ctx, "batch failed validation", "batch_id", batchID, "line", res.Failed.Line, "reason", res.Failed.Reason)
	default:
		in.log.InfoContext(ctx, "batch populated", "batch_id", batchID, "requests", res.Inserted, "models", res.Models,
			"cached", res.Cached)
		if in.refill != nil {
			if err := in.refill.Dispatch(ctx, res.Models...); err != nil {
				in.log.WarnContext(ctx, "dispatch after populate", "batch_id", batchID, "err", err)
			}
		}
		if f, ok := in.refill.(finalizer); ok && res.Cached > 0 {
			// Every line may have been served from the cache: the guarded election seals the
			// batch only then.
			f.TryFinalize(ctx, batchID)
		}
	}
	return nil
}

// insertRequests hands the store the object at key, validated against endpoint and the models
// configured now. The store skips a batch that a concurrent populate started meanwhile without
// reading the source, so the object is opened only when there is work to do.
func (in *Ingester) insertRequests(ctx context.Context, batchID, key, endpoint string) (domain.PopulateResult, error) {
	allowed, err := in.modelFilter(ctx)
	if err != nil {
		return domain.PopulateResult{}, err
	}
	src := &source{key: key, ctx: ctx, blobs: in.blobs, maxLine: in.limits.MaxLineBytes,
		v: jsonl.NewValidator(jsonl.Rules{Endpoint: endpoint, ModelAllowed: allowed, MaxLines: in.limits.MaxLines,
			MaxBodyBytes: in.limits.MaxBodyBytes})}
	defer src.close()
	return in.store.InsertRequests(ctx, batchID, src, in.now())
}

// source adapts the S3 object to domain.RequestSource, opening it lazily on the first Next:
// inside the store's transaction, after the batch lock proves there is work to do.
type source struct {
	ctx     context.Context
	key     string
	blobs   Blobs
	maxLine int
	v       *jsonl.Validator
	rd      *jsonl.Reader
	body    io.ReadCloser // set once opened
}

func (s *source) Next() (domain.NewRequest, error) {
	if s.rd == nil {
		body, _, err := s.blobs.Get(s.ctx, s.key)
		if err != nil {
			return domain.NewRequest{}, err
		}
		s.body = body
		s.rd = jsonl.NewReader(body, s.maxLine)
	}
	line, err := s.rd.Next()
	if errors.Is(err, io.EOF) {
		if le := s.v.Finish(); le != nil {
			return domain.NewRequest{}, lineError(le)
		}
		return domain.NewRequest{}, io.EOF
	}
	if err != nil {
		return domain.NewRequest{}, asDomain(err)
	}
	req, le := s.v.Check(line)
	if le != nil {
		return domain.NewRequest{}, lineError(le)
	}
	return domain.NewRequest{ID: uuid.NewString(), Line: req.Line, CustomID: req.CustomID, Model: req.Model,
		Path: req.URL, Body: req.Body}, nil
}

// close closes the object if Next opened it.
func (s *source) close() {
	if s.body != nil {
		s.body.Close()
	}
}

// lineError converts a validator error into a client-facing domain error that keeps its line.
func lineError(le *jsonl.LineError) *domain.Error {
	return &domain.Error{Code: domain.EInvalid, Message: le.Message, Param: le.Param, Line: le.Line, Reason: le.Code}
}

// asDomain converts reader errors: line errors become *domain.Error, the size cap a 413, anything
// else (I/O) stays internal.
func asDomain(err error) error {
	var le *jsonl.LineError
	if errors.As(err, &le) {
		return lineError(le)
	}
	var tooBig *fileTooLarge
	if errors.As(err, &tooBig) {
		return &domain.Error{Code: domain.ETooLarge, Message: fmt.Sprintf("File is too large: the limit is %d bytes.", tooBig.max), Reason: "file_too_large"}
	}
	return err
}

type fileTooLarge struct{ max int64 }

func (e *fileTooLarge) Error() string { return fmt.Sprintf("file exceeds %d bytes", e.max) }

// capReader counts bytes and fails once more than max have been read.
type capReader struct {
	r   io.Reader
	max int64
	n   int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, &fileTooLarge{max: c.max}
	}
	return n, err
}
