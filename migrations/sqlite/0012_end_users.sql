-- A tenant's end users (the `user` field): limits, and how their wallet pays for their jobs.
CREATE TABLE end_users (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    user_id            TEXT NOT NULL,
    credits_per_day    BIGINT,
    credits_per_month  BIGINT,
    max_concurrent     BIGINT,
    -- `none`: the tenant pays; `first`: the wallet, then the tenant; `only`: the wallet alone.
    wallet_mode        TEXT NOT NULL DEFAULT 'none' CHECK (wallet_mode IN ('none', 'first', 'only')),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
-- The account a hold was taken from (a tenant's available balance or an end-user wallet), so
-- that a capture's refund and a void go back where the credits came from.
ALTER TABLE holds ADD COLUMN source_account TEXT;
CREATE INDEX videos_tenant_user ON videos (tenant_id, user_id, created_at);
