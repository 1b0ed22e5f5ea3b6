-- Queries that only the HTTP API uses: listings, pages of results, pending uploads, idempotency
-- keys and the admin surface. Like queries.sql, every read of a user-facing object is scoped by
-- tenant_id in the WHERE clause, so another tenant's row reads exactly like a missing one.

-- ─── files ─────────────────────────────────────────────────────────────────────────────────────

-- name: FileCursor
-- Resolves a list cursor (an object id) to its sort key. Deleted files still resolve, so a page
-- boundary that was deleted between two requests keeps working; another tenant's id does not.
SELECT created_at FROM files WHERE id = $1 AND tenant_id = $2;

-- name: ListFilesDesc
-- Newest first (OpenAI's default). $3 = '' lists every purpose. Output and error files appear
-- once their batch has sealed them ($4/$5 is the cursor, NULL for the first page).
SELECT id, tenant_id, filename, purpose, bytes, status, coalesce(status_details, ''), coalesce(object_key, ''),
       line_count, coalesce(batch_id, ''), created_at, expires_at
FROM files
WHERE tenant_id = $1 AND deleted_at IS NULL
  AND ($3::text = '' OR purpose = $3)
  AND NOT (batch_id IS NOT NULL AND object_key IS NULL)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::text))
ORDER BY created_at DESC, id DESC
LIMIT $2;

-- name: ListFilesAsc
SELECT id, tenant_id, filename, purpose, bytes, status, coalesce(status_details, ''), coalesce(object_key, ''),
       line_count, coalesce(batch_id, ''), created_at, expires_at
FROM files
WHERE tenant_id = $1 AND deleted_at IS NULL
  AND ($3::text = '' OR purpose = $3)
  AND NOT (batch_id IS NOT NULL AND object_key IS NULL)
  AND ($4::timestamptz IS NULL OR (created_at, id) > ($4::timestamptz, $5::text))
ORDER BY created_at, id
LIMIT $2;

-- name: FinishUpload
-- An uploaded (pending) input file passed validation: it becomes processed with its real size
-- and the key of the content that was validated ($5).
UPDATE files
SET status = 'processed', bytes = $3, line_count = $4, status_details = NULL, object_key = $5
WHERE id = $1 AND tenant_id = $2 AND status = 'uploaded' AND deleted_at IS NULL;

-- name: DiscardFile
-- Removes a file that must not be kept (its content failed validation, or it duplicates an
-- idempotent replay). The row stays for the audit trail but is invisible to every read.
UPDATE files
SET status = 'error', status_details = $3, deleted_at = $4
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL;

-- ─── batches ───────────────────────────────────────────────────────────────────────────────────

-- name: BatchCursor
SELECT created_at, status FROM batches WHERE id = $1 AND tenant_id = $2;

-- name: ListBatches
-- One page of a tenant's batches, each as GetBatch reads it (BatchRow). Filters: $2 statuses
-- (empty = all), $3 an ILIKE pattern over id, metadata and input filename ('' = none), $4/$5
-- created_at bounds. With $6 (active_first) unfinished batches come first. The cursor ($7 rank,
-- $8 created_at, $9 id; $8 NULL for the first page) continues after the last item of the
-- previous page in the same order.
{{BatchRow}}
LEFT JOIN files f ON f.id = b.input_file_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN $6::bool AND b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN 1 ELSE 0 END AS rank
) k
WHERE b.tenant_id = $1 AND b.deleted_at IS NULL
  AND (cardinality($2::text[]) = 0 OR b.status = ANY ($2::text[]))
  AND ($3::text = '' OR b.id ILIKE $3 ESCAPE '\' OR b.metadata::text ILIKE $3 ESCAPE '\'
       OR coalesce(f.filename, '') ILIKE $3 ESCAPE '\')
  AND ($4::timestamptz IS NULL OR b.created_at >= $4)
  AND ($5::timestamptz IS NULL OR b.created_at < $5)
  AND ($8::timestamptz IS NULL
       OR k.rank > $7::int
       OR (k.rank = $7::int AND (b.created_at, b.id) < ($8::timestamptz, $9::text)))
ORDER BY k.rank, b.created_at DESC, b.id DESC
LIMIT $10;

-- name: BatchResultsPage
-- The merged view of a batch (GET /batches/{id}/results): input and outcome per line, in input
-- order, after line $3, skipping $6 matching rows. $4 filters states (empty = all), $5 is an
-- ILIKE pattern on custom_id ('' = none).
SELECT r.id::text, r.line, r.custom_id, r.model, r.state, r.body, coalesce(r.response_status, 0), r.response_body,
       coalesce(r.upstream_request_id, ''), coalesce(r.error_code, ''), coalesce(r.error_message, '')
FROM requests r
WHERE r.batch_id = $1 AND r.tenant_id = $2 AND r.line > $3
  AND (cardinality($4::text[]) = 0 OR r.state = ANY ($4::text[]))
  AND ($5::text = '' OR r.custom_id ILIKE $5 ESCAPE '\')
ORDER BY r.line
OFFSET $6
LIMIT $7;

-- name: ResultFilePage
-- A page of a batch's output file ($3 true: completed rows) or error file (other terminal rows)
-- as it stands, for partial downloads while the batch runs. Rows come in the order they finished
-- (line breaks ties), so a file read with offset = X-Last-Line only ever grows at the end.
SELECT r.id::text, r.line, r.custom_id, r.state, coalesce(r.response_status, 0), r.response_body,
       coalesce(r.upstream_request_id, ''), coalesce(r.error_code, ''), coalesce(r.error_message, '')
FROM requests r
WHERE r.batch_id = $1 AND r.tenant_id = $2
  AND CASE WHEN $3::bool THEN r.state = 'completed' ELSE r.state IN ('failed', 'canceled', 'expired') END
  AND ($4::text = '' OR r.custom_id ILIKE $4 ESCAPE '\')
ORDER BY r.finished_at NULLS LAST, r.line
OFFSET $5
LIMIT $6;

-- ─── idempotency keys ──────────────────────────────────────────────────────────────────────────

-- name: ReserveIdempotencyKey
-- Claims a key for an object id before the object exists; zero rows means the key was taken.
INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, object_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, route, key) DO NOTHING;

-- name: GetIdempotencyKey
SELECT request_hash, object_id, created_at FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3;

-- name: ReleaseIdempotencyKey
-- Frees a key whose request failed before creating its object, so that a retry can run.
DELETE FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3 AND object_id = $4;

-- ─── admin ─────────────────────────────────────────────────────────────────────────────────────

-- name: DeleteModel
DELETE FROM models WHERE name = $1;

-- name: ListTenants
SELECT id, name, created_at FROM tenants ORDER BY created_at, id;

-- name: GetTenant
SELECT id, name, created_at FROM tenants WHERE id = $1;

-- name: CreateTenant
INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) RETURNING id, name, created_at;

-- name: CreateAPIKey
INSERT INTO api_keys (tenant_id, key_hash, prefix, name, is_admin, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, tenant_id, prefix, name, is_admin, created_at, revoked_at;

-- name: ListAPIKeys
SELECT id, tenant_id, prefix, name, is_admin, created_at, revoked_at
FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id;

-- name: RevokeAPIKey
-- Revocation is immediate: Authenticate only accepts keys whose revoked_at is NULL. Revoking
-- twice keeps the first time.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1
RETURNING id, tenant_id, prefix, name, is_admin, created_at, revoked_at;

-- name: SetFileExpiry
UPDATE files SET expires_at = $3 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL;
