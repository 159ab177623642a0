//! `/vod/…`: recorded videos. The HLS VOD playlist is rendered from the segment list; stored
//! files are served with single byte ranges (RFC 9110 §14).

use std::ops::Range;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;
use super::media::{M3U8, media_response, media_stream_response, valid_rendition};
use super::state::{AppState, AppStateRef};
use crate::db::VideoState;
use crate::storage::object_path;

/// `/vod/{id}/…`: the source's VOD files.
pub async fn vod_file(
    State(st): AppStateRef,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_vod(&st, &id, "", &file, &headers).await
}

/// `/vod/{id}/{rendition}/…`: a transcoded rendition's VOD files.
pub async fn vod_rendition_file(
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
        .ok_or_else(|| ApiError::not_found("video"))?;
    if file == "dvr.m3u8" && rendition.is_empty() {
        return dvr_playlist(st, id, &video.state).await;
    }
    if file == "index.m3u8" {
        let segs = st.db.segments(id, rendition).await?;
        if segs.is_empty() && !rendition.is_empty() {
            return Err(ApiError::not_found("rendition"));
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
            &st.media_metrics,
            M3U8,
            HeaderValue::from_static(if ended { "max-age=3600" } else { "no-cache" }),
            Bytes::from(text),
        ));
    }
    let numbered = |prefix: &str, suffix: &str| {
        file.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .is_some_and(|n| n.parse::<u64>().is_ok())
    };
    // init<msn>.mp4: the init segment of a codec configuration that started at segment msn.
    let picture =
        rendition.is_empty() && matches!(file, "poster.jpg" | "sprite.jpg" | "sprite.vtt");
    let valid = matches!(file, "video.mp4" | "init.mp4" | "video.webm" | "video.3gp")
        || numbered("seg", ".m4s")
        || numbered("init", ".mp4")
        || picture;
    if !valid {
        return Err(ApiError::not_found("file"));
    }
    let content_type = match file.rsplit('.').next() {
        Some("m4s") => "video/iso.segment",
        Some("webm") => "video/webm",
        Some("3gp") => "video/3gpp",
        Some("jpg") => "image/jpeg",
        Some("vtt") => "text/vtt; charset=utf-8",
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
        .ok_or_else(|| ApiError::not_found("file"))?;
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
    // Streamed from storage in chunks as the client takes them: memory per reader stays
    // small whatever the file's size or the reader's speed.
    let (length, stream) = st.storage.get_stream(&path, range.clone()).await?;
    // A live video's poster is replaced every `live_interval_s`; the recording's stays.
    let cache = if picture && matches!(video.state, VideoState::Live | VideoState::Finishing) {
        format!("max-age={}", st.videos.posters().live_max_age_s())
    } else {
        "max-age=3600".into()
    };
    let mut resp = media_stream_response(content_type, &cache, length, stream);
    if let Some(r) = &range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let cr = format!("bytes {}-{}/{size}", r.start, r.end - 1);
        resp.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&cr).map_err(|e| anyhow::anyhow!(e))?,
        );
    }
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp)
}

/// `dvr.m3u8`: while the video is live, its recorded segments of the last `[live]
/// dvr_window_s` as a sliding live playlist (the watch page rewinds over it with hls.js while
/// the live playlist stays short for low latency); once it ended, the whole recording. A
/// cache may keep it a second: a copy that old is still a valid reload (it only grows at the
/// end). 404 when the DVR window is off.
async fn dvr_playlist(st: &AppState, id: &str, state: &VideoState) -> Result<Response, ApiError> {
    if st.dvr_window_s == 0 {
        return Err(ApiError::not_found("DVR playlist"));
    }
    let list: Vec<vshare_package::VodSegment> = st
        .db
        .segments(id, "")
        .await?
        .into_iter()
        .map(|s| vshare_package::VodSegment {
            uri: format!("seg{}.m4s", s.msn),
            duration_us: s.duration_us,
            init_uri: s.init_name,
        })
        .collect();
    if list.is_empty() {
        return Err(ApiError::not_found("DVR playlist"));
    }
    let ended = matches!(state, VideoState::Ready | VideoState::Partial);
    let window_us = i64::try_from(st.dvr_window_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let text = vshare_package::dvr_playlist(&list, window_us, ended);
    Ok(media_response(
        &st.media_metrics,
        M3U8,
        HeaderValue::from_static(if ended {
            "max-age=3600"
        } else {
            "public, max-age=1"
        }),
        Bytes::from(text),
    ))
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
