//! Signed, expiring links to private videos: HMAC-SHA256 over the video id and the expiry,
//! carried as `exp=…&sig=…` in the query of every URL under the link.

use std::time::Duration;

use vshare_package::uri_with_query;

use crate::db::Video;

/// Longest validity of a signed link.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a link does not open a video.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link's exp is not a Unix time")]
    BadExpiry,
    #[error("the link's signature is not valid for this video")]
    BadSignature,
    #[error("this link expired at {}; ask the video's owner for a new one", rfc3339(*.0))]
    Expired(i64),
}

/// Signs and checks links with the server's link key.
pub struct LinkSigner {
    secret: String,
}

impl LinkSigner {
    pub fn new(secret: String) -> LinkSigner {
        LinkSigner { secret }
    }

    /// The hex HMAC-SHA256 of `<video id>:<expiry>`.
    fn signature(&self, video_id: &str, exp: i64) -> String {
        let s = vshare_proxy::ip::signature(&self.secret, format!("{video_id}:{exp}").as_bytes());
        s.trim_start_matches("sha256=").to_string()
    }

    /// The query (`exp=…&sig=…`) that opens a private video until `exp` (Unix seconds).
    pub fn query(&self, video_id: &str, exp: i64) -> String {
        format!("exp={exp}&sig={}", self.signature(video_id, exp))
    }

    /// Checks a link's `exp` and `sig` for a video at Unix time `now`; returns the expiry.
    pub fn verify(&self, video_id: &str, exp: &str, sig: &str, now: i64) -> Result<i64, LinkError> {
        let exp: i64 = exp.parse().map_err(|_| LinkError::BadExpiry)?;
        let want = self.signature(video_id, exp);
        if !constant_time_eq(want.as_bytes(), sig.as_bytes()) {
            return Err(LinkError::BadSignature);
        }
        if exp <= now {
            return Err(LinkError::Expired(exp));
        }
        Ok(exp)
    }
}

/// Adds a link query to the URLs of this server (those under `public_url`) in a video's
/// attribute records.
pub fn sign_records(v: &mut Video, public_url: &str, query: &str) {
    for r in &mut v.attributes {
        if r.url.starts_with(public_url) {
            r.url = uri_with_query(&r.url, query);
        }
        if r.poster.starts_with(public_url) {
            r.poster = uri_with_query(&r.poster, query);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unix seconds as RFC 3339 (`2026-01-02T03:04:05Z`).
pub fn rfc3339(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix_s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_its_video_until_it_expires() {
        let signer = LinkSigner::new("k".into());
        let query = signer.query("abc", 1000);
        let sig = query.strip_prefix("exp=1000&sig=").unwrap_or_default();
        assert_eq!(sig.len(), 64, "{query}");
        assert_eq!(signer.verify("abc", "1000", sig, 999), Ok(1000));
        assert_eq!(
            signer.verify("abc", "1000", sig, 1000),
            Err(LinkError::Expired(1000))
        );
        assert_eq!(
            signer.verify("abd", "1000", sig, 999),
            Err(LinkError::BadSignature),
            "another video"
        );
        assert_eq!(
            signer.verify("abc", "1001", sig, 999),
            Err(LinkError::BadSignature),
            "another expiry"
        );
        assert_eq!(
            signer.verify("abc", "soon", sig, 999),
            Err(LinkError::BadExpiry)
        );
        assert_eq!(
            LinkSigner::new("other".into()).verify("abc", "1000", sig, 999),
            Err(LinkError::BadSignature),
            "another server's key"
        );
        assert_eq!(
            LinkError::Expired(0).to_string(),
            "this link expired at 1970-01-01T00:00:00Z; ask the video's owner for a new one"
        );
    }
}
