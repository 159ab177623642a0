//! Signed webhooks: the hand-off of attribute data to the communication proxy. Events wait in a
//! durable outbox table and are retried with exponential backoff until delivered or given up.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::WebhookConfig;
use crate::db::Db;

/// The signature header value: one definition for the server's webhook and the proxy's.
pub use vshare_proxy::ip::signature;

/// Delay before attempt `n + 1` (n ≥ 1): 1 s, 2 s, 4 s … capped at 5 minutes, ±20 % jitter.
pub fn backoff(attempts: u32) -> Duration {
    let base = 1000u64
        .saturating_mul(1 << attempts.saturating_sub(1).min(20))
        .min(300_000);
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[derive(Clone)]
pub struct Webhooks {
    db: Db,
    config: Option<WebhookConfig>,
    wake: Arc<Notify>,
}

impl Webhooks {
    pub fn new(db: Db, config: Option<WebhookConfig>) -> Self {
        Webhooks {
            db,
            config,
            wake: Arc::default(),
        }
    }

    /// The event name to queue with a video update, or None when no webhook is configured.
    pub fn event<'a>(&self, event: &'a str) -> Option<&'a str> {
        self.config.as_ref().map(|_| event)
    }

    /// Tells the dispatcher that an event was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers queued events until the process ends.
    pub async fn run(self) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                warn!("webhook client: {e}");
                return;
            }
        };
        loop {
            let now = chrono::Utc::now().timestamp_millis();
            let due = match self.db.due_webhooks(now, 32).await {
                Ok(d) => d,
                Err(e) => {
                    warn!("webhook outbox: {e:#}");
                    Vec::new()
                }
            };
            for row in &due {
                let result = client
                    .post(&config.url)
                    .header("content-type", "application/json")
                    .header("x-vshare-event", &row.event)
                    .header("x-vshare-delivery", &row.id)
                    .header(
                        "x-vshare-signature",
                        signature(&config.secret, row.body.as_bytes()),
                    )
                    .body(row.body.clone())
                    .send()
                    .await;
                let error = match result {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!("HTTP {}", r.status())),
                    Err(e) => Some(e.to_string()),
                };
                let attempts = row.attempts as u32 + 1;
                let (state, next) = match &error {
                    None => ("delivered", now),
                    Some(_) if attempts >= config.max_attempts => ("dead", now),
                    Some(_) => ("queued", now + backoff(attempts).as_millis() as i64),
                };
                match &error {
                    None => info!(event = %row.event, delivery = %row.id, "webhook delivered"),
                    Some(e) => {
                        warn!(event = %row.event, delivery = %row.id, attempts, state, "webhook failed: {e}")
                    }
                }
                if let Err(e) = self
                    .db
                    .webhook_attempted(&row.id, state, next, error.as_deref())
                    .await
                {
                    warn!("webhook outbox update: {e:#}");
                }
            }
            if due.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) <= Duration::from_millis(1200));
        assert!(backoff(4) >= Duration::from_millis(6400));
        assert!(backoff(40) <= Duration::from_secs(360));
    }
}
