-- Per-key attribution: the id of the API key (api_keys.id, never the key or its hash) that
-- created a file or a batch, so that teams sharing a tenant can list their own work and an admin
-- can tell whose batch is loading a model. A batch's output and error files carry the batch's
-- creator. Nullable: rows from before this migration, and files the system writes without a
-- caller, stay NULL ("unknown"). No foreign key: keys are revoked, never deleted, and an
-- attribution is a record of who it was, not a constraint to enforce on every insert.
ALTER TABLE files ADD COLUMN created_by_key bigint;
ALTER TABLE batches ADD COLUMN created_by_key bigint;

-- The created_by_key list filters: tenant, key, then each list's order key (ListFilesDesc/Asc
-- and ListBatches walk created_at, id), for live rows that have a creator.
CREATE INDEX files_tenant_key_created_idx ON files (tenant_id, created_by_key, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND created_by_key IS NOT NULL;
CREATE INDEX batches_tenant_key_created_idx ON batches (tenant_id, created_by_key, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND created_by_key IS NOT NULL;

-- batch_rows as 0006 defined it, plus created_by_key at the end (CREATE OR REPLACE VIEW may only
-- append columns), so GetBatch and ListBatches show it.
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
       b.created_by_key
FROM batches b
CROSS JOIN LATERAL (
    SELECT sum(x.total)::bigint AS total, sum(x.completed)::bigint AS completed, sum(x.failed)::bigint AS failed
    FROM batch_counters x
    WHERE x.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;
