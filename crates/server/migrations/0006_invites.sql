-- Invite codes for `[accounts] signup = "invite"`: made by an administrator, stored only as a
-- SHA-256 hash, used once.
CREATE TABLE invites (
    code_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    used_by TEXT
);
