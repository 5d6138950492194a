-- The cost an upstream reported for a job, as it wrote it, and converted to micro-USD.
ALTER TABLE videos ADD COLUMN upstream_cost TEXT;
ALTER TABLE videos ADD COLUMN upstream_cost_micro_usd BIGINT;
-- Per-job secret in provider callback URLs, for providers that do not sign webhooks.
ALTER TABLE videos ADD COLUMN callback_token TEXT;
CREATE UNIQUE INDEX videos_callback_token ON videos (callback_token);
