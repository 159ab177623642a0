-- The communication proxy's tables (portable SQL: SQLite and PostgreSQL). Versions from 1001 so
-- they can share a database (and its _sqlx_migrations table) with the server's migrations.
CREATE TABLE proxy_subscriptions (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL,
    code TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (source, channel, address)
);
CREATE INDEX proxy_subscriptions_source ON proxy_subscriptions(source, state);

CREATE TABLE proxy_events (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    video_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    records TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE proxy_notifications (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES proxy_events(id),
    subscription_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    source TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- Set just before an SMS is written to the SMSC.
    handed_over_at BIGINT,
    smsc_message_id TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proxy_notifications_due ON proxy_notifications(channel, state, next_attempt_at);
CREATE INDEX proxy_notifications_video ON proxy_notifications(video_id);
CREATE INDEX proxy_notifications_smsc ON proxy_notifications(smsc_message_id);

-- Delivery receipts that arrived before their submit_sm_resp was recorded.
CREATE TABLE proxy_receipts (
    message_id TEXT PRIMARY KEY,
    delivered BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
