-- 0005: one row shape for a batch as the API reads it.
-- GetBatch and ListBatches both select from this view, so the single read and the list cannot
-- drift apart, and the query layer generated from the SQL (sqlc) gives both the same Go row type.
-- A plain view is inlined by the planner: a query over it plans exactly as the same SELECT
-- written out. Nullable ids are coalesced (input_file_id is NULL once the purge dropped the input
-- file). Counts are the frozen columns once the batch is sealed, live counts (c) while it runs;
-- the casts only name the type the CASE already has. deleted_at is for the readers' filters.
CREATE VIEW batch_rows AS
SELECT b.id, b.tenant_id, coalesce(b.input_file_id, '') AS input_file_id, b.endpoint, b.completion_window, b.status,
       coalesce(b.model, '') AS model, b.metadata, b.errors, coalesce(b.output_file_id, '') AS output_file_id,
       coalesce(b.error_file_id, '') AS error_file_id, b.total, b.usage, b.created_at, b.expires_at, b.in_progress_at,
       b.finalizing_at, b.completed_at, b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.completed ELSE c.completed END)::bigint AS completed,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.failed ELSE c.failed END)::bigint AS failed,
       c.pending, b.deleted_at
FROM batches b
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE r.state = 'completed') AS completed,
           count(*) FILTER (WHERE r.state IN ('failed', 'canceled', 'expired')) AS failed,
           count(*) FILTER (WHERE r.state IN ('pending', 'claimed', 'processing')) AS pending
    FROM requests r
    WHERE r.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;
