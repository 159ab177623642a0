//! The communication proxy of vshare: subscriptions, and durable push of every new video to
//! every subscriber, once.
//!
//! ```text
//! video server ──Event──▶ Proxy::handle_event ──(one transaction)──▶ proxy_events + proxy_notifications
//!                                                                         │ claim (lease)
//!                 ┌──────────────────────────┬────────────────────────────┼────────────────┐
//!            SMS/WAP over SMPP         webhook (signed POST)      WebSocket / SSE listeners
//!            receipts → delivered      2xx → delivered            ack → delivered
//! ```
//!
//! - [`dispatcher`]: the sans-IO state machine (retry, backoff, dead, expiry, rate limits,
//!   quiet hours); time is an argument.
//! - [`store`]: the outbox in SQL (SQLite or PostgreSQL), claims safe for several processes.
//! - [`sms`], [`ip`], [`webpush`]: thin tokio adapters per channel; [`api`]: the axum router.
//!
//! Wiring, in `vshare serve`: `let proxy = Proxy::open(config).await?; proxy.spawn();`
//! merge [`Proxy::router`] into the HTTP router, and call [`Proxy::handle_event`] when a
//! stream goes live and when its VOD is ready.

pub mod api;
pub mod client;
pub mod direct;
pub mod dispatcher;
pub mod egress;
pub mod guard;
pub mod ip;
pub mod mo;
mod push_subscription;
pub mod sms;
pub mod store;
pub mod webpush;
pub mod ws;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use vshare_attributes::AttributeRecord;

use crate::dispatcher::{Dispatcher, Limits, Outcome, Plan, Policy, Row, Transition};
pub use crate::store::{
    Channel, Event, EventKind, NewSubscription, NotificationView, Store, StoreError, SubState,
    Subscription,
};

/// The SMSC the proxy binds to.
#[derive(Debug, Clone)]
pub struct SmppConfig {
    /// `host:port`.
    pub addr: String,
    pub system_id: String,
    pub password: String,
    /// The proxy's own number: source of its messages, and where MO keywords and delivery
    /// receipts arrive (its receiver bind's address_range).
    pub number: String,
    /// submit_sm outstanding at once.
    pub window: usize,
}

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `sqlite://…?mode=rwc` or `postgres://…`; may be the server's database.
    pub database_url: String,
    pub smpp: Option<SmppConfig>,
    /// HMAC-SHA256 secret for webhook signatures (`x-vshare-signature: sha256=<hex>`).
    pub webhook_secret: String,
    pub webhook_timeout: Duration,
    pub policy: Policy,
    pub limits: Limits,
    /// How long a claim holds rows; a dispatcher that dies lets them go after this.
    pub lease: Duration,
    /// Rows claimed at once.
    pub batch: i64,
    /// Webhook requests in flight at once.
    pub webhook_concurrency: usize,
    /// Names this dispatcher's leases; unique per process.
    pub owner: String,
    /// The VAPID key for Web Push; without it web push subscriptions are refused.
    pub vapid: Option<webpush::Vapid>,
    /// Where webhooks and Web Push may go (default: public addresses only).
    pub egress: egress::EgressPolicy,
    /// Added to the system clock for every time the proxy reads (0 in service). Tests set it
    /// to run the proxy at a chosen time of day, e.g. seconds before quiet hours end.
    pub clock_offset_ms: i64,
    /// The limits every SMS the proxy originates passes ([`guard`]).
    pub sms_limits: guard::SmsLimits,
    /// How long a confirmation code is valid, ms.
    pub code_ttl_ms: i64,
    /// Wrong codes a pending subscription survives; then it is dead until its code expires.
    pub code_attempts: u32,
    /// Where the short links (`<base>/w/<id>`) of compact SMS point: the server's public URL.
    /// None: the origin of the record's own URL.
    pub link_base: Option<String>,
}

impl ProxyConfig {
    pub fn new(database_url: &str) -> ProxyConfig {
        ProxyConfig {
            database_url: database_url.into(),
            smpp: None,
            webhook_secret: String::new(),
            webhook_timeout: Duration::from_secs(10),
            policy: Policy::default(),
            limits: Limits::default(),
            lease: Duration::from_secs(60),
            batch: 1000,
            webhook_concurrency: 256,
            owner: format!("{}-{}", std::process::id(), store::random_id(6)),
            vapid: None,
            egress: egress::EgressPolicy::default(),
            clock_offset_ms: 0,
            sms_limits: guard::SmsLimits::unlimited(),
            code_ttl_ms: 10 * 60_000,
            code_attempts: 5,
            link_base: None,
        }
    }
}

/// Where the SMS dispatcher spends its time (µs, summed), for benchmarks.
#[derive(Debug, Default)]
pub struct SmsTimings {
    pub claim_us: std::sync::atomic::AtomicU64,
    pub compose_us: std::sync::atomic::AtomicU64,
    pub mark_us: std::sync::atomic::AtomicU64,
    pub submit_us: std::sync::atomic::AtomicU64,
    pub record_us: std::sync::atomic::AtomicU64,
}

/// Answers whether a source (stream key id or name) exists; the server supplies it.
pub type SourceCheck =
    Arc<dyn Fn(String) -> BoxFuture<'static, anyhow::Result<bool>> + Send + Sync>;

/// The proxy: clone it freely (all state is shared).
#[derive(Clone)]
pub struct Proxy {
    pub store: Store,
    pub config: Arc<ProxyConfig>,
    pub hub: ip::Hub,
    /// The gate of every SMS this process originates.
    pub sms_guard: Arc<guard::SmsGuard>,
    dispatcher: Arc<Mutex<Dispatcher>>,
    wake: Arc<Notify>,
    sources: Option<SourceCheck>,
    payloads: Arc<Mutex<HashMap<String, Arc<direct::Payload>>>>,
    /// Where the SMS dispatcher spends its time.
    pub sms_timings: Arc<SmsTimings>,
    /// Per claiming loop (its channels), when the soonest row it deferred is due.
    next_due: Arc<Mutex<HashMap<String, i64>>>,
}

/// Milliseconds since the Unix epoch, the proxy's one clock read.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Proxy {
    /// The proxy's clock: [`now_ms`] plus [`ProxyConfig::clock_offset_ms`].
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.config.clock_offset_ms
    }

    /// Opens the store (running the proxy's migrations).
    pub async fn open(config: ProxyConfig) -> anyhow::Result<Proxy> {
        let store = Store::open(&config.database_url)
            .await
            .map_err(|e| anyhow::anyhow!("proxy database {}: {e}", config.database_url))?;
        Ok(Proxy::on(store, config))
    }

    /// The proxy on a store opened before: in `vshare serve`, on the server's own database (one
    /// pool, one writer discipline for both roles).
    pub fn on(store: Store, config: ProxyConfig) -> Proxy {
        let dispatcher = Dispatcher::new(config.policy.clone(), config.limits.clone());
        Proxy {
            sms_guard: Arc::new(guard::SmsGuard::new(config.sms_limits.clone())),
            store,
            config: Arc::new(config),
            hub: ip::Hub::default(),
            dispatcher: Arc::new(Mutex::new(dispatcher)),
            wake: Arc::default(),
            sources: None,
            payloads: Arc::default(),
            sms_timings: Arc::default(),
            next_due: Arc::default(),
        }
    }

    /// Subscriptions to unknown sources are refused with this check (default: any source).
    pub fn with_source_check(mut self, check: SourceCheck) -> Proxy {
        self.sources = Some(check);
        self
    }

    /// Whether `source` is known (true without a check).
    pub async fn source_exists(&self, source: &str) -> anyhow::Result<bool> {
        match &self.sources {
            Some(check) => check(source.to_string()).await,
            None => Ok(true),
        }
    }

    /// Writes the event and its notifications (one transaction) and wakes the dispatchers.
    /// Returns how many notifications were created (0 if the event was handled before).
    pub async fn handle_event(&self, event: &Event) -> anyhow::Result<u64> {
        let n = self.store.handle_event(event, self.now_ms()).await?;
        tracing::info!(event = %event.id, notifications = n, "proxy event queued");
        self.wake.notify_waiters();
        Ok(n)
    }

    /// Starts every dispatcher (SMS/WAP and the SMPP receiver when an SMSC is configured,
    /// webhook, WebSocket/SSE). They run until the runtime stops.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(ip::run_webhooks(self.clone())),
            tokio::spawn(ip::run_listeners(self.clone())),
            tokio::spawn(webpush::run(self.clone())),
        ];
        if self.config.smpp.is_some() {
            tasks.push(tokio::spawn(sms::run_dispatcher(self.clone())));
            tasks.push(tokio::spawn(sms::run_receiver(self.clone())));
        }
        tasks
    }

    /// The HTTP API to merge into the server's router (see [`api`]).
    pub fn router(&self, admin_token: Option<String>) -> axum::Router {
        api::router(self.clone(), admin_token)
    }

    /// Wakes the dispatchers (new rows, a listener connected).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Waits for a wake-up or `max`.
    async fn idle(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.wake.notified()).await;
    }

    /// What to send for an event, cached.
    async fn payload(&self, event_id: &str) -> anyhow::Result<Arc<direct::Payload>> {
        if let Some(r) = self
            .payloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(event_id)
        {
            return Ok(r.clone());
        }
        let r = Arc::new(self.store.payload(event_id).await?);
        let mut cache = self.payloads.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 1000 {
            cache.clear();
        }
        cache.insert(event_id.to_string(), r.clone());
        Ok(r)
    }

    /// Queues a message to named addresses (a share, the server's webhook) and wakes the
    /// dispatchers; returns the notification ids, one per target.
    pub async fn queue_direct(&self, message: &direct::Direct) -> anyhow::Result<Vec<String>> {
        let ids = self.store.queue_direct(message, self.now_ms()).await?;
        tracing::info!(event = %message.id, kind = %message.kind, notifications = ids.len(), "proxy direct message queued");
        self.wake.notify_waiters();
        Ok(ids)
    }

    /// Waits for a wake-up, `max`, or the time a deferred row is due (`next_ms`), whichever
    /// comes first: a rate-limited row goes out when its token is there, not at the next poll.
    async fn idle_until(&self, max: Duration, next_ms: Option<i64>) {
        let wait = match next_ms {
            Some(at) => max.min(Duration::from_millis(
                u64::try_from(at - self.now_ms()).unwrap_or(0),
            )),
            None => max,
        };
        self.idle(wait).await;
    }

    /// Claims due rows of `channels` and plans them: returns the rows to send now, and when the
    /// soonest of those deferred here (rate limits, quiet hours) is due; the others are
    /// deferred or expired in the store.
    async fn claim_and_plan(
        &self,
        channels: &[Channel],
        limit: i64,
    ) -> anyhow::Result<(Vec<store::Claimed>, Option<i64>)> {
        let now = self.now_ms();
        let claimed = self
            .store
            .claim(
                channels,
                &self.config.owner,
                now,
                self.config.lease.as_millis() as i64,
                limit,
            )
            .await?;
        let key = channels
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if claimed.is_empty() {
            return Ok((claimed, self.next_due_hint(&key, None, now)));
        }
        let rows: Vec<Row> = claimed.iter().map(to_row).collect();
        let plans = self
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plan(&rows, now);
        let mut send = Vec::with_capacity(claimed.len());
        let mut defer = Vec::new();
        let mut expire = Vec::new();
        for (c, plan) in claimed.into_iter().zip(plans) {
            match plan {
                // Subscribers' SMS count against the global SMS limits here (a share was
                // counted when it was queued); over them they wait, they are not dropped.
                Plan::Send
                    if c.to_subscriber
                        && matches!(c.channel, Channel::Sms | Channel::Wap)
                        && let Err(r) = self.sms_guard.admit_one(&c.address, false, None, now) =>
                {
                    defer.push((c.id, now + r.wait_ms));
                }
                Plan::Send => send.push(c),
                Plan::Defer { until_ms, .. } => defer.push((c.id, until_ms)),
                Plan::Expire => expire.push((
                    c.id,
                    Transition {
                        state: dispatcher::State::Expired,
                        attempts: c.attempts,
                        next_attempt_at_ms: now,
                        message_id: None,
                        error: Some("expired before it could be sent".into()),
                    },
                )),
            }
        }
        let next = defer.iter().map(|(_, until)| *until).min();
        self.store.defer(&self.config.owner, &defer, now).await?;
        self.store.record(&self.config.owner, &expire, now).await?;
        Ok((send, self.next_due_hint(&key, next, now)))
    }

    /// Remembers the soonest time a row deferred by this loop is due (rows deferred by other
    /// processes are found by the loop's regular poll) and returns it while it lies ahead.
    fn next_due_hint(&self, key: &str, deferred: Option<i64>, now: i64) -> Option<i64> {
        let mut hints = self.next_due.lock().unwrap_or_else(|e| e.into_inner());
        let known = hints.get(key).copied().filter(|t| *t > now);
        let next = match (known, deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match next {
            Some(t) => hints.insert(key.to_string(), t),
            None => hints.remove(key),
        };
        next
    }

    /// Records the outcomes of sent rows.
    async fn finish(&self, results: Vec<(store::Claimed, Outcome)>) -> anyhow::Result<()> {
        let now = self.now_ms();
        let transitions: Vec<(String, Transition)> = {
            let d = self.dispatcher.lock().unwrap_or_else(|e| e.into_inner());
            results
                .into_iter()
                .map(|(c, o)| {
                    let t = d.outcome(&to_row(&c), o, now, rand::random::<f64>());
                    (c.id, t)
                })
                .collect()
        };
        self.store
            .record(&self.config.owner, &transitions, now)
            .await?;
        Ok(())
    }
}

fn to_row(c: &store::Claimed) -> Row {
    Row {
        id: c.id.clone(),
        // SMS and WAP Push share one SMSC bind, and so its rate limit.
        channel: match c.channel {
            Channel::Sms | Channel::Wap => "smpp".to_string(),
            other => other.as_str().to_string(),
        },
        source: c.source.clone(),
        address: c.address.clone(),
        attempts: c.attempts,
        created_at_ms: c.created_at_ms,
        to_subscriber: c.to_subscriber,
    }
}

/// The JSON a listener or webhook receives.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Message {
    /// The notification id (`<event id>:<subscription id>`): the same id is the same message.
    pub notification: String,
    pub event: String,
    pub video_id: String,
    pub source: String,
    pub records: Vec<AttributeRecord>,
}
