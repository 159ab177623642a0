//! The direct-IP path: signed webhooks, and WebSocket / SSE listeners connected to the proxy.
//!
//! A listener connects to `GET /api/v1/listen?id=<listener id>[&source=<source>]` (WebSocket)
//! or `GET /api/v1/listen/sse?id=…` (Server-Sent Events); with `source` it subscribes itself.
//! Each notification arrives as one JSON [`Message`](crate::Message); a WebSocket listener may
//! answer `{"ack":"<notification>"}` to mark it delivered. A row for a listener that is not
//! connected waits, spending no attempt, until the listener connects (which makes its rows due at
//! once) or the row expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};

use crate::dispatcher::Outcome;
use crate::store::{Channel, Claimed};
use crate::{Message, Proxy};

/// The signature header value for a body: `sha256=<hex HMAC-SHA256(secret, body)>`, as the
/// server's own webhook signs.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Connected listeners by listener id.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Mutex<HubInner>>,
}

/// One connection of a listener: its number and where its messages go.
type Connection = (u64, mpsc::Sender<Arc<str>>);

#[derive(Default)]
struct HubInner {
    next: u64,
    listeners: HashMap<String, Vec<Connection>>,
}

/// A registration; dropping it removes the listener.
pub struct Registration {
    hub: Hub,
    id: String,
    conn: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut h = self.hub.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = h.listeners.get_mut(&self.id) {
            list.retain(|(c, _)| *c != self.conn);
            if list.is_empty() {
                h.listeners.remove(&self.id);
            }
        }
    }
}

impl Hub {
    /// Registers a connection for listener `id`; messages come out of the receiver.
    pub fn register(&self, id: &str) -> (Registration, mpsc::Receiver<Arc<str>>) {
        let (tx, rx) = mpsc::channel(256);
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        h.next += 1;
        let conn = h.next;
        h.listeners
            .entry(id.to_string())
            .or_default()
            .push((conn, tx));
        (
            Registration {
                hub: self.clone(),
                id: id.to_string(),
                conn,
            },
            rx,
        )
    }

    /// Hands a message to every connection of `id`; false when none took it.
    pub fn send(&self, id: &str, text: Arc<str>) -> bool {
        let h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = h.listeners.get(id) else {
            return false;
        };
        let mut any = false;
        for (_, tx) in list {
            any |= tx.try_send(text.clone()).is_ok();
        }
        any
    }

    pub fn is_connected(&self, id: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .listeners
            .contains_key(id)
    }

    pub fn connected(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .listeners
            .len()
    }
}

/// The JSON a listener or webhook receives for a row: the proxy's [`Message`].
pub(crate) async fn message(proxy: &Proxy, row: &Claimed) -> anyhow::Result<String> {
    let payload = proxy.payload(&row.event_id).await?;
    message_of(row, &payload)
}

fn message_of(row: &Claimed, payload: &crate::direct::Payload) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&Message {
        notification: row.id.clone(),
        event: row.event_id.clone(),
        video_id: row.video_id.clone(),
        source: row.source.clone(),
        records: payload.records.clone(),
    })?)
}

/// How long a row for a listener that is not connected waits before it is looked at again
/// (its connection makes it due at once; expiry ends the wait).
const LISTENER_AWAY_MS: i64 = 10 * 60_000;

/// Hands WebSocket/SSE rows to connected listeners, until the runtime stops.
pub async fn run_listeners(proxy: Proxy) {
    loop {
        let (rows, next) = match proxy
            .claim_and_plan(&[Channel::Websocket], proxy.config.batch)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("listener outbox claim: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if rows.is_empty() {
            proxy.idle_until(Duration::from_millis(500), next).await;
            continue;
        }
        let mut results = Vec::with_capacity(rows.len());
        let mut away = Vec::new();
        let wait_until = proxy.now_ms() + LISTENER_AWAY_MS;
        for row in rows {
            match message(&proxy, &row).await {
                Ok(text) => {
                    if proxy.hub.send(&row.address, text.into()) {
                        results.push((row, Outcome::Accepted { message_id: None }));
                    } else {
                        // Not connected: wait (no attempt spent) until it connects or expires.
                        away.push((row.id, row.address, wait_until));
                    }
                }
                Err(e) => results.push((
                    row,
                    Outcome::Permanent {
                        error: format!("{e:#}"),
                    },
                )),
            }
        }
        let defer: Vec<(String, i64)> = away.iter().map(|(id, _, t)| (id.clone(), *t)).collect();
        if let Err(e) = proxy
            .store
            .defer(&proxy.config.owner, &defer, proxy.now_ms())
            .await
        {
            tracing::warn!("listener outbox defer: {e:#}");
        }
        // A listener that connected while we looked: its rows are due now after all.
        for (_, address, _) in &away {
            if proxy.hub.is_connected(address)
                && let Err(e) = proxy
                    .store
                    .make_due(Channel::Websocket, address, proxy.now_ms())
                    .await
            {
                tracing::warn!("listener outbox: {e:#}");
            }
        }
        if let Err(e) = proxy.finish(results).await {
            tracing::warn!("listener outbox record: {e:#}");
        }
    }
}

/// Posts webhook rows, each on its own task (a slow endpoint delays nobody else), until the
/// runtime stops.
pub async fn run_webhooks(proxy: Proxy) {
    run_http_channel(
        proxy,
        Channel::Webhook,
        "webhook",
        |proxy, client, row| async move { post(&proxy, &client, &row).await },
    )
    .await;
}

/// The loop of a channel sent over HTTP (webhooks, Web Push): claims rows as permits allow,
/// sends each on its own task with `send`, records the outcome.
pub(crate) async fn run_http_channel<F, Fut>(
    proxy: Proxy,
    channel: Channel,
    name: &'static str,
    send: F,
) where
    F: Fn(Proxy, reqwest::Client, Claimed) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    // Subscribers' destinations go through the egress policy; the operator's own (the
    // server's webhook) do not.
    let egress = Arc::new(proxy.config.egress.clone());
    let timeout = proxy.config.webhook_timeout;
    let (guarded, trusted) = match (
        egress.client(timeout),
        crate::egress::EgressPolicy::trusted_client(timeout),
    ) {
        (Ok(g), Ok(t)) => (g, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("{name} client: {e}");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(proxy.config.webhook_concurrency.max(1)));
    loop {
        let free = permits.available_permits() as i64;
        if free == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let (rows, next) = match proxy
            .claim_and_plan(&[channel], free.min(proxy.config.batch))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{name} outbox claim: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if rows.is_empty() {
            proxy.idle_until(Duration::from_millis(500), next).await;
            continue;
        }
        for row in rows {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let client = if egress.is_trusted(&row.address) {
                trusted.clone()
            } else {
                guarded.clone()
            };
            let (proxy, send) = (proxy.clone(), send.clone());
            tokio::spawn(async move {
                let outcome = send(proxy.clone(), client, row.clone()).await;
                if let Err(e) = proxy.finish(vec![(row, outcome)]).await {
                    tracing::warn!("{name} outbox record: {e:#}");
                }
                drop(permit);
            });
        }
    }
}

async fn post(proxy: &Proxy, client: &reqwest::Client, row: &Claimed) -> Outcome {
    // An event with a body of its own (the server's webhook) is posted as it is, named by its
    // kind; a subscriber's notification is the proxy's message, named by its event id.
    let (body, event) = match proxy.payload(&row.event_id).await {
        Ok(p) => match &p.body {
            Some(body) => (Ok(body.clone()), p.kind.clone()),
            None => (message_of(row, &p), row.event_id.clone()),
        },
        Err(e) => (Err(e), row.event_id.clone()),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Permanent {
                error: format!("{e:#}"),
            };
        }
    };
    if let Err(error) = proxy.config.egress.check_url(&row.address) {
        return Outcome::Permanent { error };
    }
    let result = client
        .post(&row.address)
        .header("content-type", "application/json")
        .header("x-vshare-event", event)
        .header("x-vshare-delivery", &row.id)
        .header(
            "x-vshare-signature",
            signature(&proxy.config.webhook_secret, body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) if r.status().is_server_error() || matches!(r.status().as_u16(), 408 | 429) => {
            let error = format!("HTTP {}", r.status());
            match retry_after(&r, proxy.now_ms()) {
                Some(after_ms) => Outcome::RetryAfter { error, after_ms },
                None => Outcome::Transient { error },
            }
        }
        Ok(r) => Outcome::Permanent {
            error: format!("HTTP {}", r.status()),
        },
        Err(e) if e.is_timeout() => Outcome::Transient {
            error: format!("no answer within {:?}", proxy.config.webhook_timeout),
        },
        // A refused destination stays refused; other errors are named by class only.
        Err(e) => match crate::egress::describe(&e) {
            error if error.starts_with("refused") => Outcome::Permanent { error },
            error => Outcome::Transient { error },
        },
    }
}

/// The `Retry-After` of an answer, as a wait in ms (see [`crate::dispatcher::parse_retry_after`]).
pub(crate) fn retry_after(resp: &reqwest::Response, now_ms: i64) -> Option<i64> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    crate::dispatcher::parse_retry_after(v, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn hub_delivers_to_registered_only() {
        let hub = Hub::default();
        assert!(!hub.send("a", "x".into()));
        let (reg, mut rx) = hub.register("a");
        assert!(hub.send("a", "hello".into()));
        assert_eq!(rx.recv().await.as_deref(), Some("hello"));
        drop(reg);
        assert!(!hub.send("a", "again".into()));
        assert_eq!(hub.connected(), 0);
    }
}
