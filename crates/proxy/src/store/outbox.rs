//! Events and the outbox: an event fans out into one `queued` row per active subscriber;
//! dispatchers claim rows under a lease, mark them handed over, and record outcomes, defer
//! them, or (listeners) acknowledge them.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use vshare_attributes::AttributeRecord;

use super::{Channel, Store, StoreError};
use crate::dispatcher::{State, Transition};

/// Why a video is being announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The stream went live (first segment).
    Live,
    /// The VOD files are ready.
    Ready,
}

/// One announcement: a video of a source went live or became ready.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// `<video id>.live` or `<video id>.ready`: the same event twice is one event.
    pub id: String,
    pub kind: EventKind,
    pub video_id: String,
    /// The stream key's id; subscriptions by the key's name match too.
    pub source_id: String,
    pub source_name: Option<String>,
    pub records: Vec<AttributeRecord>,
}

impl Event {
    pub fn new(
        kind: EventKind,
        video_id: &str,
        source_id: &str,
        source_name: Option<&str>,
        records: Vec<AttributeRecord>,
    ) -> Event {
        let suffix = match kind {
            EventKind::Live => "live",
            EventKind::Ready => "ready",
        };
        Event {
            id: format!("{video_id}.{suffix}"),
            kind,
            video_id: video_id.into(),
            source_id: source_id.into(),
            source_name: source_name.map(str::to_string),
            records,
        }
    }
}

/// A row a dispatcher holds the lease on.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: String,
    pub event_id: String,
    pub video_id: String,
    pub source: String,
    pub channel: Channel,
    pub address: String,
    pub form: String,
    pub attempts: u32,
    pub created_at_ms: i64,
    /// Made for a subscription (not a direct message to a named address).
    pub to_subscriber: bool,
}

impl Store {
    /// Writes the event and one `queued` notification per active subscriber of its source, in
    /// one transaction. The same event again adds nothing (idempotency keys). Returns how many
    /// notifications this call created.
    pub async fn handle_event(&self, event: &Event, now_ms: i64) -> Result<u64, StoreError> {
        let records = serde_json::to_string(&event.records)
            .map_err(|e| StoreError::Invalid(format!("records: {e}")))?;
        let name = event.source_name.as_deref().unwrap_or(&event.source_id);
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO proxy_events (id, source, video_id, kind, records, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        ))
        .bind(&event.id)
        .bind(&event.source_id)
        .bind(&event.video_id)
        .bind(match event.kind {
            EventKind::Live => "live",
            EventKind::Ready => "ready",
        })
        .bind(&records)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query(self.sql(
            "INSERT INTO proxy_notifications (id, event_id, subscription_id, video_id, source, channel, address, form, state, attempts, next_attempt_at, lease_until, created_at, updated_at) \
             SELECT CAST(? AS TEXT) || ':' || s.id, CAST(? AS TEXT), s.id, CAST(? AS TEXT), s.source, s.channel, s.address, s.form, 'queued', 0, CAST(? AS BIGINT), 0, CAST(? AS BIGINT), CAST(? AS BIGINT) \
             FROM proxy_subscriptions s WHERE s.state = 'active' AND (s.source = ? OR s.source = ?) \
             ON CONFLICT (id) DO NOTHING",
        ))
        .bind(&event.id)
        .bind(&event.id)
        .bind(&event.video_id)
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(&event.source_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// Takes a lease of `lease_ms` on up to `limit` due rows of `channels`: `queued` rows whose
    /// time has come, and `sending` rows whose lease ran out (their dispatcher died before it
    /// recorded an outcome).
    pub async fn claim(
        &self,
        channels: &[Channel],
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let list = channels
            .iter()
            .map(|c| format!("'{}'", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let lock = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        // Rows a dead dispatcher had already handed over: maybe arrived; they wait for a receipt
        // (`requeue_unconfirmed` sends them again when none comes).
        let w = self.writer().await;
        let gone = sqlx::query(self.sql(&format!(
            "UPDATE proxy_notifications SET state = 'unconfirmed', attempts = attempts + 1, lease_owner = NULL, \
             last_error = 'the dispatcher stopped after handing it over, before the answer; waiting for a receipt', updated_at = ? \
             WHERE channel IN ({list}) AND state = 'sending' AND lease_until <= ? AND handed_over_at IS NOT NULL"
        )))
        .bind(now_ms)
        .bind(now_ms)
        .execute(self.database.pool())
        .await?;
        drop(w);
        if gone.rows_affected() > 0 {
            self.settle_unconfirmed_with_waiting_receipts(now_ms)
                .await?;
        }
        let sql = format!(
            "UPDATE proxy_notifications SET state = 'sending', lease_owner = ?, lease_until = ?, updated_at = ? \
             WHERE id IN (SELECT id FROM proxy_notifications WHERE channel IN ({list}) \
               AND ((state = 'queued' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_until <= ?)) \
               ORDER BY next_attempt_at LIMIT ?{lock}) \
             RETURNING id, event_id, video_id, source, channel, address, form, attempts, created_at, subscription_id"
        );
        let w = self.writer().await;
        let rows = sqlx::query(self.sql(&sql))
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(now_ms)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(self.database.pool())
            .await?;
        drop(w);
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(Claimed {
                    id: r.try_get(0)?,
                    event_id: r.try_get(1)?,
                    video_id: r.try_get(2)?,
                    source: r.try_get(3)?,
                    channel: Channel::parse(&r.try_get::<String, _>(4)?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    address: r.try_get(5)?,
                    form: r.try_get(6)?,
                    attempts: r.try_get::<i64, _>(7)? as u32,
                    created_at_ms: r.try_get(8)?,
                    to_subscriber: !r.try_get::<String, _>(9)?.is_empty(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Marks rows as handed to the next hop (written to the SMSC): after a crash they are never
    /// sent again.
    pub async fn mark_handed_over(
        &self,
        owner: &str,
        ids: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _w = self.writer().await;
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "UPDATE proxy_notifications SET handed_over_at = ? WHERE lease_owner = ? AND id IN ({marks})"
            );
            let mut q = sqlx::query(self.sql(&sql)).bind(now_ms).bind(owner);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(self.database.pool()).await?;
        }
        Ok(())
    }

    /// Records outcomes for rows this owner holds, in one transaction. A row whose lease was
    /// taken over by another dispatcher is left alone. Receipts that came before the
    /// submit_sm_resp was recorded are applied.
    pub async fn record(
        &self,
        owner: &str,
        outcomes: &[(String, Transition)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        let with_ids = outcomes.iter().any(|(_, t)| t.message_id.is_some());
        // One statement per 200 rows: a VALUES list joined to the table (UPDATE … FROM, in
        // SQLite since 3.33 and in PostgreSQL).
        for chunk in outcomes.chunks(200) {
            let rows = vec![
                "(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT))";
                chunk.len()
            ]
            .join(", ");
            let sql = format!(
                "WITH v(id, st, att, nxt, mid, err) AS (VALUES {rows}) \
                 UPDATE proxy_notifications SET state = v.st, attempts = v.att, next_attempt_at = v.nxt, \
                 smsc_message_id = COALESCE(v.mid, proxy_notifications.smsc_message_id), last_error = v.err, \
                 lease_owner = NULL, lease_until = 0, handed_over_at = NULL, updated_at = ? \
                 FROM v WHERE proxy_notifications.id = v.id AND proxy_notifications.lease_owner = ?"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for (id, t) in chunk {
                q = q
                    .bind(id)
                    .bind(t.state.as_str())
                    .bind(i64::from(t.attempts))
                    .bind(t.next_attempt_at_ms)
                    .bind(&t.message_id)
                    .bind(&t.error);
            }
            q.bind(now_ms).bind(owner).execute(&mut *tx).await?;
        }
        if with_ids {
            let ids: Vec<&str> = outcomes
                .iter()
                .filter_map(|(_, t)| t.message_id.as_deref())
                .collect();
            self.apply_waiting_for(&mut tx, &ids, now_ms).await?;
        }
        tx.commit().await?;
        drop(w);
        if outcomes.iter().any(|(_, t)| t.state == State::Unconfirmed) {
            self.settle_unconfirmed_with_waiting_receipts(now_ms)
                .await?;
        }
        Ok(())
    }

    /// Puts claimed rows back, attempts unchanged, until `until_ms` (rate limits, quiet hours,
    /// a channel that cannot send now).
    pub async fn defer(
        &self,
        owner: &str,
        ids: &[(String, i64)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        for (id, until) in ids {
            sqlx::query(self.sql(
                "UPDATE proxy_notifications SET state = 'queued', next_attempt_at = ?, lease_owner = NULL, lease_until = 0, handed_over_at = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?",
            ))
            .bind(until)
            .bind(now_ms)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes the queued rows of one address due now (a listener just connected).
    pub async fn make_due(
        &self,
        channel: Channel,
        address: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let _w = self.writer().await;
        let r = sqlx::query(self.sql(
            "UPDATE proxy_notifications SET next_attempt_at = ? WHERE channel = ? AND address = ? AND state = 'queued' AND next_attempt_at > ?",
        ))
        .bind(now_ms)
        .bind(channel.as_str())
        .bind(address)
        .bind(now_ms)
        .execute(self.database.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// A listener acknowledged a notification: sent → delivered.
    pub async fn ack(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let _w = self.writer().await;
        let r = sqlx::query(self.sql(
            // An ack can beat the dispatcher's own record of the send: it then takes the row
            // over (clears the lease), so that record cannot turn it back into `sent`.
            "UPDATE proxy_notifications SET state = 'delivered', attempts = CASE WHEN state = 'sending' THEN attempts + 1 ELSE attempts END, lease_owner = NULL, lease_until = 0, updated_at = ? WHERE id = ? AND state IN ('sent', 'sending')",
        ))
        .bind(now_ms)
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
