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

// ListFiles returns one page of a tenant's files and whether more follow.
func (s *Store) ListFiles(ctx context.Context, tenantID string, p domain.FileListParams) ([]domain.File, bool, error) {
	var cursorAt *time.Time
	if p.After != "" && !domain.IsFileID(p.After) {
		return nil, false, errBadCursor(p.After)
	}
	if p.After != "" {
		var at time.Time
		err := s.pool.QueryRow(ctx, q("FileCursor"), p.After, tenantID).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, false, errBadCursor(p.After)
		}
		if err != nil {
			return nil, false, fmt.Errorf("list files: cursor: %w", err)
		}
		cursorAt = &at
	}
	name := "ListFilesDesc"
	if p.Asc {
		name = "ListFilesAsc"
	}
	rows, err := s.pool.Query(ctx, q(name), tenantID, p.Limit+1, p.Purpose, cursorAt, p.After)
	if err != nil {
		return nil, false, fmt.Errorf("list files: %w", err)
	}
	files, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.File, error) {
		var f domain.File
		err := r.Scan(&f.ID, &f.TenantID, &f.Filename, &f.Purpose, &f.Bytes, &f.Status, &f.StatusDetails, &f.ObjectKey,
			&f.Lines, &f.BatchID, &f.CreatedAt, &f.ExpiresAt)
		return f, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("list files: %w", err)
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
	tag, err := s.pool.Exec(ctx, q("FinishUpload"), id, tenantID, bytes, lines, key)
	if err != nil {
		return fmt.Errorf("finish upload %s: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return domain.ErrStateConflict
	}
	return nil
}

// DiscardFile hides a file for good (its content was rejected, or an idempotent replay made it
// redundant), recording why. The caller deletes the content.
func (s *Store) DiscardFile(ctx context.Context, tenantID, id, reason string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, q("DiscardFile"), id, tenantID, reason, now); err != nil {
		return fmt.Errorf("discard file %s: %w", id, err)
	}
	return nil
}

// SetFileExpiry changes when a file expires (an upload whose expires_after came after its
// content).
func (s *Store) SetFileExpiry(ctx context.Context, tenantID, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, q("SetFileExpiry"), id, tenantID, at); err != nil {
		return fmt.Errorf("set file expiry %s: %w", id, err)
	}
	return nil
}

// ─── batches ────────────────────────────────────────────────────────────────────────────────────

// ListBatches returns one page of a tenant's batches (live counts) and whether more follow.
func (s *Store) ListBatches(ctx context.Context, tenantID string, p domain.BatchListParams) ([]domain.Batch, bool, error) {
	var (
		cursorAt   *time.Time
		cursorRank int
	)
	if p.After != "" && !domain.IsBatchID(p.After) {
		return nil, false, errBadCursor(p.After)
	}
	if p.After != "" {
		var at time.Time
		var status string
		err := s.pool.QueryRow(ctx, q("BatchCursor"), p.After, tenantID).Scan(&at, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, false, errBadCursor(p.After)
		}
		if err != nil {
			return nil, false, fmt.Errorf("list batches: cursor: %w", err)
		}
		cursorAt = &at
		if p.ActiveFirst && domain.BatchStatus(status).Terminal() {
			cursorRank = 1
		}
	}
	statuses := p.Statuses
	if statuses == nil {
		statuses = []string{}
	}
	rows, err := s.pool.Query(ctx, q("ListBatches"), tenantID, statuses, LikePattern(p.Search), p.CreatedAfter, p.CreatedBefore,
		p.ActiveFirst, cursorRank, cursorAt, p.After, p.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list batches: %w", err)
	}
	batches, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Batch, error) {
		return scanBatch(r)
	})
	if err != nil {
		return nil, false, fmt.Errorf("list batches: %w", err)
	}
	more := len(batches) > p.Limit
	if more {
		batches = batches[:p.Limit]
	}
	return batches, more, nil
}

// scanBatch reads the BatchRow fragment (queries.sql), the row shape GetBatch and ListBatches share.
func scanBatch(r pgx.Row) (domain.Batch, error) {
	var b domain.Batch
	var meta, errs []byte
	var completed, failed, pending int64
	err := r.Scan(&b.ID, &b.TenantID, &b.InputFileID, &b.Endpoint,
		&b.CompletionWindow, &b.Status, &b.Model, &meta, &errs, &b.OutputFileID, &b.ErrorFileID, &b.Counts.Total,
		&b.Usage, &b.CreatedAt, &b.ExpiresAt, &b.InProgressAt, &b.FinalizingAt, &b.CompletedAt, &b.FailedAt,
		&b.ExpiredAt, &b.CancellingAt, &b.CancelledAt, &completed, &failed, &pending)
	if err != nil {
		return b, err
	}
	b.Counts.Completed, b.Counts.Failed, b.Counts.Pending = int(completed), int(failed), int(pending)
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &b.Metadata); err != nil {
			return b, fmt.Errorf("metadata: %w", err)
		}
	}
	if len(errs) > 0 {
		// Stored as {"object":"list","data":[...]} by FailBatch.
		var doc struct {
			Data []domain.BatchError `json:"data"`
		}
		if err := json.Unmarshal(errs, &doc); err == nil && doc.Data != nil {
			b.Errors = doc.Data
		} else if err := json.Unmarshal(errs, &b.Errors); err != nil {
			return b, fmt.Errorf("errors: %w", err)
		}
	}
	return b, nil
}

// ─── results ────────────────────────────────────────────────────────────────────────────────────

// BatchResults calls fn for the rows of the results view of a tenant's batch, in input order,
// fetching at most ResultPageSize rows per query.
func (s *Store) BatchResults(ctx context.Context, tenantID, batchID string, rq domain.ResultQuery, fn func(domain.BatchResult) error) error {
	after, skip, left := 0, rq.Offset, rq.Limit
	states := rq.States
	if states == nil {
		states = []string{}
	}
	pattern := LikePattern(rq.Search)
	for left > 0 {
		n := min(left, ResultPageSize)
		rows, err := s.pool.Query(ctx, q("BatchResultsPage"), batchID, tenantID, after, states, pattern, skip, n)
		if err != nil {
			return fmt.Errorf("batch results %s: %w", batchID, err)
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.BatchResult, error) {
			var x domain.BatchResult
			var state string
			err := r.Scan(&x.RequestID, &x.Line, &x.CustomID, &x.Model, &state, &x.Input, &x.StatusCode, &x.Body,
				&x.UpstreamRequestID, &x.ErrorCode, &x.ErrorMessage)
			x.State = domain.RequestState(state)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("batch results %s: %w", batchID, err)
		}
		for _, row := range page {
			if err := fn(row); err != nil {
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		after, skip, left = page[len(page)-1].Line, 0, left-len(page)
	}
	return nil
}

// ResultFile calls fn for the current rows of a batch's output file (output true) or error file,
// in the order they finished, skipping rq.Offset and returning at most rq.Limit; rq.States is
// ignored. It reads pages of ResultPageSize rows.
func (s *Store) ResultFile(ctx context.Context, tenantID, batchID string, output bool, rq domain.ResultQuery, fn func(domain.ResultRow) error) error {
	offset, left := rq.Offset, rq.Limit
	pattern := LikePattern(rq.Search)
	for left > 0 {
		n := min(left, ResultPageSize)
		rows, err := s.pool.Query(ctx, q("ResultFilePage"), batchID, tenantID, output, pattern, offset, n)
		if err != nil {
			return fmt.Errorf("result file %s: %w", batchID, err)
		}
		page, err := pgx.CollectRows(rows, scanResultRow)
		if err != nil {
			return fmt.Errorf("result file %s: %w", batchID, err)
		}
		for _, row := range page {
			if err := fn(row); err != nil {
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
	tag, err := s.pool.Exec(ctx, q("ReserveIdempotencyKey"), tenantID, route, key, hash, objectID, now)
	if err != nil {
		return rec, false, fmt.Errorf("reserve idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return domain.IdempotencyRecord{RequestHash: hash, ObjectID: objectID, CreatedAt: now}, true, nil
	}
	err = s.pool.QueryRow(ctx, q("GetIdempotencyKey"), tenantID, route, key).Scan(&rec.RequestHash, &rec.ObjectID, &rec.CreatedAt)
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
	if _, err := s.pool.Exec(ctx, q("ReleaseIdempotencyKey"), tenantID, route, key, objectID); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// ─── admin ──────────────────────────────────────────────────────────────────────────────────────

// DeleteModel removes a model. Requests that name it wait (they are never claimed) until it is
// configured again. A model that another model escalates to cannot be deleted.
func (s *Store) DeleteModel(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, q("DeleteModel"), name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return &domain.Error{Code: domain.EConflict, Param: "name",
			Message: fmt.Sprintf("Model %q is the escalation model of another model; change that model first.", name)}
	}
	if err != nil {
		return fmt.Errorf("delete model %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return &domain.Error{Code: domain.ENotFound, Param: "name", Message: fmt.Sprintf("Model %q is not configured.", name)}
	}
	return nil
}

// ListTenants returns every tenant, oldest first.
func (s *Store) ListTenants(ctx context.Context) ([]domain.Tenant, error) {
	rows, err := s.pool.Query(ctx, q("ListTenants"))
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[domain.Tenant])
}

// CreateTenant creates a tenant and returns it.
func (s *Store) CreateTenant(ctx context.Context, name string, now time.Time) (domain.Tenant, error) {
	rows, err := s.pool.Query(ctx, q("CreateTenant"), domain.NewTenantID(), name, now)
	if err != nil {
		return domain.Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[domain.Tenant])
}

// CreateAPIKey mints a key for an existing tenant and returns it with its description; the key is
// shown this once (only its SHA-256 hash is stored).
func (s *Store) CreateAPIKey(ctx context.Context, tenantID, name string, admin bool, now time.Time) (domain.APIKey, string, error) {
	rows, err := s.pool.Query(ctx, q("GetTenant"), tenantID)
	if err != nil {
		return domain.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	if _, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[domain.Tenant]); errors.Is(err, pgx.ErrNoRows) {
		return domain.APIKey{}, "", &domain.Error{Code: domain.ENotFound, Param: "tenant_id", Message: fmt.Sprintf("No tenant found with id '%s'.", tenantID)}
	} else if err != nil {
		return domain.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	key := domain.NewAPIKey()
	sum := sha256.Sum256([]byte(key))
	rows, err = s.pool.Query(ctx, q("CreateAPIKey"), tenantID, sum[:], key[:8], name, admin, now)
	if err != nil {
		return domain.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	k, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[domain.APIKey])
	if err != nil {
		return domain.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	return k, key, nil
}

// ListAPIKeys describes a tenant's keys, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]domain.APIKey, error) {
	rows, err := s.pool.Query(ctx, q("ListAPIKeys"), tenantID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[domain.APIKey])
}

// RevokeAPIKey revokes a key at once; revoking it again is a no-op that returns it.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64, now time.Time) (domain.APIKey, error) {
	rows, err := s.pool.Query(ctx, q("RevokeAPIKey"), id, now)
	if err != nil {
		return domain.APIKey{}, fmt.Errorf("revoke api key: %w", err)
	}
	k, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[domain.APIKey])
	if errors.Is(err, pgx.ErrNoRows) {
		return k, &domain.Error{Code: domain.ENotFound, Param: "id", Message: fmt.Sprintf("No API key found with id %d.", id)}
	}
	if err != nil {
		return k, fmt.Errorf("revoke api key: %w", err)
	}
	return k, nil
}
