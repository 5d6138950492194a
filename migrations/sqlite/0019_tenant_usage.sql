-- Running totals behind the tenant caps, so a create checks them in constant time instead of
-- summing the tenant's jobs of the day and month. `tenant_usage` holds, per tenant, mode and
-- UTC day of creation, what the jobs created that day count against the caps: their charge
-- once final, else their hold (0 when failed or canceled), and their seconds (0 when failed
-- or canceled). `tenant_running` counts each tenant's queued and running jobs. Both change in
-- the same transactions as the jobs they count.
CREATE TABLE tenant_usage (
    tenant_id TEXT NOT NULL,
    mode      TEXT NOT NULL,
    day       BIGINT NOT NULL,
    credits   BIGINT NOT NULL DEFAULT 0,
    seconds   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, mode, day)
);

CREATE TABLE tenant_running (
    tenant_id TEXT PRIMARY KEY,
    running   BIGINT NOT NULL DEFAULT 0
);

INSERT INTO tenant_usage (tenant_id, mode, day, credits, seconds)
SELECT tenant_id, mode, created_at / 86400000,
       SUM(COALESCE(cost_charged, cost_reserved)),
       SUM(CASE WHEN status IN ('failed', 'canceled') THEN 0 ELSE seconds END)
FROM videos GROUP BY tenant_id, mode, created_at / 86400000;

INSERT INTO tenant_running (tenant_id, running)
SELECT tenant_id, COUNT(*) FROM videos WHERE status IN ('queued', 'in_progress') GROUP BY tenant_id;

-- Nothing reads a tenant's jobs by mode and day any more.
DROP INDEX videos_tenant_mode_created;

-- The worker reads the running jobs due for a poll, soonest first, without passing over the
-- queued ones.
CREATE INDEX videos_polls_due ON videos (next_run_at) WHERE status = 'in_progress';
