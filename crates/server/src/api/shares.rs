//! `/api/v1/videos/{id}/share` and `…/share-text`: a video's attribute records by SMS through
//! the server's SMSC, or as text for the phone's own messaging app (`crate::share` does the
//! work).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::info;
use vshare_attributes::AttributeRecord;
use vshare_messaging::compose;

use super::auth::{authorize, client_ip, require_user};
use super::error::ApiError;
use super::state::{AppState, AppStateRef};
use crate::accounts::Grant;
use crate::db::Visibility;
use crate::share::{self, ShareError};

/// The records to send for a video the request may read: with the live record while live,
/// and for a private video with signed URLs (the request's own link, or a new one valid for
/// `share_link_ttl_s`). Returns them and the links' expiry, if signed.
async fn shareable_records(
    st: &AppState,
    id: &str,
    grant: &Grant,
    visibility: Visibility,
) -> Result<(Vec<AttributeRecord>, Option<i64>), ApiError> {
    let v = st
        .db
        .get_video(id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    let mut v = st.videos.with_live_record(v);
    if v.attributes.is_empty() {
        return Err(ShareError::NoRecords(id.to_string()).into());
    }
    let mut expires = None;
    if visibility == Visibility::Private {
        let query = match grant {
            Grant::Signed(q) => q.clone(),
            _ => {
                let exp = chrono::Utc::now().timestamp()
                    + i64::try_from(st.sharing.link_ttl_s).unwrap_or(i64::MAX / 2);
                expires = Some(exp);
                st.accounts.link_query(id, exp)
            }
        };
        st.accounts.sign_records(&mut v, &query);
    }
    Ok((v.attributes, expires))
}

#[derive(Deserialize)]
pub struct ShareRequest {
    numbers: Vec<String>,
    #[serde(default = "default_form")]
    form: String,
    /// Every record in as many parts as it takes, instead of the compact one SMS.
    #[serde(default)]
    full: bool,
}

fn default_form() -> String {
    "text".into()
}

/// `POST /api/v1/videos/{id}/share`: queues the video's attribute records to each number in
/// the proxy's outbox (SMS or WAP Push through its SMSC binds) and answers when the SMSC has
/// taken them, or after `share_wait_ms` with 202 and the rows still on their way; per number,
/// its row, state and the SMSC's message id.
pub async fn share(
    State(st): AppStateRef,
    Path(id): Path<String>,
    headers: HeaderMap,
    ext: Extensions,
    body: Result<Json<ShareRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = require_user(&st, &headers).await?;
    let Json(req) = body.map_err(ApiError::bad_json)?;
    let form = share::parse_form(&req.form)?;
    let numbers = share::valid_numbers(&req.numbers)?;
    let access = st
        .db
        .video_access(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    let owner = access.owner.as_deref() == Some(user.id.as_str());
    if access.visibility == Visibility::Private && !owner {
        return Err(ApiError::forbidden("this video is private and not yours"));
    }
    let grant = if owner { Grant::Owner } else { Grant::Public };
    let (records, links_expire) = shareable_records(&st, &id, &grant, access.visibility).await?;
    let sent = st
        .sharing
        .send(
            &id,
            &user.id,
            client_ip(&ext).as_deref(),
            &records,
            form,
            req.full,
            &numbers,
        )
        .await?;
    let count =
        |f: fn(&share::NumberOutcome) -> bool| sent.outcomes.iter().filter(|o| f(o)).count();
    let (ok, pending) = (
        count(share::NumberOutcome::ok),
        count(share::NumberOutcome::pending),
    );
    let answers: Vec<_> = sent
        .outcomes
        .iter()
        .map(|o| {
            json!({
                "number": o.number,
                "ok": o.ok(),
                "state": o.state,
                "notification": o.notification,
                "message_ids": o.message_ids,
                "error": (!o.ok()).then_some(o.error.as_deref()).flatten(),
            })
        })
        .collect();
    metrics::counter!("vshare_share_sms_total").increment(numbers.len() as u64);
    info!(video = %id, user = %user.username, form = %req.form, numbers = numbers.len(), sent = ok, pending, "shared by SMS");
    let status = if pending > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "video": id,
            "form": req.form,
            "full": req.full,
            "parts": sent.parts,
            "alphabet": sent.alphabet,
            "sent": ok,
            "pending": pending,
            "failed": numbers.len() - ok - pending,
            "links_expire_at": links_expire.and_then(expiry),
            "results": answers,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct TextParams {
    form: Option<String>,
    /// Comma-separated numbers for the `sms:` link (none: the app asks).
    to: Option<String>,
    /// The full text form instead of the compact one.
    #[serde(default)]
    full: bool,
}

#[derive(Deserialize)]
pub struct PreviewParams {
    form: Option<String>,
    #[serde(default)]
    full: bool,
}

/// `GET /api/v1/videos/{id}/share-preview?form=text[&full=true]`: what a share would send to
/// each number — SMS parts, alphabet, and the text for the text forms — composed exactly as
/// `POST …/share` composes it, for the Share dialog's count. Anyone who may read the video may
/// ask; nothing is sent or counted.
pub async fn share_preview(
    State(st): AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<PreviewParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let form_name = q.form.as_deref().unwrap_or("text");
    let form = share::parse_form(form_name)?;
    let (access, grant) = authorize(&st, &id, &headers, uri.query())
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    // For the owner of a private video, a new signed link: as long as the share's.
    let (records, _) = shareable_records(&st, &id, &grant, access.visibility).await?;
    let p = st.sharing.preview(&records, form, q.full)?;
    Ok(Json(json!({
        "form": form_name,
        "full": q.full,
        "parts": p.parts,
        "alphabet": p.alphabet,
        "text": p.text,
    }))
    .into_response())
}

/// `GET /api/v1/videos/{id}/share-text?form=text[&to=+46…][&full=true]`: the message text
/// (compact unless `full`) and an RFC 5724 `sms:` link, for the page's "open my messaging app"
/// button. Anyone who may read the video may ask; nothing is sent.
pub async fn share_text(
    State(st): AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<TextParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let form_name = q.form.as_deref().unwrap_or("text");
    let form = share::parse_text_form(form_name)?;
    let numbers = match q.to.as_deref().filter(|t| !t.trim().is_empty()) {
        None => Vec::new(),
        Some(t) => share::valid_numbers(&t.split(',').map(str::to_string).collect::<Vec<_>>())?,
    };
    let (access, grant) = authorize(&st, &id, &headers, uri.query())
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    let (records, links_expire) = shareable_records(&st, &id, &grant, access.visibility).await?;
    let text = st.sharing.message_text(&records, form, q.full)?;
    let sms_uri = compose::sms_uri_of(&numbers, &text);
    Ok(Json(json!({
        "form": form_name,
        "full": q.full,
        "text": text,
        "sms_uri": sms_uri,
        "links_expire_at": links_expire.and_then(expiry),
    }))
    .into_response())
}

/// A links' expiry as RFC 3339; None (JSON null) for a time chrono cannot show.
fn expiry(unix_s: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
