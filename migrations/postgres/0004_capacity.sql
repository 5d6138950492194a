-- Jobs running at each provider, against its `max_concurrent`. A job that holds a slot names
-- the provider in `slot_provider`; the slot is taken and given back in the same transactions
-- as the job's own state changes, so the count is exact across replicas.
CREATE TABLE provider_slots (
    provider  TEXT PRIMARY KEY,
    in_use    BIGINT NOT NULL DEFAULT 0 CHECK (in_use >= 0)
);
ALTER TABLE videos ADD COLUMN slot_provider TEXT;
CREATE INDEX videos_queued ON videos (provider, seq) WHERE status = 'queued';
