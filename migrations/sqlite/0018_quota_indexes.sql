-- The tenant caps read, on every create, the tenant's running jobs and its spend since the
-- start of the day and month: index both, so neither scans the tenant's whole history.
CREATE INDEX videos_tenant_running ON videos (tenant_id, status) WHERE status IN ('queued', 'in_progress');
CREATE INDEX videos_tenant_mode_created ON videos (tenant_id, mode, created_at);
