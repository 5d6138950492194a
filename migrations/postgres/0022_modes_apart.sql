-- Test and live data stay apart, as a tenant's two separate worlds: end-user settings,
-- webhook endpoints, the per-request webhook secret and the webhook log each belong to one
-- mode, so a test key can neither read nor change what live traffic uses.

-- End users: settings per mode. Existing settings applied to both modes, so they are kept
-- for each.
ALTER TABLE end_users ADD COLUMN mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'));
ALTER TABLE end_users DROP CONSTRAINT end_users_pkey;
ALTER TABLE end_users ADD PRIMARY KEY (tenant_id, mode, user_id);
INSERT INTO end_users (tenant_id, mode, user_id, credits_per_day, credits_per_month,
                       max_concurrent, wallet_mode, created_at, updated_at)
SELECT tenant_id, 'test', user_id, credits_per_day, credits_per_month, max_concurrent,
       wallet_mode, created_at, updated_at
FROM end_users WHERE mode = 'live';
ALTER TABLE end_users ALTER COLUMN mode DROP DEFAULT;

-- The per-request webhook secret: one per mode. The existing secret signs live deliveries;
-- the test one is created on first use.
ALTER TABLE tenant_webhook_secrets ADD COLUMN mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'));
ALTER TABLE tenant_webhook_secrets DROP CONSTRAINT tenant_webhook_secrets_pkey;
ALTER TABLE tenant_webhook_secrets ADD PRIMARY KEY (tenant_id, mode);
ALTER TABLE tenant_webhook_secrets ALTER COLUMN mode DROP DEFAULT;

-- Endpoints receive the events of their own mode; existing endpoints are live.
ALTER TABLE webhook_endpoints ADD COLUMN mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'));
DROP INDEX webhook_endpoints_tenant;
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, mode);

-- A message has its video's mode.
ALTER TABLE webhook_messages ADD COLUMN mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'));
UPDATE webhook_messages SET mode = videos.mode FROM videos
WHERE videos.id = webhook_messages.video_id AND videos.mode = 'test';

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
