//! Metadata in SQL: stream keys, users and sessions, videos, recorded segments.
//! SQLite by default, PostgreSQL by URL; the same portable queries and migrations for both, on
//! the process's one [`Database`]. Every write takes its writer guard first.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use vshare_attributes::AttributeRecord;
use vshare_sql::Database;

/// Lifecycle of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoState {
    /// Its publisher is streaming; the recording grows.
    Live,
    /// The publisher stopped; the recording is being finished.
    Finishing,
    /// Finished: fast-start MP4 and HLS VOD are stored.
    Ready,
    /// The server stopped during the recording; what was stored has been finished.
    Partial,
}

impl VideoState {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoState::Live => "live",
            VideoState::Finishing => "finishing",
            VideoState::Ready => "ready",
            VideoState::Partial => "partial",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "live" => VideoState::Live,
            "finishing" => VideoState::Finishing,
            "ready" => VideoState::Ready,
            "partial" => VideoState::Partial,
            other => anyhow::bail!("unknown video state {other:?} in the database"),
        })
    }
}

/// Who may watch a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed, and open to everyone.
    #[default]
    Public,
    /// Not listed; open to its owner's session and to signed, expiring links.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// A video as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Video {
    pub id: String,
    #[serde(skip)]
    pub key_id: String,
    pub title: String,
    pub state: VideoState,
    pub created_at: String,
    pub ended_at: Option<String>,
    pub attributes: Vec<AttributeRecord>,
    #[serde(default)]
    pub visibility: Visibility,
}

/// The two tables of hashed, expiring tokens (names fixed here, never from input).
#[derive(Debug, Clone, Copy)]
enum TokenTable {
    Upload,
    Session,
}

/// A user account (the password hash is never part of it).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(skip)]
    pub created_at: String,
}

/// What decides who may read a video: its visibility and its owner's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoAccess {
    pub visibility: Visibility,
    pub owner: Option<String>,
    pub state: VideoState,
}

/// Why a video was not marked for deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkDeleted {
    Marked,
    NotFound,
    /// Still being recorded or finished: its objects are being written.
    Busy(VideoState),
}

/// A stream key as stored (the secret itself is only shown once, at creation).
#[derive(Debug, Clone, Serialize)]
pub struct StreamKey {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub revoked: bool,
    /// The account it belongs to; None for keys made by an administrator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// One recorded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub msn: i64,
    pub duration_us: i64,
    pub size: i64,
    /// The init segment it was packaged under, as stored beside it: `init.mp4`, or
    /// `init<msn>.mp4` after a codec configuration change.
    pub init_name: String,
}

#[derive(Clone)]
pub struct Db {
    database: Database,
}

pub use vshare_sql::{now_rfc3339, random_id};

fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Db> {
        let database = Database::open(url)
            .await
            .map_err(|e| anyhow::anyhow!("database {url}: {e}"))?;
        Db::on(database).await
    }

    /// The server's tables on a database opened before (shared with the proxy role).
    pub async fn on(database: Database) -> anyhow::Result<Db> {
        database
            .migrate(sqlx::migrate!("./migrations"))
            .await
            .map_err(|e| anyhow::anyhow!("database migrations: {e}"))?;
        Ok(Db { database })
    }

    /// The pool and writer discipline this role shares with the others on the database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        self.database.sql(sql)
    }

    // --- stream keys ---

    /// Creates a key; returns it with its secret (stored only as a hash).
    pub async fn create_key(&self, name: &str) -> anyhow::Result<(StreamKey, String)> {
        let _writer = self.database.writer().await;
        let secret = format!("sk{}", random_id(30));
        let key = StreamKey {
            id: random_id(10),
            name: name.to_string(),
            created_at: now_rfc3339(),
            revoked: false,
            user_id: None,
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
        Ok((key, secret))
    }

    /// The key a secret belongs to, if it exists and is not revoked.
    pub async fn find_key(&self, secret: &str) -> anyhow::Result<Option<StreamKey>> {
        let row = sqlx::query(self.sql(
            "SELECT id, name, created_at, revoked, user_id FROM stream_keys WHERE key_hash = ? AND revoked = 0",
        ))
        .bind(hash_key(secret))
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    /// Makes a short-lived token that stands for a stream key (the upload protocol's hello
    /// carries it, so a page never holds the key itself). Returns the token (stored only as a
    /// hash) and its expiry in ms since the epoch. Expired tokens of every key are purged.
    pub async fn create_upload_token(
        &self,
        key_id: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<(String, i64)> {
        self.issue_token(TokenTable::Upload, key_id, ttl).await
    }

    /// The key that a publisher's credential stands for: a stream key's secret (as
    /// [`Db::find_key`]) or an unexpired upload token of a key that is not revoked.
    pub async fn find_key_for_token(&self, token: &str) -> anyhow::Result<Option<StreamKey>> {
        if let Some(key) = self.find_key(token).await? {
            return Ok(Some(key));
        }
        let row = sqlx::query(self.sql(
            "SELECT k.id, k.name, k.created_at, k.revoked, k.user_id FROM upload_tokens t \
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
            "SELECT id, name, created_at, revoked, user_id FROM stream_keys ORDER BY created_at",
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

    // --- accounts ---

    /// Creates a user and their stream key in one transaction. None when the username is
    /// taken. Returns the key's secret (shown once).
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
    ) -> anyhow::Result<Option<(User, StreamKey, String)>> {
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
        };
        let mut tx = self.database.pool().begin().await?;
        let taken = sqlx::query(self.sql("SELECT id FROM users WHERE username = ?"))
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(None);
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
                return Ok(None);
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
        Ok(Some((user, key, secret)))
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
        self.issue_token(TokenTable::Session, user_id, ttl).await
    }

    /// A new random token in `table` for `owner`, stored only as a hash; expired tokens of the
    /// table are purged first. Returns the token and its expiry (ms since the epoch).
    async fn issue_token(
        &self,
        table: TokenTable,
        owner: &str,
        ttl: std::time::Duration,
    ) -> anyhow::Result<(String, i64)> {
        let _writer = self.database.writer().await;
        let (name, owner_column, prefix) = match table {
            TokenTable::Upload => ("upload_tokens", "key_id", "ut"),
            TokenTable::Session => ("sessions", "user_id", "ss"),
        };
        let now = chrono::Utc::now().timestamp_millis();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let token = format!("{prefix}{}", random_id(40));
        sqlx::query(self.sql(&format!("DELETE FROM {name} WHERE expires_at <= ?")))
            .bind(now)
            .execute(self.database.pool())
            .await?;
        sqlx::query(self.sql(&format!(
            "INSERT INTO {name} (token_hash, {owner_column}, created_at, expires_at) VALUES (?, ?, ?, ?)"
        )))
        .bind(hash_key(&token))
        .bind(owner)
        .bind(now_rfc3339())
        .bind(expires_at)
        .execute(self.database.pool())
        .await?;
        Ok((token, expires_at))
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

    /// A user's stream key (revoked or not; the newest if an administrator added more).
    pub async fn user_key(&self, user_id: &str) -> anyhow::Result<Option<StreamKey>> {
        let row = sqlx::query(self.sql(
            "SELECT id, name, created_at, revoked, user_id FROM stream_keys WHERE user_id = ? \
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

    /// The videos published with a user's keys, newest first.
    pub async fn user_videos(&self, user_id: &str) -> anyhow::Result<Vec<Video>> {
        let rows = sqlx::query(self.sql(
            "SELECT v.id, v.key_id, v.title, v.state, v.created_at, v.ended_at, v.attributes, v.visibility \
             FROM videos v JOIN stream_keys k ON k.id = v.key_id \
             WHERE k.user_id = ? AND v.deleted_at IS NULL ORDER BY v.created_at DESC",
        ))
        .bind(user_id)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(video_from_row).collect()
    }

    /// Visibility, owner and state of a video that exists and is not being deleted.
    pub async fn video_access(&self, id: &str) -> anyhow::Result<Option<VideoAccess>> {
        let row = sqlx::query(self.sql(
            "SELECT v.visibility, v.state, k.user_id FROM videos v LEFT JOIN stream_keys k ON k.id = v.key_id \
             WHERE v.id = ? AND v.deleted_at IS NULL",
        ))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| {
            let visibility: String = r.try_get("visibility")?;
            let state: String = r.try_get("state")?;
            Ok(VideoAccess {
                visibility: Visibility::parse(&visibility).ok_or_else(|| {
                    anyhow::anyhow!("unknown visibility {visibility:?} in the database")
                })?,
                owner: r.try_get("user_id")?,
                state: VideoState::parse(&state)?,
            })
        })
        .transpose()
    }

    pub async fn set_visibility(&self, id: &str, visibility: Visibility) -> anyhow::Result<bool> {
        let _writer = self.database.writer().await;
        let done = sqlx::query(
            self.sql("UPDATE videos SET visibility = ? WHERE id = ? AND deleted_at IS NULL"),
        )
        .bind(visibility.as_str())
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// First step of a deletion: from this statement on, the video is gone for every reader.
    /// Refused while the video is live or finishing (its objects are still being written).
    pub async fn mark_deleted(&self, id: &str) -> anyhow::Result<MarkDeleted> {
        let _writer = self.database.writer().await;
        let done = sqlx::query(self.sql(
            "UPDATE videos SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL \
             AND state <> 'live' AND state <> 'finishing'",
        ))
        .bind(now_rfc3339())
        .bind(id)
        .execute(self.database.pool())
        .await?;
        if done.rows_affected() > 0 {
            return Ok(MarkDeleted::Marked);
        }
        Ok(match self.video_access(id).await? {
            Some(a) => MarkDeleted::Busy(a.state),
            None => MarkDeleted::NotFound,
        })
    }

    /// Videos marked deleted whose objects and rows may still be there.
    pub async fn deleted_videos(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM videos WHERE deleted_at IS NOT NULL")
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Last step of a deletion (its objects are gone): the video's rows, in one transaction.
    pub async fn purge_video(&self, id: &str) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(self.sql("DELETE FROM rendition_segments WHERE video_id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql("DELETE FROM videos WHERE id = ? AND deleted_at IS NOT NULL"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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

    // --- videos ---

    pub async fn insert_video(&self, v: &Video) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        sqlx::query(self.sql(
            "INSERT INTO videos (id, key_id, title, state, created_at, ended_at, attributes, visibility) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&v.id)
        .bind(&v.key_id)
        .bind(&v.title)
        .bind(v.state.as_str())
        .bind(&v.created_at)
        .bind(v.ended_at.clone())
        .bind(serde_json::to_string(&v.attributes)?)
        .bind(v.visibility.as_str())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Updates a video; with `hook`, queues the webhook about it in the same transaction (in
    /// the proxy's outbox), so the hand-off is never lost between the two.
    pub async fn update_video(
        &self,
        id: &str,
        state: VideoState,
        attributes: &[AttributeRecord],
        ended_at: Option<&str>,
        hook: Option<crate::webhook::Hook>,
    ) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(
            self.sql("UPDATE videos SET state = ?, attributes = ?, ended_at = ? WHERE id = ?"),
        )
        .bind(state.as_str())
        .bind(serde_json::to_string(attributes)?)
        .bind(ended_at.map(str::to_string))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(hook) = hook {
            let row = sqlx::query(self.sql(&format!("{VIDEO_COLUMNS} WHERE id = ?")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let video = video_from_row(&row)?;
            let body = serde_json::json!({ "event": hook.event, "video": video }).to_string();
            let message = hook.message(&video.key_id, id, body);
            vshare_proxy::direct::queue_on(
                &mut tx,
                &self.database,
                &message,
                chrono::Utc::now().timestamp_millis(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A video, unless it does not exist or is being deleted.
    pub async fn get_video(&self, id: &str) -> anyhow::Result<Option<Video>> {
        let row = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE id = ? AND deleted_at IS NULL"
        )))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| video_from_row(&r)).transpose()
    }

    /// Videos (public and private), newest first; only those in `state` when given.
    pub async fn list_videos(&self, state: Option<VideoState>) -> anyhow::Result<Vec<Video>> {
        self.list_where(state, "").await
    }

    /// Public videos, newest first; only those in `state` when given.
    pub async fn list_public_videos(
        &self,
        state: Option<VideoState>,
    ) -> anyhow::Result<Vec<Video>> {
        self.list_where(state, " AND visibility = 'public'").await
    }

    async fn list_where(
        &self,
        state: Option<VideoState>,
        and: &'static str,
    ) -> anyhow::Result<Vec<Video>> {
        let rows = match state {
            Some(s) => {
                sqlx::query(self.sql(&format!(
                    "{VIDEO_COLUMNS} WHERE deleted_at IS NULL AND state = ?{and} ORDER BY created_at DESC"
                )))
                .bind(s.as_str())
                .fetch_all(self.database.pool())
                .await?
            }
            None => {
                sqlx::query(self.sql(&format!(
                    "{VIDEO_COLUMNS} WHERE deleted_at IS NULL{and} ORDER BY created_at DESC"
                )))
                .fetch_all(self.database.pool())
                .await?
            }
        };
        rows.iter().map(video_from_row).collect()
    }

    /// Videos in `state` that ended at or after `since` (RFC 3339, as stored).
    pub async fn videos_ended_since(
        &self,
        state: VideoState,
        since: &str,
    ) -> anyhow::Result<Vec<Video>> {
        let rows = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE state = ? AND ended_at >= ? AND deleted_at IS NULL ORDER BY created_at"
        )))
        .bind(state.as_str())
        .bind(since)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(video_from_row).collect()
    }

    pub async fn latest_video_for_key(&self, key_id: &str) -> anyhow::Result<Option<Video>> {
        let row = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE key_id = ? AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(key_id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| video_from_row(&r)).transpose()
    }

    // --- segments ---

    /// Records a stored segment of a rendition (`""` is the source as received).
    pub async fn add_segment(
        &self,
        video_id: &str,
        rendition: &str,
        seg: &SegmentRow,
    ) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        sqlx::query(self.sql(
            "INSERT INTO rendition_segments (video_id, rendition, msn, duration_us, size, init_name) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(video_id)
        .bind(rendition)
        .bind(seg.msn)
        .bind(seg.duration_us)
        .bind(seg.size)
        .bind(&seg.init_name)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    pub async fn segments(
        &self,
        video_id: &str,
        rendition: &str,
    ) -> anyhow::Result<Vec<SegmentRow>> {
        let rows = sqlx::query(self.sql(
            "SELECT msn, duration_us, size, init_name FROM rendition_segments WHERE video_id = ? AND rendition = ? ORDER BY msn",
        ))
        .bind(video_id)
        .bind(rendition)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentRow {
                    msn: r.try_get("msn")?,
                    duration_us: r.try_get("duration_us")?,
                    size: r.try_get("size")?,
                    init_name: r.try_get("init_name")?,
                })
            })
            .collect()
    }

    /// Replaces a rendition's segment list (used when a recording is recovered from storage).
    pub async fn replace_segments(
        &self,
        video_id: &str,
        rendition: &str,
        segs: &[SegmentRow],
    ) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(
            self.sql("DELETE FROM rendition_segments WHERE video_id = ? AND rendition = ?"),
        )
        .bind(video_id)
        .bind(rendition)
        .execute(&mut *tx)
        .await?;
        for seg in segs {
            sqlx::query(self.sql(
                "INSERT INTO rendition_segments (video_id, rendition, msn, duration_us, size, init_name) VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(video_id)
            .bind(rendition)
            .bind(seg.msn)
            .bind(seg.duration_us)
            .bind(seg.size)
            .bind(&seg.init_name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

const VIDEO_COLUMNS: &str =
    "SELECT id, key_id, title, state, created_at, ended_at, attributes, visibility FROM videos";

fn video_from_row(r: &AnyRow) -> anyhow::Result<Video> {
    let state: String = r.try_get("state")?;
    let attributes: String = r.try_get("attributes")?;
    let visibility: String = r.try_get("visibility")?;
    Ok(Video {
        id: r.try_get("id")?,
        key_id: r.try_get("key_id")?,
        title: r.try_get("title")?,
        state: VideoState::parse(&state)?,
        created_at: r.try_get("created_at")?,
        ended_at: r.try_get("ended_at")?,
        attributes: serde_json::from_str(&attributes)?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| anyhow::anyhow!("unknown visibility {visibility:?} in the database"))?,
    })
}

fn user_from_row(r: &AnyRow) -> anyhow::Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        created_at: r.try_get("created_at")?,
    })
}

fn key_from_row(r: &AnyRow) -> anyhow::Result<StreamKey> {
    let revoked: i32 = r.try_get("revoked")?;
    Ok(StreamKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked: revoked != 0,
        user_id: r.try_get("user_id")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use vshare_testkit::db::{POSTGRES_SKIPPED, fresh_postgres, sqlite_url};

    use super::*;

    async fn keys_videos_segments_round_trip(url: &str) {
        let db = Db::open(url).await.expect("open");
        // Opening again runs no migration twice.
        let db2 = Db::open(url).await.expect("reopen");
        let (key, secret) = db.create_key("phone").await.expect("create");
        assert_eq!(
            db2.find_key(&secret).await.expect("find").map(|k| k.id),
            Some(key.id.clone())
        );
        assert!(db.find_key("wrong").await.expect("find").is_none());
        let v = Video {
            id: random_id(12),
            key_id: key.id.clone(),
            title: "t".into(),
            state: VideoState::Live,
            created_at: now_rfc3339(),
            ended_at: None,
            attributes: vec![],
            visibility: Visibility::Public,
        };
        db.insert_video(&v).await.expect("insert");
        let seg = SegmentRow {
            msn: 0,
            duration_us: 2_000_000,
            size: 10,
            init_name: "init.mp4".into(),
        };
        db.add_segment(&v.id, "", &seg).await.expect("seg");
        db.add_segment(&v.id, "240p", &seg)
            .await
            .expect("seg of a rendition, same msn");
        db.replace_segments(
            &v.id,
            "",
            &[
                SegmentRow {
                    msn: 0,
                    duration_us: 1,
                    size: 2,
                    init_name: "init.mp4".into(),
                },
                SegmentRow {
                    msn: 1,
                    duration_us: 3,
                    size: 4,
                    init_name: "init1.mp4".into(),
                },
            ],
        )
        .await
        .expect("replace");
        let segs = db.segments(&v.id, "").await.expect("segs");
        assert_eq!(
            segs.iter()
                .map(|s| s.init_name.as_str())
                .collect::<Vec<_>>(),
            ["init.mp4", "init1.mp4"]
        );
        assert_eq!(db.segments(&v.id, "240p").await.expect("segs"), vec![seg]);
        assert_eq!(
            db.list_videos(Some(VideoState::Live))
                .await
                .expect("list")
                .len(),
            1
        );
        // The webhook goes to the proxy's outbox in the same transaction.
        let outbox = vshare_proxy::Store::on(db.database().clone())
            .await
            .expect("proxy tables");
        let hook = crate::webhook::Hook {
            event: "video.ready",
            url: "http://127.0.0.1:9/hook".into(),
        };
        db.update_video(
            &v.id,
            VideoState::Ready,
            &[],
            Some("2026-01-01T00:00:00Z"),
            Some(hook),
        )
        .await
        .expect("update");
        assert_eq!(
            db.latest_video_for_key(&key.id)
                .await
                .expect("latest")
                .map(|v| v.state),
            Some(VideoState::Ready)
        );
        assert_eq!(
            db.videos_ended_since(VideoState::Ready, "2025-12-31T00:00:00Z")
                .await
                .expect("since")
                .len(),
            1
        );
        assert!(
            db.videos_ended_since(VideoState::Ready, "2026-01-02T00:00:00Z")
                .await
                .expect("since")
                .is_empty()
        );
        let rows = outbox
            .notifications(Some(&v.id), None)
            .await
            .expect("outbox");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].address, "http://127.0.0.1:9/hook");
        assert_eq!(rows[0].source, key.id);
        let payload = outbox.payload(&rows[0].event_id).await.expect("payload");
        assert_eq!(payload.kind, "video.ready");
        let body: serde_json::Value =
            serde_json::from_str(payload.body.as_deref().expect("body")).expect("json");
        assert_eq!(body["event"], "video.ready");
        assert_eq!(body["video"]["state"], "ready");
        assert!(db.revoke_key(&key.id).await.expect("revoke"));
        assert!(db.find_key(&secret).await.expect("find").is_none());
    }

    async fn upload_tokens(url: &str) {
        let db = Db::open(url).await.expect("open");
        let (key, secret) = db.create_key("phone").await.expect("create");
        let (token, expires_at) = db
            .create_upload_token(&key.id, std::time::Duration::from_secs(3600))
            .await
            .expect("token");
        assert!(expires_at > chrono::Utc::now().timestamp_millis() + 3_500_000);
        let found = |t: String| {
            let db = db.clone();
            async move { db.find_key_for_token(&t).await.expect("find").map(|k| k.id) }
        };
        assert_eq!(found(token.clone()).await, Some(key.id.clone()));
        assert_eq!(found(secret.clone()).await, Some(key.id.clone()));
        assert_eq!(found("ut-unknown".into()).await, None);
        // The stored form is a hash, never the token.
        let stored: Vec<String> = sqlx::query("SELECT token_hash FROM upload_tokens")
            .fetch_all(db.database().pool())
            .await
            .expect("rows")
            .iter()
            .map(|r| r.try_get("token_hash").expect("hash"))
            .collect();
        assert!(!stored.contains(&token));
        // A short-lived token is refused once expired.
        let (short, _) = db
            .create_upload_token(&key.id, std::time::Duration::from_millis(50))
            .await
            .expect("token");
        assert_eq!(found(short.clone()).await, Some(key.id.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        assert_eq!(found(short).await, None);
        // Revoking the key revokes its tokens.
        assert!(db.revoke_key(&key.id).await.expect("revoke"));
        assert_eq!(found(token).await, None);
    }

    async fn accounts_sessions_visibility_deletion(url: &str) {
        let db = Db::open(url).await.expect("open");
        let (user, key, secret) = db
            .create_user("alice", "$argon2id$stand-in")
            .await
            .expect("create")
            .expect("new name");
        assert!(
            db.create_user("alice", "x")
                .await
                .expect("create")
                .is_none(),
            "a taken name is refused"
        );
        let found = db.find_key(&secret).await.expect("find").expect("key");
        assert_eq!(found.user_id.as_deref(), Some(user.id.as_str()));
        assert_eq!(
            db.user_key(&user.id).await.expect("key").map(|k| k.id),
            Some(key.id.clone())
        );
        let (u, hash) = db
            .user_by_name("alice")
            .await
            .expect("by name")
            .expect("user");
        assert_eq!(
            (u.id.as_str(), hash.as_str()),
            (user.id.as_str(), "$argon2id$stand-in")
        );
        assert!(db.user_by_name("bob").await.expect("by name").is_none());

        let (token, _) = db
            .create_session(&user.id, std::time::Duration::from_secs(60))
            .await
            .expect("session");
        assert_eq!(
            db.session_user(&token).await.expect("s").map(|u| u.id),
            Some(user.id.clone())
        );
        db.delete_session(&token).await.expect("delete");
        assert!(db.session_user(&token).await.expect("s").is_none());
        let (short, _) = db
            .create_session(&user.id, std::time::Duration::from_millis(30))
            .await
            .expect("session");
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        assert!(
            db.session_user(&short).await.expect("s").is_none(),
            "expired"
        );

        // Rotation: a new secret for the same key id; the old secret and tokens stop working.
        let (token, _) = db
            .create_upload_token(&key.id, std::time::Duration::from_secs(60))
            .await
            .expect("token");
        let new_secret = db.rotate_key(&key.id).await.expect("rotate");
        assert!(db.find_key(&secret).await.expect("find").is_none());
        assert!(db.find_key_for_token(&token).await.expect("find").is_none());
        assert_eq!(
            db.find_key(&new_secret).await.expect("find").map(|k| k.id),
            Some(key.id.clone())
        );

        let mut v = Video {
            id: random_id(12),
            key_id: key.id.clone(),
            title: String::new(),
            state: VideoState::Live,
            created_at: now_rfc3339(),
            ended_at: None,
            attributes: vec![],
            visibility: Visibility::Public,
        };
        db.insert_video(&v).await.expect("insert");
        let seg = SegmentRow {
            msn: 0,
            duration_us: 1,
            size: 1,
            init_name: "init.mp4".into(),
        };
        db.add_segment(&v.id, "", &seg).await.expect("seg");
        assert_eq!(
            db.mark_deleted(&v.id).await.expect("mark"),
            MarkDeleted::Busy(VideoState::Live)
        );
        assert_eq!(
            db.mark_deleted("nope").await.expect("mark"),
            MarkDeleted::NotFound
        );
        db.update_video(&v.id, VideoState::Ready, &[], None, None)
            .await
            .expect("ready");
        assert!(
            db.set_visibility(&v.id, Visibility::Private)
                .await
                .expect("private")
        );
        let access = db
            .video_access(&v.id)
            .await
            .expect("access")
            .expect("exists");
        assert_eq!(access.visibility, Visibility::Private);
        assert_eq!(access.owner.as_deref(), Some(user.id.as_str()));
        assert_eq!(db.list_videos(None).await.expect("list").len(), 1);
        assert!(db.list_public_videos(None).await.expect("list").is_empty());
        assert_eq!(db.user_videos(&user.id).await.expect("mine").len(), 1);
        v.id = random_id(12);
        v.created_at = now_rfc3339();
        db.insert_video(&v).await.expect("insert second");
        let mine = db.user_videos(&user.id).await.expect("mine");
        assert_eq!(
            mine.first().map(|x| x.id.as_str()),
            Some(v.id.as_str()),
            "newest first"
        );

        let first = mine[1].id.clone();
        assert_eq!(
            db.mark_deleted(&first).await.expect("mark"),
            MarkDeleted::Marked
        );
        assert!(db.get_video(&first).await.expect("get").is_none());
        assert!(db.video_access(&first).await.expect("access").is_none());
        assert_eq!(db.user_videos(&user.id).await.expect("mine").len(), 1);
        assert_eq!(
            db.deleted_videos().await.expect("deleted"),
            vec![first.clone()]
        );
        db.purge_video(&first).await.expect("purge");
        assert!(db.deleted_videos().await.expect("deleted").is_empty());
        assert!(db.segments(&first, "").await.expect("segs").is_empty());

        let s1 = db.server_secret("link").await.expect("secret");
        let s2 = db.server_secret("link").await.expect("secret");
        assert_eq!(s1, s2);
        assert!(s1.len() >= 40);
    }

    /// Runs a scenario on a fresh SQLite file and on PostgreSQL (when the test setup has one).
    macro_rules! on_both_databases {
        ($($sqlite:ident, $postgres:ident => $scenario:ident;)*) => {$(
            #[tokio::test]
            async fn $sqlite() {
                let dir = tempfile::tempdir().expect("tempdir");
                $scenario(&sqlite_url(dir.path(), "t.db")).await;
            }

            #[tokio::test]
            async fn $postgres() {
                let Some(url) = fresh_postgres("vshare_test").await else {
                    eprintln!("{POSTGRES_SKIPPED}");
                    return;
                };
                $scenario(&url).await;
            }
        )*};
    }

    on_both_databases! {
        accounts_on_sqlite, accounts_on_postgres => accounts_sessions_visibility_deletion;
        upload_tokens_on_sqlite, upload_tokens_on_postgres => upload_tokens;
        round_trip_on_sqlite, round_trip_on_postgres => keys_videos_segments_round_trip;
    }
}
