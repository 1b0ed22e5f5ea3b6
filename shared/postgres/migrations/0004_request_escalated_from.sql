-- 0004: remember the model an escalated request names, so that it can be given back.
-- The claim hands a request of a batch near its deadline to its model's escalation target by
-- rewriting model (the slot charged is the fallback's). escalated_from keeps the model the
-- request names while that lasts; every path back to pending restores it, so the next claim
-- decides the escalation afresh. NULL when the request is not escalated.
ALTER TABLE requests ADD COLUMN escalated_from text;

-- Requests escalated before this column existed: routed_model names the fallback they were
-- handed to; the model they came from is the one of their batch that escalates there.
UPDATE requests r SET escalated_from = s.name
FROM batches b, models s
WHERE b.id = r.batch_id AND r.routed_model IS NOT NULL AND r.model = r.routed_model
  AND s.name = ANY (b.models) AND s.escalation_model = r.model
  AND r.state IN ('pending', 'claimed', 'processing', 'failed');

-- Those already back in pending were stranded (neither model's claim found them): give them back
-- now.
UPDATE requests SET model = escalated_from, escalated_from = NULL, routed_model = NULL
WHERE state = 'pending' AND escalated_from IS NOT NULL;
