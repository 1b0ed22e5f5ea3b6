-- Signed webhooks: a tenant's endpoints, the outbox of events to deliver to them (one row per
-- event and endpoint, written by a trigger in the transaction of the batch's terminal
-- transition, whichever statement makes it), and the log of delivery attempts.

-- secret is the whsec_ signing secret. The sender needs it in clear to sign, so it is not hashed;
-- the API shows it once, at creation, and never reads it back (signing_secret_hint only).
CREATE TABLE webhook_endpoints (
    id                     text PRIMARY KEY,
    tenant_id              text NOT NULL REFERENCES tenants (id),
    url                    text NOT NULL,
    event_types            text[] NOT NULL,
    secret                 text NOT NULL,
    progress_every_percent integer NOT NULL DEFAULT 0 CHECK (progress_every_percent BETWEEN 0 AND 100),
    progress_every_minutes integer NOT NULL DEFAULT 0 CHECK (progress_every_minutes >= 0),
    created_at             timestamptz NOT NULL,
    deleted_at             timestamptz
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, created_at) WHERE deleted_at IS NULL;

-- One event for one endpoint. id is the event id, sent as webhook-id on every attempt. attempts
-- counts claims: a sender claims a due row by bumping it (and pushing next_attempt_at past its
-- lease), and records the result guarded on the number it claimed, so two senders never make the
-- same attempt and a sender whose lease ran out writes nothing. No foreign key to batches: the
-- purge drops batches without waiting on their deliveries.
CREATE TABLE webhook_deliveries (
    id              text PRIMARY KEY,
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints (id),
    tenant_id       text NOT NULL,
    event_type      text NOT NULL,
    batch_id        text NOT NULL,
    data            jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    delivery_state  text NOT NULL DEFAULT 'pending' CHECK (delivery_state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE delivery_state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);

CREATE TABLE webhook_attempts (
    delivery_id text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL,
    status_code integer NOT NULL,
    latency_ms  bigint NOT NULL,
    error       text NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- The last batch.progress sent for each (endpoint, batch): the finished share it reported and
-- when. Rows go when the batch's deliveries are purged.
CREATE TABLE webhook_progress (
    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
    batch_id    text NOT NULL,
    percent     integer NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, batch_id)
);

-- The last batch.deadline_at_risk sent for each (endpoint, batch) and the deadline it warned
-- about: one warning per deadline, so a batch extended and still late warns again. Rows go with
-- the progress marks, when the batch no longer runs.
CREATE TABLE webhook_risk_marks (
    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
    batch_id    text NOT NULL,
    expires_at  timestamptz NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, batch_id)
);

-- A batch's move into completed, failed, expired or cancelled enqueues batch.<status> for every
-- live endpoint of its tenant subscribed to it, in the same transaction: the event exists if and
-- only if the transition committed, and exactly once per transition (a batch reopened by a retry
-- and sealed again sends a new event). Deleted batches send nothing.
CREATE FUNCTION webhook_enqueue_terminal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, batch_id, data, created_at, next_attempt_at)
    SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), e.id, NEW.tenant_id, 'batch.' || NEW.status, NEW.id,
           jsonb_build_object('id', NEW.id), t.at, t.at
    FROM webhook_endpoints e
    CROSS JOIN LATERAL (SELECT coalesce(CASE NEW.status WHEN 'completed' THEN NEW.completed_at WHEN 'failed' THEN NEW.failed_at
                                                        WHEN 'expired' THEN NEW.expired_at WHEN 'cancelled' THEN NEW.cancelled_at END,
                                        now()) AS at) t
    WHERE e.tenant_id = NEW.tenant_id AND e.deleted_at IS NULL AND ('batch.' || NEW.status) = ANY (e.event_types);
    RETURN NULL;
END $$;

CREATE TRIGGER batches_webhook_terminal AFTER UPDATE OF status ON batches
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('completed', 'failed', 'expired', 'cancelled')
                       AND NEW.deleted_at IS NULL)
    EXECUTE FUNCTION webhook_enqueue_terminal();
