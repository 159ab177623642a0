//! `/api/v1/accounts` and `/api/v1/session`: sign-up, sign-in and sign-out. The session
//! travels in a cookie.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{client_ip, session_token, set_cookie};
use super::error::ApiError;
use super::state::AppStateRef;
use crate::db::User;

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
    /// With `[accounts] signup = "invite"`: an invite code from `POST /api/v1/invites`.
    #[serde(default)]
    invite: Option<String>,
}

/// A user as the API shows it.
pub fn user_json(u: &User) -> serde_json::Value {
    json!({ "id": u.id, "username": u.username })
}

/// `POST /api/v1/accounts`: creates an account and its stream key, and signs in.
pub async fn sign_up(
    State(st): AppStateRef,
    ext: Extensions,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    st.accounts.ensure_signup_open()?;
    let Json(c) = body.map_err(ApiError::bad_json)?;
    let ip = client_ip(&ext);
    let account = st
        .accounts
        .sign_up(
            &st.db,
            ip.as_deref(),
            &c.username,
            c.password,
            c.invite.as_deref(),
        )
        .await?;
    let secret = &account.key_secret;
    let body = json!({
        "user": user_json(&account.user),
        "stream_key": { "id": account.key.id, "name": account.key.name, "key": secret },
        "rtmp_url": st.rtmp_url,
        "publish_url": format!("{}/{secret}", st.rtmp_url),
    });
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, set_cookie(&account.session_cookie))],
        Json(body),
    )
        .into_response())
}

/// `POST /api/v1/session`: signs in; rate limited per username (failures) and per address.
pub async fn sign_in(
    State(st): AppStateRef,
    ext: Extensions,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(c) = body.map_err(ApiError::bad_json)?;
    let ip = client_ip(&ext);
    let (user, cookie) = st
        .accounts
        .sign_in(
            &st.db,
            ip.as_deref(),
            &c.username,
            c.password,
            Instant::now(),
        )
        .await?;
    Ok((
        [(header::SET_COOKIE, set_cookie(&cookie))],
        Json(json!({ "user": user_json(&user) })),
    )
        .into_response())
}

/// `DELETE /api/v1/session`: signs out (ends the session and clears the cookie).
pub async fn sign_out(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        st.db.delete_session(token).await?;
    }
    let cookie = st.accounts.session_cookie("", Duration::ZERO);
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, set_cookie(&cookie))],
    )
        .into_response())
}

/// `POST /api/v1/invites` (admin token): a one-time invite code for `signup = "invite"`.
pub async fn create_invite(
    State(st): AppStateRef,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    super::auth::require_admin(&st, &headers)?;
    let code = st.db.create_invite().await?;
    Ok((StatusCode::CREATED, Json(json!({ "invite": code }))).into_response())
}
