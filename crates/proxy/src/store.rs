//! The durable outbox in SQL (sqlx Any: SQLite by default, PostgreSQL by URL): subscriptions,
//! events, and one notification row per (event, subscription) whose primary key is that pair —
//! the idempotency key, so a subscriber never gets a notification twice.
//!
//! Claiming is safe for several dispatcher processes: one `UPDATE … RETURNING` takes a lease on
//! the rows it picks (SQLite serialises writers; PostgreSQL picks with `FOR UPDATE SKIP LOCKED`).
//! A row whose lease ran out while `sending` (its dispatcher died) is claimed again; a row that
//! was confirmed `sent` never is.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use vshare_attributes::AttributeRecord;
pub use vshare_sql::Database;

use crate::dispatcher::{State, Transition};

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
            Channel::Sms => &["text", "tlv", "xml"],
            Channel::Wap => &["wap-si", "wap-sl"],
            Channel::Webhook | Channel::Websocket | Channel::Webpush => &["json"],
        }
    }
}

/// Lifecycle of a subscription (double opt-in for phone numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubState {
    PendingConfirmation,
    Active,
    Stopped,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::PendingConfirmation => "pending-confirmation",
            SubState::Active => "active",
            SubState::Stopped => "stopped",
        }
    }
    fn parse(s: &str) -> Result<SubState, StoreError> {
        Ok(match s {
            "pending-confirmation" => SubState::PendingConfirmation,
            "active" => SubState::Active,
            "stopped" => SubState::Stopped,
            other => return Err(StoreError::Corrupt(format!("subscription state {other:?}"))),
        })
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
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A subscription as the API shows it (the confirmation code is never shown).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub source: String,
    pub channel: Channel,
    pub address: String,
    pub form: String,
    pub state: SubState,
    #[serde(skip)]
    pub code: Option<String>,
}

/// What a subscriber asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewSubscription {
    /// A stream key's id or name.
    pub source: String,
    pub channel: Channel,
    /// Phone number (`+8613800138000`), URL (webhook), listener id (websocket), or the
    /// subscription JSON of a browser's PushManager (webpush).
    pub address: String,
    #[serde(default)]
    pub form: Option<String>,
}

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
}

/// A notification as the API shows it: who, how, and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotificationView {
    pub id: String,
    pub event_id: String,
    pub video_id: String,
    pub source: String,
    pub channel: Channel,
    pub address: String,
    pub form: String,
    pub state: State,
    pub attempts: u32,
    pub smsc_message_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at_ms: i64,
}

/// Where and when the message of a delivery receipt went: the receipt's source address (the
/// original destination) and its "submit date" (SMPP v3.4 Appendix B, `YYMMDDhhmm`, UTC here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptOrigin {
    pub address: String,
    /// The start of the submit minute, ms since the Unix epoch.
    pub submitted_at_ms: i64,
}

/// What a delivery receipt reports (SMPP v3.4 §5.2.28 message_state, or the Appendix B `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Final: DELIVERED / `DELIVRD`.
    Delivered,
    /// Final: UNDELIVERABLE, EXPIRED, DELETED, REJECTED.
    Failed,
    /// Intermediate: ENROUTE, ACCEPTED, UNKNOWN — the SMSC holds the message (it arrived
    /// there), its fate is not known yet.
    Accepted,
}

impl ReceiptStatus {
    /// The row state a receipt settles a row in.
    fn row_state(self) -> &'static str {
        match self {
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Failed => "failed",
            ReceiptStatus::Accepted => "sent",
        }
    }

    /// As `proxy_receipts.delivered` holds it: 1 delivered, 0 failed, 2 intermediate.
    fn code(self) -> i64 {
        match self {
            ReceiptStatus::Delivered => 1,
            ReceiptStatus::Failed => 0,
            ReceiptStatus::Accepted => 2,
        }
    }

    fn from_code(code: i64) -> ReceiptStatus {
        match code {
            1 => ReceiptStatus::Delivered,
            2 => ReceiptStatus::Accepted,
            _ => ReceiptStatus::Failed,
        }
    }
}

/// One delivery receipt as the receiver bind took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingReceipt {
    /// The SMSC's id of the message (`receipted_message_id`, or the text's `id:`).
    pub message_id: String,
    pub status: ReceiptStatus,
    /// Where and when the message went, when the receipt says so.
    pub origin: Option<ReceiptOrigin>,
}

/// How far before the receipt's submit minute a hand-over may lie and still match (clocks of
/// the SMSC and of the proxy differ a little).
pub const RECEIPT_MATCH_BEFORE_MS: i64 = 60_000;
/// How far after the start of the submit minute (the minute itself, and slack).
pub const RECEIPT_MATCH_AFTER_MS: i64 = 120_000;

#[derive(Clone)]
pub struct Store {
    database: Database,
}

pub use vshare_sql::random_id;

/// A phone number as SMPP and our rows hold it: `+` and 3–20 digits, or 3–20 digits.
pub fn normalize_number(s: &str) -> Result<String, StoreError> {
    let t: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = t.strip_prefix('+').unwrap_or(&t);
    if digits.len() < 3 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::Invalid(format!(
            "{s:?} is not a phone number (+ and 3 to 20 digits)"
        )));
    }
    Ok(t)
}

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

    /// Holds this process's SQLite writers back while one writes (see [`Database::writer`]).
    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.database.writer().await
    }

    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        self.database.sql(sql)
    }

    // --- subscriptions ---

    /// Creates (or renews) a subscription. Phone numbers start `pending-confirmation` with a
    /// six-digit code to be sent to them; other channels are active at once.
    pub async fn subscribe(
        &self,
        req: &NewSubscription,
        now_ms: i64,
    ) -> Result<Subscription, StoreError> {
        let source = req.source.trim();
        if source.is_empty() || source.len() > 128 {
            return Err(StoreError::Invalid(
                "source must be 1 to 128 characters".into(),
            ));
        }
        let forms = req.channel.forms();
        let form = match &req.form {
            None => forms[0].to_string(),
            Some(f) if forms.contains(&f.as_str()) => f.clone(),
            Some(f) => {
                return Err(StoreError::Invalid(format!(
                    "form {f:?} does not travel on {}; use one of {forms:?}",
                    req.channel.as_str()
                )));
            }
        };
        let (address, state, code) = match req.channel {
            Channel::Sms | Channel::Wap => (
                normalize_number(&req.address)?,
                SubState::PendingConfirmation,
                Some(format!(
                    "{:06}",
                    rand::Rng::random_range(&mut rand::rng(), 0..1_000_000)
                )),
            ),
            Channel::Webhook => {
                let u = req.address.trim();
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048 {
                    return Err(StoreError::Invalid(format!(
                        "webhook address {u:?} is not an http(s) URL"
                    )));
                }
                (u.to_string(), SubState::Active, None)
            }
            Channel::Websocket => {
                let a = req.address.trim();
                if a.is_empty()
                    || a.len() > 128
                    || !a
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
                {
                    return Err(StoreError::Invalid(format!(
                        "listener id {a:?}: 1 to 128 of A-Z a-z 0-9 - _ . :"
                    )));
                }
                (a.to_string(), SubState::Active, None)
            }
            Channel::Webpush => {
                crate::webpush::parse_subscription(&req.address)
                    .map_err(|e| StoreError::Invalid(format!("{e:#}")))?;
                (req.address.clone(), SubState::Active, None)
            }
        };
        let existing = self
            .find_subscription(source, req.channel, &address)
            .await?;
        let id = match &existing {
            Some(s) => s.id.clone(),
            None => random_id(12),
        };
        if let Some(s) = &existing
            && s.state == SubState::Active
        {
            // Already active: only the form changes.
            sqlx::query(
                self.sql("UPDATE proxy_subscriptions SET form = ?, updated_at = ? WHERE id = ?"),
            )
            .bind(&form)
            .bind(now_ms)
            .bind(&id)
            .execute(self.database.pool())
            .await?;
            return Ok(Subscription { form, ..s.clone() });
        }
        if existing.is_some() {
            sqlx::query(self.sql(
                "UPDATE proxy_subscriptions SET form = ?, state = ?, code = ?, updated_at = ? WHERE id = ?",
            ))
            .bind(&form)
            .bind(state.as_str())
            .bind(&code)
            .bind(now_ms)
            .bind(&id)
            .execute(self.database.pool())
            .await?;
        } else {
            sqlx::query(self.sql(
                "INSERT INTO proxy_subscriptions (id, source, channel, address, form, state, code, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(&id)
            .bind(source)
            .bind(req.channel.as_str())
            .bind(&address)
            .bind(&form)
            .bind(state.as_str())
            .bind(&code)
            .bind(now_ms)
            .bind(now_ms)
            .execute(self.database.pool())
            .await?;
        }
        Ok(Subscription {
            id,
            source: source.to_string(),
            channel: req.channel,
            address,
            form,
            state,
            code,
        })
    }

    /// Inserts many active subscriptions at once (benchmarks and imports; no opt-in).
    pub async fn bulk_active(
        &self,
        source: &str,
        channel: Channel,
        form: &str,
        addresses: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.database.pool().begin().await?;
        for a in addresses {
            sqlx::query(self.sql(
                "INSERT INTO proxy_subscriptions (id, source, channel, address, form, state, code, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', NULL, ?, ?) ON CONFLICT (source, channel, address) DO UPDATE SET state = 'active'",
            ))
            .bind(random_id(12))
            .bind(source)
            .bind(channel.as_str())
            .bind(a)
            .bind(form)
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_subscription(
        &self,
        source: &str,
        channel: Channel,
        address: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query(self.sql(
            "SELECT id, source, channel, address, form, state, code FROM proxy_subscriptions WHERE source = ? AND channel = ? AND address = ?",
        ))
        .bind(source)
        .bind(channel.as_str())
        .bind(address)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| sub_from_row(&r)).transpose()
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query(self.sql(
            "SELECT id, source, channel, address, form, state, code FROM proxy_subscriptions WHERE id = ?",
        ))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| sub_from_row(&r)).transpose()
    }

    /// Subscriptions, optionally of one source.
    pub async fn subscriptions(
        &self,
        source: Option<&str>,
    ) -> Result<Vec<Subscription>, StoreError> {
        let rows = match source {
            Some(s) => {
                sqlx::query(self.sql(
                    "SELECT id, source, channel, address, form, state, code FROM proxy_subscriptions WHERE source = ? ORDER BY created_at, id",
                ))
                .bind(s)
                .fetch_all(self.database.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, source, channel, address, form, state, code FROM proxy_subscriptions ORDER BY created_at, id",
                )
                .fetch_all(self.database.pool())
                .await?
            }
        };
        rows.iter().map(sub_from_row).collect()
    }

    /// Activates the pending subscriptions of a number whose code matches; returns them.
    pub async fn confirm(
        &self,
        number: &str,
        code: &str,
        now_ms: i64,
    ) -> Result<Vec<Subscription>, StoreError> {
        let number = normalize_number(number)?;
        let pending: Vec<Subscription> = self
            .by_number(&number)
            .await?
            .into_iter()
            .filter(|s| s.state == SubState::PendingConfirmation && s.code.as_deref() == Some(code))
            .collect();
        for s in &pending {
            self.set_sub_state(&s.id, SubState::Active, now_ms).await?;
        }
        Ok(pending
            .into_iter()
            .map(|s| Subscription {
                state: SubState::Active,
                code: None,
                ..s
            })
            .collect())
    }

    /// The SMS/WAP subscriptions of a number (with and without `+`).
    pub async fn by_number(&self, number: &str) -> Result<Vec<Subscription>, StoreError> {
        let bare = number.trim_start_matches('+');
        let plus = format!("+{bare}");
        let rows = sqlx::query(self.sql(
            "SELECT id, source, channel, address, form, state, code FROM proxy_subscriptions WHERE channel IN ('sms', 'wap') AND (address = ? OR address = ?)",
        ))
        .bind(bare)
        .bind(&plus)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(sub_from_row).collect()
    }

    pub async fn set_sub_state(
        &self,
        id: &str,
        state: SubState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(self.sql(
            "UPDATE proxy_subscriptions SET state = ?, code = CASE WHEN ? = 'active' THEN NULL ELSE code END, updated_at = ? WHERE id = ?",
        ))
        .bind(state.as_str())
        .bind(state.as_str())
        .bind(now_ms)
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    // --- events and the outbox ---

    /// Writes the event and one `queued` notification per active subscriber of its source, in
    /// one transaction. The same event again adds nothing (idempotency keys). Returns how many
    /// notifications this call created.
    pub async fn handle_event(&self, event: &Event, now_ms: i64) -> Result<u64, StoreError> {
        let records = serde_json::to_string(&event.records)
            .map_err(|e| StoreError::Invalid(format!("records: {e}")))?;
        let name = event.source_name.as_deref().unwrap_or(&event.source_id);
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

    /// What the dispatchers send for an event.
    pub async fn payload(&self, event_id: &str) -> Result<crate::direct::Payload, StoreError> {
        crate::direct::payload(&self.database, event_id).await
    }

    /// Queues a message to named addresses in its own transaction (see [`crate::direct`]);
    /// returns the notification ids, one per target.
    pub async fn queue_direct(
        &self,
        message: &crate::direct::Direct,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        let ids = crate::direct::queue_on(&mut tx, &self.database, message, now_ms).await?;
        tx.commit().await?;
        Ok(ids)
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
             RETURNING id, event_id, video_id, source, channel, address, form, attempts, created_at"
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

    /// Applies the waiting receipts of the messages `ids` (just recorded, or just stored
    /// waiting): finals settle their `sent` rows; receipts whose row is known are removed.
    async fn apply_waiting_for(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ids: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Often there is none: look before joining.
        let waiting: i64 = sqlx::query("SELECT COUNT(*) FROM proxy_receipts")
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        if waiting == 0 {
            return Ok(());
        }
        for chunk in ids.chunks(200) {
            let marks = vec!["?"; chunk.len()].join(", ");
            // (Intermediate receipts, code 2, change nothing for a `sent` row.)
            for (delivered, state) in [(1i64, "delivered"), (0, "failed")] {
                let sql = format!(
                    "UPDATE proxy_notifications SET state = ?, updated_at = ? WHERE state = 'sent' AND smsc_message_id IN \
                     (SELECT message_id FROM proxy_receipts WHERE delivered = ? AND message_id IN ({marks}))"
                );
                let mut q = sqlx::query(self.sql(&sql))
                    .bind(state)
                    .bind(now_ms)
                    .bind(delivered);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut **tx).await?;
            }
            let sql = format!(
                "DELETE FROM proxy_receipts WHERE message_id IN ({marks}) AND EXISTS (SELECT 1 FROM proxy_notifications n \
                 WHERE n.smsc_message_id = proxy_receipts.message_id AND (n.state IN ('delivered', 'failed') OR proxy_receipts.delivered = 2))"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Applies every waiting receipt whose row is now known by its message id, and removes
    /// those that are done with; a sweep for receipts and records that crossed (each saw the
    /// other not yet committed). Returns how many rows were settled.
    pub async fn apply_waiting_receipts(&self, now_ms: i64) -> Result<u64, StoreError> {
        let waiting: i64 = sqlx::query("SELECT COUNT(*) FROM proxy_receipts")
            .fetch_one(self.database.pool())
            .await?
            .try_get(0)?;
        if waiting == 0 {
            return Ok(0);
        }
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        let mut settled = 0;
        for (delivered, state) in [(1i64, "delivered"), (0, "failed")] {
            settled += sqlx::query(self.sql(
                "UPDATE proxy_notifications SET state = ?, updated_at = ? WHERE state = 'sent' AND smsc_message_id IN (SELECT message_id FROM proxy_receipts WHERE delivered = ?)",
            ))
            .bind(state)
            .bind(now_ms)
            .bind(delivered)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query(
            "DELETE FROM proxy_receipts WHERE EXISTS (SELECT 1 FROM proxy_notifications n WHERE n.smsc_message_id = proxy_receipts.message_id AND (n.state IN ('delivered', 'failed') OR proxy_receipts.delivered = 2))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(settled)
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

    /// An SMSC delivery receipt (SMPP v3.4 Appendix B) for `message_id`.
    pub async fn receipt(
        &self,
        message_id: &str,
        delivered: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.receipt_from(message_id, delivered, None, now_ms).await
    }

    /// A final SMSC delivery receipt for `message_id`, with where and when its message went
    /// (`origin`); see [`Store::receipts`].
    pub async fn receipt_from(
        &self,
        message_id: &str,
        delivered: bool,
        origin: Option<&ReceiptOrigin>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.receipts(
            &[IncomingReceipt {
                message_id: message_id.to_string(),
                status: if delivered {
                    ReceiptStatus::Delivered
                } else {
                    ReceiptStatus::Failed
                },
                origin: origin.cloned(),
            }],
            now_ms,
        )
        .await
    }

    /// Applies delivery receipts, in one transaction (the receiver bind acknowledges them to
    /// the SMSC only after this returns, so a crash makes the SMSC send them again; a receipt
    /// applied twice changes nothing).
    ///
    /// - A final receipt moves the `sent` row with its message id to `delivered` / `failed`.
    /// - A receipt whose id a row already has is done (a repeat, or an intermediate receipt
    ///   for a row that is `sent`).
    /// - Otherwise it settles the `unconfirmed` SMS/WAP row of its destination handed over
    ///   nearest its submit time (within [`RECEIPT_MATCH_BEFORE_MS`]…[`RECEIPT_MATCH_AFTER_MS`]):
    ///   an intermediate receipt makes it `sent` (the SMSC has the message), a final one
    ///   `delivered` / `failed` — unless a message to that number is in flight right now (its
    ///   row `sending`, handed over), whose receipt this may be;
    /// - else it waits in `proxy_receipts`, for a row that is still being sent or not yet
    ///   known to be unconfirmed.
    pub async fn receipts(
        &self,
        receipts: &[IncomingReceipt],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        // Read outside the transaction, which must start with a write on SQLite (a read
        // transaction cannot always be upgraded): the ids rows already have, and whether any
        // row is unconfirmed at all (if one turns unconfirmed meanwhile, the receipt waits and
        // is matched when the row's grace ends, see `requeue_unconfirmed`).
        let mut known = std::collections::HashSet::new();
        for chunk in receipts.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT smsc_message_id FROM proxy_notifications WHERE smsc_message_id IN ({marks})"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for r in chunk {
                q = q.bind(&r.message_id);
            }
            for row in q.fetch_all(self.database.pool()).await? {
                known.insert(row.try_get::<String, _>(0)?);
            }
        }
        let unconfirmed = sqlx::query(
            "SELECT 1 FROM proxy_notifications WHERE state = 'unconfirmed' AND channel IN ('sms', 'wap') LIMIT 1",
        )
        .fetch_optional(self.database.pool())
        .await?
        .is_some();
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        // To wait, one per message (a final receipt over an intermediate one).
        let mut wait: Vec<&IncomingReceipt> = Vec::new();
        for r in receipts {
            if r.status != ReceiptStatus::Accepted {
                let u = sqlx::query(self.sql(
                    "UPDATE proxy_notifications SET state = ?, updated_at = ? WHERE smsc_message_id = ? AND state = 'sent'",
                ))
                .bind(r.status.row_state())
                .bind(now_ms)
                .bind(&r.message_id)
                .execute(&mut *tx)
                .await?;
                if u.rows_affected() > 0 {
                    continue;
                }
            }
            if known.contains(&r.message_id) {
                continue;
            }
            if unconfirmed
                && let Some(o) = &r.origin
                && self
                    .settle_unconfirmed(&mut tx, &r.message_id, r.status, o, now_ms)
                    .await?
            {
                continue;
            }
            match wait.iter_mut().find(|w| w.message_id == r.message_id) {
                Some(w) if w.status == ReceiptStatus::Accepted => *w = r,
                Some(_) => {}
                None => wait.push(r),
            }
        }
        for chunk in wait.chunks(100) {
            let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            // A final receipt replaces a waiting intermediate one of the same message.
            let sql = format!(
                "INSERT INTO proxy_receipts (message_id, delivered, received_at, address, submitted_at) VALUES {rows} \
                 ON CONFLICT (message_id) DO UPDATE SET delivered = excluded.delivered WHERE proxy_receipts.delivered = 2"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for r in chunk {
                q = q
                    .bind(&r.message_id)
                    .bind(r.status.code())
                    .bind(now_ms)
                    .bind(r.origin.as_ref().map(|o| o.address.clone()))
                    .bind(r.origin.as_ref().map(|o| o.submitted_at_ms));
            }
            q.execute(&mut *tx).await?;
        }
        // A row may have been recorded since the ids were read.
        let ids: Vec<&str> = wait.iter().map(|r| r.message_id.as_str()).collect();
        self.apply_waiting_for(&mut tx, &ids, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Settles the `unconfirmed` SMS/WAP row of `origin.address` handed over nearest
    /// `origin.submitted_at_ms` with this receipt; false when there is none in the window, when
    /// a row already has this message id, or when another message to the number is in flight.
    async fn settle_unconfirmed(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        message_id: &str,
        status: ReceiptStatus,
        origin: &ReceiptOrigin,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        // Without a lease a row's hand-over time is gone; its `updated_at` is then the time its
        // send was recorded as unconfirmed (right after it was written to the SMSC).
        let r = sqlx::query(self.sql(
            "UPDATE proxy_notifications SET state = ?, smsc_message_id = ?, updated_at = ?, handed_over_at = NULL, \
             last_error = ? \
             WHERE id = (SELECT id FROM proxy_notifications WHERE state = 'unconfirmed' \
               AND smsc_message_id IS NULL AND channel IN ('sms', 'wap') AND address = ? \
               AND COALESCE(handed_over_at, updated_at) BETWEEN ? AND ? \
               ORDER BY ABS(COALESCE(handed_over_at, updated_at) - ?), id LIMIT 1) \
             AND NOT EXISTS (SELECT 1 FROM proxy_notifications k WHERE k.smsc_message_id = ?) \
             AND NOT EXISTS (SELECT 1 FROM proxy_notifications f WHERE f.state = 'sending' \
               AND f.address = ? AND f.handed_over_at IS NOT NULL AND f.channel IN ('sms', 'wap'))",
        ))
        .bind(status.row_state())
        .bind(message_id)
        .bind(now_ms)
        .bind(match status {
            ReceiptStatus::Accepted => {
                "the SMSC has it: settled by an intermediate receipt matched on destination and submit time"
            }
            _ => "settled by a delivery receipt matched on destination and submit time",
        })
        .bind(&origin.address)
        .bind(origin.submitted_at_ms - RECEIPT_MATCH_BEFORE_MS)
        .bind(origin.submitted_at_ms + RECEIPT_MATCH_AFTER_MS)
        .bind(origin.submitted_at_ms)
        .bind(message_id)
        .bind(&origin.address)
        .execute(&mut **tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Settles `unconfirmed` rows with receipts that arrived (and waited) before the rows were
    /// known to be unconfirmed: a restarted dispatcher can hear receipts for the dead one's
    /// messages before the dead one's leases run out. Returns how many rows were settled.
    pub async fn settle_unconfirmed_with_waiting_receipts(
        &self,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let waiting = sqlx::query(
            "SELECT message_id, delivered, address, submitted_at FROM proxy_receipts WHERE address IS NOT NULL AND submitted_at IS NOT NULL ORDER BY submitted_at",
        )
        .fetch_all(self.database.pool())
        .await?;
        let mut settled = 0;
        for w in &waiting {
            let message_id: String = w.try_get(0)?;
            let origin = ReceiptOrigin {
                address: w.try_get(2)?,
                submitted_at_ms: w.try_get(3)?,
            };
            let status = ReceiptStatus::from_code(w.try_get::<i64, _>(1)?);
            let _w = self.writer().await;
            let mut tx = self.database.pool().begin().await?;
            if self
                .settle_unconfirmed(&mut tx, &message_id, status, &origin, now_ms)
                .await?
            {
                sqlx::query(self.sql("DELETE FROM proxy_receipts WHERE message_id = ?"))
                    .bind(&message_id)
                    .execute(&mut *tx)
                    .await?;
                settled += 1;
            }
            tx.commit().await?;
        }
        Ok(settled)
    }

    /// Queues again the `unconfirmed` SMS/WAP rows that no receipt settled within `grace_ms`
    /// of becoming unconfirmed (the SMSC most likely never got them: a message it accepted
    /// produces a receipt), after a last look at the receipts waiting; a row that has
    /// `max_attempts` behind it is `dead` instead. Returns how many rows were queued or dead.
    pub async fn requeue_unconfirmed(
        &self,
        grace_ms: i64,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let cutoff = now_ms - grace_ms;
        let stale: i64 = sqlx::query(self.sql(
            "SELECT COUNT(*) FROM proxy_notifications WHERE state = 'unconfirmed' AND channel IN ('sms', 'wap') AND updated_at <= ?",
        ))
        .bind(cutoff)
        .fetch_one(self.database.pool())
        .await?
        .try_get(0)?;
        if stale == 0 {
            return Ok(0);
        }
        // Receipts of messages whose rows are known by id are not for these rows.
        self.apply_waiting_receipts(now_ms).await?;
        self.settle_unconfirmed_with_waiting_receipts(now_ms)
            .await?;
        let w = self.writer().await;
        let r = sqlx::query(self.sql(
            "UPDATE proxy_notifications SET state = CASE WHEN attempts >= ? THEN 'dead' ELSE 'queued' END, \
             next_attempt_at = ?, handed_over_at = NULL, lease_owner = NULL, lease_until = 0, updated_at = ?, \
             last_error = CASE WHEN attempts >= ? THEN 'no receipt for it and no attempts left' \
               ELSE 'no receipt within the grace period: the SMSC never got it; sent again' END \
             WHERE state = 'unconfirmed' AND channel IN ('sms', 'wap') AND updated_at <= ?",
        ))
        .bind(i64::from(max_attempts))
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(max_attempts))
        .bind(cutoff)
        .execute(self.database.pool())
        .await?;
        drop(w);
        if r.rows_affected() > 0 {
            tracing::warn!(
                rows = r.rows_affected(),
                "unconfirmed SMS without a receipt after {grace_ms} ms: queued again"
            );
        }
        Ok(r.rows_affected())
    }

    /// Who got (or is getting) a video's notifications, and in what state.
    pub async fn notifications(
        &self,
        video_id: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<NotificationView>, StoreError> {
        const COLS: &str = NOTIFICATION_COLUMNS;
        let rows = match (video_id, source) {
            (Some(v), _) => {
                sqlx::query(self.sql(&format!("{COLS} WHERE video_id = ? ORDER BY id")))
                    .bind(v)
                    .fetch_all(self.database.pool())
                    .await?
            }
            (None, Some(s)) => {
                sqlx::query(self.sql(&format!("{COLS} WHERE source = ? ORDER BY id")))
                    .bind(s)
                    .fetch_all(self.database.pool())
                    .await?
            }
            (None, None) => {
                sqlx::query(self.sql(&format!("{COLS} ORDER BY id")))
                    .fetch_all(self.database.pool())
                    .await?
            }
        };
        rows.iter().map(notification_from_row).collect()
    }

    /// The rows of one event (a share's numbers), by id.
    pub async fn notifications_of(
        &self,
        event_id: &str,
    ) -> Result<Vec<NotificationView>, StoreError> {
        sqlx::query(self.sql(&format!(
            "{NOTIFICATION_COLUMNS} WHERE event_id = ? ORDER BY id"
        )))
        .bind(event_id)
        .fetch_all(self.database.pool())
        .await?
        .iter()
        .map(notification_from_row)
        .collect()
    }

    /// Rows per state (for tests, benchmarks and metrics).
    pub async fn state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM proxy_notifications GROUP BY state ORDER BY state",
        )
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

const NOTIFICATION_COLUMNS: &str = "SELECT id, event_id, video_id, source, channel, address, form, state, attempts, smsc_message_id, last_error, updated_at FROM proxy_notifications";

fn notification_from_row(r: &AnyRow) -> Result<NotificationView, StoreError> {
    Ok(NotificationView {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        video_id: r.try_get(2)?,
        source: r.try_get(3)?,
        channel: Channel::parse(&r.try_get::<String, _>(4)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        address: r.try_get(5)?,
        form: r.try_get(6)?,
        state: r
            .try_get::<String, _>(7)?
            .parse()
            .map_err(StoreError::Corrupt)?,
        attempts: r.try_get::<i64, _>(8)? as u32,
        smsc_message_id: r.try_get(9)?,
        last_error: r.try_get(10)?,
        updated_at_ms: r.try_get(11)?,
    })
}

fn sub_from_row(r: &AnyRow) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: r.try_get(0)?,
        source: r.try_get(1)?,
        channel: Channel::parse(&r.try_get::<String, _>(2)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        address: r.try_get(3)?,
        form: r.try_get(4)?,
        state: SubState::parse(&r.try_get::<String, _>(5)?)?,
        code: r.try_get(6)?,
    })
}
