-- Routing policy set by the operator for a tenant or an API key. Unset fields inherit from
-- the level above (operator default, then tenant, then key); a request can only narrow.
CREATE TABLE routing_policies (
    scope        TEXT NOT NULL CHECK (scope IN ('tenant', 'key')),
    scope_id     TEXT NOT NULL,
    strategy     TEXT,
    providers    TEXT,
    fallback     BIGINT,
    resubmit     BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, scope_id)
);
