-- What routing saved: at create, the upstream cost at the most expensive eligible provider
-- and at the configured baseline provider; at completion, the catalog estimate at the
-- provider that did the job (used where the provider reports no cost in dollars).
ALTER TABLE videos ADD COLUMN cost_ceiling_micro BIGINT;
ALTER TABLE videos ADD COLUMN cost_baseline_micro BIGINT;
ALTER TABLE videos ADD COLUMN upstream_estimate_micro BIGINT;
