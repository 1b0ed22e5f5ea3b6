-- Deadline rescue: a rerun batch runs again exactly the lines of an ended batch that did not
-- complete (failed, canceled, expired), copied from its requests. rerun_of names the batch it
-- was made from; rerun_batch_id on that batch names its rerun, so a repeated rerun call answers
-- the same batch instead of sending the lines twice. Plain ids, no foreign keys: either batch may
-- be deleted and purged on its own, and the link is a record, not a constraint (as
-- created_by_key in 0007).
ALTER TABLE batches ADD COLUMN rerun_of text;
ALTER TABLE batches ADD COLUMN rerun_batch_id text;

-- batch_rows as 0007 defined it, plus the two links at the end (CREATE OR REPLACE VIEW may only
-- append columns).
CREATE OR REPLACE VIEW batch_rows AS
SELECT b.id, b.tenant_id, coalesce(b.input_file_id, '') AS input_file_id, b.endpoint, b.completion_window, b.status,
       coalesce(b.model, '') AS model, b.metadata, b.errors, coalesce(b.output_file_id, '') AS output_file_id,
       coalesce(b.error_file_id, '') AS error_file_id, b.total, b.usage, b.created_at, b.expires_at, b.in_progress_at,
       b.finalizing_at, b.completed_at, b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.completed ELSE coalesce(c.completed, 0) END)::bigint AS completed,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.failed ELSE coalesce(c.failed, 0) END)::bigint AS failed,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN 0
             ELSE coalesce(c.total - c.completed - c.failed, 0) END)::bigint AS pending,
       b.deleted_at,
       b.created_by_key,
       coalesce(b.rerun_of, '') AS rerun_of,
       coalesce(b.rerun_batch_id, '') AS rerun_batch_id
FROM batches b
CROSS JOIN LATERAL (
    SELECT sum(x.total)::bigint AS total, sum(x.completed)::bigint AS completed, sum(x.failed)::bigint AS failed
    FROM batch_counters x
    WHERE x.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;
