//! `/api/v1/me…`: the signed-in user, their stream key, upload tokens and library.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::accounts::user_json;
use super::auth::require_user;
use super::error::ApiError;
use super::state::{AppState, AppStateRef};
use crate::accounts::UPLOAD_TOKEN_TTL;
use crate::db::{StreamKey, User, Video};

/// `GET /api/v1/me`.
pub async fn me(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = require_user(&st, &headers).await?;
    let key = st.db.user_key(&user.id).await?;
    Ok(Json(json!({
        "user": user_json(&user),
        "stream_key": key.map(|k| json!({ "id": k.id, "name": k.name, "revoked": k.revoked, "private": k.private })),
        "rtmp_url": st.rtmp_url,
        "rtmps_url": st.rtmps_url,
        // Publishing over WebRTC (`POST /whip`) is on.
        "whip": st.whep.is_some(),
    }))
    .into_response())
}

/// The signed-in user's stream key, usable for publishing.
async fn usable_key(st: &AppState, user: &User) -> Result<StreamKey, ApiError> {
    match st.db.user_key(&user.id).await? {
        Some(k) if !k.revoked => Ok(k),
        Some(_) => Err(ApiError::conflict(
            "your stream key was revoked by an administrator",
        )),
        None => Err(ApiError::conflict("you have no stream key")),
    }
}

/// `POST /api/v1/me/stream-key`: a new secret for the user's key, shown this once.
pub async fn rotate_key(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = require_user(&st, &headers).await?;
    let key = usable_key(&st, &user).await?;
    let secret = st.db.rotate_key(&key.id).await?;
    info!(user = %user.username, key = %key.id, "stream key rotated");
    Ok(Json(json!({
        "id": key.id,
        "name": key.name,
        "key": secret,
        "rtmp_url": st.rtmp_url,
        "publish_url": format!("{}/{secret}", st.rtmp_url),
        "rtmps_url": st.rtmps_url,
        "rtmps_publish_url": st.rtmps_url.as_ref().map(|u| format!("{u}/{secret}")),
    }))
    .into_response())
}

/// Whether streams start private: `{"private": true}` (an empty body: false).
#[derive(Deserialize, Default)]
pub struct StartPrivate {
    #[serde(default)]
    private: bool,
}

/// `PATCH /api/v1/me/stream-key` `{"private": bool}`: whether the key's streams start private
/// (never listed, no `live` notification to subscribers) until the owner makes them public.
pub async fn set_key_private(
    State(st): AppStateRef,
    headers: HeaderMap,
    body: Result<Json<StartPrivate>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = require_user(&st, &headers).await?;
    let Json(body) = body.map_err(ApiError::bad_json)?;
    let key = usable_key(&st, &user).await?;
    st.db.set_key_private(&key.id, body.private).await?;
    Ok(Json(json!({ "id": key.id, "name": key.name, "private": body.private })).into_response())
}

/// `POST /api/v1/me/upload-token` `[{"private": true}]`: a one-hour token for the upload
/// protocol; a private one starts its streams private whatever the key's default.
pub async fn upload_token(
    State(st): AppStateRef,
    headers: HeaderMap,
    body: Option<Json<StartPrivate>>,
) -> Result<Response, ApiError> {
    let user = require_user(&st, &headers).await?;
    let key = usable_key(&st, &user).await?;
    let private = body.map(|b| b.0.private).unwrap_or_default();
    let (token, expires_ms) = st
        .db
        .create_upload_token(&key.id, UPLOAD_TOKEN_TTL, private)
        .await?;
    Ok(Json(json!({
        "token": token,
        "expires_at": rfc3339_ms(expires_ms),
        "expires_in": UPLOAD_TOKEN_TTL.as_secs(),
        "key_id": key.id,
        "private": private || key.private,
    }))
    .into_response())
}

/// `GET /api/v1/me/videos`: the user's videos, newest first.
pub async fn my_videos(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = require_user(&st, &headers).await?;
    let videos: Vec<Video> = st
        .db
        .user_videos(&user.id)
        .await?
        .into_iter()
        .map(|v| st.videos.with_live_record(v))
        .collect();
    Ok(Json(videos).into_response())
}

/// Unix milliseconds as RFC 3339 to the second.
fn rfc3339_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix_ms.to_string())
}
