-- Jobs whose provider calls back are polled only as a safety net (workers/jobs.rs).
-- poll_cause: why the job is next due upstream (scheduled, safety, webhook), for the metrics
-- and for the schedule that follows; webhook_at: when a verified webhook last arrived;
-- upstream_requests: requests made upstream for the job (submits and polls), observed per
-- provider when it completes.
ALTER TABLE videos ADD COLUMN poll_cause TEXT NOT NULL DEFAULT 'scheduled';
ALTER TABLE videos ADD COLUMN webhook_at BIGINT;
ALTER TABLE videos ADD COLUMN upstream_requests BIGINT NOT NULL DEFAULT 0;

-- Observed time from submit to completion per provider, model and length: an exponentially
-- weighted moving average (weight 1/8 for each new job). The safety poll of a job whose
-- provider gives no estimate comes just after it.
CREATE TABLE job_durations (
    provider  TEXT NOT NULL,
    model     TEXT NOT NULL,
    seconds   BIGINT NOT NULL,
    ewma_ms   BIGINT NOT NULL,
    samples   BIGINT NOT NULL,
    PRIMARY KEY (provider, model, seconds)
);
