-- The fail-fast breaker (migration 0010).

-- name: DecideFailFast :one
-- Called after a request of the batch failed with an upstream 4xx status. While the breaker has
-- not decided, it decides once the batch has a completed line (never trip) or fail_fast_after
-- failed ones: it trips when none completed and every failure carries the same status as this
-- one, recording the batch error; either way it is then decided. Still undecided (fewer
-- failures), nothing is written and no row returns. The failed rows read are bounded by
-- fail_fast_after, plus the few that finished meanwhile.
WITH armed AS (
    SELECT a.id, a.fail_fast_after FROM batches a
    WHERE a.id = sqlc.arg(batch_id) AND a.status = 'in_progress' AND a.fail_fast_after > 0 AND NOT a.fail_fast_decided
      AND a.cancelling_at IS NULL AND a.expired_at IS NULL
), seen AS (
    -- Subqueries of the select list: evaluated only for an armed batch, so a decided one costs
    -- the primary-key read above and nothing more.
    SELECT armed.id, armed.fail_fast_after,
           EXISTS (SELECT 1 FROM requests r WHERE r.batch_id = armed.id AND r.state = 'completed') AS completed,
           (SELECT count(*) FROM (SELECT 1 FROM requests r WHERE r.batch_id = armed.id AND r.state = 'failed'
                                  LIMIT armed.fail_fast_after) f) AS failed,
           EXISTS (SELECT 1 FROM requests r WHERE r.batch_id = armed.id AND r.state = 'failed'
                   AND r.response_status IS DISTINCT FROM sqlc.arg(status)::int) AS mixed
    FROM armed
), decided AS (
    SELECT s.id, s.fail_fast_after, NOT s.completed AND NOT s.mixed AS trip
    FROM seen s
    WHERE s.completed OR s.failed >= s.fail_fast_after
)
UPDATE batches x
SET fail_fast_decided = true,
    fail_fast_at = CASE WHEN d.trip THEN sqlc.arg(now)::timestamptz END,
    errors = CASE WHEN d.trip THEN jsonb_build_object('object', 'list', 'data', jsonb_build_array(jsonb_build_object(
        'code', sqlc.arg(code)::text, 'param', NULL, 'line', NULL,
        'message', format('The first %s requests of this batch all failed with HTTP %s (upstream: %s); the batch was stopped and its unsent lines are in the error file.',
                          d.fail_fast_after, sqlc.arg(status)::int, sqlc.arg(upstream_message)::text)))) ELSE x.errors END
FROM decided d
WHERE x.id = d.id
RETURNING d.trip;
