-- 0001: the whole initial schema.
-- Ids of user-facing objects are text with OpenAI-style prefixes (file-…, batch_…); request ids
-- are uuids. Every table an API route reads is scoped by tenant_id so that a query can never
-- return another tenant's rows by accident.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes only; prefix keeps the first characters for display.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    key_hash    bytea NOT NULL UNIQUE,
    prefix      text NOT NULL,
    name        text NOT NULL DEFAULT '',
    is_admin    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- models maps a model name (the "model" of a request body) to its upstream. The concurrency limit
-- is global: the sum of claimed + processing requests of the model never exceeds it. The row is
-- also the lock that serialises claims for the model (see ClaimForModel).
CREATE TABLE models (
    name                        text PRIMARY KEY,
    base_url                    text NOT NULL,
    credential_ref              text NOT NULL DEFAULT '',  -- "env:NAME", a secret ARN, or '' (no auth)
    concurrency_limit           integer NOT NULL CHECK (concurrency_limit >= 0),
    escalation_model            text REFERENCES models (name),
    escalation_threshold_secs   integer NOT NULL DEFAULT 900,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE files (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    filename        text NOT NULL,
    purpose         text NOT NULL,           -- batch, batch_output, batch_error
    bytes           bigint NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'processed' CHECK (status IN ('uploaded', 'processed', 'error')),
    status_details  text,
    object_key      text,                    -- S3 key of the content; NULL while an output file is still growing
    line_count      integer NOT NULL DEFAULT 0,
    batch_id        text,                    -- for batch_output / batch_error files
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    deleted_at      timestamptz
);
CREATE INDEX files_tenant_created_idx ON files (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE batches (
    id                  text PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants (id),
    input_file_id       text NOT NULL REFERENCES files (id),
    endpoint            text NOT NULL,
    completion_window   text NOT NULL,
    status              text NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress', 'finalizing',
                                                        'completed', 'expired', 'cancelling', 'cancelled')),
    model               text,                -- first model of the file (OpenAI's "model" field)
    models              text[] NOT NULL DEFAULT '{}',
    metadata            jsonb,
    errors              jsonb,
    output_file_id      text,
    error_file_id       text,
    -- Counts are frozen here when the batch is sealed; while it runs they are counted live.
    total               integer NOT NULL DEFAULT 0,
    completed           integer NOT NULL DEFAULT 0,
    failed              integer NOT NULL DEFAULT 0,
    usage               jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    in_progress_at      timestamptz,
    finalizing_at       timestamptz,
    completed_at        timestamptz,
    failed_at           timestamptz,
    expired_at          timestamptz,
    cancelling_at       timestamptz,
    cancelled_at        timestamptz,
    deleted_at          timestamptz
);
CREATE INDEX batches_tenant_created_idx ON batches (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- The claim path walks the running batches; there are few of them compared to requests.
CREATE INDEX batches_running_idx ON batches (expires_at) WHERE status = 'in_progress';
-- Finalisation and expiry sweeps look for batches that are still open.
CREATE INDEX batches_open_idx ON batches (status) WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling');

CREATE TABLE requests (
    id              uuid PRIMARY KEY,
    batch_id        text NOT NULL REFERENCES batches (id),
    tenant_id       text NOT NULL,
    line            integer NOT NULL,          -- 1-based line in the input file
    custom_id       text NOT NULL,
    model           text NOT NULL,
    path            text NOT NULL,
    body            bytea NOT NULL,
    body_bytes      integer NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'claimed', 'processing', 'completed', 'failed', 'canceled', 'expired')),
    -- attempt is the fencing token: every claim increments it and every later write for that
    -- delivery is guarded on it.
    attempt         integer NOT NULL DEFAULT 0,
    retries         integer NOT NULL DEFAULT 0,
    not_before      timestamptz,
    owner           text,                      -- worker instance that moved it to processing
    claimed_at      timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    response_status integer,
    response_body   bytea,
    upstream_request_id text,
    error_code      text,
    error_message   text,
    routed_model    text,
    UNIQUE (batch_id, line)
);
-- Claim: per model and batch, pending rows in line order. Partial, so it only ever holds the
-- backlog, not the millions of finished rows.
CREATE INDEX requests_pending_idx ON requests (model, batch_id, line) WHERE state = 'pending';
-- Slot accounting and rescue: the rows that hold a slot. At most Σ limits rows.
CREATE INDEX requests_inflight_idx ON requests (model, tenant_id) WHERE state IN ('claimed', 'processing');
-- "Is the batch done?" and live counts.
CREATE INDEX requests_batch_state_idx ON requests (batch_id, state);

-- workers records each running worker or dispatcher instance, for the admin API and for rescue:
-- a processing request whose owner stopped heart-beating is rescued before its timeout.
CREATE TABLE workers (
    id              text PRIMARY KEY,
    function        text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at      timestamptz,
    invocations     bigint NOT NULL DEFAULT 0,
    processed       bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0
);
CREATE INDEX workers_heartbeat_idx ON workers (heartbeat_at DESC);

-- Idempotency keys for POST /files and POST /batches: a retried request returns the original object.
CREATE TABLE idempotency_keys (
    tenant_id       text NOT NULL,
    key             text NOT NULL,
    route           text NOT NULL,
    request_hash    bytea NOT NULL,
    object_id       text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, route, key)
);
