-- Queries only the one-machine stack (local/stack) uses.

-- name: ValidatingBatches :many
-- Batches still waiting for populate, oldest first: after a crash of the local stack their
-- populate messages are gone with its in-memory queue and must be sent again. Populate is
-- idempotent, so a batch whose message survived is only looked at twice.
SELECT id FROM batches
WHERE status = 'validating' AND deleted_at IS NULL AND expired_at IS NULL
ORDER BY created_at, id;
