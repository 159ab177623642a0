//! Stream keys (hashed secrets, revocation, rotation) and the upload tokens issued for them.

use sqlx::Row;

use super::{Db, StreamKey, TokenTable, hash_key, key_from_row, now_rfc3339, random_id};

impl Db {
    /// Creates a key; returns it with its secret (stored only as a hash). A name is one of a
    /// kind across users and keys (a source is found by a key's name or id): None when it is
    /// taken.
    pub async fn create_key(&self, name: &str) -> anyhow::Result<Option<(StreamKey, String)>> {
        let _writer = self.database.writer().await;
        if !name.is_empty() {
            let taken = sqlx::query(self.sql(
                "SELECT 1 FROM users WHERE username = ? UNION ALL SELECT 1 FROM stream_keys WHERE name = ? OR id = ?",
            ))
            .bind(name)
            .bind(name)
            .bind(name)
            .fetch_optional(self.database.pool())
            .await?;
            if taken.is_some() {
                return Ok(None);
            }
        }
        let secret = format!("sk{}", random_id(30));
        let key = StreamKey {
            id: random_id(10),
            name: name.to_string(),
            created_at: now_rfc3339(),
            revoked: false,
            user_id: None,
            private: false,
        };
        sqlx::query(self.sql(
            "INSERT INTO stream_keys (id, name, key_hash, created_at, revoked) VALUES (?, ?, ?, ?, 0)",
        ))
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash_key(&secret))
        .bind(&key.created_at)
        .execute(self.database.pool())
        .await?;
        Ok(Some((key, secret)))
    }

    /// The key a secret belongs to, if it exists and is not revoked.
    pub async fn find_key(&self, secret: &str) -> anyhow::Result<Option<StreamKey>> {
        let row = sqlx::query(self.sql(
            "SELECT id, name, created_at, revoked, user_id, private_default FROM stream_keys WHERE key_hash = ? AND revoked = 0",
        ))
        .bind(hash_key(secret))
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    /// Makes a short-lived token that stands for a stream key (the upload protocol's hello
    /// carries it, so a page never holds the key itself). Returns the token (stored only as a
    /// hash) and its expiry in ms since the epoch. Expired tokens of every key are purged.
    /// A `private` token starts its streams private whatever the key's default.
    pub async fn create_upload_token(
        &self,
        key_id: &str,
        ttl: std::time::Duration,
        private: bool,
    ) -> anyhow::Result<(String, i64)> {
        self.issue_token(TokenTable::Upload, key_id, ttl, private)
            .await
    }

    /// Sets whether a key's streams start private.
    pub async fn set_key_private(&self, key_id: &str, private: bool) -> anyhow::Result<bool> {
        let _writer = self.database.writer().await;
        let done = sqlx::query(self.sql("UPDATE stream_keys SET private_default = ? WHERE id = ?"))
            .bind(i32::from(private))
            .bind(key_id)
            .execute(self.database.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The key that a publisher's credential stands for: a stream key's secret (as
    /// [`Db::find_key`]) or an unexpired upload token of a key that is not revoked.
    pub async fn find_key_for_token(&self, token: &str) -> anyhow::Result<Option<StreamKey>> {
        if let Some(key) = self.find_key(token).await? {
            return Ok(Some(key));
        }
        let row = sqlx::query(self.sql(
            "SELECT k.id, k.name, k.created_at, k.revoked, k.user_id, \
             CASE WHEN t.private = 1 THEN 1 ELSE k.private_default END AS private_default FROM upload_tokens t \
             JOIN stream_keys k ON k.id = t.key_id \
             WHERE t.token_hash = ? AND t.expires_at > ? AND k.revoked = 0",
        ))
        .bind(hash_key(token))
        .bind(chrono::Utc::now().timestamp_millis())
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    /// The name of a key by id (revoked keys too).
    pub async fn key_name(&self, id: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT name FROM stream_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.database.pool())
            .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    pub async fn list_keys(&self) -> anyhow::Result<Vec<StreamKey>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, revoked, user_id, private_default FROM stream_keys ORDER BY created_at",
        )
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key; false when no such key exists.
    pub async fn revoke_key(&self, id: &str) -> anyhow::Result<bool> {
        let _writer = self.database.writer().await;
        let done = sqlx::query(self.sql("UPDATE stream_keys SET revoked = 1 WHERE id = ?"))
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A user's stream key (revoked or not; the newest if an administrator added more).
    pub async fn user_key(&self, user_id: &str) -> anyhow::Result<Option<StreamKey>> {
        let row = sqlx::query(self.sql(
            "SELECT id, name, created_at, revoked, user_id, private_default FROM stream_keys WHERE user_id = ? \
             ORDER BY created_at DESC LIMIT 1",
        ))
        .bind(user_id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    /// Gives a key a new secret (same id, so its videos stay its own) and ends its upload
    /// tokens. Returns the new secret.
    pub async fn rotate_key(&self, key_id: &str) -> anyhow::Result<String> {
        let _writer = self.database.writer().await;
        let secret = format!("sk{}", random_id(30));
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(self.sql("UPDATE stream_keys SET key_hash = ? WHERE id = ?"))
            .bind(hash_key(&secret))
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql("DELETE FROM upload_tokens WHERE key_id = ?"))
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(secret)
    }
}
