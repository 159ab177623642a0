//! `POST /api/v1/keys`: an administrator creates a stream key (Bearer admin token).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::require_admin;
use super::error::ApiError;
use super::state::AppStateRef;

#[derive(Deserialize)]
pub struct NewKey {
    #[serde(default)]
    name: String,
}

pub async fn create_key(
    State(st): AppStateRef,
    headers: HeaderMap,
    body: Option<Json<NewKey>>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let name = body.map(|b| b.0.name).unwrap_or_default();
    let (key, secret) = st
        .db
        .create_key(&name)
        .await?
        .ok_or_else(|| ApiError::conflict(format!("the name {name:?} is taken")))?;
    let json = serde_json::json!({
        "id": key.id, "name": key.name, "key": secret,
        "rtmp_url": format!("{}/{}", st.rtmp_url, secret),
    });
    Ok((StatusCode::CREATED, Json(json)).into_response())
}
