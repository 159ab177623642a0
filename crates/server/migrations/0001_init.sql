-- Portable SQL: runs on SQLite and PostgreSQL.
CREATE TABLE stream_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE videos (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES stream_keys(id),
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    attributes TEXT NOT NULL
);
CREATE INDEX videos_key ON videos(key_id, created_at);

CREATE TABLE segments (
    video_id TEXT NOT NULL REFERENCES videos(id),
    msn BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (video_id, msn)
);

CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT
);
CREATE INDEX webhook_due ON webhook_outbox(state, next_attempt_at);
