//! `POST /api/v1/videos/{id}/watching`: a watch page's beacon, so the studio can show how many
//! watch now (`crate::watching`). The count is in the video's JSON (`watching`).

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{authorize, client_ip};
use super::error::ApiError;
use super::state::AppStateRef;
use crate::watching::{Refused, valid_tab};

#[derive(Deserialize)]
pub struct Beacon {
    /// The page's random id (8 to 64 of `[A-Za-z0-9_-]`), new for every tab.
    tab: String,
}

/// Counts the page as watching for `[watching] window_s`; answers the count and when to beat
/// again. 429 past `beacons_per_ip`, 503 when a table is full: nothing is counted then.
pub async fn beacon(
    State(st): AppStateRef,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ext: Extensions,
    body: Result<Json<Beacon>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(ApiError::bad_json)?;
    if !valid_tab(&b.tab) {
        return Err(ApiError::bad_request(
            "tab must be 8 to 64 characters of A-Z a-z 0-9 - _",
        ));
    }
    if authorize(&st, &id, &headers, query.as_deref())
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("video"));
    }
    let ip = client_ip(&ext).unwrap_or_default();
    let now = Instant::now();
    let (result, count, window) = {
        let mut w = st.watching.lock().unwrap_or_else(|e| e.into_inner());
        let result = w.beat(&id, &b.tab, &ip, now);
        (result, w.count(&id, now), w.limits().window)
    };
    match result {
        Ok(()) => {}
        Err(Refused::RateLimited) => {
            metrics::counter!("vshare_watching_refused_total", "why" => "rate").increment(1);
            return Err(ApiError::too_many(
                "too many beacons from this address",
                window,
            ));
        }
        Err(Refused::Full) => {
            metrics::counter!("vshare_watching_refused_total", "why" => "full").increment(1);
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not counting more watchers now",
            ));
        }
    }
    let mut resp =
        Json(json!({ "watching": count, "beacon_s": st.watching_beacon_s })).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
