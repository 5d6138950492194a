-- Caps the operator set for a tenant; checked in the transaction that creates a job.
CREATE TABLE tenant_quotas (
    tenant_id              TEXT PRIMARY KEY REFERENCES tenants (id),
    max_concurrent         BIGINT,
    credits_per_day        BIGINT,
    credits_per_month      BIGINT,
    video_seconds_per_day  BIGINT,
    updated_at             BIGINT NOT NULL
);
