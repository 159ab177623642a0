//! What the live and VOD handlers share: the response for media bytes and the rendition names.

use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;

/// The content type of HLS playlists (RFC 8216bis §4).
pub const M3U8: &str = "application/vnd.apple.mpegurl";

/// The cache policy of objects whose name is never reused for other bytes: live init segments,
/// parts and segments (a stream's id is new for every publish; see docs/deployment.md).
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The cache policy of a live media playlist, plain or blocking (a blocking request's URL
/// names the part it waits for, so a cache keyed on the query keeps one answer per part):
/// about one part target, in whole seconds, at least 1.
pub fn playlist_cache(part_target: Duration) -> String {
    let secs = part_target.as_millis().div_ceil(1000).max(1);
    format!("public, max-age={secs}")
}

/// Metric handles and a header the media handlers use on every request, made once: viewers
/// ask several times a second each, and a lookup by name per request showed in profiles.
pub struct MediaMetrics {
    /// `vshare_bytes_out_total`.
    pub bytes_out: metrics::Counter,
    /// `vshare_live_requests_total` by `file` label, in [`LIVE_FILE_KINDS`]' order.
    live_requests: Vec<metrics::Counter>,
    /// [`playlist_cache`] of the part target.
    pub playlist_cache: HeaderValue,
}

/// The `file` labels of `vshare_live_requests_total`.
pub const LIVE_FILE_KINDS: [&str; 6] = [
    "blocking_playlist",
    "playlist",
    "init",
    "part",
    "segment",
    "other",
];

impl MediaMetrics {
    /// Looks the handles up in the installed recorder (call after installing it).
    pub fn new(part_target: Duration) -> Self {
        MediaMetrics {
            bytes_out: metrics::counter!("vshare_bytes_out_total"),
            live_requests: LIVE_FILE_KINDS
                .iter()
                .map(|k| metrics::counter!("vshare_live_requests_total", "file" => *k))
                .collect(),
            playlist_cache: HeaderValue::from_str(&playlist_cache(part_target))
                .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
        }
    }

    /// Counts a live request of kind `LIVE_FILE_KINDS[kind]`.
    pub fn live_request(&self, kind: usize) {
        if let Some(c) = self.live_requests.get(kind) {
            c.increment(1);
        }
    }
}

/// Media bytes with their type and cache policy, counted in `vshare_bytes_out_total`.
pub fn media_response(
    metrics: &MediaMetrics,
    content_type: &'static str,
    cache: HeaderValue,
    body: Bytes,
) -> Response {
    metrics.bytes_out.increment(body.len() as u64);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// A media response whose body is streamed (from storage); `length` is its exact size.
pub fn media_stream_response(
    content_type: &'static str,
    cache: &str,
    length: u64,
    stream: crate::storage::ByteStream,
) -> Response {
    let out = metrics::counter!("vshare_bytes_out_total");
    let body = axum::body::Body::from_stream(futures::StreamExt::inspect(stream, move |r| {
        if let Ok(b) = r {
            out.increment(b.len() as u64);
        }
    }));
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response()
}

/// A rendition name as it appears in URLs (`240p`): letters, digits, `_` and `-`.
pub fn valid_rendition(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found("rendition"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_are_cached_for_about_one_part_target() {
        assert_eq!(
            playlist_cache(Duration::from_millis(333)),
            "public, max-age=1"
        );
        assert_eq!(
            playlist_cache(Duration::from_millis(1000)),
            "public, max-age=1"
        );
        assert_eq!(
            playlist_cache(Duration::from_millis(1500)),
            "public, max-age=2"
        );
        assert_eq!(playlist_cache(Duration::ZERO), "public, max-age=1");
    }
}
