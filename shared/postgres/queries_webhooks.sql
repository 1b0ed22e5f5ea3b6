-- Signed webhooks (migration 0012): endpoints, the outbox of deliveries and their attempts.

-- name: CreateWebhookEndpoint :one
-- Registers an endpoint unless the tenant already has max live ones (then no row returns).
INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, secret, progress_every_percent, progress_every_minutes, created_at)
SELECT sqlc.arg(id), sqlc.arg(tenant_id), sqlc.arg(url), sqlc.arg(event_types)::text[], sqlc.arg(secret),
       sqlc.arg(progress_every_percent), sqlc.arg(progress_every_minutes), sqlc.arg(created_at)
WHERE (SELECT count(*) FROM webhook_endpoints w WHERE w.tenant_id = sqlc.arg(tenant_id) AND w.deleted_at IS NULL) < sqlc.arg(max)::int
RETURNING id, tenant_id, url, event_types, secret, progress_every_percent, progress_every_minutes, created_at;

-- name: ListWebhookEndpoints :many
SELECT id, tenant_id, url, event_types, secret, progress_every_percent, progress_every_minutes, created_at
FROM webhook_endpoints
WHERE tenant_id = sqlc.arg(tenant_id) AND deleted_at IS NULL
ORDER BY created_at, id;

-- name: DeleteWebhookEndpoint :one
-- Soft-deletes a live endpoint of the tenant; its undelivered events are failed with it.
WITH gone AS (
    UPDATE webhook_endpoints w SET deleted_at = sqlc.arg(now)
    WHERE w.id = sqlc.arg(id) AND w.tenant_id = sqlc.arg(tenant_id) AND w.deleted_at IS NULL
    RETURNING w.id
), dropped AS (
    UPDATE webhook_deliveries d SET delivery_state = 'failed', finished_at = sqlc.arg(now)
    FROM gone WHERE d.endpoint_id = gone.id AND d.delivery_state = 'pending'
    RETURNING d.id
)
SELECT gone.id, (SELECT count(*) FROM dropped)::bigint AS dropped FROM gone;

-- name: ListWebhookDeliveries :many
-- The endpoint's newest deliveries first; before_created_at and before_id page on.
SELECT d.id, d.endpoint_id, d.event_type, d.batch_id, d.delivery_state, d.attempts, d.created_at, d.next_attempt_at
FROM webhook_deliveries d
JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.tenant_id = sqlc.arg(tenant_id)
WHERE d.endpoint_id = sqlc.arg(endpoint_id)
  AND (sqlc.narg(before_id)::text IS NULL OR (d.created_at, d.id) < (sqlc.arg(before_created_at)::timestamptz, sqlc.narg(before_id)::text))
ORDER BY d.created_at DESC, d.id DESC
LIMIT sqlc.arg(max);

-- name: WebhookDeliveryCursor :one
SELECT created_at FROM webhook_deliveries WHERE id = sqlc.arg(id) AND endpoint_id = sqlc.arg(endpoint_id);

-- name: ListWebhookAttempts :many
SELECT delivery_id, attempt, at, status_code, latency_ms, error
FROM webhook_attempts
WHERE delivery_id = ANY (sqlc.arg(ids)::text[])
ORDER BY delivery_id, attempt;

-- name: ClaimWebhookDeliveries :many
-- Claims up to max due deliveries of live endpoints for one attempt each: attempts is bumped (the
-- fence RecordWebhookAttempt checks) and next_attempt_at pushed to lease_until, so no other
-- sender finds them due while this one sends. A sender that dies leaves them due again at
-- lease_until; its late result is then fenced out by the next claim's number.
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.deleted_at IS NULL
    WHERE d.delivery_state = 'pending' AND d.next_attempt_at <= sqlc.arg(now)
    ORDER BY d.next_attempt_at
    LIMIT sqlc.arg(max)
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries x
SET attempts = x.attempts + 1, next_attempt_at = sqlc.arg(lease_until)
FROM due, webhook_endpoints e
WHERE x.id = due.id AND e.id = x.endpoint_id
RETURNING x.id, x.endpoint_id, x.event_type, x.batch_id, x.data, x.created_at, x.attempts, e.url, e.secret;

-- name: RecordWebhookAttempt :execrows
-- Records the result of the attempt a claim made, guarded on (pending, attempts = attempt):
-- delivery_state 'pending' with next_attempt_at schedules the next try; 'delivered' or 'failed' ends it.
WITH d AS (
    UPDATE webhook_deliveries w
    SET delivery_state = sqlc.arg(state)::text, next_attempt_at = sqlc.arg(next_attempt_at),
        finished_at = CASE WHEN sqlc.arg(state)::text <> 'pending' THEN sqlc.arg(at)::timestamptz END
    WHERE w.id = sqlc.arg(id) AND w.attempts = sqlc.arg(attempt)::int AND w.delivery_state = 'pending'
    RETURNING w.id
)
INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error)
SELECT d.id, sqlc.arg(attempt)::int, sqlc.arg(at)::timestamptz, sqlc.arg(status_code)::int, sqlc.arg(latency_ms)::bigint, sqlc.arg(error)::text FROM d;

-- name: EnqueueWebhookProgress :execrows
-- Enqueues batch.progress for every running batch of a tenant whose endpoint asks for it and is
-- due: its finished share crossed another multiple of progress_every_percent since the last
-- event, or the last event (or the batch's start) is progress_every_minutes old. The mark in
-- webhook_progress is advanced only from the value this statement read, so two passes at once
-- enqueue one event.
WITH running AS (
    SELECT e.id AS endpoint_id, e.tenant_id, b.id AS batch_id, b.total, b.completed, b.failed, b.in_progress_at,
           e.progress_every_percent AS step, e.progress_every_minutes AS minutes,
           (CASE WHEN b.total > 0 THEN (b.completed + b.failed) * 100 / b.total ELSE 0 END)::int AS percent,
           p.percent AS last_percent, p.sent_at AS last_sent
    FROM webhook_endpoints e
    JOIN batch_rows b ON b.tenant_id = e.tenant_id AND b.status = 'in_progress' AND b.deleted_at IS NULL
    LEFT JOIN webhook_progress p ON p.endpoint_id = e.id AND p.batch_id = b.id
    WHERE e.deleted_at IS NULL AND 'batch.progress' = ANY (e.event_types)
), due AS (
    SELECT r.* FROM running r
    WHERE (r.step > 0 AND r.percent / r.step > coalesce(r.last_percent, 0) / r.step)
       OR (r.minutes > 0 AND coalesce(r.last_sent, r.in_progress_at, sqlc.arg(now)::timestamptz)
                             <= sqlc.arg(now)::timestamptz - make_interval(mins => r.minutes))
    LIMIT sqlc.arg(max)
), marked AS (
    INSERT INTO webhook_progress AS p (endpoint_id, batch_id, percent, sent_at)
    SELECT d.endpoint_id, d.batch_id, d.percent, sqlc.arg(now) FROM due d WHERE d.last_sent IS NULL
    ON CONFLICT (endpoint_id, batch_id) DO NOTHING
    RETURNING p.endpoint_id, p.batch_id
), advanced AS (
    UPDATE webhook_progress p SET percent = d.percent, sent_at = sqlc.arg(now)
    FROM due d
    WHERE p.endpoint_id = d.endpoint_id AND p.batch_id = d.batch_id AND p.sent_at = d.last_sent
    RETURNING p.endpoint_id, p.batch_id
)
INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, batch_id, data, created_at, next_attempt_at)
SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), d.endpoint_id, d.tenant_id, 'batch.progress', d.batch_id,
       jsonb_build_object('id', d.batch_id, 'request_counts',
                          jsonb_build_object('total', d.total, 'completed', d.completed, 'failed', d.failed)),
       sqlc.arg(now), sqlc.arg(now)
FROM due d
JOIN (SELECT * FROM marked UNION ALL SELECT * FROM advanced) m ON m.endpoint_id = d.endpoint_id AND m.batch_id = d.batch_id;

-- name: DeadlineRiskCandidates :many
-- Running batches of which at least one live endpoint subscribed to batch.deadline_at_risk has
-- not been warned at the batch's current deadline: the sender estimates these (at most max,
-- nearest deadline first).
SELECT sqlc.embed(b)
FROM batch_rows b
WHERE b.status = 'in_progress' AND b.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM webhook_endpoints e
              LEFT JOIN webhook_risk_marks m ON m.endpoint_id = e.id AND m.batch_id = b.id
              WHERE e.tenant_id = b.tenant_id AND e.deleted_at IS NULL AND 'batch.deadline_at_risk' = ANY (e.event_types)
                AND m.expires_at IS DISTINCT FROM b.expires_at)
ORDER BY b.expires_at
LIMIT sqlc.arg(max);

-- name: EnqueueDeadlineRisk :execrows
-- Enqueues batch.deadline_at_risk for each of the batches, still running at the deadline its
-- estimate was made against, to every live subscribed endpoint of its tenant not yet warned at
-- that deadline (estimates at the Unix epoch stand for none: null in the event). The mark moves
-- only away from another deadline, so two passes at once enqueue one event.
WITH risk AS (
    SELECT r.batch_id, r.expires_at, r.estimated_at
    FROM ROWS FROM (unnest(sqlc.arg(batch_ids)::text[]), unnest(sqlc.arg(deadlines)::timestamptz[]),
                    unnest(sqlc.arg(estimates)::timestamptz[])) AS r(batch_id, expires_at, estimated_at)
), due AS (
    SELECT e.id AS endpoint_id, e.tenant_id, r.batch_id, r.expires_at, r.estimated_at
    FROM risk r
    JOIN batches b ON b.id = r.batch_id AND b.status = 'in_progress' AND b.deleted_at IS NULL AND b.expires_at = r.expires_at
    JOIN webhook_endpoints e ON e.tenant_id = b.tenant_id AND e.deleted_at IS NULL AND 'batch.deadline_at_risk' = ANY (e.event_types)
), marked AS (
    INSERT INTO webhook_risk_marks AS m (endpoint_id, batch_id, expires_at, sent_at)
    SELECT d.endpoint_id, d.batch_id, d.expires_at, sqlc.arg(now) FROM due d
    ON CONFLICT (endpoint_id, batch_id) DO UPDATE SET expires_at = EXCLUDED.expires_at, sent_at = EXCLUDED.sent_at
        WHERE m.expires_at <> EXCLUDED.expires_at
    RETURNING m.endpoint_id, m.batch_id
)
INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, batch_id, data, created_at, next_attempt_at)
SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), d.endpoint_id, d.tenant_id, 'batch.deadline_at_risk', d.batch_id,
       jsonb_build_object('id', d.batch_id, 'expires_at', extract(epoch FROM d.expires_at)::bigint,
                          'estimated_completion_at', nullif(extract(epoch FROM d.estimated_at)::bigint, 0)),
       sqlc.arg(now), sqlc.arg(now)
FROM due d
JOIN marked m ON m.endpoint_id = d.endpoint_id AND m.batch_id = d.batch_id;

-- name: PurgeWebhookDeliveries :execrows
-- Drops up to max deliveries that ended before the cutoff (their attempts go with them) and the
-- progress and deadline-risk marks of batches no longer running.
WITH old AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.delivery_state <> 'pending' AND d.finished_at < sqlc.arg(before)
    LIMIT sqlc.arg(max)
    FOR UPDATE SKIP LOCKED
), marks AS (
    DELETE FROM webhook_progress p
    WHERE (p.endpoint_id, p.batch_id) IN (
        SELECT m.endpoint_id, m.batch_id FROM webhook_progress m
        WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = m.batch_id AND b.status = 'in_progress')
        LIMIT sqlc.arg(max))
), risk_marks AS (
    DELETE FROM webhook_risk_marks r
    WHERE (r.endpoint_id, r.batch_id) IN (
        SELECT m.endpoint_id, m.batch_id FROM webhook_risk_marks m
        WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = m.batch_id AND b.status = 'in_progress')
        LIMIT sqlc.arg(max))
)
DELETE FROM webhook_deliveries x USING old WHERE x.id = old.id;
