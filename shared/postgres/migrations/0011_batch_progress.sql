-- Progress you can plan with: the maintenance pass samples each running batch's finished lines
-- (completed + failed) once per pass, and a batch's throughput and estimated completion are read
-- against its oldest sample within the window (domain.ProgressWindow). Nothing on the request
-- path writes here. Samples of batches no longer running, and samples older than two windows,
-- are pruned by the same pass, so the table holds about one window of samples per running batch.
CREATE TABLE batch_progress (
    batch_id text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL,
    done     bigint NOT NULL,
    PRIMARY KEY (batch_id, at)
);
