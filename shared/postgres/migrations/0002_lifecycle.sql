-- 0002: cancellation, expiry, retries, deletion and escalation.

-- A processing request whose cancellation was asked for: the worker running it sees the mark,
-- aborts the upstream call and records the request as canceled.
ALTER TABLE requests ADD COLUMN cancel_requested_at timestamptz;

-- Deleting an input file must not be blocked by the batches made from it (they are cancelled and
-- keep their results); purge removes the file row, so the reference becomes NULL.
ALTER TABLE batches ALTER COLUMN input_file_id DROP NOT NULL;
ALTER TABLE batches DROP CONSTRAINT batches_input_file_id_fkey;
ALTER TABLE batches ADD CONSTRAINT batches_input_file_id_fkey
    FOREIGN KEY (input_file_id) REFERENCES files (id) ON DELETE SET NULL;

-- Requests of deleted batches are hard-deleted in chunks by purge.
ALTER TABLE requests DROP CONSTRAINT requests_batch_id_fkey;
ALTER TABLE requests ADD CONSTRAINT requests_batch_id_fkey
    FOREIGN KEY (batch_id) REFERENCES batches (id) ON DELETE CASCADE;

-- Purge's work lists: soft-deleted batches and files, and input files past their expiry.
CREATE INDEX batches_deleted_idx ON batches (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX files_deleted_idx ON files (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX files_expiring_idx ON files (expires_at) WHERE deleted_at IS NULL AND expires_at IS NOT NULL;

-- Batches whose deadline passes are expired by the sweep; this finds them without a scan.
CREATE INDEX batches_deadline_idx ON batches (expires_at) WHERE status IN ('validating', 'in_progress') AND expired_at IS NULL;

-- The finaliser is elected by setting finalizing_at; a cancelled batch keeps status cancelling
-- while it is sealed. The sweep looks for sealings that stalled.
CREATE INDEX batches_sealing_idx ON batches (finalizing_at) WHERE status IN ('finalizing', 'cancelling');
