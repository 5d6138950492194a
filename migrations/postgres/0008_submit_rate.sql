-- Per-provider submit rate (GCRA): the theoretical arrival time of the next submit, in unix
-- milliseconds, advanced by one conditional update per submit so replicas share the limit.
CREATE TABLE provider_rate (
    provider  TEXT PRIMARY KEY,
    tat       BIGINT NOT NULL
);
