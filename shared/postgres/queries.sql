-- Every runtime query of the store, by name. sqlc (sqlc.yaml, `make sqlc`) turns each into a typed
-- method of shared/postgres/internal/pgq named after "-- name:", checked against the schema the
-- migrations build; parameters are named (sqlc.arg, sqlc.narg when NULL is meant). State changes
-- are single guarded statements: the WHERE clause names the state (and, for requests, the
-- attempt) the row must be in, and a statement that matches no row is reported as
-- domain.ErrStateConflict by the caller.

-- ─── tenants and keys ──────────────────────────────────────────────────────────────────────────

-- name: Authenticate :one
SELECT k.id, k.tenant_id, k.is_admin
FROM api_keys k
WHERE k.key_hash = sqlc.arg(key_hash) AND k.revoked_at IS NULL;

-- ─── models ────────────────────────────────────────────────────────────────────────────────────

-- name: UpsertModel :exec
INSERT INTO models (name, base_url, credential_ref, concurrency_limit, escalation_model, escalation_threshold_secs)
VALUES (sqlc.arg(name), sqlc.arg(base_url), sqlc.arg(credential_ref), sqlc.arg(concurrency_limit), sqlc.narg(escalation_model), sqlc.arg(escalation_threshold_secs))
ON CONFLICT (name) DO UPDATE SET
    base_url = EXCLUDED.base_url,
    credential_ref = EXCLUDED.credential_ref,
    concurrency_limit = EXCLUDED.concurrency_limit,
    escalation_model = EXCLUDED.escalation_model,
    escalation_threshold_secs = EXCLUDED.escalation_threshold_secs,
    updated_at = now();

-- name: ListModels :many
SELECT name, base_url, credential_ref, concurrency_limit, coalesce(escalation_model, ''), escalation_threshold_secs,
       (SELECT count(*) FROM requests r WHERE r.model = m.name AND r.state IN ('claimed', 'processing')) AS in_flight
FROM models m
ORDER BY name;

-- name: GetModel :one
SELECT name, base_url, credential_ref, concurrency_limit, coalesce(escalation_model, ''), escalation_threshold_secs, 0::bigint AS in_flight
FROM models WHERE name = sqlc.arg(name);

-- ─── files ─────────────────────────────────────────────────────────────────────────────────────

-- name: InsertFile :exec
INSERT INTO files (id, tenant_id, filename, purpose, bytes, status, status_details, object_key, line_count, batch_id, created_at, expires_at, created_by_key)
VALUES (sqlc.arg(id), sqlc.arg(tenant_id), sqlc.arg(filename), sqlc.arg(purpose), sqlc.arg(bytes), sqlc.arg(status), sqlc.narg(status_details), sqlc.narg(object_key), sqlc.arg(line_count), sqlc.narg(batch_id), sqlc.arg(created_at), sqlc.narg(expires_at), sqlc.narg(created_by_key));

-- name: GetFile :one
SELECT id, tenant_id, filename, purpose, bytes, status, coalesce(status_details, ''), coalesce(object_key, ''),
       line_count, coalesce(batch_id, ''), created_at, expires_at, created_by_key
FROM files
WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL;

-- name: FileForBatch :one
-- The input file of a batch, with the tenant check, for populate.
SELECT f.object_key, f.bytes
FROM batches b JOIN files f ON f.id = b.input_file_id
WHERE b.id = sqlc.arg(batch_id);

-- ─── batches ───────────────────────────────────────────────────────────────────────────────────

-- name: InsertBatch :exec
-- The output and error file ids are reserved at creation so that partial results can be read
-- while the batch runs; sealing fills in their content (or drops one that stays empty).
-- api is the API that created it (migration 0013).
INSERT INTO batches (id, tenant_id, input_file_id, endpoint, completion_window, status, metadata, total, created_at, expires_at,
                     output_file_id, error_file_id, created_by_key, fail_fast_after, api, coalescing)
VALUES (sqlc.arg(id), sqlc.arg(tenant_id), sqlc.arg(input_file_id), sqlc.arg(endpoint), sqlc.arg(completion_window), 'validating', sqlc.narg(metadata), sqlc.arg(total), sqlc.arg(created_at), sqlc.arg(expires_at), sqlc.arg(output_file_id), sqlc.arg(error_file_id), sqlc.narg(created_by_key), sqlc.arg(fail_fast_after), sqlc.arg(api),
        -- coalescing NULL: the tenant's default, read in the same statement.
        coalesce(sqlc.narg(coalescing)::bool, (SELECT t.coalesce_default FROM tenants t WHERE t.id = sqlc.arg(tenant_id))));

-- name: SealFile :exec
-- Records the sealed content of a batch's output or error file; an empty one is dropped.
UPDATE files
SET object_key = sqlc.arg(object_key), bytes = sqlc.arg(bytes), line_count = sqlc.arg(line_count), deleted_at = CASE WHEN sqlc.arg(line_count) = 0 THEN sqlc.arg(now)::timestamptz END
WHERE id = sqlc.arg(id);

-- name: GetBatch :one
-- A batch as the API shows it: the batch_rows view (migration 0005), the row shape ListBatches
-- shares. A running batch's counts come from its batch_counters row (migration 0006), so the
-- read costs the same however many requests the batch has.
SELECT sqlc.embed(b)
FROM batch_rows b
WHERE b.id = sqlc.arg(id) AND b.tenant_id = sqlc.arg(tenant_id) AND b.deleted_at IS NULL;

-- name: BatchForPopulate :one
-- What populate reads before it opens the input file; InsertRequests then takes the lock below.
SELECT status, tenant_id, endpoint FROM batches WHERE id = sqlc.arg(id);

-- name: LockBatchForPopulate :one
-- Populate holds this lock for its whole transaction, so a duplicate populate message waits and
-- then sees the batch is no longer validating. coalescing says whether to key its lines, and
-- variant is the metadata value (a message batch's anthropic-version) that goes upstream with
-- them, so it is part of their key.
SELECT status, tenant_id, coalescing, coalesce(metadata ->> sqlc.arg(variant_key)::text, '')::text AS variant
FROM batches WHERE id = sqlc.arg(id) FOR UPDATE;

-- name: ServeFromCache :execrows
-- Coalescing with the result cache: the just-inserted lines of a batch whose key has a live
-- entry end as completed from it, marked cached, with no upstream call. Only keyed rows are
-- looked at (the batch's lines are keyed only when it coalesces).
UPDATE requests r
SET state = 'completed', cached = true, response_status = c.response_status, response_body = c.response_body,
    upstream_request_id = c.upstream_request_id, finished_at = sqlc.arg(now), finished_xid = pg_current_xact_id()
FROM coalesce_cache c
WHERE r.batch_id = sqlc.arg(batch_id) AND r.state = 'pending' AND r.body_key IS NOT NULL
  AND c.body_key = r.body_key AND c.tenant_id = r.tenant_id AND c.expires_at > sqlc.arg(now);

-- name: StartBatch :execrows
UPDATE batches
SET status = 'in_progress', in_progress_at = sqlc.arg(now), total = sqlc.arg(total), models = sqlc.arg(models), model = sqlc.arg(model)
WHERE id = sqlc.arg(id) AND status = 'validating';

-- name: FailBatch :exec
UPDATE batches
SET status = 'failed', failed_at = sqlc.arg(now), errors = sqlc.arg(errors)
WHERE id = sqlc.arg(id) AND status = 'validating';

-- name: BeginFinalize :one
-- The guarded step that elects exactly one finaliser: the batch must be running (or cancelling),
-- not already being sealed, and have no unfinished request. Called after the commit of a
-- request's last write, so the caller that committed last is guaranteed to see every other
-- request finished. A cancelling batch keeps its status while it is sealed. A deleted batch is
-- never sealed: nothing reads its files again, and a concurrent purge may be dropping its rows.
UPDATE batches b
SET finalizing_at = sqlc.arg(now), status = CASE WHEN b.status = 'in_progress' THEN 'finalizing' ELSE b.status END
WHERE b.id = sqlc.arg(id) AND b.status IN ('in_progress', 'cancelling') AND b.finalizing_at IS NULL AND b.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.batch_id = b.id AND r.state IN ('pending', 'claimed', 'processing'))
RETURNING b.tenant_id;

-- name: BatchCountsForSeal :one
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'completed') AS completed,
       count(*) FILTER (WHERE state IN ('failed', 'canceled', 'expired')) AS failed,
       count(*) FILTER (WHERE coalesced_from IS NOT NULL) AS coalesced,
       count(*) FILTER (WHERE cached) AS cached
FROM requests WHERE batch_id = sqlc.arg(batch_id);

-- name: SealBatch :one
-- Ends a batch being sealed with frozen counts: cancelled if it was cancelled, failed if the
-- fail-fast breaker stopped it, expired if its window closed, completed otherwise (even when every request failed, as OpenAI does). An output
-- or error file that stayed empty is unlinked: OpenAI reports a null output_file_id when nothing
-- succeeded.
UPDATE batches
SET status = CASE WHEN cancelling_at IS NOT NULL THEN 'cancelled' WHEN fail_fast_at IS NOT NULL THEN 'failed'
                  WHEN expired_at IS NOT NULL THEN 'expired' ELSE 'completed' END,
    completed_at = CASE WHEN cancelling_at IS NULL AND fail_fast_at IS NULL AND expired_at IS NULL THEN sqlc.arg(now)::timestamptz END,
    cancelled_at = CASE WHEN cancelling_at IS NOT NULL THEN sqlc.arg(now)::timestamptz END,
    failed_at = CASE WHEN cancelling_at IS NULL AND fail_fast_at IS NOT NULL THEN sqlc.arg(now)::timestamptz END,
    total = sqlc.arg(total), completed = sqlc.arg(completed), failed = sqlc.arg(failed), usage = sqlc.narg(usage),
    coalesced = sqlc.arg(coalesced), cached = sqlc.arg(cached),
    output_file_id = CASE WHEN sqlc.arg(keep_output)::bool THEN output_file_id END,
    error_file_id = CASE WHEN sqlc.arg(keep_error)::bool THEN error_file_id END
WHERE id = sqlc.arg(id) AND finalizing_at IS NOT NULL AND status IN ('finalizing', 'cancelling')
RETURNING coalesce(output_file_id, ''), coalesce(error_file_id, '');

-- name: BatchFiles :one
SELECT coalesce(output_file_id, ''), coalesce(error_file_id, '') FROM batches WHERE id = sqlc.arg(id);

-- name: BatchesToFinalize :many
-- Safety net for the sweep: running or cancelling batches with no unfinished request that nobody
-- is sealing, and sealings that stalled (started before stale_before); deleted batches are never sealed.
SELECT b.id FROM batches b
WHERE b.deleted_at IS NULL
  AND ((b.status IN ('in_progress', 'cancelling') AND b.finalizing_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.batch_id = b.id AND r.state IN ('pending', 'claimed', 'processing')))
    OR (b.status IN ('finalizing', 'cancelling') AND b.finalizing_at < sqlc.arg(stale_before)))
LIMIT 100;

-- name: RestartFinalize :one
UPDATE batches SET finalizing_at = sqlc.arg(now)
WHERE id = sqlc.arg(id) AND status IN ('finalizing', 'cancelling') AND finalizing_at < sqlc.arg(stale_before) AND deleted_at IS NULL
RETURNING tenant_id;

-- ─── requests: ingest ──────────────────────────────────────────────────────────────────────────

-- COPY target columns (see Store.PopulateBatch): id, batch_id, tenant_id, line, custom_id, model, path, body, body_bytes

-- ─── requests: claim, execute, finish ──────────────────────────────────────────────────────────

-- name: LockModel :one
-- Serialises claims for one model. The claim that follows runs as a separate statement so that
-- its snapshot is taken after this lock is granted and sees every committed claim.
SELECT concurrency_limit FROM models WHERE name = sqlc.arg(name) FOR NO KEY UPDATE;

-- name: ClaimForModel :many
-- Claims up to min($2, limit − in-flight) pending requests for model $1 whose back-off is over
-- ($3 is now). Its parameters stay positional — (model text, max int, now timestamptz,
-- urgency_weight float8, owner text) — because the benchmark and the plan tests PREPARE it with
-- that signature; the Store sends it by hand after LockModel in one round trip (Store.ClaimForModel,
-- Store.FinishAndClaim).
--
-- $5, the owner, says who runs the claims. Empty: a dispatcher claims them for the work queue
-- (claimed; StartProcessing makes them processing when a worker receives the message). A worker
-- instance: it runs them itself, so they go straight to processing under its name and the row
-- comes back with what the call needs (the body and the batch's fields); a dispatcher's claims
-- leave the body out, since only their ids go in the messages.
-- Batches are ranked by the fairness score of fusillade (§4.2): tenants with fewer of this
-- model's slots in use first, blended with deadline urgency by $4 (urgency_weight, 0..1), then
-- earliest deadline; within a batch requests go in input line order.
--
-- Escalation: a model with an escalation_model hands the requests of batches that are within its
-- escalation threshold of their deadline to that model. Those requests are claimed here when $1
-- is the escalation target — their model becomes $1, routed_model records it and escalated_from
-- keeps the model they name — so the slot charged is the fallback model's, the one actually
-- called. Every path back to pending restores the named model (see FinishMany, Rescue, Unclaim,
-- RetryFailed), so a request is always found through its batch's models and each claim decides
-- the escalation afresh: the fallback takes it while the batch is within the threshold, its own
-- model otherwise. (Finding pending rows under either model instead would leave the rows of a
-- batch that is no longer within the threshold — say it was lowered — to the fallback's claim.)
WITH cap AS (
    SELECT greatest(0, least($2::int, m.concurrency_limit
               - (SELECT count(*) FROM requests r WHERE r.model = $1 AND r.state IN ('claimed', 'processing'))::int)) AS n
    FROM models m WHERE m.name = $1
),
load AS (
    SELECT tenant_id, count(*)::float8 AS n
    FROM requests
    WHERE model = $1 AND state IN ('claimed', 'processing')
    GROUP BY tenant_id
),
sources AS (
    -- (source model, escalation target, threshold): $1's own requests unless escalated away, and
    -- the requests of models that escalate to $1.
    SELECT m.name AS model, m.escalation_model AS target, m.escalation_threshold_secs AS secs
    FROM models m WHERE m.name = $1 OR m.escalation_model = $1
),
running AS (
    SELECT b.id, b.expires_at, s.model,
           (1 - $4::float8) * coalesce(l.n, 0) / greatest((SELECT max(n) FROM load), 1)
           + $4::float8 * least(greatest(extract(epoch FROM (b.expires_at - $3::timestamptz)) / 86400.0, 0), 1) AS score
    FROM batches b
    JOIN sources s ON s.model = ANY (b.models)
    LEFT JOIN load l ON l.tenant_id = b.tenant_id
    WHERE b.status = 'in_progress' AND b.expired_at IS NULL
      -- Past its deadline a batch gets no new work, even before the sweep marks it expired.
      AND b.expires_at > $3::timestamptz
      AND CASE WHEN s.model = $1
               THEN s.target IS NULL OR b.expires_at - $3::timestamptz >= make_interval(secs => s.secs)
               ELSE b.expires_at - $3::timestamptz < make_interval(secs => s.secs) END
),
picked AS (
    -- Rank the batches first, then pull from the winners: the nested loop walks the ranked
    -- batches in order and stops at the limit, so only the rows actually claimed are probed and
    -- locked (ordering the joined rows instead would lock up to the limit in every batch).
    SELECT q.id, q.body_key, rb.score, rb.expires_at, rb.id AS batch_id, q.line
    FROM (SELECT * FROM running ORDER BY score, expires_at, id) rb
    CROSS JOIN LATERAL (
        SELECT r.id, r.body_key, r.line
        FROM requests r
        WHERE r.model = rb.model AND r.batch_id = rb.id AND r.state = 'pending'
          AND (r.not_before IS NULL OR r.not_before <= $3)
          -- Coalescing: a keyed row waits while a row with its key is in flight; that row's
          -- result ends it (PropagateCoalesced). Unkeyed rows (coalescing off) skip the probe.
          AND (r.body_key IS NULL OR NOT EXISTS (
                  SELECT 1 FROM requests k WHERE k.body_key = r.body_key AND k.state IN ('claimed', 'processing')))
        ORDER BY r.line
        LIMIT (SELECT n FROM cap)
        FOR UPDATE SKIP LOCKED
    ) q
    LIMIT (SELECT n FROM cap)
)
UPDATE requests r
SET state = CASE WHEN $5::text = '' THEN 'claimed' ELSE 'processing' END,
    attempt = r.attempt + 1, claimed_at = $3,
    started_at = CASE WHEN $5::text <> '' THEN $3::timestamptz END,
    owner = nullif($5::text, ''),
    routed_model = CASE WHEN r.model <> $1 THEN $1 END,
    escalated_from = CASE WHEN r.model <> $1 THEN r.model END,
    model = $1
FROM picked, batches b
WHERE r.id = picked.id AND b.id = r.batch_id
  -- At most one row per key per claim: of the picked rows sharing a key, the first in claim order
  -- goes; the others stay pending (their locks end with the claim) and take its result.
  AND (picked.body_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM picked p
          WHERE p.body_key = picked.body_key
            AND (p.score, p.expires_at, p.batch_id, p.line) < (picked.score, picked.expires_at, picked.batch_id, picked.line)))
RETURNING r.id::text, r.attempt, r.batch_id, r.tenant_id, r.custom_id, coalesce(r.routed_model, ''), r.path,
          (CASE WHEN $5::text <> '' THEN r.body END)::bytea AS body, r.retries,
          b.endpoint, b.created_at, b.expires_at, b.completion_window, b.metadata, (r.body_key IS NOT NULL)::bool AS keyed;

-- name: ModelsWithWork :many
-- Models that have a free slot and a running batch whose requests they serve (directly or as an
-- escalation target).
SELECT m.name
FROM models m
WHERE m.concurrency_limit > (SELECT count(*) FROM requests r WHERE r.model = m.name AND r.state IN ('claimed', 'processing'))
  AND EXISTS (SELECT 1 FROM batches b JOIN models s ON s.name = ANY (b.models)
              WHERE b.status = 'in_progress' AND (s.name = m.name OR s.escalation_model = m.name))
ORDER BY m.name;

-- name: Unclaim :exec
-- Gives back claims whose messages could not be enqueued (an escalated one to its own model).
UPDATE requests r
SET state = 'pending', claimed_at = NULL, model = coalesce(r.escalated_from, r.model), escalated_from = NULL
FROM ROWS FROM (unnest(sqlc.arg(ids)::uuid[]), unnest(sqlc.arg(attempts)::int[])) AS w(id, attempt)
WHERE r.id = w.id AND r.attempt = w.attempt AND r.state = 'claimed';

-- name: StartProcessing :one
-- claimed → processing, made durable before the upstream call. Zero rows means the delivery is a
-- duplicate, stale (the row was rescued and re-claimed) or its batch is no longer running or past
-- its deadline (now is the clock ExpireDue compares with; the sweep then ends the row).
UPDATE requests r
SET state = 'processing', started_at = sqlc.arg(now), owner = sqlc.arg(owner)
FROM batches b
WHERE r.id = sqlc.arg(id) AND r.attempt = sqlc.arg(attempt) AND r.state = 'claimed'
  AND b.id = r.batch_id AND b.status = 'in_progress' AND b.expired_at IS NULL AND r.cancel_requested_at IS NULL
  AND b.expires_at > sqlc.arg(now)
RETURNING r.batch_id, r.tenant_id, r.custom_id, r.model, coalesce(r.routed_model, ''), r.path, r.body, r.retries,
          b.endpoint, b.created_at, b.expires_at, b.completion_window, b.metadata, (r.body_key IS NOT NULL)::bool AS keyed;

-- name: FinishMany :many
-- processing → completed | failed | pending (retry) | canceled | expired, for many requests in
-- one statement. Each row is guarded on (state = processing, attempt); the rows returned are the
-- ones that won. A retry of a request whose batch was cancelled or expired meanwhile ends the
-- request instead, so nothing is left pending in a batch that will never be claimed again; so
-- does a retry of a request whose own cancellation was asked while its call ran (a claim would
-- otherwise run it again).
-- The arrays are parallel, one element per outcome; a not_before equal to no_back_off (the zero
-- time the Store sends for "no back-off") is stored as NULL.
UPDATE requests r
SET state = x.state,
    finished_at = CASE WHEN x.state = 'pending' THEN NULL ELSE x.at END,
    finished_xid = CASE WHEN x.state = 'pending' THEN NULL ELSE pg_current_xact_id() END,
    response_status = nullif(x.status, 0),
    response_body = x.body,
    upstream_request_id = nullif(x.upstream_id, ''),
    error_code = x.error_code,
    error_message = x.error_message,
    routed_model = coalesce(nullif(x.routed_model, ''), r.routed_model),
    retries = CASE WHEN x.state = 'pending' THEN r.retries + 1 ELSE r.retries END,
    not_before = CASE WHEN x.state = 'pending' THEN x.not_before ELSE r.not_before END,
    claimed_at = CASE WHEN x.state = 'pending' THEN NULL ELSE r.claimed_at END,
    started_at = CASE WHEN x.state = 'pending' THEN NULL ELSE r.started_at END,
    -- A retry goes back to the model it names (see ClaimForModel).
    model = CASE WHEN x.state = 'pending' THEN coalesce(r.escalated_from, r.model) ELSE r.model END,
    escalated_from = CASE WHEN x.state = 'pending' THEN NULL ELSE r.escalated_from END,
    owner = NULL
FROM (
    SELECT f.id, f.attempt, f.status, f.body, f.upstream_id, nullif(f.not_before, sqlc.arg(no_back_off)::timestamptz) AS not_before,
           f.routed_model, f.at,
           CASE WHEN f.state = 'pending' AND b.cancelling_at IS NOT NULL THEN 'canceled'
                WHEN f.state = 'pending' AND b.expired_at IS NOT NULL THEN 'expired'
                WHEN f.state = 'pending' AND q.cancel_requested_at IS NOT NULL THEN 'canceled'
                ELSE f.state END AS state,
           CASE WHEN f.state = 'pending' AND b.cancelling_at IS NOT NULL THEN 'batch_cancelled'
                WHEN f.state = 'pending' AND b.expired_at IS NOT NULL THEN 'batch_expired'
                WHEN f.state = 'pending' AND q.cancel_requested_at IS NOT NULL THEN 'request_cancelled'
                ELSE nullif(f.error_code, '') END AS error_code,
           CASE WHEN f.state = 'pending' AND (b.cancelling_at IS NOT NULL OR b.expired_at IS NOT NULL OR q.cancel_requested_at IS NOT NULL) THEN NULL
                ELSE nullif(f.error_message, '') END AS error_message
    FROM ROWS FROM (unnest(sqlc.arg(ids)::uuid[]),
                    unnest(sqlc.arg(attempts)::int[]),
                    unnest(sqlc.arg(states)::text[]),
                    unnest(sqlc.arg(statuses)::int[]),
                    unnest(sqlc.arg(bodies)::bytea[]),
                    unnest(sqlc.arg(upstream_ids)::text[]),
                    unnest(sqlc.arg(error_codes)::text[]),
                    unnest(sqlc.arg(error_messages)::text[]),
                    unnest(sqlc.arg(not_befores)::timestamptz[]),
                    unnest(sqlc.arg(routed_models)::text[]),
                    unnest(sqlc.arg(ats)::timestamptz[]))
         AS f(id, attempt, state, status, body, upstream_id, error_code, error_message, not_before, routed_model, at)
    JOIN requests q ON q.id = f.id
    JOIN batches b ON b.id = q.batch_id
) AS x
WHERE r.id = x.id AND r.attempt = x.attempt AND r.state = 'processing'
RETURNING r.id::text, r.batch_id, r.state;

-- name: PropagateCoalesced :many
-- Coalescing: the requests among ids that this transaction has just ended (finished_xid) with an
-- upstream outcome — completed, or failed with the upstream's response — and that have a key are
-- leaders; every PENDING request with a leader's key whose batch is running (not cancelling,
-- expired, stopped, deleted or past its deadline) ends with the leader's result and records it in
-- coalesced_from. A leader that went back to pending (a retry), or ended without an answer,
-- leads nothing: its followers stay pending and the next claim picks one of them afresh. Rows
-- another transaction holds (a cancel ending them) are skipped, not waited for: the finish never
-- waits on them and they stay pending (claimed and run later) if that transaction lets them go.
-- With cache_until set, a completed leader's answer is also stored in coalesce_cache until then.
-- Sent by the Store in the finishing transaction, after FinishMany, only when an outcome has a key.
WITH leader AS (
    SELECT l.id, l.body_key, l.tenant_id, l.state, l.response_status, l.response_body, l.upstream_request_id,
           l.error_code, l.error_message
    FROM requests l
    WHERE l.id = ANY (sqlc.arg(ids)::uuid[]) AND l.body_key IS NOT NULL AND l.finished_xid = pg_current_xact_id()
      AND (l.state = 'completed' OR (l.state = 'failed' AND l.response_status IS NOT NULL))
), follower AS (
    SELECT p.id, ld.id AS leader_id
    FROM leader ld
    JOIN requests p ON p.body_key = ld.body_key AND p.state = 'pending' AND p.tenant_id = ld.tenant_id
    JOIN batches b ON b.id = p.batch_id
    WHERE b.status = 'in_progress' AND b.cancelling_at IS NULL AND b.expired_at IS NULL AND b.fail_fast_at IS NULL
      AND b.deleted_at IS NULL AND b.expires_at > sqlc.arg(now)::timestamptz
    FOR UPDATE OF p SKIP LOCKED
), cache AS (
    INSERT INTO coalesce_cache AS c (body_key, tenant_id, response_status, response_body, upstream_request_id, created_at, expires_at)
    SELECT ld.body_key, ld.tenant_id, ld.response_status, ld.response_body, ld.upstream_request_id, sqlc.arg(now)::timestamptz,
           sqlc.narg(cache_until)::timestamptz
    FROM leader ld
    WHERE ld.state = 'completed' AND sqlc.narg(cache_until)::timestamptz IS NOT NULL
    ON CONFLICT (body_key) DO UPDATE
    SET response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body,
        upstream_request_id = EXCLUDED.upstream_request_id, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
)
UPDATE requests r
SET state = ld.state, response_status = ld.response_status, response_body = ld.response_body,
    upstream_request_id = ld.upstream_request_id, error_code = ld.error_code, error_message = ld.error_message,
    finished_at = sqlc.arg(now)::timestamptz, finished_xid = pg_current_xact_id(), coalesced_from = ld.id,
    not_before = NULL, claimed_at = NULL, owner = NULL
FROM follower f JOIN leader ld ON ld.id = f.leader_id
WHERE r.id = f.id AND r.state = 'pending'
RETURNING r.id::text, r.batch_id, r.state, ld.id::text AS leader_id;

-- name: PurgeCoalesceCache :execrows
-- One chunk of expired result-cache entries.
DELETE FROM coalesce_cache WHERE body_key IN (
    SELECT c.body_key FROM coalesce_cache c WHERE c.expires_at <= sqlc.arg(now) LIMIT sqlc.arg(chunk) FOR UPDATE SKIP LOCKED);

-- name: FinishLanded :many
-- Which of these outcomes a FinishMany at now already wrote (its commit may have gone through with
-- the acknowledgement lost). The row still has the attempt and what that write left: the finish
-- time now for an ended request, or for a retry the back-off (not_befores) it set. A rescue leaves neither
-- (it keeps the old not_before and ends a row at its own time), and a new claim bumps the attempt.
SELECT r.id::text, r.batch_id, r.state
FROM ROWS FROM (unnest(sqlc.arg(ids)::uuid[]), unnest(sqlc.arg(attempts)::int[]), unnest(sqlc.arg(not_befores)::timestamptz[])) AS f(id, attempt, not_before)
JOIN requests r ON r.id = f.id
WHERE r.attempt = f.attempt
  AND (r.finished_at = sqlc.arg(now)::timestamptz
       OR (r.state = 'pending' AND r.finished_at IS NULL AND r.not_before = nullif(f.not_before, sqlc.arg(no_back_off)::timestamptz)));

-- name: Rescue :many
-- Returns stuck requests to pending: claimed but never started for longer than the claim
-- timeout (claimed_before is now − claim timeout), processing for longer than the processing
-- timeout (started_before), or processing on a worker that stopped or stopped heart-beating
-- (heartbeat_before is now − stale threshold).
-- The next claim bumps the attempt, so the zombie's late write is fenced out. A stuck request of
-- a cancelled or expired batch is ended instead, at now.
UPDATE requests r
SET state = CASE WHEN b.cancelling_at IS NOT NULL THEN 'canceled' WHEN b.expired_at IS NOT NULL THEN 'expired' ELSE 'pending' END,
    error_code = CASE WHEN b.cancelling_at IS NOT NULL THEN 'batch_cancelled' WHEN b.expired_at IS NOT NULL THEN 'batch_expired' ELSE r.error_code END,
    finished_at = CASE WHEN b.cancelling_at IS NOT NULL OR b.expired_at IS NOT NULL THEN sqlc.arg(now)::timestamptz END,
    finished_xid = CASE WHEN b.cancelling_at IS NOT NULL OR b.expired_at IS NOT NULL THEN pg_current_xact_id() END,
    -- Back in pending, an escalated request is its own model's again (see ClaimForModel).
    model = CASE WHEN b.cancelling_at IS NULL AND b.expired_at IS NULL THEN coalesce(r.escalated_from, r.model) ELSE r.model END,
    escalated_from = CASE WHEN b.cancelling_at IS NULL AND b.expired_at IS NULL THEN NULL ELSE r.escalated_from END,
    claimed_at = NULL, started_at = NULL, owner = NULL
FROM batches b
WHERE b.id = r.batch_id AND r.state IN ('claimed', 'processing')
  AND (   (r.state = 'claimed' AND r.claimed_at < sqlc.arg(claimed_before))
       OR (r.state = 'processing' AND r.started_at < sqlc.arg(started_before))
       OR (r.state = 'processing' AND EXISTS (
              SELECT 1 FROM workers w WHERE w.id = r.owner AND (w.stopped_at IS NOT NULL OR w.heartbeat_at < sqlc.arg(heartbeat_before)))))
RETURNING r.id::text, r.model, r.batch_id, r.state;

-- ─── results ───────────────────────────────────────────────────────────────────────────────────

-- name: ResultPage :many
-- One page of finished requests of a batch in input order, keyset on line. output selects the output
-- file (completed rows) or the error file (every other terminal row).
SELECT r.id::text, r.line, r.custom_id, r.state, coalesce(r.response_status, 0), r.response_body,
       coalesce(r.upstream_request_id, ''), coalesce(r.error_code, ''), coalesce(r.error_message, ''),
       (r.coalesced_from IS NOT NULL OR r.cached)::bool AS shared
FROM requests r
WHERE r.batch_id = sqlc.arg(batch_id) AND r.line > sqlc.arg(after_line)
  AND CASE WHEN sqlc.arg(output)::bool THEN r.state = 'completed' ELSE r.state IN ('failed', 'canceled', 'expired') END
ORDER BY r.line
LIMIT sqlc.arg(max);

-- ─── workers ───────────────────────────────────────────────────────────────────────────────────

-- name: Heartbeat :exec
INSERT INTO workers (id, function, started_at, heartbeat_at, invocations, processed, failed)
VALUES (sqlc.arg(id), sqlc.arg(function), sqlc.arg(now), sqlc.arg(now), sqlc.arg(invocations), sqlc.arg(processed), sqlc.arg(failed))
ON CONFLICT (id) DO UPDATE SET heartbeat_at = sqlc.arg(now), stopped_at = NULL,
    invocations = EXCLUDED.invocations, processed = EXCLUDED.processed, failed = EXCLUDED.failed;

-- name: StopWorker :exec
UPDATE workers SET stopped_at = sqlc.arg(now), heartbeat_at = sqlc.arg(now) WHERE id = sqlc.arg(id);

-- name: ListWorkers :many
-- The most recently active records with their status as of now: stopped, stale when the last
-- heart-beat is older than stale_before (now − the stale threshold, Rescue's heartbeat_before),
-- else running. status filters on it ('' = all). The status is computed once, in the lateral.
SELECT w.id, w.function, s.worker_status::text AS worker_status, w.started_at, w.heartbeat_at, w.stopped_at, w.invocations, w.processed, w.failed
FROM workers w
CROSS JOIN LATERAL (
    SELECT CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                WHEN w.heartbeat_at < sqlc.arg(stale_before) THEN 'stale'
                ELSE 'running' END AS worker_status
) s
WHERE sqlc.arg(status)::text = '' OR s.worker_status = sqlc.arg(status)::text
ORDER BY w.heartbeat_at DESC, w.id
LIMIT sqlc.arg(max);

-- ─── cancellation, expiry, retry ───────────────────────────────────────────────────────────────

-- name: CancelBatch :one
-- A validating batch has nothing to run and is cancelled at once; a running one is cancelling
-- until its in-flight requests are aborted and it is sealed. Anything else is not cancellable.
UPDATE batches
SET status = CASE WHEN status = 'validating' THEN 'cancelled' ELSE 'cancelling' END,
    cancelling_at = sqlc.arg(now),
    cancelled_at = CASE WHEN status = 'validating' THEN sqlc.arg(now)::timestamptz END
WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL AND status IN ('validating', 'in_progress')
RETURNING status;

-- name: BatchStatus :one
SELECT status FROM batches WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL;

-- name: EndUnstarted :one
-- Ends every request of a cancelled or expired batch that has not started (state is the final
-- state, error_code its code), and marks the running ones so their workers abort them.
WITH ended AS (
    UPDATE requests e
    SET state = sqlc.arg(state), error_code = sqlc.arg(error_code), finished_at = sqlc.arg(now), finished_xid = pg_current_xact_id(),
        claimed_at = NULL, owner = NULL
    WHERE e.batch_id = sqlc.arg(batch_id) AND e.state IN ('pending', 'claimed')
    RETURNING 1
), marked AS (
    UPDATE requests m SET cancel_requested_at = sqlc.arg(now)
    WHERE m.batch_id = sqlc.arg(batch_id) AND m.state = 'processing' AND m.cancel_requested_at IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM ended) AS ended, (SELECT count(*) FROM marked) AS marked;

-- name: CancelRequests :many
-- Cancels individual requests of a tenant's running batch: unstarted ones end at once, running
-- ones are marked for their worker to abort. Returns what happened to each id found.
WITH target AS (
    SELECT r.id FROM requests r JOIN batches b ON b.id = r.batch_id
    WHERE r.batch_id = sqlc.arg(batch_id) AND b.tenant_id = sqlc.arg(tenant_id) AND b.deleted_at IS NULL AND r.id = ANY (sqlc.arg(ids)::uuid[])
    FOR UPDATE OF r
), ended AS (
    UPDATE requests r SET state = 'canceled', error_code = 'request_cancelled', finished_at = sqlc.arg(now), finished_xid = pg_current_xact_id(),
        claimed_at = NULL, owner = NULL
    FROM target WHERE r.id = target.id AND r.state IN ('pending', 'claimed')
    RETURNING r.id
), marked AS (
    UPDATE requests r SET cancel_requested_at = sqlc.arg(now)
    FROM target WHERE r.id = target.id AND r.state = 'processing'
    RETURNING r.id
)
SELECT t.id::text,
       CASE WHEN t.id IN (SELECT id FROM ended) THEN 'canceled'
            WHEN t.id IN (SELECT id FROM marked) THEN 'cancelling'
            ELSE 'not_cancellable' END AS result
FROM target t;

-- name: CancelMarks :many
-- Which of these running requests should be aborted, and why.
SELECT r.id::text,
       CASE WHEN b.cancelling_at IS NOT NULL THEN 'canceled'
            WHEN b.fail_fast_at IS NOT NULL THEN 'failed'
            WHEN b.expired_at IS NOT NULL THEN 'expired'
            ELSE 'canceled' END AS state,
       CASE WHEN b.cancelling_at IS NOT NULL THEN 'batch_cancelled'
            WHEN b.fail_fast_at IS NOT NULL THEN 'batch_failed_fast'
            WHEN b.expired_at IS NOT NULL THEN 'batch_expired'
            ELSE 'request_cancelled' END AS code
FROM requests r JOIN batches b ON b.id = r.batch_id
WHERE r.id = ANY (sqlc.arg(ids)::uuid[]) AND r.cancel_requested_at IS NOT NULL;

-- name: ExpireDue :many
-- Marks batches whose completion window closed. A validating batch is expired outright; a
-- running one has its unstarted requests ended by the caller and is sealed as expired.
UPDATE batches b
SET expired_at = sqlc.arg(now), status = CASE WHEN b.status = 'validating' THEN 'expired' ELSE b.status END
FROM (SELECT id FROM batches
      WHERE status IN ('validating', 'in_progress') AND expired_at IS NULL AND expires_at <= sqlc.arg(now)
      ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED) due
WHERE b.id = due.id
RETURNING b.id, b.status;

-- name: ReopenBatch :one
-- Reopens a batch for a retry of its failed requests: a sealed (completed) batch goes back to
-- in_progress with its counts unfrozen and its output and error files growing again. A batch
-- that was rerun (migration 0008) is not: its failed lines belong to the rerun now, and running
-- them in both would send them twice.
UPDATE batches b
SET status = 'in_progress', completed_at = NULL, finalizing_at = NULL, completed = 0, failed = 0, usage = NULL,
    output_file_id = (SELECT f.id FROM files f WHERE f.batch_id = sqlc.arg(id) AND f.purpose = 'batch_output'),
    error_file_id = (SELECT f.id FROM files f WHERE f.batch_id = sqlc.arg(id) AND f.purpose = 'batch_error')
WHERE b.id = sqlc.arg(id) AND b.tenant_id = sqlc.arg(tenant_id) AND b.deleted_at IS NULL AND b.status IN ('in_progress', 'completed')
  AND b.expires_at > sqlc.arg(now) AND b.rerun_batch_id IS NULL AND b.fail_fast_at IS NULL
RETURNING b.status;

-- name: ReopenFiles :exec
UPDATE files SET object_key = NULL, bytes = 0, line_count = 0, deleted_at = NULL
WHERE batch_id = sqlc.arg(batch_id) AND purpose IN ('batch_output', 'batch_error');

-- name: RetryFailed :many
-- Failed requests of the batch (all, or those in ids when it is not null) start a new life, an
-- escalated one under the model it names (see ClaimForModel).
UPDATE requests
SET state = 'pending', retries = 0, not_before = NULL, response_status = NULL, response_body = NULL,
    upstream_request_id = NULL, error_code = NULL, error_message = NULL, finished_at = NULL, finished_xid = NULL,
    claimed_at = NULL, started_at = NULL, owner = NULL, cancel_requested_at = NULL,
    model = coalesce(escalated_from, model), escalated_from = NULL, routed_model = NULL
WHERE batch_id = sqlc.arg(batch_id) AND state = 'failed' AND (sqlc.narg(ids)::uuid[] IS NULL OR id = ANY (sqlc.narg(ids)::uuid[]))
RETURNING id::text, model;

-- ─── deletion and purge ────────────────────────────────────────────────────────────────────────

-- name: DeleteBatch :one
-- Soft delete: hidden at once; a running batch is cancelled in the same statement.
UPDATE batches
SET deleted_at = sqlc.arg(now),
    status = CASE WHEN status = 'validating' THEN 'cancelled' WHEN status = 'in_progress' THEN 'cancelling' ELSE status END,
    cancelling_at = CASE WHEN status IN ('validating', 'in_progress') THEN sqlc.arg(now)::timestamptz ELSE cancelling_at END,
    cancelled_at = CASE WHEN status = 'validating' THEN sqlc.arg(now)::timestamptz ELSE cancelled_at END
WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL
RETURNING status;

-- name: HideBatchFiles :exec
UPDATE files SET deleted_at = sqlc.arg(now) WHERE batch_id = sqlc.arg(batch_id) AND deleted_at IS NULL;

-- name: DeleteFile :one
UPDATE files SET deleted_at = sqlc.arg(now) WHERE id = sqlc.arg(id) AND tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL
RETURNING purpose;

-- name: CancelBatchesOfFile :many
-- Batches made from a deleted input file are cancelled (their results stay readable).
UPDATE batches
SET status = CASE WHEN status = 'validating' THEN 'cancelled' ELSE 'cancelling' END,
    cancelling_at = sqlc.arg(now),
    cancelled_at = CASE WHEN status = 'validating' THEN sqlc.arg(now)::timestamptz END
WHERE input_file_id = sqlc.arg(input_file_id) AND status IN ('validating', 'in_progress')
RETURNING id, status;

-- name: PurgeRequests :execrows
-- One chunk of requests of deleted batches. SKIP LOCKED lets concurrent purgers share the work.
DELETE FROM requests WHERE id IN (
    SELECT r.id FROM requests r
    WHERE r.batch_id IN (SELECT id FROM batches WHERE deleted_at IS NOT NULL AND deleted_at < sqlc.arg(grace_before))
    LIMIT sqlc.arg(chunk) FOR UPDATE SKIP LOCKED);

-- name: PurgeableBatches :many
-- Deleted batches whose requests are all gone: their objects, then their rows, can go. No lock:
-- the engine deletes their objects before DropBatches, outside any transaction. api tells a
-- message batch, which may have a results object too.
SELECT b.id, b.tenant_id, b.api FROM batches b
WHERE b.deleted_at IS NOT NULL AND b.deleted_at < sqlc.arg(grace_before)
  AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.batch_id = b.id)
ORDER BY b.id
LIMIT sqlc.arg(chunk);

-- name: DropBatches :execrows
-- Set-based: the listed batches that are still purgeable, with their output and error file rows.
-- SKIP LOCKED leaves a batch another purger is dropping to that purger.
WITH b AS (
    SELECT d.id FROM batches d
    WHERE d.id = ANY(sqlc.arg(ids)::text[]) AND d.deleted_at IS NOT NULL AND d.deleted_at < sqlc.arg(grace_before)
      AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.batch_id = d.id)
    FOR UPDATE SKIP LOCKED),
f AS (DELETE FROM files WHERE batch_id IN (SELECT id FROM b))
DELETE FROM batches WHERE id IN (SELECT id FROM b);

-- name: ErasePromptsOfFile :execrows
-- Right to erasure: the prompts copied from a deleted input file into its batches' requests.
UPDATE requests SET body = ''::bytea WHERE id IN (
    SELECT r.id FROM requests r JOIN batches b ON b.id = r.batch_id
    WHERE b.input_file_id = sqlc.arg(input_file_id) AND r.state NOT IN ('claimed', 'processing') AND octet_length(r.body) > 0
    LIMIT sqlc.arg(chunk) FOR UPDATE OF r SKIP LOCKED);

-- name: PurgeableFiles :many
-- Input files that were deleted, or whose expires_after passed. A file still referenced by a
-- deleted batch waits until that batch is purged, so that dropping the file (ON DELETE SET NULL
-- writes the batch row) never meets DropBatches on the same batch row.
SELECT f.id, f.tenant_id, coalesce(f.object_key, ''), (f.deleted_at IS NOT NULL)::bool AS deleted
FROM files f
WHERE f.purpose = 'batch' AND (f.deleted_at < sqlc.arg(grace_before) OR (f.deleted_at IS NULL AND f.expires_at < sqlc.arg(now)))
  AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = f.id AND b.deleted_at IS NOT NULL)
ORDER BY f.id
LIMIT sqlc.arg(chunk);

-- name: DropFiles :execrows
-- Set-based: the listed input files that are still purgeable; SKIP LOCKED as in DropBatches.
DELETE FROM files WHERE id IN (
    SELECT f.id FROM files f
    WHERE f.id = ANY(sqlc.arg(ids)::text[]) AND f.purpose = 'batch'
      AND (f.deleted_at < sqlc.arg(grace_before) OR (f.deleted_at IS NULL AND f.expires_at < sqlc.arg(now)))
      AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.input_file_id = f.id AND b.deleted_at IS NOT NULL)
    FOR UPDATE OF f SKIP LOCKED);

-- ─── capacity figures ──────────────────────────────────────────────────────────────────────────

-- name: PendingByModelAndWindow :many
-- Unfinished requests per model, by whether their batch's deadline falls within each window
-- (window_secs seconds each; windows are cumulative, overdue work is in every bucket), of the
-- given states and models (an empty models array: every model). The literal state list stays
-- beside the parameter so the planner can still use the partial indexes on unfinished states.
-- A cancelling batch's work is about to end and is not counted (fusillade does the same).
SELECT r.model, w.secs::int AS secs, count(*)
FROM requests r
JOIN batches b ON b.id = r.batch_id
CROSS JOIN unnest(sqlc.arg(window_secs)::int[]) AS w(secs)
WHERE r.state IN ('pending', 'claimed', 'processing') AND r.state = ANY(sqlc.arg(states)::text[])
  AND (cardinality(sqlc.arg(models)::text[]) = 0 OR r.model = ANY(sqlc.arg(models)::text[]))
  AND b.cancelling_at IS NULL
  AND b.expires_at <= sqlc.arg(now)::timestamptz + make_interval(secs => w.secs)
GROUP BY r.model, w.secs
ORDER BY r.model, w.secs;

-- name: PurgeIdempotencyKeys :execrows
-- Idempotency keys protect client retries, which happen within minutes; a day is ample.
DELETE FROM idempotency_keys WHERE ctid IN (
    SELECT k.ctid FROM idempotency_keys k WHERE k.created_at < sqlc.arg(before) LIMIT sqlc.arg(chunk) FOR UPDATE SKIP LOCKED);

-- name: AdoptClaims :many
-- The requests owner claimed for model at at (its FinishAndClaim's time): after a FinishAndClaim
-- failed on the connection, its commit may have gone through unacknowledged, leaving rows in
-- processing under this owner that nobody runs. The retry adopts them by the claim time, which
-- every try of one group shares.
SELECT r.id::text, r.attempt, r.batch_id, r.tenant_id, r.custom_id, coalesce(r.routed_model, ''), r.path, r.body, r.retries,
       b.endpoint, b.created_at, b.expires_at, b.completion_window, b.metadata, (r.body_key IS NOT NULL)::bool AS keyed
FROM requests r JOIN batches b ON b.id = r.batch_id
WHERE r.owner = sqlc.arg(owner) AND r.model = sqlc.arg(model) AND r.state = 'processing' AND r.started_at = sqlc.arg(at);
