//! Web Push subscribers (RFC 8030 push, RFC 8291 message encryption, RFC 8292 VAPID) through
//! `web-push-native` (pure Rust crypto; the request is sent with our rustls reqwest).
//!
//! A subscription's address is the browser's `PushSubscription.toJSON()`:
//! `{"endpoint": "https://…", "keys": {"p256dh": "<base64url>", "auth": "<base64url>"}}`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use web_push_native::WebPushBuilder;
use web_push_native::jwt_simple::algorithms::{ECDSAP256KeyPairLike, ES256KeyPair};

use crate::Proxy;
use crate::dispatcher::Outcome;
pub use crate::push_subscription::{PushTarget, parse_subscription};
use crate::store::{Channel, Claimed};

/// The application server's VAPID key pair (RFC 8292 §3).
#[derive(Clone)]
pub struct Vapid {
    key: Arc<ES256KeyPair>,
    /// `mailto:` or `https:` contact (RFC 8292 §2.1 `sub`).
    pub contact: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_key())
            .field("contact", &self.contact)
            .finish()
    }
}

impl Vapid {
    /// From the private key as base64url of its 32-byte scalar.
    pub fn from_private(b64: &str, contact: &str) -> anyhow::Result<Vapid> {
        let raw = URL_SAFE_NO_PAD
            .decode(b64.trim().trim_end_matches('='))
            .map_err(|e| anyhow::anyhow!("VAPID private key is not base64url: {e}"))?;
        let key = ES256KeyPair::from_bytes(&raw)
            .map_err(|e| anyhow::anyhow!("VAPID private key: {e}"))?;
        Ok(Vapid {
            key: Arc::new(key),
            contact: contact.into(),
        })
    }

    /// A new key pair; returns it and its private key (base64url) to store in the config.
    pub fn generate(contact: &str) -> (Vapid, String) {
        let key = ES256KeyPair::generate();
        let private = URL_SAFE_NO_PAD.encode(key.to_bytes());
        (
            Vapid {
                key: Arc::new(key),
                contact: contact.into(),
            },
            private,
        )
    }

    /// The public key as browsers take it for `applicationServerKey`: base64url of the
    /// uncompressed P-256 point (65 octets).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.key_pair().public_key().to_bytes_uncompressed())
    }
}

/// Pushes Web Push rows, each on its own task, until the runtime stops.
pub async fn run(proxy: Proxy) {
    let Some(vapid) = proxy.config.vapid.clone() else {
        return;
    };
    crate::ip::run_http_channel(
        proxy,
        Channel::Webpush,
        "web push",
        move |proxy, client, row| {
            let vapid = vapid.clone();
            async move { push(&proxy, &client, &vapid, &row).await }
        },
    )
    .await;
}

async fn push(proxy: &Proxy, client: &reqwest::Client, vapid: &Vapid, row: &Claimed) -> Outcome {
    let built = async {
        let target = parse_subscription(&row.address)?;
        let body = crate::ip::message(proxy, row).await?;
        let req = WebPushBuilder::new(target.endpoint, target.p256dh, target.auth)
            .with_valid_duration(Duration::from_secs(12 * 3600))
            .with_vapid(&vapid.key, &vapid.contact)
            .build(body.into_bytes())
            .map_err(|e| anyhow::anyhow!("web push: {e}"))?;
        anyhow::Ok(req)
    }
    .await;
    let req = match built {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Permanent {
                error: format!("{e:#}"),
            };
        }
    };
    let (parts, body) = req.into_parts();
    if let Err(e) = check_endpoint(&proxy.config.egress, &parts.uri.to_string()) {
        return Outcome::Permanent {
            error: format!("push service: {e}"),
        };
    }
    let mut r = client.post(parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        r = r.header(name.as_str(), value.as_bytes());
    }
    match r.send().await {
        // RFC 8030 §5: 201 Created; a push service may answer 200/202 too.
        Ok(resp) if resp.status().is_success() => Outcome::Accepted { message_id: None },
        // §6.2, §7.3: the subscription is gone.
        Ok(resp) if matches!(resp.status().as_u16(), 404 | 410) => Outcome::Permanent {
            error: format!(
                "push service: HTTP {} (subscription expired)",
                resp.status()
            ),
        },
        // §8.4: a push service that is busy may say when to come back (RFC 9110 §10.2.3).
        Ok(resp) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
            let error = format!("push service: HTTP {}", resp.status());
            match crate::ip::retry_after(&resp, proxy.now_ms()) {
                Some(after_ms) => Outcome::RetryAfter { error, after_ms },
                None => Outcome::Transient { error },
            }
        }
        Ok(resp) => Outcome::Permanent {
            error: format!("push service: HTTP {}", resp.status()),
        },
        Err(e) => match crate::egress::describe(&e) {
            error if error.starts_with("refused") => Outcome::Permanent {
                error: format!("push service: {error}"),
            },
            error => Outcome::Transient {
                error: format!("push service: {error}"),
            },
        },
    }
}

/// A push endpoint must be https (RFC 8030 §8) at a permitted address; plain http only where
/// the operator allows private destinations (a test push service on loopback).
pub fn check_endpoint(egress: &crate::egress::EgressPolicy, endpoint: &str) -> Result<(), String> {
    if !endpoint.starts_with("https://") && !egress.allow_private {
        return Err("the endpoint must be an https URL".into());
    }
    egress.check_url(endpoint)
}
