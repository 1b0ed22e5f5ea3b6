-- Message batches (Anthropic's Message Batches API, POST /v1/messages/batches) are ordinary
-- batches whose endpoint is /v1/messages. api records which API created a batch, so that each
-- API lists only its own; every batch from before this migration was created through OpenAI's.
ALTER TABLE batches ADD COLUMN api text NOT NULL DEFAULT 'openai' CHECK (api IN ('openai', 'anthropic'));

-- batch_rows as 0010 defined it (0011 and 0012 left it), plus api at the end (CREATE OR REPLACE
-- VIEW may only append columns).
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
       b.fail_fast_after,
       b.api
FROM batches b
CROSS JOIN LATERAL (
    SELECT sum(x.total)::bigint AS total, sum(x.completed)::bigint AS completed, sum(x.failed)::bigint AS failed
    FROM batch_counters x
    WHERE x.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;

-- A tenant's batches of one API, newest first (the lists of both APIs).
CREATE INDEX batches_tenant_api_idx ON batches (tenant_id, api, created_at DESC, id DESC) WHERE deleted_at IS NULL;
