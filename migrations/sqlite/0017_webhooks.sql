-- Tenant webhooks: endpoints, the durable outbox of messages (one per event and target,
-- written in the transaction that ends the job) and the log of delivery attempts.
CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    -- Comma-separated event types this endpoint receives.
    events               TEXT NOT NULL,
    -- `whsec_` + base64: the HMAC key must be known to sign, so it is stored as issued.
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  BIGINT,
    disabled_at          BIGINT,
    disabled_reason      TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

-- The signing secret for the per-request `webhook_url` of a tenant's creates.
CREATE TABLE tenant_webhook_secrets (
    tenant_id            TEXT PRIMARY KEY REFERENCES tenants (id),
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  BIGINT,
    created_at           BIGINT NOT NULL
);

CREATE TABLE webhook_messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    endpoint_id      TEXT REFERENCES webhook_endpoints (id),
    -- Set for the per-request `webhook_url` target; endpoints are looked up at send time.
    url              TEXT,
    event_type       TEXT NOT NULL,
    video_id         TEXT NOT NULL,
    -- Rendered at the first attempt and sent byte for byte on every retry.
    payload          TEXT,
    event_at         BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'canceled')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_messages_tenant ON webhook_messages (tenant_id, created_at);
CREATE INDEX webhook_messages_video ON webhook_messages (video_id);

CREATE TABLE webhook_attempts (
    id            TEXT PRIMARY KEY,
    message_id    TEXT NOT NULL REFERENCES webhook_messages (id),
    tenant_id     TEXT NOT NULL,
    attempted_at  BIGINT NOT NULL,
    status        BIGINT,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    response      TEXT
);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, attempted_at);

-- Archived outputs: where the copy of a completed video's MP4 lives in the gateway's storage.
ALTER TABLE videos ADD COLUMN archive_state TEXT;
ALTER TABLE videos ADD COLUMN archive_key TEXT;
ALTER TABLE videos ADD COLUMN archive_bytes BIGINT;
ALTER TABLE videos ADD COLUMN archive_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE videos ADD COLUMN archive_next_at BIGINT;
CREATE INDEX videos_archive_due ON videos (archive_next_at) WHERE archive_state = 'pending';
