//! What the live and VOD handlers share: the response for media bytes and the rendition names.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;

/// The content type of HLS playlists (RFC 8216bis §4).
pub const M3U8: &str = "application/vnd.apple.mpegurl";

/// Media bytes with their type and cache policy, counted in `vshare_bytes_out_total`.
pub fn media_response(content_type: &'static str, cache: &'static str, body: Bytes) -> Response {
    metrics::counter!("vshare_bytes_out_total").increment(body.len() as u64);
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// A media response whose body is streamed (from storage); `length` is its exact size.
pub fn media_stream_response(
    content_type: &'static str,
    cache: &'static str,
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
