//! `/api/v1/videos…`, `/api/v1/streams`, `/api/v1/publish/status`: videos with their attribute
//! records; the owner's visibility, deletion and signed links.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vshare_package::uri_with_query;

use super::auth::{bearer, require_owner};
use super::error::ApiError;
use super::state::AppStateRef;
use crate::accounts::links::rfc3339;
use crate::accounts::{Deleted, MAX_LINK_TTL};
use crate::db::{VideoState, Visibility};

/// `GET /api/v1/videos`: public videos.
pub async fn list_videos(State(st): AppStateRef) -> Result<Response, ApiError> {
    let videos: Vec<_> = st
        .db
        .list_public_videos(None)
        .await?
        .into_iter()
        .map(|v| st.videos.with_live_record(v))
        .collect();
    Ok(Json(videos).into_response())
}

/// `GET /api/v1/videos/{id}` (behind the private-video check).
pub async fn get_video(
    State(st): AppStateRef,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = st
        .db
        .get_video(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
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
        // Watch pages open now, and how often a page says so (`/watching`).
        obj.insert("watching".into(), st.watching_now(&id).into());
        obj.insert("watching_beacon_s".into(), st.watching_beacon_s.into());
        // An upload with `backfill`: "pending" with the frames still coming, or "complete".
        if let Some(b) = st.videos.backfill_state(&id) {
            obj.insert("backfill".into(), serde_json::json!(b));
        }
    }
    Ok(Json(json).into_response())
}

/// `GET /api/v1/streams`: public videos that are live.
pub async fn list_streams(State(st): AppStateRef) -> Result<Response, ApiError> {
    let videos: Vec<_> = st
        .db
        .list_public_videos(Some(VideoState::Live))
        .await?
        .into_iter()
        .map(|v| st.videos.with_live_record(v))
        .collect();
    Ok(Json(videos).into_response())
}

/// `GET /api/v1/publish/status`: the source's view, its current or latest video, by stream key.
pub async fn publish_status(
    State(st): AppStateRef,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secret = bearer(&headers)
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <stream key> required\n"))?;
    let key = st
        .db
        .find_key(secret)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown stream key\n"))?;
    let v = st
        .db
        .latest_video_for_key(&key.id)
        .await?
        .ok_or_else(|| ApiError::not_found("video for this key"))?;
    let backfill = st.videos.backfill_state(&v.id);
    let mut json = serde_json::to_value(st.videos.with_live_record(v))
        .map_err(|e| anyhow::anyhow!("video JSON: {e}"))?;
    if let (Some(obj), Some(b)) = (json.as_object_mut(), backfill) {
        obj.insert("backfill".into(), serde_json::json!(b));
    }
    Ok(Json(json).into_response())
}

#[derive(Deserialize)]
pub struct VideoPatch {
    visibility: String,
}

/// `PATCH /api/v1/videos/{id}`: makes a video public or private.
pub async fn set_visibility(
    State(st): AppStateRef,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<VideoPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(p) = body.map_err(ApiError::bad_json)?;
    require_owner(&st, &headers, &id).await?;
    let visibility = Visibility::parse(&p.visibility).ok_or_else(|| {
        ApiError::bad_request(format!(
            "visibility must be \"public\" or \"private\", not {:?}",
            p.visibility
        ))
    })?;
    st.accounts.set_visibility(&st.db, &id, visibility).await?;
    let v = st
        .db
        .get_video(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    Ok(Json(st.videos.with_live_record(v)).into_response())
}

/// `DELETE /api/v1/videos/{id}`: 204 when all is gone, 202 when its stored files are left for
/// the server's next start (see `accounts::library`).
pub async fn delete_video(
    State(st): AppStateRef,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (user, _) = require_owner(&st, &headers, &id).await?;
    let deleted = st
        .accounts
        .delete_video(&st.db, &st.storage, &id, &user.username)
        .await?;
    Ok(match deleted {
        Deleted::Purged => StatusCode::NO_CONTENT.into_response(),
        Deleted::ObjectsLeft => (
            StatusCode::ACCEPTED,
            "deleted; its stored files will be removed at the server's next start\n",
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
pub struct LinkParams {
    ttl: Option<String>,
}

/// `GET /api/v1/videos/{id}/link?ttl=3600`: a signed link for the owner to hand out.
pub async fn video_link(
    State(st): AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<LinkParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ttl = match q.ttl.as_deref() {
        None => 3600,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (1..=MAX_LINK_TTL.as_secs()).contains(t))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "ttl must be a number of seconds from 1 to {}",
                    MAX_LINK_TTL.as_secs()
                ))
            })?,
    };
    require_owner(&st, &headers, &id).await?;
    let v = st
        .db
        .get_video(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    let mut v = st.videos.with_live_record(v);
    let exp = chrono::Utc::now().timestamp() + ttl as i64;
    let query = st.accounts.link_query(&id, exp);
    let public = st.accounts.public_url();
    let url = match v.state {
        VideoState::Live => v
            .attributes
            .iter()
            .find(|r| r.kind == vshare_attributes::Kind::Live)
            .map(|r| r.url.clone())
            .unwrap_or_else(|| format!("{public}/live/{id}/index.m3u8")),
        _ => format!("{public}/vod/{id}/index.m3u8"),
    };
    st.accounts.sign_records(&mut v, &query);
    Ok(Json(json!({
        "url": uri_with_query(&url, &query),
        "expires_at": rfc3339(exp),
        "query": query,
        "video": format!("{public}/api/v1/videos/{id}?{query}"),
        "attributes": v.attributes,
    }))
    .into_response())
}
