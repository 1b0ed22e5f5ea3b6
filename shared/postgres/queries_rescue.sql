-- Deadline rescue (migration 0008): extending a running batch's deadline, and rerunning the
-- lines of an ended batch that did not complete as a new batch.

-- name: ExtendBatch :execrows
-- Moves a running batch's deadline to created_at + the new window. Guarded: the batch is still
-- running (validating or in_progress), its deadline has not passed nor been acted on by the
-- expiry sweep (expired_at), and the new deadline is later than the current one, so an extension
-- never shortens a deadline and never revives a batch the sweep is already expiring.
UPDATE batches
SET completion_window = sqlc.arg(completion_window), expires_at = sqlc.arg(expires_at)
WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL
  AND status IN ('validating', 'in_progress') AND expired_at IS NULL
  AND expires_at > sqlc.arg(now) AND expires_at < sqlc.arg(expires_at);

-- name: LockRerunSource :one
-- The batch a rerun is made from, locked for the rerun's transaction so that two reruns of it
-- (or a retry of its failed lines) take turns. input_live: its input file is neither deleted nor
-- past its expiry, so the prompts copied into its requests are still there (the purge erases
-- them when the file goes, ErasePromptsOfFile).
SELECT b.status, coalesce(b.rerun_batch_id, '') AS rerun_batch_id, coalesce(b.input_file_id, '') AS input_file_id,
       b.endpoint, b.completion_window, b.metadata,
       (f.id IS NOT NULL AND f.deleted_at IS NULL AND (f.expires_at IS NULL OR f.expires_at > sqlc.arg(now)::timestamptz))::bool AS input_live
FROM batches b
LEFT JOIN files f ON f.id = b.input_file_id
WHERE b.id = sqlc.arg(id) AND b.tenant_id = sqlc.arg(tenant_id) AND b.deleted_at IS NULL
FOR UPDATE OF b;

-- name: CopyUnfinishedRequests :one
-- Copies the lines of the source batch that did not complete into the new batch as pending
-- requests, keeping their line numbers and custom_ids (error lines and output lines name the same
-- line of the same input file), and returns how many it copied and their models in order of
-- first line (what StartBatch records, as populate does).
WITH ins AS (
    -- body_key comes along: the rerun coalesces as its source did (the key does not depend on the batch).
    INSERT INTO requests (id, batch_id, tenant_id, line, custom_id, model, path, body, body_bytes, body_key)
    SELECT gen_random_uuid(), sqlc.arg(new_batch_id), r.tenant_id, r.line, r.custom_id, r.model, r.path, r.body, r.body_bytes, r.body_key
    FROM requests r
    WHERE r.batch_id = sqlc.arg(source_id) AND r.state IN ('failed', 'canceled', 'expired')
    ORDER BY r.line
    RETURNING line, model
)
SELECT (SELECT count(*) FROM ins)::int AS copied,
       coalesce((SELECT array_agg(m.model ORDER BY m.first_line)
                 FROM (SELECT model, min(line) AS first_line FROM ins GROUP BY model) m), '{}')::text[] AS models;

-- name: LinkRerun :execrows
-- Names the rerun on its source batch, once: a second rerun of the same batch finds it.
UPDATE batches SET rerun_batch_id = sqlc.arg(rerun_batch_id)
WHERE id = sqlc.arg(id) AND rerun_batch_id IS NULL;

-- name: MarkRerun :execrows
-- Names the source on the rerun batch.
UPDATE batches SET rerun_of = sqlc.arg(rerun_of) WHERE id = sqlc.arg(id) AND status = 'validating';
