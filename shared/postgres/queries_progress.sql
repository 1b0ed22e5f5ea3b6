-- Batch progress samples (migration 0011).

-- name: SampleProgress :execrows
-- One sample of every running batch's finished lines, from its counters (batch_rows).
INSERT INTO batch_progress (batch_id, at, done)
SELECT b.id, sqlc.arg(now)::timestamptz, b.completed + b.failed
FROM batch_rows b
WHERE b.status = 'in_progress' AND b.deleted_at IS NULL
ON CONFLICT (batch_id, at) DO NOTHING;

-- name: PruneProgress :execrows
-- Samples older than before, and those of batches that are no longer running.
DELETE FROM batch_progress p
WHERE p.at < sqlc.arg(before)::timestamptz
   OR NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = p.batch_id AND b.status = 'in_progress');

-- name: ProgressSince :many
-- The oldest sample at or after since of each of the batches.
SELECT DISTINCT ON (p.batch_id) p.batch_id, p.at, p.done
FROM batch_progress p
WHERE p.batch_id = ANY (sqlc.arg(ids)::text[]) AND p.at >= sqlc.arg(since)::timestamptz
ORDER BY p.batch_id, p.at;
