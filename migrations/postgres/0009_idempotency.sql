-- Idempotency keys (Stripe's semantics), per scope: a tenant id, or `admin` for operator
-- calls. The row is written in the same transaction as what the request creates; the answer
-- is stored once it is known, and replayed for the same key and body for 24 hours.
CREATE TABLE idempotency_keys (
    scope          TEXT NOT NULL,
    key            TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    video_id       TEXT,
    status_code    BIGINT,
    response_body  TEXT,
    response_headers TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
