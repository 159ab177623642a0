//! HTTP: LL-HLS live, VOD files with range requests, the REST API and metrics. Handlers are
//! thin; the roles do the work.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use vshare_package::SegmentBytes;

use crate::db::{Db, VideoState};
use crate::live::{BlockingRequest, LiveServer};
use crate::storage::{Storage, object_path};
use crate::video::VideoServer;

pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub live: LiveServer,
    pub videos: Arc<VideoServer>,
    pub metrics: PrometheusHandle,
    pub segment_target: Duration,
    pub admin_token: Option<String>,
    pub rtmp_url: String,
    /// Accounts, sessions, signed links and their limits.
    pub accounts: Arc<crate::accounts::Accounts>,
}

type AppStateRef = State<Arc<AppState>>;

/// One error type for every handler, mapped to a status and a plain-text reason.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::warn!("http: {e:#}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n".into())
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("{what} not found\n"))
}

fn bad_request(why: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, why.into())
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/live/{id}/{file}", get(live_file))
        .route("/live/{id}/{rendition}/{file}", get(live_rendition_file))
        .route("/vod/{id}/{file}", get(vod_file))
        .route("/vod/{id}/{rendition}/{file}", get(vod_rendition_file))
        .route("/api/v1/videos", get(list_videos))
        .route("/api/v1/videos/{id}", get(get_video))
        .route("/api/v1/streams", get(list_streams))
        .route("/api/v1/publish/status", get(publish_status))
        .route("/api/v1/keys", axum::routing::post(create_key))
        .route("/metrics", get(metrics))
        .merge(crate::accounts::routes())
        .merge(crate::share::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::accounts::private_videos,
        ))
        .layer(tower_http::cors::CorsLayer::new().allow_origin(tower_http::cors::Any))
        .with_state(state)
}

fn media_response(content_type: &'static str, cache: &'static str, body: Bytes) -> Response {
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

pub(crate) const M3U8: &str = "application/vnd.apple.mpegurl";

#[derive(Deserialize)]
struct BlockingQuery {
    #[serde(rename = "_HLS_msn")]
    msn: Option<String>,
    #[serde(rename = "_HLS_part")]
    part: Option<String>,
}

/// A rendition name as it appears in URLs (`240p`): letters, digits, `_` and `-`.
fn valid_rendition(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(not_found("rendition"))
    }
}

/// `/live/{id}/master.m3u8` (several renditions), or the source's media files.
async fn live_file(
    State(st): AppStateRef,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<BlockingQuery>,
) -> Result<Response, ApiError> {
    if file == "master.m3u8" {
        let stream = st
            .live
            .stream(&id)
            .ok_or_else(|| not_found("live stream"))?;
        let text = stream
            .multivariant()
            .ok_or_else(|| not_found("multivariant playlist"))?;
        return Ok(media_response(
            M3U8,
            "no-cache",
            Bytes::from(text.to_string()),
        ));
    }
    serve_live(&st, &id, &file, &q).await
}

/// `/live/{id}/{rendition}/…`: a transcoded rendition's media files.
async fn live_rendition_file(
    State(st): AppStateRef,
    Path((id, rendition, file)): Path<(String, String, String)>,
    Query(q): Query<BlockingQuery>,
) -> Result<Response, ApiError> {
    valid_rendition(&rendition)?;
    serve_live(&st, &format!("{id}/{rendition}"), &file, &q).await
}

/// `index.m3u8|init.mp4|init{msn}.mp4|seg{msn}.m4s|part{msn}.{i}.m4s` of one live stream.
async fn serve_live(
    st: &AppState,
    stream_id: &str,
    file: &str,
    q: &BlockingQuery,
) -> Result<Response, ApiError> {
    let stream = st
        .live
        .stream(stream_id)
        .ok_or_else(|| not_found("live stream"))?;
    if file == "index.m3u8" {
        let req = blocking_request(q)?;
        if let Some(req) = req {
            // RFC 8216bis §6.2.5.2: a request more than two segments ahead is refused.
            let (next_msn, _) = stream.next_expected();
            if req.msn > next_msn + 2 {
                return Err(bad_request(format!(
                    "_HLS_msn={} is more than two segments beyond the last ({})\n",
                    req.msn, next_msn
                )));
            }
            if !stream.wait_for(req, st.segment_target * 3).await {
                return Err(ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "playlist update timed out\n".into(),
                ));
            }
        }
        let playlist = stream
            .playlist()
            .ok_or_else(|| not_found("live playlist"))?;
        return Ok(media_response(
            M3U8,
            "no-cache",
            Bytes::from(playlist.to_string()),
        ));
    }
    let numbered_init = file
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
        .is_some_and(|n| n.parse::<u64>().is_ok());
    if file == "init.mp4" || numbered_init {
        // A name is never reused for other bytes within a stream: cacheable.
        let init = stream.init(file).ok_or_else(|| not_found("init segment"))?;
        return Ok(media_response("video/mp4", "max-age=60", init));
    }
    if let Some(rest) = file
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        let (msn, idx) = rest.split_once('.').ok_or_else(|| not_found("part"))?;
        let (msn, idx) = (
            msn.parse().map_err(|_| not_found("part"))?,
            idx.parse().map_err(|_| not_found("part"))?,
        );
        let part = stream.part(msn, idx).ok_or_else(|| not_found("part"))?;
        return Ok(media_response("video/iso.segment", "max-age=60", part));
    }
    if let Some(msn) = file
        .strip_prefix("seg")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        let msn: u64 = msn.parse().map_err(|_| not_found("segment"))?;
        let seg = match stream.segment(msn) {
            SegmentBytes::InMemory(b) => b,
            // Its parts left the window: the recording stored it when it was complete.
            SegmentBytes::Stored => st
                .storage
                .get(&object_path(stream_id, &format!("seg{msn}.m4s")))
                .await
                .map_err(|_| not_found("segment"))?,
            SegmentBytes::Missing => return Err(not_found("segment")),
        };
        return Ok(media_response("video/iso.segment", "max-age=60", seg));
    }
    Err(not_found("file"))
}

fn blocking_request(q: &BlockingQuery) -> Result<Option<BlockingRequest>, ApiError> {
    let msn = match &q.msn {
        None if q.part.is_some() => return Err(bad_request("_HLS_part needs _HLS_msn\n")),
        None => return Ok(None),
        Some(m) => m
            .parse::<u64>()
            .map_err(|_| bad_request("_HLS_msn is not a number\n"))?,
    };
    let part = match &q.part {
        None => None,
        Some(p) => Some(
            p.parse::<u32>()
                .map_err(|_| bad_request("_HLS_part is not a number\n"))?,
        ),
    };
    Ok(Some(BlockingRequest { msn, part }))
}

/// `/vod/{id}/…`: the source's VOD files.
async fn vod_file(
    State(st): AppStateRef,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_vod(&st, &id, "", &file, &headers).await
}

/// `/vod/{id}/{rendition}/…`: a transcoded rendition's VOD files.
async fn vod_rendition_file(
    State(st): AppStateRef,
    Path((id, rendition, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    valid_rendition(&rendition)?;
    serve_vod(&st, &id, &rendition, &file, &headers).await
}

/// `index.m3u8` (from the recorded segment list) and stored files, with ranges.
async fn serve_vod(
    st: &AppState,
    id: &str,
    rendition: &str,
    file: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let video = st
        .db
        .get_video(id)
        .await?
        .ok_or_else(|| not_found("video"))?;
    if file == "index.m3u8" {
        let segs = st.db.segments(id, rendition).await?;
        if segs.is_empty() && !rendition.is_empty() {
            return Err(not_found("rendition"));
        }
        let list: Vec<vshare_package::VodSegment> = segs
            .into_iter()
            .map(|s| vshare_package::VodSegment {
                uri: format!("seg{}.m4s", s.msn),
                duration_us: s.duration_us,
                init_uri: s.init_name,
            })
            .collect();
        let ended = matches!(video.state, VideoState::Ready | VideoState::Partial);
        let text = vshare_package::vod_playlist_segments(&list, ended);
        return Ok(media_response(
            M3U8,
            if ended { "max-age=3600" } else { "no-cache" },
            Bytes::from(text),
        ));
    }
    let numbered = |prefix: &str, suffix: &str| {
        file.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .is_some_and(|n| n.parse::<u64>().is_ok())
    };
    // init<msn>.mp4: the init segment of a codec configuration that started at segment msn.
    let valid = matches!(file, "video.mp4" | "init.mp4" | "video.webm" | "video.3gp")
        || numbered("seg", ".m4s")
        || numbered("init", ".mp4");
    if !valid {
        return Err(not_found("file"));
    }
    let content_type = match file.rsplit('.').next() {
        Some("m4s") => "video/iso.segment",
        Some("webm") => "video/webm",
        Some("3gp") => "video/3gpp",
        _ => "video/mp4",
    };
    let name = if rendition.is_empty() {
        file.to_string()
    } else {
        format!("{rendition}/{file}")
    };
    let path = object_path(id, &name);
    let size = st
        .storage
        .size(&path)
        .await?
        .ok_or_else(|| not_found("file"))?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(h) => match parse_range(h, size) {
            Ok(r) => r,
            Err(Unsatisfiable) => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response());
            }
        },
    };
    let mut resp = match &range {
        Some(r) => {
            let body = st.storage.get_range(&path, r.clone()).await?;
            let mut resp = media_response(content_type, "max-age=3600", body);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let cr = format!("bytes {}-{}/{size}", r.start, r.end - 1);
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&cr).map_err(|e| anyhow::anyhow!(e))?,
            );
            resp
        }
        None => media_response(content_type, "max-age=3600", st.storage.get(&path).await?),
    };
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp)
}

/// A `Range` header that cannot be satisfied (answered with 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single-range `Range: bytes=…` header (RFC 9110 §14.1.2) against a size.
/// `Ok(None)` means "serve the whole file" (a multi-range request).
pub fn parse_range(header: &str, size: u64) -> Result<Option<Range<u64>>, Unsatisfiable> {
    let spec = header.trim().strip_prefix("bytes=").ok_or(Unsatisfiable)?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let n: u64 = end.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        size.saturating_sub(n)..size
    } else {
        let s: u64 = start.parse().map_err(|_| Unsatisfiable)?;
        let e = if end.is_empty() {
            size
        } else {
            end.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .saturating_add(1)
                .min(size)
        };
        s..e
    };
    if range.start >= size || range.start >= range.end {
        return Err(Unsatisfiable);
    }
    Ok(Some(range))
}

async fn list_videos(State(st): AppStateRef) -> Result<Response, ApiError> {
    let videos: Vec<_> = st
        .db
        .list_public_videos(None)
        .await?
        .into_iter()
        .map(|v| st.videos.with_live_record(v))
        .collect();
    Ok(axum::Json(videos).into_response())
}

async fn get_video(State(st): AppStateRef, Path(id): Path<String>) -> Result<Response, ApiError> {
    let v = st
        .db
        .get_video(&id)
        .await?
        .ok_or_else(|| not_found("video"))?;
    // `source`: what a viewer subscribes to for this publisher's next videos (docs/proxy.md):
    // the stream key's name, or its id when it has none.
    let source = match st.db.key_name(&v.key_id).await? {
        Some(name) if !name.is_empty() => name,
        _ => v.key_id.clone(),
    };
    let mut json = serde_json::to_value(st.videos.with_live_record(v))
        .map_err(|e| anyhow::anyhow!("video JSON: {e}"))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("source".into(), serde_json::Value::String(source));
    }
    Ok(axum::Json(json).into_response())
}

async fn list_streams(State(st): AppStateRef) -> Result<Response, ApiError> {
    let videos: Vec<_> = st
        .db
        .list_public_videos(Some(VideoState::Live))
        .await?
        .into_iter()
        .map(|v| st.videos.with_live_record(v))
        .collect();
    Ok(axum::Json(videos).into_response())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The source's view: its current or latest video, by stream key.
async fn publish_status(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, ApiError> {
    let secret = bearer(&headers).ok_or(ApiError(
        StatusCode::UNAUTHORIZED,
        "Authorization: Bearer <stream key> required\n".into(),
    ))?;
    let key = st.db.find_key(secret).await?.ok_or(ApiError(
        StatusCode::UNAUTHORIZED,
        "unknown stream key\n".into(),
    ))?;
    let v = st
        .db
        .latest_video_for_key(&key.id)
        .await?
        .ok_or_else(|| not_found("video for this key"))?;
    Ok(axum::Json(st.videos.with_live_record(v)).into_response())
}

#[derive(Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
}

async fn create_key(
    State(st): AppStateRef,
    headers: HeaderMap,
    body: Option<axum::Json<NewKey>>,
) -> Result<Response, ApiError> {
    let Some(token) = &st.admin_token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "key creation over HTTP is disabled (no admin_token configured)\n".into(),
        ));
    };
    if bearer(&headers) != Some(token.as_str()) {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "admin token required\n".into(),
        ));
    }
    let name = body.map(|b| b.0.name).unwrap_or_default();
    let (key, secret) = st.db.create_key(&name).await?;
    let json = serde_json::json!({
        "id": key.id, "name": key.name, "key": secret,
        "rtmp_url": format!("{}/{}", st.rtmp_url, secret),
    });
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

async fn metrics(State(st): AppStateRef) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::{Unsatisfiable, parse_range};

    #[test]
    fn ranges_per_rfc9110() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=0-5000", 1000), Ok(Some(0..1000)));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-1", 1000), Err(Unsatisfiable));
        assert_eq!(parse_range("items=0-1", 1000), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=x-1", 1000), Err(Unsatisfiable));
    }
}
