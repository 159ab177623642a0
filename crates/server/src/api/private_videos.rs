//! The middleware in front of the media and video API paths: private videos answer 403 unless
//! the request carries a valid signed link or the owner's session. Playlists served under a
//! link get the link on every URI they list, and the video's JSON on its record URLs, so players
//! and pages that follow them stay inside the link. Responses to the owner's session are marked
//! `Cache-Control: private` so shared caches never keep them. Responses under a signed link are
//! public for at most the link's remaining lifetime: the link's `exp` and `sig` are in every
//! URL, so a cache keyed on the whole URL keeps them per link, and gives them only to requests
//! that carry the same link (which the server would answer the same way).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vshare_package::playlist_with_query;

use super::auth::authorize;
use super::error::ApiError;
use super::media::M3U8;
use super::state::AppStateRef;
use crate::accounts::Grant;
use crate::db::Video;

/// Which video a guarded path is about: `/live/{id}/…`, `/vod/{id}/…` and (for reads)
/// `/api/v1/videos/{id}` and the short link `/w/{id}`.
fn guarded_video(path: &str, read: bool) -> Option<&str> {
    if let Some(id) = path.strip_prefix("/w/") {
        return (read && !id.is_empty() && !id.contains('/')).then_some(id);
    }
    if let Some(rest) = path.strip_prefix("/whep/") {
        // WHEP's offer (`/whep/{id}`) and its session (`/whep/{id}/{session}`), any method.
        let id = rest.split('/').next()?;
        return (!id.is_empty()).then_some(id);
    }
    if let Some(rest) = path
        .strip_prefix("/live/")
        .or_else(|| path.strip_prefix("/vod/"))
    {
        let (id, file) = rest.split_once('/')?;
        return (!id.is_empty() && !file.is_empty()).then_some(id);
    }
    let id = path.strip_prefix("/api/v1/videos/")?;
    (read && !id.is_empty() && !id.contains('/')).then_some(id)
}

pub async fn private_videos(State(st): AppStateRef, req: Request, next: Next) -> Response {
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let Some(id) = guarded_video(req.uri().path(), read).map(str::to_string) else {
        return next.run(req).await;
    };
    let grant = match authorize(&st, &id, req.headers(), req.uri().query()).await {
        Ok(Some((_, grant))) => grant,
        Ok(None) => return ApiError::not_found("video").into_response(),
        Err(e) => return e.into_response(),
    };
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if grant == Grant::Public {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let given = parts
        .headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok());
    let cache = match &grant {
        Grant::Signed(query) => signed_cache(given, link_left_s(query)),
        _ => given
            .map(|v| format!("private, {}", v.trim_start_matches("public, ")))
            .unwrap_or_else(|| "private, no-cache".into()),
    };
    if let Ok(v) = HeaderValue::from_str(&cache) {
        parts.headers.insert(header::CACHE_CONTROL, v);
    }
    let Grant::Signed(query) = grant else {
        return Response::from_parts(parts, body);
    };
    let playlist = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == M3U8.as_bytes());
    if parts.status != StatusCode::OK || !(playlist || api) {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::from(anyhow::anyhow!("reading a response: {e}")).into_response();
        }
    };
    let rewritten = if playlist {
        playlist_with_query(&String::from_utf8_lossy(&bytes), &query).into_bytes()
    } else {
        match serde_json::from_slice::<Video>(&bytes) {
            Ok(mut v) => {
                st.accounts.sign_records(&mut v, &query);
                serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec())
            }
            Err(_) => bytes.to_vec(),
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(rewritten))
}

/// Seconds a signed link (`exp=…&sig=…`) has left; 0 when it cannot be read.
fn link_left_s(query: &str) -> u64 {
    let exp = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("exp="))
        .and_then(|e| e.parse::<i64>().ok())
        .unwrap_or(0);
    u64::try_from(exp - chrono::Utc::now().timestamp()).unwrap_or(0)
}

/// The cache policy of a response under a signed link: what the handler chose, public (the
/// URL carries the link), never beyond the link's expiry; `private` when the handler said not
/// to cache or the link is about to expire.
fn signed_cache(given: Option<&str>, left_s: u64) -> String {
    let given = given.unwrap_or("no-cache");
    let max_age = given
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|n| n.parse::<u64>().ok());
    match max_age {
        Some(age) if left_s > 0 && !given.contains("no-") => {
            let immutable = if given.contains("immutable") && age <= left_s {
                ", immutable"
            } else {
                ""
            };
            format!("public, max-age={}{immutable}", age.min(left_s))
        }
        _ => format!("private, {}", given.trim_start_matches("public, ")),
    }
}

#[cfg(test)]
mod tests {
    use super::{guarded_video, signed_cache};

    #[test]
    fn a_signed_link_is_cacheable_until_it_expires() {
        let immutable = "public, max-age=31536000, immutable";
        assert_eq!(signed_cache(Some(immutable), 3600), "public, max-age=3600");
        assert_eq!(
            signed_cache(Some("public, max-age=1"), 3600),
            "public, max-age=1"
        );
        assert_eq!(
            signed_cache(Some(immutable), 0),
            "private, max-age=31536000, immutable"
        );
        assert_eq!(signed_cache(Some("no-cache"), 3600), "private, no-cache");
        assert_eq!(signed_cache(None, 3600), "private, no-cache");
    }

    #[test]
    fn guarded_paths_name_their_video() {
        assert_eq!(guarded_video("/vod/abc/index.m3u8", true), Some("abc"));
        assert_eq!(
            guarded_video("/live/abc/240p/part1.0.m4s", true),
            Some("abc")
        );
        assert_eq!(guarded_video("/api/v1/videos/abc", true), Some("abc"));
        assert_eq!(guarded_video("/api/v1/videos/abc", false), None);
        assert_eq!(guarded_video("/api/v1/videos/abc/link", true), None);
        assert_eq!(guarded_video("/api/v1/videos", true), None);
        assert_eq!(guarded_video("/vod/abc", true), None);
        assert_eq!(guarded_video("/whep/abc", false), Some("abc"));
        assert_eq!(guarded_video("/whep/abc/s1", false), Some("abc"));
    }
}
