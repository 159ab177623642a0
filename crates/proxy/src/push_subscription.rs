//! A browser's Web Push subscription (`PushSubscription.toJSON()`), parsed and checked: the
//! subscription store validates a new subscriber's address with it, and the Web Push channel
//! sends to what it gives. It stands alone so that the store need not depend on that channel.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use web_push_native::{Auth, p256};

/// A parsed `PushSubscription`.
#[derive(Debug, Clone)]
pub struct PushTarget {
    pub endpoint: http::Uri,
    pub p256dh: p256::PublicKey,
    pub auth: Auth,
}

/// Parses and checks a `PushSubscription` JSON (RFC 8291 §3.2: `p256dh` an uncompressed P-256
/// point, `auth` 16 octets).
pub fn parse_subscription(json: &str) -> anyhow::Result<PushTarget> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| anyhow::anyhow!("push subscription is not JSON: {e}"))?;
    let s = |path: &[&str]| -> anyhow::Result<String> {
        let mut cur = &v;
        for p in path {
            cur = cur
                .get(p)
                .ok_or_else(|| anyhow::anyhow!("push subscription has no {}", path.join(".")))?;
        }
        cur.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("push subscription {} is not a string", path.join(".")))
    };
    let endpoint: http::Uri = s(&["endpoint"])?
        .parse()
        .map_err(|e| anyhow::anyhow!("push endpoint: {e}"))?;
    if !matches!(endpoint.scheme_str(), Some("https" | "http")) {
        anyhow::bail!("push endpoint must be an http(s) URL");
    }
    let b64 = |name: &str| -> anyhow::Result<Vec<u8>> {
        URL_SAFE_NO_PAD
            .decode(s(&["keys", name])?.trim_end_matches('='))
            .map_err(|e| anyhow::anyhow!("push subscription keys.{name} is not base64url: {e}"))
    };
    let p256dh = p256::PublicKey::from_sec1_bytes(&b64("p256dh")?)
        .map_err(|_| anyhow::anyhow!("push subscription keys.p256dh is not a P-256 point"))?;
    let auth = b64("auth")?;
    if auth.len() != 16 {
        anyhow::bail!(
            "push subscription keys.auth is {} octets, not 16",
            auth.len()
        );
    }
    Ok(PushTarget {
        endpoint,
        p256dh,
        auth: Auth::clone_from_slice(&auth),
    })
}
