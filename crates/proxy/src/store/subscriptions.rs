//! Subscriptions: who wants to hear of a source's videos, on which channel and in which form,
//! with double opt-in (a six-digit code) for phone numbers.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Channel, Store, StoreError, random_id};

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
                crate::push_subscription::parse_subscription(&req.address)
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
