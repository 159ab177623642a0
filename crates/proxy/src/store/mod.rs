//! The durable outbox in SQL (sqlx Any: SQLite by default, PostgreSQL by URL): subscriptions,
//! events, and one notification row per (event, subscription) whose primary key is that pair —
//! the idempotency key, so a subscriber never gets a notification twice.
//!
//! Claiming is safe for several dispatcher processes: one `UPDATE … RETURNING` takes a lease on
//! the rows it picks (SQLite serialises writers; PostgreSQL picks with `FOR UPDATE SKIP LOCKED`).
//! A row whose lease ran out while `sending` (its dispatcher died) is claimed again; a row that
//! was confirmed `sent` never is.
//!
//! This file holds the [`Store`] handle, the channels and the error; the methods live by topic:
//! `subscriptions`, `outbox` (events, claims, outcomes), `receipts` (SMSC delivery receipts
//! and unconfirmed rows) and `views` (what the API and metrics read). Messages to named
//! addresses are in [`crate::direct`].

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
pub use vshare_sql::Database;

mod outbox;
mod receipts;
mod subscriptions;
mod views;

pub use outbox::{Claimed, Event, EventKind};
pub use receipts::{
    IncomingReceipt, RECEIPT_MATCH_AFTER_MS, RECEIPT_MATCH_BEFORE_MS, ReceiptOrigin, ReceiptStatus,
};
pub use subscriptions::{
    CodeRules, NewSubscription, SubState, Subscribed, Subscription, normalize_number, same_code,
    valid_listener_id,
};
pub use views::NotificationView;

/// How a subscriber is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// SMS over SMPP (forms text, tlv, xml).
    Sms,
    /// WAP Push over SMS (forms wap-si, wap-sl).
    Wap,
    /// A signed HTTP POST to a URL.
    Webhook,
    /// A WebSocket or SSE listener connected to the proxy (the direct-IP path).
    Websocket,
    /// Web Push (RFC 8030/8291/8292).
    Webpush,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Wap => "wap",
            Channel::Webhook => "webhook",
            Channel::Websocket => "websocket",
            Channel::Webpush => "webpush",
        }
    }

    pub fn parse(s: &str) -> Result<Channel, StoreError> {
        Ok(match s {
            "sms" => Channel::Sms,
            "wap" => Channel::Wap,
            "webhook" => Channel::Webhook,
            "websocket" | "sse" => Channel::Websocket,
            "webpush" => Channel::Webpush,
            other => return Err(StoreError::Invalid(format!("unknown channel {other:?}"))),
        })
    }

    /// The forms a channel can carry; the first is the default.
    pub fn forms(self) -> &'static [&'static str] {
        match self {
            Channel::Sms => &["text", "text-full", "tlv", "xml"],
            Channel::Wap => &["wap-si", "wap-si-full", "wap-sl"],
            Channel::Webhook | Channel::Websocket | Channel::Webpush => &["json"],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database holds an unexpected value: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Refused(crate::guard::Refused),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone)]
pub struct Store {
    database: Database,
}

pub use vshare_sql::random_id;

impl Store {
    /// Connects and brings the proxy's tables up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::on(Database::open(url).await?).await
    }

    /// The proxy's tables on a database opened before (the server's, when they share one).
    pub async fn on(database: Database) -> Result<Store, StoreError> {
        database.migrate(sqlx::migrate!("./migrations")).await?;
        Ok(Store { database })
    }

    pub fn is_postgres(&self) -> bool {
        self.database.is_postgres()
    }

    /// The database the tables live on (for [`crate::direct`], which writes its rows there).
    pub(crate) fn database(&self) -> &Database {
        &self.database
    }

    /// Holds this process's SQLite writers back while one writes (see [`Database::writer`]).
    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.database.writer().await
    }

    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        self.database.sql(sql)
    }
}
