//! WHEP (draft-ietf-wish-whep): `POST /whep/{id}` with an SDP offer makes a WebRTC session of
//! live stream `id` and answers 201 with the SDP answer and the session's `Location`;
//! `DELETE` on that location ends it. Private videos are guarded like `/live/…`
//! ([`super::private_videos`]). docs/webrtc.md explains the sessions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppStateRef;
use crate::whep::WhepError;

/// The largest offer taken (browsers send a few kB).
pub const MAX_OFFER_BYTES: usize = 64 << 10;

/// `POST /whep/{id}`.
pub async fn offer(
    State(st): AppStateRef,
    Path(id): Path<String>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(whep) = &st.whep else {
        return Err(ApiError::not_found(
            "WebRTC playback (it is off on this server)",
        ));
    };
    let offer = sdp_offer(&headers, &body)?;
    let ip = client_ip(&ext);
    let (session, answer) = whep.offer(&id, offer, ip).await.map_err(|e| match e {
        WhepError::NoStream(_) => ApiError::not_found("live stream"),
        WhepError::Offer(e) => ApiError::bad_request(e.to_string()),
        WhepError::TooMany(_) | WhepError::TooManyFromIp(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        WhepError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })?;
    Ok(answered(format!("/whep/{id}/{session}"), answer))
}

/// 201 with the SDP answer and the session's resource (WHEP and WHIP alike).
pub(super) fn answered(location: String, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        answer,
    )
        .into_response()
}

/// `DELETE /whep/{id}/{session}`.
pub async fn delete(
    State(st): AppStateRef,
    Path((id, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let Some(whep) = &st.whep else {
        return Err(ApiError::not_found("WebRTC session"));
    };
    match whep.delete(&id, &session).await {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("WebRTC session")),
    }
}

/// The body of a WHEP or WHIP offer: `application/sdp` (415 otherwise), UTF-8 (400 otherwise).
pub(super) fn sdp_offer<'a>(headers: &HeaderMap, body: &'a Bytes) -> Result<&'a str, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("an offer is application/sdp, not {content_type:?}"),
        ));
    }
    std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the SDP offer is not UTF-8"))
}

/// The peer's address (the limits per address count it).
pub(super) fn client_ip(ext: &axum::http::Extensions) -> std::net::IpAddr {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}
