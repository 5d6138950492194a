-- Request rate set by the operator for one tenant, over `limits.tenant_requests_per_minute`.
CREATE TABLE tenant_limits (
    tenant_id            TEXT PRIMARY KEY REFERENCES tenants (id),
    requests_per_minute  BIGINT NOT NULL,
    burst                BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
