-- Observed time from submit to completion per provider and model: an exponentially weighted
-- moving average (weight 1/8 for each new job), updated when a job completes.
CREATE TABLE provider_speed (
    provider  TEXT NOT NULL,
    model     TEXT NOT NULL,
    ewma_ms   BIGINT NOT NULL,
    samples   BIGINT NOT NULL,
    PRIMARY KEY (provider, model)
);
