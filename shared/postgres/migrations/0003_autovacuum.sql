-- 0003: vacuum the requests table early.
-- Every request changes state several times (pending → claimed → processing → completed), and
-- state is in the claim and counting indexes, so each change leaves a dead index entry behind.
-- With the default thresholds (20 % of the table) a 100,000-row batch piles up tens of thousands
-- of dead entries at the front of the pending index before the first vacuum, and every claim and
-- finalisation check walks past them. Vacuuming after 1 % (plus 1,000 rows), without cost
-- throttling, keeps those scans short. fusillade tunes the same table the same way.
ALTER TABLE requests SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);
