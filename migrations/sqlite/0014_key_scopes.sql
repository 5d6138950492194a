-- What a key may do (a JSON array of scopes; NULL: every tenant scope) and until when.
ALTER TABLE api_keys ADD COLUMN scopes TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
