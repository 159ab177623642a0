//! Messages to named addresses, through the same outbox as the subscribers' notifications: a
//! share from the studio (SMS or WAP Push to the numbers its user typed) and the server's own
//! webhook (a signed POST of each video event). They get what every notification gets: one
//! row per address whose id is the idempotency key, leases, retries with backoff, rate limits,
//! quiet hours, delivery receipts and exactly-once SMS across a crash.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use vshare_attributes::AttributeRecord;
use vshare_sql::Database;

use crate::store::{Channel, Store, StoreError};

/// Where one copy of a direct message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub channel: Channel,
    /// A phone number (`+` and digits) or a URL.
    pub address: String,
    /// One of the channel's forms ([`Channel::forms`]).
    pub form: String,
}

/// A message to named addresses.
#[derive(Debug, Clone)]
pub struct Direct {
    /// Unique per message; a message queued again under the same id adds nothing.
    pub id: String,
    /// What it is: `share`, or the server's event name (`stream.live`, `video.ready` …), which a
    /// webhook receives as `x-vshare-event`.
    pub kind: String,
    /// Who sends it (a user id, a stream key id): the per-source rate limits count it.
    pub source: String,
    pub video_id: String,
    pub records: Vec<AttributeRecord>,
    /// The exact body a webhook receives (the server's event JSON); None: the proxy's message.
    pub body: Option<String>,
    pub targets: Vec<Target>,
}

impl Direct {
    /// The notification id of the copy for `target`.
    pub fn notification_id(&self, target: &Target) -> String {
        format!("{}:{}:{}", self.id, target.channel.as_str(), target.address)
    }

    fn check(&self) -> Result<(), StoreError> {
        for t in &self.targets {
            if !t.channel.forms().contains(&t.form.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "form {:?} is not one of {}'s ({})",
                    t.form,
                    t.channel.as_str(),
                    t.channel.forms().join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Writes a direct message and its rows on `conn`, inside the caller's transaction (the server
/// queues its webhook in the transaction that changes the video). Returns the notification
/// ids, one per target, in order.
pub async fn queue_on(
    conn: &mut AnyConnection,
    database: &Database,
    message: &Direct,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    message.check()?;
    let records = serde_json::to_string(&message.records)
        .map_err(|e| StoreError::Invalid(format!("records: {e}")))?;
    sqlx::query(database.sql(
        "INSERT INTO proxy_events (id, source, video_id, kind, records, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    ))
    .bind(&message.id)
    .bind(&message.source)
    .bind(&message.video_id)
    .bind(&message.kind)
    .bind(records)
    .bind(message.body.clone())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    let mut ids = Vec::with_capacity(message.targets.len());
    for target in &message.targets {
        let id = message.notification_id(target);
        sqlx::query(database.sql(
            "INSERT INTO proxy_notifications (id, event_id, subscription_id, video_id, source, channel, address, form, state, attempts, next_attempt_at, lease_until, created_at, updated_at) \
             VALUES (?, ?, '', ?, ?, ?, ?, ?, 'queued', 0, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
        ))
        .bind(&id)
        .bind(&message.id)
        .bind(&message.video_id)
        .bind(&message.source)
        .bind(target.channel.as_str())
        .bind(&target.address)
        .bind(&target.form)
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// What the dispatchers send for an event: its kind, records, and a body of its own if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub kind: String,
    pub records: Vec<AttributeRecord>,
    pub body: Option<String>,
}

/// Reads the payload of event `event_id`.
pub async fn payload(database: &Database, event_id: &str) -> Result<Payload, StoreError> {
    let row =
        sqlx::query(database.sql("SELECT kind, records, body FROM proxy_events WHERE id = ?"))
            .bind(event_id)
            .fetch_optional(database.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("event {event_id}")))?;
    let records: String = row.try_get("records")?;
    Ok(Payload {
        kind: row.try_get("kind")?,
        records: serde_json::from_str(&records)
            .map_err(|e| StoreError::Corrupt(format!("event records: {e}")))?,
        body: row.try_get("body")?,
    })
}

impl Store {
    /// What the dispatchers send for an event.
    pub async fn payload(&self, event_id: &str) -> Result<Payload, StoreError> {
        payload(self.database(), event_id).await
    }

    /// Queues a message to named addresses in its own transaction (see [`crate::direct`]);
    /// returns the notification ids, one per target.
    pub async fn queue_direct(
        &self,
        message: &Direct,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.database().pool().begin().await?;
        let ids = queue_on(&mut tx, self.database(), message, now_ms).await?;
        tx.commit().await?;
        Ok(ids)
    }
}
