//! Metadata in SQL: stream keys, users and sessions, videos, recorded segments.
//! SQLite by default, PostgreSQL by URL; the same portable queries and migrations for both, on
//! the process's one [`Database`]. Every write takes its writer guard first.
//!
//! This file holds the row types, the [`Db`] handle, hashed tokens and the row mappers; the
//! queries live by table: `keys` (stream keys, upload tokens), `accounts` (users, sessions,
//! server secrets), `videos` (videos, visibility, deletion) and `segments`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use vshare_attributes::AttributeRecord;
use vshare_sql::Database;

mod accounts;
mod keys;

pub use accounts::CreateUser;
mod segments;
mod videos;

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
    /// The video server that records it (`instance_id`); '' for rows older than the column.
    #[serde(skip)]
    pub instance_id: String,
}

impl Video {
    /// A new live video of stream key `key_id`, public, with no records yet.
    pub fn new_live(id: &str, key_id: &str, title: &str) -> Video {
        Video {
            id: id.to_string(),
            key_id: key_id.to_string(),
            title: title.to_string(),
            state: VideoState::Live,
            created_at: now_rfc3339(),
            ended_at: None,
            attributes: vec![],
            visibility: Visibility::Public,
            instance_id: String::new(),
        }
    }
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
    /// Its streams start private (the key's default, or the upload token's choice).
    pub private: bool,
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

    /// A new random token in `table` for `owner`, stored only as a hash; expired tokens of the
    /// table are purged first. Returns the token and its expiry (ms since the epoch).
    async fn issue_token(
        &self,
        table: TokenTable,
        owner: &str,
        ttl: std::time::Duration,
        private: bool,
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
        let insert = match table {
            TokenTable::Upload => format!(
                "INSERT INTO {name} (token_hash, {owner_column}, created_at, expires_at, private) VALUES (?, ?, ?, ?, ?)"
            ),
            TokenTable::Session => format!(
                "INSERT INTO {name} (token_hash, {owner_column}, created_at, expires_at) VALUES (?, ?, ?, ?)"
            ),
        };
        let mut q = sqlx::query(self.sql(&insert))
            .bind(hash_key(&token))
            .bind(owner)
            .bind(now_rfc3339())
            .bind(expires_at);
        if let TokenTable::Upload = table {
            q = q.bind(i32::from(private));
        }
        q.execute(self.database.pool()).await?;
        Ok((token, expires_at))
    }
}

const VIDEO_COLUMNS: &str = "SELECT id, key_id, title, state, created_at, ended_at, attributes, visibility, instance_id FROM videos";

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
        instance_id: r.try_get("instance_id")?,
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
        private: r.try_get::<i32, _>("private_default")? != 0,
    })
}

#[cfg(test)]
pub(crate) mod tests;
