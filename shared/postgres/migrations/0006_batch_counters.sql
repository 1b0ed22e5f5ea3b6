-- 0006: per-batch request counters, so that reading a batch costs the same however many
-- requests it has.
-- batch_rows (0005) counted a running batch's requests on every GetBatch and ListBatches: a
-- poller of a 50,000-request batch scanned 50,000 rows per poll, and 16 pollers took the CPU the
-- engine needed. batch_counters holds the counts instead, kept exact by triggers on requests, so
-- every path that changes a request's state (populate's COPY, finish, rescue, cancel, expiry,
-- retry of failed requests, and any added later) keeps them without having to remember.
--
-- The counters are rows of their own, not columns of batches, on purpose: a cancel holds the
-- batch row while it ends the batch's requests, and a worker finishing a request of that batch
-- would then wait for the batch row while holding its request row (a deadlock). Counter rows are
-- only written by the triggers, after the request rows of the statement are locked.
--
-- pending (unfinished: pending, claimed, processing) is total − completed − failed. Rows are
-- removed with their batch (ON DELETE CASCADE). The purge deleting the requests of a deleted
-- batch does not touch them: a deleted batch is never shown, and a sealed one shows the counts
-- frozen on batches.
CREATE TABLE batch_counters (
    batch_id    text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    slot        smallint NOT NULL,
    total       bigint NOT NULL DEFAULT 0,
    completed   bigint NOT NULL DEFAULT 0,
    failed      bigint NOT NULL DEFAULT 0,  -- failed, canceled and expired, as OpenAI counts them
    PRIMARY KEY (batch_id, slot)
) WITH (fillfactor = 50); -- room for HOT updates: a running batch's rows are rewritten by every finish

-- A batch's counts are spread over up to 16 rows (slots), each written by the sessions whose
-- backend pid falls in it, and summed when read. With one row per batch every transaction that
-- finishes a request of the batch would hold that row until its commit is flushed, so the
-- finishes of a batch (one transaction each) would commit one flush at a time instead of sharing
-- flushes; with slots, finishes on different connections rarely meet. A slot row's counts may be
-- negative (a retry of failed requests in another session's slot); only the sum means anything.
CREATE FUNCTION batch_counter_slot() RETURNS smallint LANGUAGE sql STABLE PARALLEL RESTRICTED
    AS $$ SELECT (pg_backend_pid() % 16)::smallint $$;

-- One function for both triggers. Deltas are summed per batch over the statement's transition
-- tables (new rows count +1 in their state, old rows −1), so a statement updating many rows of
-- many batches writes each batch's slot row once, and a batch whose net delta is zero is not
-- written (no row lock, no dead tuple): a claim (pending → claimed → processing) or a retry with
-- back-off (processing → pending) writes nothing. Rows are written in batch_id order (one slot
-- per statement), so two statements never lock two counter rows in opposite orders.
CREATE FUNCTION batch_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
            SELECT t.batch_id, sum(t.completed) AS completed, sum(t.failed) AS failed
            FROM (SELECT n.batch_id, (n.state = 'completed')::int AS completed,
                         (n.state IN ('failed', 'canceled', 'expired'))::int AS failed
                  FROM new_rows n
                  UNION ALL
                  SELECT o.batch_id, -(o.state = 'completed')::int, -(o.state IN ('failed', 'canceled', 'expired'))::int
                  FROM old_rows o) t
            GROUP BY t.batch_id
            HAVING sum(t.completed) <> 0 OR sum(t.failed) <> 0
            ORDER BY t.batch_id
        LOOP
            INSERT INTO batch_counters AS c (batch_id, slot, completed, failed)
            VALUES (d.batch_id, s, d.completed, d.failed)
            ON CONFLICT (batch_id, slot) DO UPDATE
            SET completed = c.completed + EXCLUDED.completed, failed = c.failed + EXCLUDED.failed;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- Created before the backfill: CREATE TRIGGER locks requests against writes until this migration
-- commits, so the backfill's counts and the triggers' deltas neither miss nor double a change.
CREATE TRIGGER requests_count_inserts AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION batch_counters_apply();
CREATE TRIGGER requests_count_updates AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION batch_counters_apply();

INSERT INTO batch_counters (batch_id, slot, total, completed, failed)
SELECT r.batch_id, 0, count(*),
       count(*) FILTER (WHERE r.state = 'completed'),
       count(*) FILTER (WHERE r.state IN ('failed', 'canceled', 'expired'))
FROM requests r
GROUP BY r.batch_id;

-- batch_rows as 0005 defined it (same columns, same types), reading a running batch's counts
-- from its batch_counters rows (at most 16, however many requests it has) instead of counting
-- its requests. A batch with no counter row has no request yet (validating, or failed
-- validation): every count is 0. A sealed batch still shows its frozen columns, and nothing
-- pending; its counter rows are not read (the status test is a one-time filter of the subquery),
-- so a list of many sealed batches reads none.
CREATE OR REPLACE VIEW batch_rows AS
SELECT b.id, b.tenant_id, coalesce(b.input_file_id, '') AS input_file_id, b.endpoint, b.completion_window, b.status,
       coalesce(b.model, '') AS model, b.metadata, b.errors, coalesce(b.output_file_id, '') AS output_file_id,
       coalesce(b.error_file_id, '') AS error_file_id, b.total, b.usage, b.created_at, b.expires_at, b.in_progress_at,
       b.finalizing_at, b.completed_at, b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.completed ELSE coalesce(c.completed, 0) END)::bigint AS completed,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN b.failed ELSE coalesce(c.failed, 0) END)::bigint AS failed,
       (CASE WHEN b.status IN ('completed', 'failed', 'expired', 'cancelled') THEN 0
             ELSE coalesce(c.total - c.completed - c.failed, 0) END)::bigint AS pending,
       b.deleted_at
FROM batches b
CROSS JOIN LATERAL (
    SELECT sum(x.total)::bigint AS total, sum(x.completed)::bigint AS completed, sum(x.failed)::bigint AS failed
    FROM batch_counters x
    WHERE x.batch_id = b.id AND b.status NOT IN ('completed', 'failed', 'expired', 'cancelled')
) c;
