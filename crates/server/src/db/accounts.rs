//! Accounts: users (with their first stream key), sessions, and server-wide secrets.

use sqlx::Row;

use super::{Db, StreamKey, TokenTable, User, hash_key, now_rfc3339, random_id, user_from_row};

/// What [`Db::create_user`] did.
pub enum CreateUser {
    /// The user, their stream key and its secret.
    Created(User, StreamKey, String),
    /// The name is a user's, or a stream key's name or id.
    Taken,
    /// The invite code is unknown or spent.
    BadInvite,
}

impl Db {
    /// Creates a user and their stream key in one transaction, spending `invite` if given.
    /// Returns the key's secret (shown once).
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        invite: Option<&str>,
    ) -> anyhow::Result<CreateUser> {
        let _writer = self.database.writer().await;
        let user = User {
            id: random_id(10),
            username: username.to_string(),
            created_at: now_rfc3339(),
        };
        let secret = format!("sk{}", random_id(30));
        let key = StreamKey {
            id: random_id(10),
            name: username.to_string(),
            created_at: user.created_at.clone(),
            revoked: false,
            user_id: Some(user.id.clone()),
            private: false,
        };
        let mut tx = self.database.pool().begin().await?;
        // A write first, so the transaction holds SQLite's write lock (waiting for it under the
        // busy timeout) before it reads: a read that had to be upgraded later would fail at
        // once ("database is locked") if another process wrote in between.
        sqlx::query("UPDATE users SET id = id WHERE 1 = 0")
            .execute(&mut *tx)
            .await?;
        if let Some(code) = invite {
            let spent = sqlx::query(
                self.sql("UPDATE invites SET used_by = ? WHERE code_hash = ? AND used_by IS NULL"),
            )
            .bind(&user.id)
            .bind(hash_key(code))
            .execute(&mut *tx)
            .await?;
            if spent.rows_affected() == 0 {
                return Ok(CreateUser::BadInvite);
            }
        }
        // One namespace for users and stream keys: a source is found by a key's name or id.
        let taken = sqlx::query(self.sql(
            "SELECT 1 FROM users WHERE username = ? UNION ALL SELECT 1 FROM stream_keys WHERE name = ? OR id = ?",
        ))
        .bind(username)
        .bind(username)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Ok(CreateUser::Taken);
        }
        let inserted = sqlx::query(self.sql(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
        ))
        .bind(&user.id)
        .bind(username)
        .bind(password_hash)
        .bind(&user.created_at)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            // Two sign-ups with one name at once: the UNIQUE constraint decides.
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                return Ok(CreateUser::Taken);
            }
            return Err(e.into());
        }
        sqlx::query(self.sql(
            "INSERT INTO stream_keys (id, name, key_hash, created_at, revoked, user_id) VALUES (?, ?, ?, ?, 0, ?)",
        ))
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash_key(&secret))
        .bind(&key.created_at)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CreateUser::Created(user, key, secret))
    }

    /// Makes an invite code (stored only as a hash); returns it.
    pub async fn create_invite(&self) -> anyhow::Result<String> {
        let _writer = self.database.writer().await;
        let code = format!("inv{}", random_id(24));
        sqlx::query(self.sql("INSERT INTO invites (code_hash, created_at) VALUES (?, ?)"))
            .bind(hash_key(&code))
            .bind(now_rfc3339())
            .execute(self.database.pool())
            .await?;
        Ok(code)
    }

    /// A user and their password hash (PHC string), by name.
    pub async fn user_by_name(&self, username: &str) -> anyhow::Result<Option<(User, String)>> {
        let row =
            sqlx::query(self.sql(
                "SELECT id, username, created_at, password_hash FROM users WHERE username = ?",
            ))
            .bind(username)
            .fetch_optional(self.database.pool())
            .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// Starts a session; returns its token (stored only as a hash) and expiry (ms).
    /// Expired sessions of every user are purged.
    pub async fn create_session(
        &self,
        user_id: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<(String, i64)> {
        self.issue_token(TokenTable::Session, user_id, ttl, false)
            .await
    }

    /// The user of an unexpired session token.
    pub async fn session_user(&self, token: &str) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(self.sql(
            "SELECT u.id, u.username, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        ))
        .bind(hash_key(token))
        .bind(chrono::Utc::now().timestamp_millis())
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn delete_session(&self, token: &str) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        sqlx::query(self.sql("DELETE FROM sessions WHERE token_hash = ?"))
            .bind(hash_key(token))
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// A server-wide secret by name, made (random) the first time any server asks for it.
    pub async fn server_secret(&self, name: &str) -> anyhow::Result<String> {
        let _writer = self.database.writer().await;
        sqlx::query(self.sql(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        ))
        .bind(name)
        .bind(random_id(43))
        .execute(self.database.pool())
        .await?;
        let row = sqlx::query(self.sql("SELECT value FROM server_secrets WHERE name = ?"))
            .bind(name)
            .fetch_one(self.database.pool())
            .await?;
        Ok(row.try_get("value")?)
    }
}
