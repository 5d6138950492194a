-- Tenants, their API keys and the operator's generated admin tokens.
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    billing_kind  TEXT NOT NULL CHECK (billing_kind IN ('prepaid', 'postpaid')),
    -- The lowest the available balance may go: 0 for prepaid, negative for postpaid.
    credit_floor  BIGINT NOT NULL DEFAULT 0 CHECK (credit_floor <= 0),
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    mode           TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    key_hash       TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    last_used_at   BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Double-entry journal. Every transaction's entries sum to zero; `balance` caches the sum of
-- an account's entries and is updated in the same database transaction as the entries.
CREATE TABLE ledger_accounts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants (id),
    mode        TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    kind        TEXT NOT NULL,
    balance     BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX ledger_accounts_tenant ON ledger_accounts (tenant_id);

CREATE TABLE ledger_entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES ledger_accounts (id),
    tenant_id   TEXT,
    mode        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    video_id    TEXT,
    memo        TEXT,
    actor       TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);
CREATE INDEX ledger_entries_txn ON ledger_entries (txn_id);
CREATE INDEX ledger_entries_tenant ON ledger_entries (tenant_id, seq);

-- One hold per job: pending until captured (posted) or voided, exactly once.
CREATE TABLE holds (
    video_id     TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    mode         TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    captured     BIGINT,
    created_at   BIGINT NOT NULL,
    resolved_at  BIGINT
);
CREATE INDEX holds_pending ON holds (created_at) WHERE state = 'pending';

CREATE TABLE videos (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    api_key_id       TEXT,
    mode             TEXT NOT NULL,
    model            TEXT NOT NULL,
    user_id          TEXT,
    request          TEXT NOT NULL,
    status           TEXT NOT NULL,
    progress         BIGINT NOT NULL DEFAULT 0,
    provider         TEXT,
    upstream_id      TEXT,
    error_code       TEXT,
    error_message    TEXT,
    cost_reserved    BIGINT NOT NULL,
    cost_charged     BIGINT,
    output_url       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    submitted_at     BIGINT,
    completed_at     BIGINT,
    expires_at       BIGINT,
    deleted_at       BIGINT,
    -- Worker scheduling: when the job is next due, and which replica holds it until when.
    next_run_at      BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX videos_tenant_seq ON videos (tenant_id, seq);
CREATE INDEX videos_due ON videos (next_run_at) WHERE status IN ('queued', 'in_progress');
