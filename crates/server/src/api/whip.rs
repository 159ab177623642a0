//! WHIP (RFC 9725): `POST /whip` with the stream key (or an upload token) as bearer token and
//! an SDP offer starts a publish over WebRTC and answers 201 with the SDP answer and the
//! session's `Location` (`/whip/{video}/{session}`); `DELETE` on it ends the publish.
//! docs/webrtc.md explains the sessions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::error::ApiError;
use super::state::AppStateRef;
use super::whep::{answered, client_ip, sdp_offer};
use crate::video::StartError;
use crate::whep::WhepError;
use crate::whip::WhipError;

/// `POST /whip`.
pub async fn publish(
    State(st): AppStateRef,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(whep) = &st.whep else {
        return Err(ApiError::not_found(
            "WebRTC ingest (it is off on this server)",
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::unauthorized(
            "WHIP takes the stream key as a bearer token",
        ));
    };
    let offer = sdp_offer(&headers, &body)?;
    let key = match st.db.find_key_for_token(token).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(ApiError::unauthorized("unknown or revoked stream key")),
        Err(e) => return Err(ApiError::from(e)),
    };
    let ip = client_ip(&ext);
    let (video, session, answer) =
        crate::whip::publish(whep, &st.videos, &key, offer, ip, st.segment_target)
            .await
            .map_err(|e| match e {
                WhipError::Session(WhepError::Offer(e)) => ApiError::bad_request(e.to_string()),
                WhipError::Start(StartError::AlreadyPublishing(_)) => {
                    ApiError::conflict(e.to_string())
                }
                _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            })?;
    Ok(answered(format!("/whip/{video}/{session}"), answer))
}

/// `DELETE /whip/{video}/{session}`: the session id is the capability.
pub async fn delete(
    State(st): AppStateRef,
    Path((video, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let Some(whep) = &st.whep else {
        return Err(ApiError::not_found("WebRTC session"));
    };
    match whep.delete_publisher(&video, &session).await {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("WebRTC session")),
    }
}
