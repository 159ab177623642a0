-- Confirmation codes expire and have a small attempt budget; listeners are bound to a secret
-- (its SHA-256), set by the first connection that names the listener.
ALTER TABLE proxy_subscriptions ADD COLUMN code_expires_at BIGINT;
ALTER TABLE proxy_subscriptions ADD COLUMN code_attempts BIGINT NOT NULL DEFAULT 0;
CREATE TABLE proxy_listeners (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
