-- Accounts, sessions, upload tokens, private videos. Portable SQL: runs on SQLite and PostgreSQL.
-- Secrets (session and upload tokens) are stored only as SHA-256 hashes; passwords as argon2id
-- PHC strings. Expiry times are milliseconds since the Unix epoch.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- A user's stream key; NULL for keys made by an administrator (`vshare keys`, /api/v1/keys).
ALTER TABLE stream_keys ADD COLUMN user_id TEXT REFERENCES users(id);
CREATE INDEX stream_keys_user ON stream_keys(user_id);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Short-lived tokens for the upload protocol: stand for the stream key they were made for.
CREATE TABLE upload_tokens (
    token_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES stream_keys(id),
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX upload_tokens_key ON upload_tokens(key_id);

-- 'public' or 'private'. deleted_at marks a video being deleted: it is gone for every reader
-- from that moment; its objects and rows are removed after (and again at startup if cut off).
ALTER TABLE videos ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
ALTER TABLE videos ADD COLUMN deleted_at TEXT;

-- Server-wide secrets made once (the key that signs private links).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
