-- Queries that only the HTTP API uses: listings, pages of results, pending uploads, idempotency
-- keys and the admin surface. Like queries.sql, every read of a user-facing object is scoped by
-- tenant_id in the WHERE clause, so another tenant's row reads exactly like a missing one.

-- ─── files ─────────────────────────────────────────────────────────────────────────────────────

-- name: FileCursor :one
-- Resolves a list cursor (an object id) to its sort key. Deleted files still resolve, so a page
-- boundary that was deleted between two requests keeps working; another tenant's id does not.
SELECT created_at FROM files WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id);

-- name: ListFilesDesc :many
-- Newest first (OpenAI's default). purpose = '' lists every purpose, created_by_keys empty every
-- creator (a file with no recorded creator matches only then). Output and error files appear
-- once their batch has sealed them (cursor_at/cursor_id is the cursor, cursor_at NULL for the first page).
SELECT id, tenant_id, filename, purpose, bytes, status, coalesce(status_details, ''), coalesce(object_key, ''),
       line_count, coalesce(batch_id, ''), created_at, expires_at, created_by_key
FROM files
WHERE tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL
  AND (sqlc.arg(purpose)::text = '' OR purpose = sqlc.arg(purpose))
  AND NOT (batch_id IS NOT NULL AND object_key IS NULL)
  AND (cardinality(sqlc.arg(created_by_keys)::bigint[]) = 0 OR created_by_key = ANY (sqlc.arg(created_by_keys)::bigint[]))
  AND (sqlc.narg(cursor_at)::timestamptz IS NULL OR (created_at, id) < (sqlc.narg(cursor_at)::timestamptz, sqlc.arg(cursor_id)::text))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max);

-- name: ListFilesAsc :many
SELECT id, tenant_id, filename, purpose, bytes, status, coalesce(status_details, ''), coalesce(object_key, ''),
       line_count, coalesce(batch_id, ''), created_at, expires_at, created_by_key
FROM files
WHERE tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL
  AND (sqlc.arg(purpose)::text = '' OR purpose = sqlc.arg(purpose))
  AND NOT (batch_id IS NOT NULL AND object_key IS NULL)
  AND (cardinality(sqlc.arg(created_by_keys)::bigint[]) = 0 OR created_by_key = ANY (sqlc.arg(created_by_keys)::bigint[]))
  AND (sqlc.narg(cursor_at)::timestamptz IS NULL OR (created_at, id) > (sqlc.narg(cursor_at)::timestamptz, sqlc.arg(cursor_id)::text))
ORDER BY created_at, id
LIMIT sqlc.arg(max);

-- name: FinishUpload :execrows
-- An uploaded (pending) input file passed validation: it becomes processed with its real size
-- and the key of the content that was validated (object_key).
UPDATE files
SET status = 'processed', bytes = sqlc.arg(bytes), line_count = sqlc.arg(line_count), status_details = NULL, object_key = sqlc.arg(object_key)
WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND status = 'uploaded' AND deleted_at IS NULL;

-- name: DiscardFile :exec
-- Removes a file that must not be kept (its content failed validation, or it duplicates an
-- idempotent replay). The row stays for the audit trail but is invisible to every read.
UPDATE files
SET status = 'error', status_details = sqlc.arg(status_details), deleted_at = sqlc.arg(now)
WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL;

-- ─── batches ───────────────────────────────────────────────────────────────────────────────────

-- name: BatchCursor :one
SELECT created_at, status FROM batches WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id);

-- name: ListBatches :many
-- One page of a tenant's batches of one API (api), each as GetBatch reads it (the batch_rows view). Filters:
-- statuses (empty = all), pattern an ILIKE pattern over id, metadata and input filename
-- ('' = none), created_by_keys the creating API key ids (empty = any creator), input_file_id the
-- input file ('' = any: a file's batches), created_after/created_before bounds (NULL = none). With active_first unfinished
-- batches come first. The cursor (cursor_rank, cursor_at, cursor_id; cursor_at NULL for the first
-- page) continues after the last item of the previous page in the same order.
SELECT sqlc.embed(b)
FROM batch_rows b
LEFT JOIN files f ON f.id = b.input_file_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN sqlc.arg(active_first)::bool AND b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN 1 ELSE 0 END AS rank
) k
WHERE b.tenant_id = sqlc.arg(tenant_id) AND b.deleted_at IS NULL AND b.api = sqlc.arg(api)
  AND (cardinality(sqlc.arg(statuses)::text[]) = 0 OR b.status = ANY (sqlc.arg(statuses)::text[]))
  AND (sqlc.arg(pattern)::text = '' OR b.id ILIKE sqlc.arg(pattern) ESCAPE '\' OR b.metadata::text ILIKE sqlc.arg(pattern) ESCAPE '\'
       OR coalesce(f.filename, '') ILIKE sqlc.arg(pattern) ESCAPE '\')
  AND (cardinality(sqlc.arg(created_by_keys)::bigint[]) = 0 OR b.created_by_key = ANY (sqlc.arg(created_by_keys)::bigint[]))
  AND (sqlc.arg(input_file_id)::text = '' OR b.input_file_id = sqlc.arg(input_file_id)::text)
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR b.created_at >= sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR b.created_at < sqlc.narg(created_before))
  AND (sqlc.narg(cursor_at)::timestamptz IS NULL
       OR k.rank > sqlc.arg(cursor_rank)::int
       OR (k.rank = sqlc.arg(cursor_rank)::int AND (b.created_at, b.id) < (sqlc.narg(cursor_at)::timestamptz, sqlc.arg(cursor_id)::text)))
ORDER BY k.rank, b.created_at DESC, b.id DESC
LIMIT sqlc.arg(max);

-- name: ListBatchesBefore :many
-- The page of a tenant's batches of one API right before the cursor batch in ListBatches' order
-- (newest first): the batches newer than it, nearest first, so the caller reverses the page.
-- Anthropic's before_id; no filters, as its list has none.
SELECT sqlc.embed(b)
FROM batch_rows b
WHERE b.tenant_id = sqlc.arg(tenant_id) AND b.deleted_at IS NULL AND b.api = sqlc.arg(api)
  AND (b.created_at, b.id) > (sqlc.arg(cursor_at)::timestamptz, sqlc.arg(cursor_id)::text)
ORDER BY b.created_at, b.id
LIMIT sqlc.arg(max);

-- name: BatchRequestStates :many
-- How many requests of each of a tenant's batches are in each state: the request_counts of
-- message batches, which tell canceled and expired requests from failed ones (batch_counters do
-- not). Served by requests_batch_state_idx (an index-only scan of each batch's rows).
SELECT r.batch_id, r.state, count(*)::bigint AS n
FROM requests r
WHERE r.batch_id = ANY (sqlc.arg(batch_ids)::text[]) AND r.tenant_id = sqlc.arg(tenant_id)
GROUP BY r.batch_id, r.state;

-- name: BatchResultsPage :many
-- The merged view of a batch (GET /batches/{id}/results): input and outcome per line, in input
-- order, after after_line, skipping skip matching rows. states filters (empty = all), pattern is an
-- ILIKE pattern on custom_id ('' = none). started_at and finished_at are the final attempt's (a
-- retry clears both), for the line's latency.
SELECT r.id::text, r.line, r.custom_id, r.model, r.state, r.body, coalesce(r.response_status, 0), r.response_body,
       coalesce(r.upstream_request_id, ''), coalesce(r.error_code, ''), coalesce(r.error_message, ''),
       r.started_at, r.finished_at
FROM requests r
WHERE r.batch_id = sqlc.arg(batch_id) AND r.tenant_id = sqlc.arg(tenant_id) AND r.line > sqlc.arg(after_line)
  AND (cardinality(sqlc.arg(states)::text[]) = 0 OR r.state = ANY (sqlc.arg(states)::text[]))
  AND (sqlc.arg(pattern)::text = '' OR r.custom_id ILIKE sqlc.arg(pattern) ESCAPE '\')
ORDER BY r.line
OFFSET sqlc.arg(skip)
LIMIT sqlc.arg(max);

-- name: ResultFilePage :many
-- A page of a batch's output file (output true: completed rows) or error file (other terminal rows)
-- as it stands, for partial downloads while the batch runs, so that a file read with offset =
-- X-Last-Line only ever grows at the end. Rows come in the order of the transactions that ended
-- them (finished_xid; rows ended before it existed first, by finish time; line breaks ties). While
-- the batch is not sealed, a row shows only once its transaction is older than every transaction
-- still running in the cluster (below the snapshot's xmin): a row that commits later has an xid
-- at least that xmin, so it sorts after every row shown, even when its finished_at is earlier
-- (migration 0009). Rows so wait at most as long as the oldest running write transaction.
SELECT r.id::text, r.line, r.custom_id, r.state, coalesce(r.response_status, 0), r.response_body,
       coalesce(r.upstream_request_id, ''), coalesce(r.error_code, ''), coalesce(r.error_message, ''),
       (r.coalesced_from IS NOT NULL OR r.cached)::bool AS shared
FROM requests r
JOIN batches b ON b.id = r.batch_id
WHERE r.batch_id = sqlc.arg(batch_id) AND r.tenant_id = sqlc.arg(tenant_id)
  AND CASE WHEN sqlc.arg(output)::bool THEN r.state = 'completed' ELSE r.state IN ('failed', 'canceled', 'expired') END
  AND (sqlc.arg(pattern)::text = '' OR r.custom_id ILIKE sqlc.arg(pattern) ESCAPE '\')
  AND (b.status IN ('completed', 'failed', 'expired', 'cancelled') OR r.finished_xid IS NULL
       OR r.finished_xid < (SELECT pg_snapshot_xmin(pg_current_snapshot())))
ORDER BY r.finished_xid NULLS FIRST, r.finished_at NULLS LAST, r.line
OFFSET sqlc.arg(skip)
LIMIT sqlc.arg(max);

-- ─── idempotency keys ──────────────────────────────────────────────────────────────────────────

-- name: ReserveIdempotencyKey :execrows
-- Claims a key for an object id before the object exists; zero rows means the key was taken.
INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, object_id, created_at)
VALUES (sqlc.arg(tenant_id), sqlc.arg(route), sqlc.arg(key), sqlc.arg(request_hash), sqlc.arg(object_id), sqlc.arg(created_at))
ON CONFLICT (tenant_id, route, key) DO NOTHING;

-- name: GetIdempotencyKey :one
SELECT request_hash, object_id, created_at FROM idempotency_keys WHERE tenant_id = sqlc.arg(tenant_id) AND route = sqlc.arg(route) AND key = sqlc.arg(key);

-- name: ReleaseIdempotencyKey :exec
-- Frees a key whose request failed before creating its object, so that a retry can run.
DELETE FROM idempotency_keys WHERE tenant_id = sqlc.arg(tenant_id) AND route = sqlc.arg(route) AND key = sqlc.arg(key) AND object_id = sqlc.arg(object_id);

-- ─── admin ─────────────────────────────────────────────────────────────────────────────────────

-- name: DeleteModel :execrows
DELETE FROM models WHERE name = sqlc.arg(name);

-- name: ListTenants :many
SELECT id, name, created_at, coalesce_default FROM tenants ORDER BY created_at, id;

-- name: GetTenant :one
SELECT id, name, created_at, coalesce_default FROM tenants WHERE id = sqlc.arg(id);

-- name: CreateTenant :one
INSERT INTO tenants (id, name, created_at, coalesce_default) VALUES (sqlc.arg(id), sqlc.arg(name), sqlc.arg(created_at), sqlc.arg(coalesce_default))
RETURNING id, name, created_at, coalesce_default;

-- name: SetTenantCoalesceDefault :one
-- The coalescing default of the tenant's batches created from now on; batches already created keep theirs.
UPDATE tenants SET coalesce_default = sqlc.arg(coalesce_default) WHERE id = sqlc.arg(id)
RETURNING id, name, created_at, coalesce_default;

-- name: CreateAPIKey :one
INSERT INTO api_keys (tenant_id, key_hash, prefix, name, is_admin, created_at)
VALUES (sqlc.arg(tenant_id), sqlc.arg(key_hash), sqlc.arg(prefix), sqlc.arg(name), sqlc.arg(is_admin), sqlc.arg(created_at))
RETURNING id, tenant_id, prefix, name, is_admin, created_at, revoked_at;

-- name: ListAPIKeys :many
SELECT id, tenant_id, prefix, name, is_admin, created_at, revoked_at
FROM api_keys WHERE tenant_id = sqlc.arg(tenant_id) ORDER BY created_at, id;

-- name: RevokeAPIKey :one
-- Revocation is immediate: Authenticate only accepts keys whose revoked_at is NULL. Revoking
-- twice keeps the first time.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, sqlc.arg(now)) WHERE id = sqlc.arg(id)
RETURNING id, tenant_id, prefix, name, is_admin, created_at, revoked_at;

-- name: SetFileExpiry :exec
UPDATE files SET expires_at = sqlc.arg(expires_at) WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL;

-- name: BatchTimeline :many
-- A batch's finished lines by when they finished, in n equal spans from start to stop numbered
-- 1..n (width_bucket: 0 before start, n+1 from stop on; the caller folds those into the ends).
-- failed counts failed, canceled and expired lines, as request_counts do. Served by
-- requests_batch_state_idx plus a heap fetch of finished_at per finished line.
SELECT width_bucket(extract(epoch FROM coalesce(r.finished_at, sqlc.arg(stop)::timestamptz))::float8,
                    extract(epoch FROM sqlc.arg(start)::timestamptz)::float8,
                    extract(epoch FROM sqlc.arg(stop)::timestamptz)::float8, sqlc.arg(n)::int)::int AS span,
       count(*) FILTER (WHERE r.state = 'completed')::bigint AS completed,
       count(*) FILTER (WHERE r.state IN ('failed', 'canceled', 'expired'))::bigint AS failed
FROM requests r
WHERE r.batch_id = sqlc.arg(batch_id) AND r.tenant_id = sqlc.arg(tenant_id)
  AND r.state IN ('completed', 'failed', 'canceled', 'expired')
GROUP BY 1
ORDER BY 1;
