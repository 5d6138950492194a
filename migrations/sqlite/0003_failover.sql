-- Providers a job may fail over to, in order (a JSON array of names).
ALTER TABLE videos ADD COLUMN fallbacks TEXT;

-- Every upstream call made for a job, for the operator.
CREATE TABLE job_attempts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id     TEXT NOT NULL,
    provider     TEXT NOT NULL,
    operation    TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    started_at   BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL
);
CREATE INDEX job_attempts_video ON job_attempts (video_id, seq);
