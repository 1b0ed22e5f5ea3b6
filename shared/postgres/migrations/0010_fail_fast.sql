-- The fail-fast breaker: a batch whose first fail_fast_after finished requests all failed with
-- the same upstream 4xx status is stopped (fail_fast_at) and sealed as failed, its unsent lines
-- ending as batch_failed_fast. 0 is off; batches from before this migration have it off.
-- fail_fast_decided is set once the breaker has decided (it tripped, a line completed, or K
-- failures disagree), so that later failures of the batch cost one primary-key read.
ALTER TABLE batches ADD COLUMN fail_fast_after integer NOT NULL DEFAULT 0 CHECK (fail_fast_after >= 0);
ALTER TABLE batches ADD COLUMN fail_fast_decided boolean NOT NULL DEFAULT false;
ALTER TABLE batches ADD COLUMN fail_fast_at timestamptz;

-- batch_rows as 0008 defined it (0009 left it), plus fail_fast_after at the end (CREATE OR REPLACE VIEW may only
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
       coalesce(b.rerun_batch_id, '') AS rerun_batch_id,
       b.fail_fast_after
FROM batches b
CROSS JOIN LATERAL (
    SELECT sum(x.total)::bigint AS total, sum(x.completed)::bigint AS completed, sum(x.failed)::bigint AS failed
    FROM batch_counters x
    WHERE x.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;
