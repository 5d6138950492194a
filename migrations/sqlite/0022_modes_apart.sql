-- Test and live data stay apart, as a tenant's two separate worlds: end-user settings,
-- webhook endpoints, the per-request webhook secret and the webhook log each belong to one
-- mode, so a test key can neither read nor change what live traffic uses.

-- End users: settings per mode. Existing settings applied to both modes, so they are kept
-- for each.
CREATE TABLE end_users_by_mode (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    mode               TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    user_id            TEXT NOT NULL,
    credits_per_day    BIGINT,
    credits_per_month  BIGINT,
    max_concurrent     BIGINT,
    wallet_mode        TEXT NOT NULL DEFAULT 'none' CHECK (wallet_mode IN ('none', 'first', 'only')),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, mode, user_id)
);
INSERT INTO end_users_by_mode (tenant_id, mode, user_id, credits_per_day, credits_per_month,
                               max_concurrent, wallet_mode, created_at, updated_at)
SELECT tenant_id, modes.mode, user_id, credits_per_day, credits_per_month, max_concurrent,
       wallet_mode, created_at, updated_at
FROM end_users, (SELECT 'live' AS mode UNION ALL SELECT 'test') AS modes;
DROP TABLE end_users;
ALTER TABLE end_users_by_mode RENAME TO end_users;

-- The per-request webhook secret: one per mode. The existing secret signs live deliveries;
-- the test one is created on first use.
CREATE TABLE tenant_webhook_secrets_by_mode (
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    mode                 TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  BIGINT,
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, mode)
);
INSERT INTO tenant_webhook_secrets_by_mode
SELECT tenant_id, 'live', secret, previous_secret, previous_expires_at, created_at
FROM tenant_webhook_secrets;
DROP TABLE tenant_webhook_secrets;
ALTER TABLE tenant_webhook_secrets_by_mode RENAME TO tenant_webhook_secrets;

-- Endpoints receive the events of their own mode; existing endpoints are live.
ALTER TABLE webhook_endpoints ADD COLUMN mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'));
DROP INDEX webhook_endpoints_tenant;
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, mode);

-- A message has its video's mode.
ALTER TABLE webhook_messages ADD COLUMN mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'));
UPDATE webhook_messages SET mode = (SELECT videos.mode FROM videos WHERE videos.id = webhook_messages.video_id)
WHERE EXISTS (SELECT 1 FROM videos WHERE videos.id = webhook_messages.video_id AND videos.mode = 'test');

-- A tenant's running jobs are counted per mode, so test jobs never fill the live cap.
CREATE TABLE tenant_running_by_mode (
    tenant_id TEXT NOT NULL,
    mode      TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    running   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, mode)
);
INSERT INTO tenant_running_by_mode (tenant_id, mode, running)
SELECT tenant_id, mode, COUNT(*) FROM videos WHERE status IN ('queued', 'in_progress') GROUP BY tenant_id, mode;
DROP TABLE tenant_running;
ALTER TABLE tenant_running_by_mode RENAME TO tenant_running;
