-- Request coalescing: lines of one tenant with the same model, endpoint and canonical body are
-- sent upstream once, and the one result is written to every such line still pending in that
-- tenant's running batches (see docs/architecture.md, "Coalescing"). Opt-in per batch
-- (batches.coalescing) with a per-tenant default (tenants.coalesce_default).
ALTER TABLE tenants ADD COLUMN coalesce_default boolean NOT NULL DEFAULT false;
ALTER TABLE batches ADD COLUMN coalescing boolean NOT NULL DEFAULT false;
-- Frozen at seal like completed and failed; a running batch's come from batch_counters.
ALTER TABLE batches ADD COLUMN coalesced integer NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN cached integer NOT NULL DEFAULT 0;

-- body_key: sha256 over (tenant, model, path, canonical body), written by populate only for a
-- batch with coalescing on; NULL otherwise, and every query keeps NULL on its old path.
-- coalesced_from: the request whose upstream result this one received (a follower).
-- cached: this one's result came from coalesce_cache, with no upstream call.
ALTER TABLE requests ADD COLUMN body_key bytea;
ALTER TABLE requests ADD COLUMN coalesced_from uuid;
ALTER TABLE requests ADD COLUMN cached boolean NOT NULL DEFAULT false;

-- The claim's guard (is a row with this key in flight?) and the propagation (the pending rows
-- with this key). Partial: only keyed rows, only while they wait or run.
CREATE INDEX requests_key_inflight_idx ON requests (body_key) WHERE body_key IS NOT NULL AND state IN ('claimed', 'processing');
CREATE INDEX requests_key_pending_idx ON requests (body_key) WHERE body_key IS NOT NULL AND state = 'pending';

-- The result cache (COALESCE_CACHE_TTL, off by default): a completed leader's answer by key, kept
-- until expires_at; the maintenance pass drops expired entries.
CREATE TABLE coalesce_cache (
    body_key            bytea PRIMARY KEY,
    tenant_id           text NOT NULL,
    response_status     integer NOT NULL,
    response_body       bytea,
    upstream_request_id text,
    created_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL
);
CREATE INDEX coalesce_cache_expires_idx ON coalesce_cache (expires_at);

-- The counters (0006) gain the coalesced and cached lines, kept by the same triggers, so the
-- batch object shows them at the cost of its other counts.
ALTER TABLE batch_counters ADD COLUMN coalesced bigint NOT NULL DEFAULT 0;
ALTER TABLE batch_counters ADD COLUMN cached bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION batch_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d record;
    s smallint := batch_counter_slot();
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR d IN
            SELECT n.batch_id, count(*) AS total,
                   count(*) FILTER (WHERE n.state = 'completed') AS completed,
                   count(*) FILTER (WHERE n.state IN ('failed', 'canceled', 'expired')) AS failed
            FROM new_rows n GROUP BY n.batch_id ORDER BY n.batch_id
        LOOP
            INSERT INTO batch_counters AS c (batch_id, slot, total, completed, failed)
            VALUES (d.batch_id, s, d.total, d.completed, d.failed)
            ON CONFLICT (batch_id, slot) DO UPDATE
            SET total = c.total + EXCLUDED.total, completed = c.completed + EXCLUDED.completed, failed = c.failed + EXCLUDED.failed;
        END LOOP;
    ELSE
        FOR d IN
            SELECT t.batch_id, sum(t.completed) AS completed, sum(t.failed) AS failed,
                   sum(t.coalesced) AS coalesced, sum(t.cached) AS cached
            FROM (SELECT n.batch_id, (n.state = 'completed')::int AS completed,
                         (n.state IN ('failed', 'canceled', 'expired'))::int AS failed,
                         (n.coalesced_from IS NOT NULL)::int AS coalesced, n.cached::int AS cached
                  FROM new_rows n
                  UNION ALL
                  SELECT o.batch_id, -(o.state = 'completed')::int, -(o.state IN ('failed', 'canceled', 'expired'))::int,
                         -(o.coalesced_from IS NOT NULL)::int, -(o.cached::int)
                  FROM old_rows o) t
            GROUP BY t.batch_id
            HAVING sum(t.completed) <> 0 OR sum(t.failed) <> 0 OR sum(t.coalesced) <> 0 OR sum(t.cached) <> 0
            ORDER BY t.batch_id
        LOOP
            INSERT INTO batch_counters AS c (batch_id, slot, completed, failed, coalesced, cached)
            VALUES (d.batch_id, s, d.completed, d.failed, d.coalesced, d.cached)
            ON CONFLICT (batch_id, slot) DO UPDATE
            SET completed = c.completed + EXCLUDED.completed, failed = c.failed + EXCLUDED.failed,
                coalesced = c.coalesced + EXCLUDED.coalesced, cached = c.cached + EXCLUDED.cached;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- batch_rows as 0013 left it (0010's columns, then api), plus coalescing and the coalesced and
-- cached counts at the end
-- (CREATE OR REPLACE VIEW may only append columns).
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
       b.api,
       b.coalescing,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.coalesced ELSE coalesce(c.coalesced, 0) END)::bigint AS coalesced,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.cached ELSE coalesce(c.cached, 0) END)::bigint AS cached
FROM batches b
CROSS JOIN LATERAL (
    SELECT sum(x.total)::bigint AS total, sum(x.completed)::bigint AS completed, sum(x.failed)::bigint AS failed,
           sum(x.coalesced)::bigint AS coalesced, sum(x.cached)::bigint AS cached
    FROM batch_counters x
    WHERE x.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;
