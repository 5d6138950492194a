-- A tenant's own prices: a fixed list (credits per second by model, resolution and input
-- mode) or cost-plus (upstream cost × (1 + markup), rounded up once). Without a row, the
-- operator's `pricing.credits_per_second` applies.
CREATE TABLE tenant_prices (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id),
    kind         TEXT NOT NULL CHECK (kind IN ('fixed', 'cost_plus')),
    rules        TEXT,
    markup_bps   BIGINT,
    updated_at   BIGINT NOT NULL
);
