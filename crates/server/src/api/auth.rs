//! Who a request is: the session cookie, a bearer token, a signed link in the query, the
//! client's address. The `Cookie` header is read by hand: one cookie is all we read, which does
//! not merit a cookie-jar crate.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};

use super::error::ApiError;
use super::state::AppState;
use crate::accounts::{Grant, SESSION_COOKIE};
use crate::db::{User, VideoAccess};

/// The value of the session cookie in a request.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` header value from the accounts' cookie text.
pub fn set_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Admin endpoints: 403 when no admin token is configured, 401 unless the request carries it
/// (compared in constant time).
pub fn require_admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = st.admin_token.as_deref() else {
        return Err(ApiError::forbidden(
            "this admin endpoint is closed on this server (no admin token configured)",
        ));
    };
    if vshare_proxy::api::admin_token_matches(Some(token), headers) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("admin token required"))
    }
}

/// The client's address, when the server was started with connection info.
pub fn client_ip(ext: &Extensions) -> Option<String> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The `exp` and `sig` of a signed link in a query string, when both are there.
pub fn link_params(query: Option<&str>) -> Option<(String, String)> {
    let (mut exp, mut sig) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "exp" => exp = Some(v.into_owned()),
            "sig" => sig = Some(v.into_owned()),
            _ => {}
        }
    }
    exp.zip(sig)
}

/// The signed-in user of a request, if any.
pub async fn current_user(st: &AppState, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
    match session_token(headers) {
        Some(token) => Ok(st.db.session_user(token).await?),
        None => Ok(None),
    }
}

/// The signed-in user, or 401.
pub async fn require_user(st: &AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    current_user(st, headers).await?.ok_or_else(|| {
        ApiError::unauthorized(
            "not signed in: POST /api/v1/session with your username and password first",
        )
    })
}

/// The signed-in owner of video `id`: 401 signed out, 404 no video, 403 someone else's.
pub async fn require_owner(
    st: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(User, VideoAccess), ApiError> {
    let user = require_user(st, headers).await?;
    let access = st
        .db
        .video_access(id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    if access.owner.as_deref() != Some(user.id.as_str()) {
        return Err(ApiError::forbidden("this video is not yours"));
    }
    Ok((user, access))
}

/// Whether a request may read video `id` (see [`crate::accounts::Accounts::authorize`]): None
/// when there is no such video, 403 when it may not.
pub async fn authorize(
    st: &AppState,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<(VideoAccess, Grant)>, ApiError> {
    let link = link_params(query);
    let link = link.as_ref().map(|(e, s)| (e.as_str(), s.as_str()));
    Ok(st
        .accounts
        .authorize(
            &st.db,
            id,
            link,
            session_token(headers),
            chrono::Utc::now().timestamp(),
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bearers_and_links() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vshare_session=ss123 ; b=2"),
        );
        assert_eq!(session_token(&h), Some("ss123"));
        h.insert(header::COOKIE, HeaderValue::from_static("vshare_session="));
        assert_eq!(session_token(&h), None);

        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  k1 "),
        );
        assert_eq!(bearer(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(bearer(&h), None);

        assert_eq!(
            link_params(Some("a=1&exp=9&sig=ab%63")),
            Some(("9".into(), "abc".into()))
        );
        assert_eq!(link_params(Some("exp=9")), None);
        assert_eq!(link_params(None), None);
    }
}
