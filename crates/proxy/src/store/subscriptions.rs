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

/// What [`Store::subscribe`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Subscribed {
    /// A new subscription (or a stopped or lapsed one made anew, under a new id); a phone
    /// number's carries the code to send.
    Created(Subscription),
    /// The address is subscribed to the source already, or its confirmation is pending and
    /// valid: nothing changed, and the existing id is not handed out (it is the capability to
    /// delete the subscription).
    Exists,
}

/// The rules of confirmation codes.
#[derive(Debug, Clone, Copy)]
pub struct CodeRules {
    pub ttl_ms: i64,
    pub attempts: u32,
}

/// Whether a pending subscription's code may still be tried at `now_ms`.
fn code_alive(expires_at: Option<i64>, attempts: i64, rules: CodeRules, now_ms: i64) -> bool {
    expires_at.is_some_and(|e| e > now_ms) && attempts < i64::from(rules.attempts)
}

/// Compares two codes in constant time (for equal lengths).
pub fn same_code(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Store {
    /// Creates a subscription. Phone numbers start `pending-confirmation` with a six-digit code
    /// valid for `rules.ttl_ms`; other channels are active at once. An address subscribed to
    /// the source already, or with a valid pending code, gets [`Subscribed::Exists`] and no new
    /// code. `admit` is asked (under the write lock) before a new code is made: it counts the
    /// SMS that will carry it, and its refusal is the answer.
    pub async fn subscribe(
        &self,
        req: &NewSubscription,
        now_ms: i64,
        rules: CodeRules,
        admit: impl FnOnce(&str) -> Result<(), crate::guard::Refused>,
    ) -> Result<Subscribed, StoreError> {
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
        let phone = matches!(req.channel, Channel::Sms | Channel::Wap);
        let address = match req.channel {
            Channel::Sms | Channel::Wap => normalize_number(&req.address)?,
            Channel::Webhook => {
                let u = req.address.trim();
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048 {
                    return Err(StoreError::Invalid(format!(
                        "webhook address {u:?} is not an http(s) URL"
                    )));
                }
                u.to_string()
            }
            Channel::Websocket => {
                let a = req.address.trim();
                valid_listener_id(a)?;
                a.to_string()
            }
            Channel::Webpush => {
                crate::push_subscription::parse_subscription(&req.address)
                    .map_err(|e| StoreError::Invalid(format!("{e:#}")))?;
                req.address.clone()
            }
        };
        let _w = self.writer().await;
        let existing = self
            .find_subscription(source, req.channel, &address)
            .await?;
        if let Some((s, expires_at, attempts)) = &existing {
            let live = match s.state {
                SubState::Active => true,
                SubState::PendingConfirmation => code_alive(*expires_at, *attempts, rules, now_ms),
                SubState::Stopped => false,
            };
            if live {
                return Ok(Subscribed::Exists);
            }
        }
        let (state, code, expires_at) = if phone {
            admit(&address).map_err(StoreError::Refused)?;
            (
                SubState::PendingConfirmation,
                Some(format!(
                    "{:06}",
                    rand::Rng::random_range(&mut rand::rng(), 0..1_000_000)
                )),
                Some(now_ms.saturating_add(rules.ttl_ms)),
            )
        } else {
            (SubState::Active, None, None)
        };
        // A new id every time: whoever knew the id of a stopped or lapsed subscription gets no
        // hold on the new one.
        let id = random_id(12);
        if let Some((old, _, _)) = &existing {
            sqlx::query(self.sql(
                "UPDATE proxy_subscriptions SET id = ?, form = ?, state = ?, code = ?, code_expires_at = ?, code_attempts = 0, updated_at = ? WHERE id = ?",
            ))
            .bind(&id)
            .bind(&form)
            .bind(state.as_str())
            .bind(&code)
            .bind(expires_at)
            .bind(now_ms)
            .bind(&old.id)
            .execute(self.database.pool())
            .await?;
        } else {
            sqlx::query(self.sql(
                "INSERT INTO proxy_subscriptions (id, source, channel, address, form, state, code, code_expires_at, code_attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            ))
            .bind(&id)
            .bind(source)
            .bind(req.channel.as_str())
            .bind(&address)
            .bind(&form)
            .bind(state.as_str())
            .bind(&code)
            .bind(expires_at)
            .bind(now_ms)
            .bind(now_ms)
            .execute(self.database.pool())
            .await?;
        }
        Ok(Subscribed::Created(Subscription {
            id,
            source: source.to_string(),
            channel: req.channel,
            address,
            form,
            state,
            code,
        }))
    }

    /// Tries `code` on pending subscription `id`: the attempt is counted before the code is
    /// compared (so concurrent guesses cannot pass the budget), and a right code activates it.
    /// None when the code is wrong, or nothing can be confirmed (no such pending subscription,
    /// code expired, attempts spent).
    pub async fn confirm_id(
        &self,
        id: &str,
        code: &str,
        rules: CodeRules,
        now_ms: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let _w = self.writer().await;
        let reserved = sqlx::query(self.sql(
            "UPDATE proxy_subscriptions SET code_attempts = code_attempts + 1 WHERE id = ? AND state = 'pending-confirmation' AND code_attempts < ? AND code_expires_at > ?",
        ))
        .bind(id)
        .bind(i64::from(rules.attempts))
        .bind(now_ms)
        .execute(self.database.pool())
        .await?;
        if reserved.rows_affected() == 0 {
            return Ok(None);
        }
        let Some(sub) = self.subscription(id).await? else {
            return Ok(None);
        };
        if !sub.code.as_deref().is_some_and(|c| same_code(c, code)) {
            return Ok(None);
        }
        self.set_state_locked(id, SubState::Active, now_ms).await?;
        Ok(Some(Subscription {
            state: SubState::Active,
            code: None,
            ..sub
        }))
    }

    /// Binds listener `id` to `secret` the first time it is named; afterwards only that secret
    /// opens it. Returns whether `secret` opens the listener.
    pub async fn claim_listener(
        &self,
        id: &str,
        secret: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        use sha2::Digest;
        valid_listener_id(id)?;
        let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        let _w = self.writer().await;
        sqlx::query(self.sql(
            "INSERT INTO proxy_listeners (id, secret_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        ))
        .bind(id)
        .bind(&hash)
        .bind(now_ms)
        .execute(self.database.pool())
        .await?;
        let stored: String =
            sqlx::query(self.sql("SELECT secret_hash FROM proxy_listeners WHERE id = ?"))
                .bind(id)
                .fetch_one(self.database.pool())
                .await?
                .try_get(0)?;
        Ok(same_code(&stored, &hash))
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
        let _w = self.writer().await;
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

    /// A subscription with its code's expiry and attempts.
    async fn find_subscription(
        &self,
        source: &str,
        channel: Channel,
        address: &str,
    ) -> Result<Option<(Subscription, Option<i64>, i64)>, StoreError> {
        let row = sqlx::query(self.sql(
            "SELECT id, source, channel, address, form, state, code, code_expires_at, code_attempts FROM proxy_subscriptions WHERE source = ? AND channel = ? AND address = ?",
        ))
        .bind(source)
        .bind(channel.as_str())
        .bind(address)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| Ok((sub_from_row(&r)?, r.try_get(7)?, r.try_get(8)?)))
            .transpose()
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

    /// Activates the pending subscriptions of a number whose code matches; returns them. Each
    /// pending subscription with a live code spends one attempt.
    pub async fn confirm(
        &self,
        number: &str,
        code: &str,
        rules: CodeRules,
        now_ms: i64,
    ) -> Result<Vec<Subscription>, StoreError> {
        let number = normalize_number(number)?;
        let pending: Vec<Subscription> = self
            .by_number(&number)
            .await?
            .into_iter()
            .filter(|s| s.state == SubState::PendingConfirmation)
            .collect();
        let mut done = Vec::new();
        for s in &pending {
            if let Some(s) = self.confirm_id(&s.id, code, rules, now_ms).await? {
                done.push(s);
            }
        }
        Ok(done)
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
        let _w = self.writer().await;
        self.set_state_locked(id, state, now_ms).await
    }

    /// [`set_sub_state`](Self::set_sub_state) with the write lock held by the caller.
    async fn set_state_locked(
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

/// Listener ids: 1 to 128 of `A-Z a-z 0-9 - _ . :`.
pub fn valid_listener_id(a: &str) -> Result<(), StoreError> {
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
    Ok(())
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
