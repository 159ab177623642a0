//! `/live/…`: the live server's LL-HLS over HTTP, with blocking playlist reloads
//! (RFC 8216bis §6.2.5.2). Segments whose parts left the window come from storage.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use vshare_package::{PartBytes, SegmentBytes};

use super::error::ApiError;
use super::media::{
    IMMUTABLE, M3U8, media_response, media_stream_response, playlist_cache, valid_rendition,
};
use super::state::{AppState, AppStateRef};
use crate::live::{BlockingRequest, PartHold};
use crate::storage::object_path;

#[derive(Deserialize)]
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
    if file == "master.m3u8" {
        let stream = st
            .live
            .stream(&id)
            .ok_or_else(|| ApiError::not_found("live stream"))?;
        let text = stream
            .multivariant()
            .ok_or_else(|| ApiError::not_found("multivariant playlist"))?;
        return Ok(media_response(
            M3U8,
            &playlist_cache(st.part_target),
            Bytes::from(text.to_string()),
        ));
    }
    serve_live(&st, &id, &file, &q).await
}

/// `/live/{id}/{rendition}/…`: a transcoded rendition's media files.
pub async fn live_rendition_file(
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
    // Counted by kind: what an HTTP cache in front lets through to the origin.
    metrics::counter!("vshare_live_requests_total", "file" => file_kind(file, q)).increment(1);
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
            M3U8,
            &playlist_cache(st.part_target),
            Bytes::from(playlist.to_string()),
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
        return Ok(media_response("video/mp4", IMMUTABLE, init));
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
        return Ok(media_response("video/iso.segment", IMMUTABLE, part));
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
        return Ok(media_response("video/iso.segment", IMMUTABLE, seg));
    }
    Err(ApiError::not_found("file"))
}

/// The `file` label of `vshare_live_requests_total`.
fn file_kind(file: &str, q: &BlockingQuery) -> &'static str {
    if file == "index.m3u8" {
        if q.msn.is_some() {
            "blocking_playlist"
        } else {
            "playlist"
        }
    } else if file.starts_with("init") {
        "init"
    } else if file.starts_with("part") {
        "part"
    } else if file.starts_with("seg") {
        "segment"
    } else {
        "other"
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
