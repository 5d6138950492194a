-- Seconds of video requested, as a column for usage reports.
ALTER TABLE videos ADD COLUMN seconds BIGINT;
CREATE INDEX videos_tenant_completed ON videos (tenant_id, completed_at);
