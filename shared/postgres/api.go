package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/postgres/internal/pgq"
)

// This file holds what only the HTTP API reads and writes (queries in queries_api.sql): list
// pages, partial results, pending uploads, idempotency keys and the admin surface.

// errBadCursor is the answer to an `after` that is not one of the tenant's objects: forged,
// mistyped or another tenant's. It never reveals which.
func errBadCursor(id string) error {
	return &domain.Error{Code: domain.EInvalid, Param: "after",
		Message: fmt.Sprintf("Invalid 'after': %q is not an object in this list.", id)}
}

// LikePattern turns user text into an ILIKE substring pattern with the wildcards escaped, so
// that "50%" matches a literal percent sign; "" stays "" (no filter).
func LikePattern(s string) string {
	if s == "" {
		return ""
	}
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// ─── files ──────────────────────────────────────────────────────────────────────────────────────

// ListFiles returns one page of a tenant's files and whether more follow. A replica serves it
// (replica.go); an `after` it does not know yet lists from the primary.
func (s *Store) ListFiles(ctx context.Context, tenantID string, p domain.FileListParams) ([]domain.File, bool, error) {
	if p.After != "" && !domain.IsFileID(p.After) {
		return nil, false, errBadCursor(p.After)
	}
	var rows []pgq.ListFilesDescRow
	err := s.read(ctx, func(q *pgq.Queries) error {
		var cursorAt *time.Time
		if p.After != "" {
			at, err := q.FileCursor(ctx, pgq.FileCursorParams{ID: p.After, TenantID: tenantID})
			if err != nil {
				return fmt.Errorf("cursor: %w", err)
			}
			cursorAt = &at
		}
		// Two queries rather than a parameter for the direction: each keeps its ORDER BY on the index.
		args := pgq.ListFilesDescParams{TenantID: tenantID, Max: int32(p.Limit + 1), Purpose: p.Purpose,
			CreatedByKeys: nonNil(p.CreatedByKeys), CursorAt: cursorAt, CursorID: p.After}
		var err error
		rows = nil
		if p.Asc {
			var asc []pgq.ListFilesAscRow
			asc, err = q.ListFilesAsc(ctx, pgq.ListFilesAscParams(args))
			for _, r := range asc {
				rows = append(rows, pgq.ListFilesDescRow(r))
			}
		} else {
			rows, err = q.ListFilesDesc(ctx, args)
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, errBadCursor(p.After)
	}
	if err != nil {
		return nil, false, fmt.Errorf("list files: %w", err)
	}
	files := make([]domain.File, len(rows))
	for i, r := range rows {
		files[i] = fileOf(pgq.GetFileRow(r))
	}
	more := len(files) > p.Limit
	if more {
		files = files[:p.Limit]
	}
	return files, more, nil
}

// FinishUpload marks a pending (uploaded) input file processed once its content, stored at key,
// has passed validation. It reports domain.ErrStateConflict when the file is no longer pending.
func (s *Store) FinishUpload(ctx context.Context, tenantID, id, key string, bytes int64, lines int) error {
	n, err := s.q.FinishUpload(ctx, pgq.FinishUploadParams{ID: id, TenantID: tenantID, Bytes: bytes, LineCount: int32(lines), ObjectKey: &key})
	if err != nil {
		return fmt.Errorf("finish upload %s: %w", id, err)
	}
	if n != 1 {
		return domain.ErrStateConflict
	}
	return nil
}

// DiscardFile hides a file for good (its content was rejected, or an idempotent replay made it
// redundant), recording why. The caller deletes the content.
func (s *Store) DiscardFile(ctx context.Context, tenantID, id, reason string, now time.Time) error {
	if err := s.q.DiscardFile(ctx, pgq.DiscardFileParams{ID: id, TenantID: tenantID, StatusDetails: &reason, Now: &now}); err != nil {
		return fmt.Errorf("discard file %s: %w", id, err)
	}
	return nil
}

// SetFileExpiry changes when a file expires (an upload whose expires_after came after its
// content).
func (s *Store) SetFileExpiry(ctx context.Context, tenantID, id string, at time.Time) error {
	if err := s.q.SetFileExpiry(ctx, pgq.SetFileExpiryParams{ID: id, TenantID: tenantID, ExpiresAt: &at}); err != nil {
		return fmt.Errorf("set file expiry %s: %w", id, err)
	}
	return nil
}

// ─── batches ────────────────────────────────────────────────────────────────────────────────────

// ListBatches returns one page of a tenant's batches (live counts) and whether more follow. A
// replica serves it (replica.go); an `after` it does not know yet lists from the primary.
func (s *Store) ListBatches(ctx context.Context, tenantID string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
	if p.After != "" && !domain.IsBatchID(p.After) {
		return nil, false, errBadCursor(p.After)
	}
	if p.Before != "" {
		return s.listBatchesBefore(ctx, tenantID, p)
	}
	statuses := p.Statuses
	if statuses == nil {
		statuses = []string{}
	}
	var rows []pgq.ListBatchesRow
	err := s.read(ctx, func(q *pgq.Queries) error {
		var (
			cursorAt   *time.Time
			cursorRank int
		)
		if p.After != "" {
			c, err := q.BatchCursor(ctx, pgq.BatchCursorParams{ID: p.After, TenantID: tenantID})
			if err != nil {
				return fmt.Errorf("cursor: %w", err)
			}
			cursorAt = &c.CreatedAt
			if p.ActiveFirst && domain.BatchStatus(c.Status).Terminal() {
				cursorRank = 1
			}
		}
		var err error
		rows, err = q.ListBatches(ctx, pgq.ListBatchesParams{TenantID: tenantID, Api: apiOf(p.API), Statuses: statuses, Pattern: LikePattern(p.Search),
			CreatedByKeys: nonNil(p.CreatedByKeys), InputFileID: p.InputFileID, CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore,
			ActiveFirst: p.ActiveFirst, CursorRank: int32(cursorRank),
			CursorAt: cursorAt, CursorID: p.After, Max: int32(p.Limit + 1)})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, errBadCursor(p.After)
	}
	if err != nil {
		return nil, false, fmt.Errorf("list batches: %w", err)
	}
	batches := make([]domain.Batch, len(rows))
	for i, r := range rows {
		if batches[i], err = batchOf(r.BatchRow); err != nil {
			return nil, false, fmt.Errorf("list batches: %w", err)
		}
	}
	more := len(batches) > p.Limit
	if more {
		batches = batches[:p.Limit]
	}
	return batches, more, nil
}

// listBatchesBefore is ListBatches with p.Before: the page of batches of p.API right before
// the cursor batch (newer ones), newest first, and whether more newer ones exist. The other
// filters do not apply.
func (s *Store) listBatchesBefore(ctx context.Context, tenantID string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
	if !domain.IsBatchID(p.Before) {
		return nil, false, errBadCursor(p.Before)
	}
	var rows []pgq.ListBatchesBeforeRow
	err := s.read(ctx, func(q *pgq.Queries) error {
		c, err := q.BatchCursor(ctx, pgq.BatchCursorParams{ID: p.Before, TenantID: tenantID})
		if err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
		rows, err = q.ListBatchesBefore(ctx, pgq.ListBatchesBeforeParams{TenantID: tenantID, Api: apiOf(p.API),
			CursorAt: c.CreatedAt, CursorID: p.Before, Max: int32(p.Limit + 1)})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, errBadCursor(p.Before)
	}
	if err != nil {
		return nil, false, fmt.Errorf("list batches: %w", err)
	}
	more := len(rows) > p.Limit
	if more {
		rows = rows[:p.Limit]
	}
	batches := make([]domain.Batch, len(rows))
	for i, r := range rows {
		// The query reads nearest first; the page is shown newest first.
		if batches[len(rows)-1-i], err = batchOf(r.BatchRow); err != nil {
			return nil, false, fmt.Errorf("list batches: %w", err)
		}
	}
	return batches, more, nil
}

// BatchRequestStates counts the requests of each of a tenant's batches by state; a batch
// without requests is absent. It reads the primary: the counts are shown with a batch read
// there.
func (s *Store) BatchRequestStates(ctx context.Context, tenantID string, batchIDs []string) (map[string]map[domain.RequestState]int, error) {
	rows, err := s.q.BatchRequestStates(ctx, pgq.BatchRequestStatesParams{TenantID: tenantID, BatchIds: nonNil(batchIDs)})
	if err != nil {
		return nil, fmt.Errorf("batch request states: %w", err)
	}
	out := make(map[string]map[domain.RequestState]int, len(batchIDs))
	for _, r := range rows {
		m := out[r.BatchID]
		if m == nil {
			m = map[domain.RequestState]int{}
			out[r.BatchID] = m
		}
		m[domain.RequestState(r.State)] = int(r.N)
	}
	return out, nil
}

// apiOf is the batches.api value of a domain API name; "" is OpenAI's.
func apiOf(api string) string {
	if api == "" {
		return domain.APIOpenAI
	}
	return api
}

// nonNil makes an absent filter an empty array: a NULL array has no cardinality, so the queries'
// "empty = any" test would not match.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// batchOf maps a row of the batch_rows view (migration 0005; counts from batch_counters since
// 0006), the row shape GetBatch and ListBatches share.
func batchOf(r pgq.BatchRow) (domain.Batch, error) {
	b := domain.Batch{ID: r.ID, TenantID: r.TenantID, InputFileID: r.InputFileID, Endpoint: r.Endpoint,
		CompletionWindow: r.CompletionWindow, Status: domain.BatchStatus(r.Status), Model: r.Model, OutputFileID: r.OutputFileID,
		ErrorFileID: r.ErrorFileID, Usage: r.Usage, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		InProgressAt: r.InProgressAt, FinalizingAt: r.FinalizingAt, CompletedAt: r.CompletedAt, FailedAt: r.FailedAt,
		ExpiredAt: r.ExpiredAt, CancellingAt: r.CancellingAt, CancelledAt: r.CancelledAt, CreatedByKey: keyID(r.CreatedByKey),
		RerunOf: r.RerunOf, RerunBatchID: r.RerunBatchID, FailFastAfter: int(r.FailFastAfter), API: r.Api,
		Coalesce: &r.Coalescing, Coalesced: int(r.Coalesced), Cached: int(r.Cached),
		Counts: domain.Counts{Total: int(r.Total), Completed: int(r.Completed), Failed: int(r.Failed), Pending: int(r.Pending)}}
	if len(r.Metadata) > 0 {
		if err := json.Unmarshal(r.Metadata, &b.Metadata); err != nil {
			return b, fmt.Errorf("metadata: %w", err)
		}
	}
	if len(r.Errors) > 0 {
		// Stored as {"object":"list","data":[...]} by FailBatch.
		var doc struct {
			Data []domain.BatchError `json:"data"`
		}
		if err := json.Unmarshal(r.Errors, &doc); err == nil && doc.Data != nil {
			b.Errors = doc.Data
		} else if err := json.Unmarshal(r.Errors, &b.Errors); err != nil {
			return b, fmt.Errorf("errors: %w", err)
		}
	}
	return b, nil
}

// ─── results ────────────────────────────────────────────────────────────────────────────────────

// BatchResults calls fn for the rows of the results view of a tenant's batch, in input order,
// fetching at most ResultPageSize rows per query. A replica serves it; a first page the replica
// has no rows for is read from the primary, and so is the rest (replica.go).
func (s *Store) BatchResults(ctx context.Context, tenantID, batchID string, rq domain.ResultQuery, fn func(domain.BatchResult) error) error {
	after, skip, left := 0, rq.Offset, rq.Limit
	states := rq.States
	if states == nil {
		states = []string{}
	}
	pattern := LikePattern(rq.Search)
	q, first := s.rq, true
	for left > 0 {
		n := min(left, ResultPageSize)
		page, err := q.BatchResultsPage(ctx, pgq.BatchResultsPageParams{BatchID: batchID, TenantID: tenantID, AfterLine: int32(after),
			States: states, Pattern: pattern, Skip: int32(skip), Max: int32(n)})
		if first && s.rereadOnPrimary(ctx, q, len(page), err) {
			q, first = s.q, false
			continue
		}
		first = false
		if err != nil {
			return fmt.Errorf("batch results %s: %w", batchID, err)
		}
		for _, r := range page {
			if err := fn(domain.BatchResult{Model: r.Model, Input: r.Body, ResultRow: domain.ResultRow{RequestID: r.RID,
				Line: int(r.Line), CustomID: r.CustomID, State: domain.RequestState(r.State), StatusCode: int(r.ResponseStatus),
				Body: r.ResponseBody, UpstreamRequestID: r.UpstreamRequestID, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage},
				Latency: latency(r.StartedAt, r.FinishedAt)}); err != nil {
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		after, skip, left = int(page[len(page)-1].Line), 0, left-len(page)
	}
	return nil
}

// latency is finished - started when the row has both; nil otherwise.
func latency(started, finished *time.Time) *time.Duration {
	if started == nil || finished == nil {
		return nil
	}
	d := finished.Sub(*started)
	return &d
}

// ResultFile calls fn for the current rows of a batch's output file (output true) or error file,
// in the order they finished, skipping rq.Offset and returning at most rq.Limit; rq.States is
// ignored. It reads pages of ResultPageSize rows. A replica serves it; a first page the replica
// has no rows for is read from the primary, and so is the rest (replica.go).
func (s *Store) ResultFile(ctx context.Context, tenantID, batchID string, output bool, rq domain.ResultQuery, fn func(domain.ResultRow) error) error {
	offset, left := rq.Offset, rq.Limit
	pattern := LikePattern(rq.Search)
	q, first := s.rq, true
	for left > 0 {
		n := min(left, ResultPageSize)
		page, err := q.ResultFilePage(ctx, pgq.ResultFilePageParams{BatchID: batchID, TenantID: tenantID, Output: output,
			Pattern: pattern, Skip: int32(offset), Max: int32(n)})
		if first && s.rereadOnPrimary(ctx, q, len(page), err) {
			q, first = s.q, false
			continue
		}
		first = false
		if err != nil {
			return fmt.Errorf("result file %s: %w", batchID, err)
		}
		for _, row := range page {
			if err := fn(resultRowOf(pgq.ResultPageRow(row))); err != nil {
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		offset, left = offset+len(page), left-len(page)
	}
	return nil
}

// ─── idempotency keys ───────────────────────────────────────────────────────────────────────────

// ReserveIdempotencyKey claims key on route for objectID. ok is false when the key was already
// taken; then rec is the existing record.
func (s *Store) ReserveIdempotencyKey(ctx context.Context, tenantID, route, key string, hash []byte, objectID string, now time.Time) (rec domain.IdempotencyRecord, ok bool, err error) {
	n, err := s.q.ReserveIdempotencyKey(ctx, pgq.ReserveIdempotencyKeyParams{TenantID: tenantID, Route: route, Key: key,
		RequestHash: hash, ObjectID: objectID, CreatedAt: now})
	if err != nil {
		return rec, false, fmt.Errorf("reserve idempotency key: %w", err)
	}
	if n == 1 {
		return domain.IdempotencyRecord{RequestHash: hash, ObjectID: objectID, CreatedAt: now}, true, nil
	}
	got, err := s.q.GetIdempotencyKey(ctx, pgq.GetIdempotencyKeyParams{TenantID: tenantID, Route: route, Key: key})
	rec = domain.IdempotencyRecord(got)
	if errors.Is(err, pgx.ErrNoRows) {
		// Released between the two statements: the caller's retry will win it.
		return rec, false, &domain.Error{Code: domain.EUnavailable, Message: "The Idempotency-Key is being released; retry the request."}
	}
	if err != nil {
		return rec, false, fmt.Errorf("get idempotency key: %w", err)
	}
	return rec, false, nil
}

// ReleaseIdempotencyKey frees a key reserved for objectID whose request failed.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, tenantID, route, key, objectID string) error {
	if err := s.q.ReleaseIdempotencyKey(ctx, pgq.ReleaseIdempotencyKeyParams{TenantID: tenantID, Route: route, Key: key,
		ObjectID: objectID}); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// ─── admin ──────────────────────────────────────────────────────────────────────────────────────

// DeleteModel removes a model. Requests that name it wait (they are never claimed) until it is
// configured again. A model that another model escalates to cannot be deleted.
func (s *Store) DeleteModel(ctx context.Context, name string) error {
	n, err := s.q.DeleteModel(ctx, name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return &domain.Error{Code: domain.EConflict, Param: "name",
			Message: fmt.Sprintf("Model %q is the escalation model of another model; change that model first.", name)}
	}
	if err != nil {
		return fmt.Errorf("delete model %q: %w", name, err)
	}
	if n == 0 {
		return &domain.Error{Code: domain.ENotFound, Param: "name", Message: fmt.Sprintf("Model %q is not configured.", name)}
	}
	return nil
}

// ListTenants returns every tenant, oldest first.
func (s *Store) ListTenants(ctx context.Context) ([]domain.Tenant, error) {
	rows, err := s.q.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	out := make([]domain.Tenant, len(rows))
	for i, t := range rows {
		out[i] = domain.Tenant(t)
	}
	return out, nil
}

// CreateTenant creates a tenant and returns it.
// coalesceDefault is whether its batches coalesce their lines when created without saying.
func (s *Store) CreateTenant(ctx context.Context, name string, coalesceDefault bool, now time.Time) (domain.Tenant, error) {
	t, err := s.q.CreateTenant(ctx, pgq.CreateTenantParams{ID: domain.NewTenantID(), Name: name, CreatedAt: now,
		CoalesceDefault: coalesceDefault})
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	return domain.Tenant(t), nil
}

// SetTenantCoalesceDefault sets whether the tenant's batches created from now on coalesce their
// lines when they do not say; a missing tenant is ENotFound.
func (s *Store) SetTenantCoalesceDefault(ctx context.Context, tenantID string, on bool) (domain.Tenant, error) {
	t, err := s.q.SetTenantCoalesceDefault(ctx, pgq.SetTenantCoalesceDefaultParams{ID: tenantID, CoalesceDefault: on})
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Tenant{}, &domain.Error{Code: domain.ENotFound, Param: "id", Message: fmt.Sprintf("No tenant found with id '%s'.", tenantID)}
	}
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("set tenant coalesce default: %w", err)
	}
	return domain.Tenant(t), nil
}

// CreateAPIKey mints a key for an existing tenant and returns it with its description; the key is
// shown this once (only its SHA-256 hash is stored).
func (s *Store) CreateAPIKey(ctx context.Context, tenantID, name string, admin bool, now time.Time) (domain.APIKey, string, error) {
	if _, err := s.q.GetTenant(ctx, tenantID); errors.Is(err, pgx.ErrNoRows) {
		return domain.APIKey{}, "", &domain.Error{Code: domain.ENotFound, Param: "tenant_id", Message: fmt.Sprintf("No tenant found with id '%s'.", tenantID)}
	} else if err != nil {
		return domain.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	key := domain.NewAPIKey()
	sum := sha256.Sum256([]byte(key))
	k, err := s.q.CreateAPIKey(ctx, pgq.CreateAPIKeyParams{TenantID: tenantID, KeyHash: sum[:], Prefix: key[:8], Name: name,
		IsAdmin: admin, CreatedAt: now})
	if err != nil {
		return domain.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	return apiKeyOf(pgq.ListAPIKeysRow(k)), key, nil
}

// ListAPIKeys describes a tenant's keys, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]domain.APIKey, error) {
	rows, err := s.q.ListAPIKeys(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	out := make([]domain.APIKey, len(rows))
	for i, k := range rows {
		out[i] = apiKeyOf(k)
	}
	return out, nil
}

// apiKeyOf maps the key row CreateAPIKey, ListAPIKeys and RevokeAPIKey share (never the hash).
func apiKeyOf(k pgq.ListAPIKeysRow) domain.APIKey {
	return domain.APIKey{ID: k.ID, TenantID: k.TenantID, Prefix: k.Prefix, Name: k.Name, Admin: k.IsAdmin, CreatedAt: k.CreatedAt,
		RevokedAt: k.RevokedAt}
}

// RevokeAPIKey revokes a key at once; revoking it again is a no-op that returns it.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64, now time.Time) (domain.APIKey, error) {
	r, err := s.q.RevokeAPIKey(ctx, pgq.RevokeAPIKeyParams{ID: id, Now: &now})
	k := apiKeyOf(pgq.ListAPIKeysRow(r))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.APIKey{}, &domain.Error{Code: domain.ENotFound, Param: "id", Message: fmt.Sprintf("No API key found with id %d.", id)}
	}
	if err != nil {
		return k, fmt.Errorf("revoke api key: %w", err)
	}
	return k, nil
}

// BatchTimeline is a tenant's batch's finished lines over n equal spans from start to end, read
// from the replica when there is one (the caller has found the batch, so a lagging replica only
// shows it a moment behind).
func (s *Store) BatchTimeline(ctx context.Context, tenantID, batchID string, total int, start, end time.Time, n int) (domain.Timeline, error) {
	rows, err := s.rq.BatchTimeline(ctx, pgq.BatchTimelineParams{TenantID: tenantID, BatchID: batchID, Start: start, Stop: end, N: int32(n)})
	if err != nil {
		return domain.Timeline{}, fmt.Errorf("batch timeline %s: %w", batchID, err)
	}
	t := domain.NewTimeline(start, end, total, n)
	for _, r := range rows {
		t.Add(int(r.Span)-1, int(r.Completed), int(r.Failed))
	}
	return t, nil
}
