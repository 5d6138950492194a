-- A submit is written as an attempt before it is sent (outcome 'sent', its intent), with the
-- client reference the provider sees, and completed with its outcome and the upstream job it
-- made. An intent still 'sent' when the job is next taken was cut off by a crash or a lost
-- lease: it is treated as a lost answer.
ALTER TABLE job_attempts ADD COLUMN client_ref TEXT;
ALTER TABLE job_attempts ADD COLUMN upstream_id TEXT;
