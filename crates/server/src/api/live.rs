//! `/live/…`: the live server's LL-HLS over HTTP, with blocking playlist reloads
//! (RFC 8216bis §6.2.5.2). Segments whose parts left the window come from storage.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use vshare_package::{PartBytes, SegmentBytes};

use super::error::ApiError;
use super::media::{IMMUTABLE, M3U8, media_response, media_stream_response, valid_rendition};
use super::state::{AppState, AppStateRef};
use crate::db::Visibility;
use crate::live::{BlockingRequest, PartHold};
use crate::storage::object_path;

#[derive(Deserialize, Default)]
pub struct BlockingQuery {
    #[serde(rename = "_HLS_msn")]
    msn: Option<String>,
    #[serde(rename = "_HLS_part")]
    part: Option<String>,
}

/// `/live/{id}/master.m3u8` (several renditions), or the source's media files.
pub async fn live_file(
    State(st): AppStateRef,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<BlockingQuery>,
) -> Result<Response, ApiError> {
    live_request(&st, &id, None, &file, &q).await
}

/// `/live/{id}/{rendition}/…`: a transcoded rendition's media files.
pub async fn live_rendition_file(
    State(st): AppStateRef,
    Path((id, rendition, file)): Path<(String, String, String)>,
    Query(q): Query<BlockingQuery>,
) -> Result<Response, ApiError> {
    live_request(&st, &id, Some(&rendition), &file, &q).await
}

/// One request under `/live/{id}/`, with or without a rendition.
async fn live_request(
    st: &AppState,
    id: &str,
    rendition: Option<&str>,
    file: &str,
    q: &BlockingQuery,
) -> Result<Response, ApiError> {
    let Some(rendition) = rendition else {
        if file == "master.m3u8" {
            let stream = st
                .live
                .stream(id)
                .ok_or_else(|| ApiError::not_found("live stream"))?;
            let text = stream
                .multivariant()
                .ok_or_else(|| ApiError::not_found("multivariant playlist"))?;
            return Ok(media_response(
                &st.media_metrics,
                M3U8,
                st.media_metrics.playlist_cache.clone(),
                shared_text(text),
            ));
        }
        return serve_live(st, id, file, q).await;
    };
    valid_rendition(rendition)?;
    serve_live(st, &format!("{id}/{rendition}"), file, q).await
}

/// A public stream's `GET /live/…`, answered without the router: what thousands of viewers
/// ask for several times a second. The router's layers (routing, the private-video and
/// same-origin checks, CORS) cost about a sixth of the CPU of such a request; for a public
/// video none of them changes the answer but CORS, whose one header is added here. `None`
/// for anything else (another path or method, a private or unknown video, an escaped or
/// malformed path or query): the router answers it as before.
pub async fn public_live_get(st: &AppState, method: &Method, uri: &Uri) -> Option<Response> {
    if method != Method::GET {
        return None;
    }
    let (id, rendition, file) = live_path(uri.path())?;
    let q: BlockingQuery = match uri.query() {
        None => BlockingQuery::default(),
        Some(_) => Query::try_from_uri(uri).ok()?.0,
    };
    let access = st.accounts.access(&st.db, id).await.ok()??;
    if access.visibility != Visibility::Public {
        return None;
    }
    let mut resp = live_request(st, id, rendition, file, &q)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Some(resp)
}

/// `/live/{id}/{file}` or `/live/{id}/{rendition}/{file}`, plain segments only (no escapes,
/// none empty).
fn live_path(path: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = path.strip_prefix("/live/")?;
    if rest.contains('%') {
        return None;
    }
    let mut it = rest.split('/');
    let parts: [Option<&str>; 4] = [it.next(), it.next(), it.next(), it.next()];
    match parts {
        [Some(id), Some(file), None, None] if !id.is_empty() && !file.is_empty() => {
            Some((id, None, file))
        }
        [Some(id), Some(rendition), Some(file), None]
            if !id.is_empty() && !rendition.is_empty() && !file.is_empty() =>
        {
            Some((id, Some(rendition), file))
        }
        _ => None,
    }
}

/// A playlist's shared text as a body, without copying it.
fn shared_text(text: Arc<str>) -> Bytes {
    Bytes::from_owner(SharedText(text))
}

struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `index.m3u8|init.mp4|init{msn}.mp4|seg{msn}.m4s|part{msn}.{i}.m4s` of one live stream.
async fn serve_live(
    st: &AppState,
    stream_id: &str,
    file: &str,
    q: &BlockingQuery,
) -> Result<Response, ApiError> {
    // Counted by kind: what an HTTP cache in front lets through to the origin.
    st.media_metrics.live_request(file_kind(file, q));
    let stream = st
        .live
        .stream(stream_id)
        .ok_or_else(|| ApiError::not_found("live stream"))?;
    if file == "index.m3u8" {
        let req = blocking_request(q)?;
        if let Some(req) = req {
            // RFC 8216bis §6.2.5.2: a request more than two segments ahead is refused.
            let (next_msn, _) = stream.next_expected();
            if req.msn > next_msn + 2 {
                return Err(ApiError::bad_request(format!(
                    "_HLS_msn={} is more than two segments beyond the last ({})\n",
                    req.msn, next_msn
                )));
            }
            if !stream.wait_for(req, st.segment_target * 3).await {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "playlist update timed out\n",
                ));
            }
        }
        let playlist = stream
            .playlist()
            .ok_or_else(|| ApiError::not_found("live playlist"))?;
        return Ok(media_response(
            &st.media_metrics,
            M3U8,
            st.media_metrics.playlist_cache.clone(),
            shared_text(playlist),
        ));
    }
    let numbered_init = file
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
        .is_some_and(|n| n.parse::<u64>().is_ok());
    if file == "init.mp4" || numbered_init {
        // A name is never reused for other bytes (ids are new for every publish): immutable.
        let init = stream
            .init(file)
            .ok_or_else(|| ApiError::not_found("init segment"))?;
        return Ok(media_response(
            &st.media_metrics,
            "video/mp4",
            HeaderValue::from_static(IMMUTABLE),
            init,
        ));
    }
    if let Some(rest) = file
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        let no_part = || ApiError::not_found("part");
        let (msn, idx) = rest.split_once('.').ok_or_else(no_part)?;
        let (msn, idx) = (
            msn.parse().map_err(|_| no_part())?,
            idx.parse().map_err(|_| no_part())?,
        );
        let mut part = stream.part(msn, idx);
        if part == PartBytes::Missing {
            // The preload-hinted part (or one of the next segment) is held until it is made
            // (RFC 8216bis §6.2.6); anything further is not.
            match stream
                .hold_for_part(msn, idx, st.max_held_parts, st.part_target * 3)
                .await
            {
                PartHold::Listed => part = stream.part(msn, idx),
                PartHold::NotHeld => {}
                PartHold::Full => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many requests waiting for parts of this stream\n",
                    ));
                }
                PartHold::TimedOut => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "part not made in time\n",
                    ));
                }
            }
        }
        let part = match part {
            PartBytes::InMemory(b) => b,
            // Its segment is complete and stored: the part is a byte range of it.
            PartBytes::Stored { offset, len } => st
                .storage
                .get_range(
                    &object_path(stream_id, &format!("seg{msn}.m4s")),
                    offset..offset + len,
                )
                .await
                .map_err(|_| no_part())?,
            PartBytes::Missing => return Err(no_part()),
        };
        return Ok(media_response(
            &st.media_metrics,
            "video/iso.segment",
            HeaderValue::from_static(IMMUTABLE),
            part,
        ));
    }
    if let Some(msn) = file
        .strip_prefix("seg")
        .and_then(|r| r.strip_suffix(".m4s"))
    {
        let msn: u64 = msn.parse().map_err(|_| ApiError::not_found("segment"))?;
        let seg = match stream.segment(msn) {
            SegmentBytes::InMemory(b) => b,
            // Its parts left the window: the recording stored it when it was complete; it is
            // streamed from there, not read whole for each reader.
            SegmentBytes::Stored => {
                let (len, body) = st
                    .storage
                    .get_stream(&object_path(stream_id, &format!("seg{msn}.m4s")), None)
                    .await
                    .map_err(|_| ApiError::not_found("segment"))?;
                return Ok(media_stream_response(
                    "video/iso.segment",
                    IMMUTABLE,
                    len,
                    body,
                ));
            }
            SegmentBytes::Missing => return Err(ApiError::not_found("segment")),
        };
        return Ok(media_response(
            &st.media_metrics,
            "video/iso.segment",
            HeaderValue::from_static(IMMUTABLE),
            seg,
        ));
    }
    Err(ApiError::not_found("file"))
}

/// The `file` label of `vshare_live_requests_total`, as an index in [`LIVE_FILE_KINDS`].
fn file_kind(file: &str, q: &BlockingQuery) -> usize {
    if file == "index.m3u8" {
        if q.msn.is_some() { 0 } else { 1 }
    } else if file.starts_with("init") {
        2
    } else if file.starts_with("part") {
        3
    } else if file.starts_with("seg") {
        4
    } else {
        5
    }
}

fn blocking_request(q: &BlockingQuery) -> Result<Option<BlockingRequest>, ApiError> {
    let msn = match &q.msn {
        None if q.part.is_some() => {
            return Err(ApiError::bad_request("_HLS_part needs _HLS_msn\n"));
        }
        None => return Ok(None),
        Some(m) => m
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("_HLS_msn is not a number\n"))?,
    };
    let part = match &q.part {
        None => None,
        Some(p) => Some(
            p.parse::<u32>()
                .map_err(|_| ApiError::bad_request("_HLS_part is not a number\n"))?,
        ),
    };
    Ok(Some(BlockingRequest { msn, part }))
}
