//! Sharing a video from the server, for the studio's share dialog: the video's attribute
//! records packed in the chosen form (text, TLV, XML, WAP SI, WAP SL; crates/messaging) and
//! submitted to the configured SMSC over SMPP, as `vshare share --via smpp` does; and the text
//! and `sms:` link for a phone's own messaging app. Only signed-in users send, within a limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};
use vshare_attributes::AttributeRecord;
use vshare_messaging::compose::{self, As};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_smpp::BindKind;
use vshare_sms::split::ConcatRef;

use crate::accounts::{Error, Grant, authorize, bad_json, not_found, require_user};
use crate::db::Visibility;
use crate::http::AppState;

/// Recipients in one request.
pub const MAX_NUMBERS: usize = 10;
/// The longest a share may wait for the SMSC (connect, bind, every answer).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/videos/{id}/share", post(share))
        .route("/api/v1/videos/{id}/share-text", get(share_text))
}

/// A form's name in the API: `text`, `tlv`, `xml`, `wap-si`, `wap-sl`.
pub fn parse_form(name: &str) -> Result<As, Error> {
    Ok(match name {
        "text" => As::Text,
        "tlv" => As::Tlv,
        "xml" => As::Xml,
        "wap-si" => As::WapSi,
        "wap-sl" => As::WapSl,
        other => {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                format!("form must be text, tlv, xml, wap-si or wap-sl, not {other:?}"),
            ));
        }
    })
}

/// A number in international form: `+` and 3 to 20 digits.
pub fn valid_number(n: &str) -> Result<String, Error> {
    let n = n.trim();
    let ok = n
        .strip_prefix('+')
        .is_some_and(|d| (3..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(n.to_string())
    } else {
        Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!("{n:?} is not a phone number in international form (+ and 3 to 20 digits)"),
        ))
    }
}

/// Validates and de-duplicates a list of numbers (1 to [`MAX_NUMBERS`]).
fn valid_numbers(numbers: &[String]) -> Result<Vec<String>, Error> {
    if numbers.is_empty() {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "give at least one number",
        ));
    }
    if numbers.len() > MAX_NUMBERS {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!(
                "at most {MAX_NUMBERS} numbers per request ({} given)",
                numbers.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(numbers.len());
    for n in numbers {
        let n = valid_number(n)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// The records to send for a video the request may read: with the live record while live,
/// and for a private video with signed URLs (the request's own link, or a new one valid for
/// `share_link_ttl_s`). Returns them and the links' expiry, if signed.
async fn shareable_records(
    st: &AppState,
    id: &str,
    grant: &Grant,
    visibility: Visibility,
) -> Result<(Vec<AttributeRecord>, Option<i64>), Error> {
    let v = st.db.get_video(id).await?.ok_or_else(not_found)?;
    let mut v = st.videos.with_live_record(v);
    if v.attributes.is_empty() {
        return Err(Error::new(
            StatusCode::CONFLICT,
            format!("video {id} has no attribute records yet: share it once it is live or ready"),
        ));
    }
    let mut expires = None;
    if visibility == Visibility::Private {
        let query = match grant {
            Grant::Signed(q) => q.clone(),
            _ => {
                let exp = chrono::Utc::now().timestamp()
                    + i64::try_from(st.accounts.config.share_link_ttl_s).unwrap_or(i64::MAX / 2);
                expires = Some(exp);
                st.accounts.link_query(id, exp)
            }
        };
        st.accounts.sign_records(&mut v, &query);
    }
    Ok((v.attributes, expires))
}

#[derive(Deserialize)]
struct ShareRequest {
    numbers: Vec<String>,
    #[serde(default = "default_form")]
    form: String,
}

fn default_form() -> String {
    "text".into()
}

/// `POST /api/v1/videos/{id}/share`: sends the video's attribute records by SMS to each
/// number through the SMSC; answers per number the SMSC's message ids or the error.
async fn share(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ShareRequest>, JsonRejection>,
) -> Result<Response, Error> {
    let user = require_user(&st, &headers).await?;
    let Json(req) = body.map_err(bad_json)?;
    let form = parse_form(&req.form)?;
    let numbers = valid_numbers(&req.numbers)?;
    let access = st.db.video_access(&id).await?.ok_or_else(not_found)?;
    let owner = access.owner.as_deref() == Some(user.id.as_str());
    if access.visibility == Visibility::Private && !owner {
        return Err(Error::new(
            StatusCode::FORBIDDEN,
            "this video is private and not yours",
        ));
    }
    let grant = if owner { Grant::Owner } else { Grant::Public };
    let (records, links_expire) = shareable_records(&st, &id, &grant, access.visibility).await?;
    let Some(smsc) = st.accounts.smsc.clone() else {
        return Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no SMSC to send SMS through (set proxy.smsc in its configuration); \
             use share-text to send from your own phone",
        ));
    };
    let limit = &st.accounts.config;
    st.accounts
        .share
        .acquire(&user.id, numbers.len(), Instant::now())
        .map_err(|wait| {
            Error::too_many(
                &format!(
                    "you may send {} messages per {} minutes",
                    limit.share_messages,
                    limit.share_window_s.div_ceil(60)
                ),
                wait,
            )
        })?;

    // A concatenation reference and WSP transaction id that differ from one share to the next.
    let mut seed = [0u8; 2];
    rand::rng().fill_bytes(&mut seed);
    let seg =
        compose::compose(&records, form, ConcatRef::Eight(seed[0]), seed[1]).map_err(|e| {
            Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the records do not fit the {} form: {e:#}", req.form),
            )
        })?;
    let mut messages = Vec::new();
    let mut owners = Vec::new();
    for (i, n) in numbers.iter().enumerate() {
        let sms = compose::to_smpp(&smsc.from, n, &seg, false)?;
        owners.extend(std::iter::repeat_n(i, sms.len()));
        messages.extend(sms);
    }
    let parts_each = seg.parts.len();
    let mut opts = ClientOptions::new(
        &smsc.addr,
        BindKind::Transmitter,
        &smsc.system_id,
        &smsc.password,
    );
    opts.attempts = 2;
    opts.bind_timeout = Duration::from_secs(5);
    let sent = tokio::time::timeout(
        SEND_TIMEOUT,
        Client::submit_with_reconnect(&opts, messages, 1),
    )
    .await;
    let results = match sent {
        Err(_) => {
            return Err(Error::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the SMSC at {} did not answer within {} s; some messages may have been sent",
                    smsc.addr,
                    SEND_TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(Err(e)) => {
            warn!(video = %id, "share: SMSC: {e:#}");
            return Err(Error::new(
                StatusCode::BAD_GATEWAY,
                format!("could not send through the SMSC: {e:#}"),
            ));
        }
        Ok(Ok((results, client))) => {
            tokio::spawn(async move {
                let _ = client.unbind().await;
            });
            results
        }
    };
    let mut per_number: Vec<(Vec<String>, Vec<String>)> = vec![Default::default(); numbers.len()];
    for (i, r) in owners.iter().zip(results) {
        match r {
            Ok(message_id) => per_number[*i].0.push(message_id),
            Err(e) => per_number[*i].1.push(e.to_string()),
        }
    }
    let mut sent = 0;
    let answers: Vec<_> = numbers
        .iter()
        .zip(per_number)
        .map(|(n, (ids, errors))| {
            let ok = errors.is_empty();
            sent += usize::from(ok);
            json!({
                "number": n,
                "ok": ok,
                "message_ids": ids,
                "error": (!ok).then(|| errors.join("; ")),
            })
        })
        .collect();
    metrics::counter!("vshare_share_sms_total").increment(sent as u64);
    info!(video = %id, user = %user.username, form = %req.form, numbers = numbers.len(), sent, "shared by SMS");
    Ok(Json(json!({
        "video": id,
        "form": req.form,
        "parts": parts_each,
        "sent": sent,
        "failed": numbers.len() - sent,
        "links_expire_at": links_expire.map(|e| chrono::DateTime::from_timestamp(e, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
        "results": answers,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct TextParams {
    form: Option<String>,
    /// Comma-separated numbers for the `sms:` link (none: the app asks).
    to: Option<String>,
}

/// `GET /api/v1/videos/{id}/share-text?form=text[&to=+46…]`: the message text and an RFC 5724
/// `sms:` link, for the page's "open my messaging app" button. Anyone who may read the video
/// may ask; nothing is sent.
async fn share_text(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<TextParams>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, Error> {
    let form_name = q.form.as_deref().unwrap_or("text");
    let form = parse_form(form_name)?;
    if !matches!(form, As::Text | As::Xml) {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!("an sms: link carries text only: use form=text or form=xml, not {form_name}"),
        ));
    }
    let numbers = match q.to.as_deref().filter(|t| !t.trim().is_empty()) {
        None => Vec::new(),
        Some(t) => valid_numbers(&t.split(',').map(str::to_string).collect::<Vec<_>>())?,
    };
    let (access, grant) = authorize(&st, &id, &headers, uri.query())
        .await?
        .ok_or_else(not_found)?;
    let (records, links_expire) = shareable_records(&st, &id, &grant, access.visibility).await?;
    let text = match form {
        As::Xml => String::from_utf8(
            vshare_attributes::forms::Form::Xml
                .encode(&records)
                .map_err(anyhow::Error::from)?,
        )
        .map_err(anyhow::Error::from)?,
        _ => vshare_attributes::forms::encode_text(&records).map_err(anyhow::Error::from)?,
    };
    let sms_uri = compose::sms_uri(&numbers, &records, form)?;
    Ok(Json(json!({
        "form": form_name,
        "text": text,
        "sms_uri": sms_uri,
        "links_expire_at": links_expire.map(|e| chrono::DateTime::from_timestamp(e, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_forms() {
        assert_eq!(
            valid_number(" +46701234567 ").ok().as_deref(),
            Some("+46701234567")
        );
        for bad in [
            "46701234567",
            "+12",
            "+1234567890123456789012",
            "+46 70",
            "+4670x",
            "",
        ] {
            assert!(valid_number(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("+4670000000{i}")).collect();
        assert!(valid_numbers(&many).is_err());
        assert!(valid_numbers(&[]).is_err());
        assert_eq!(
            valid_numbers(&["+111".into(), "+111".into(), "+222".into()])
                .ok()
                .map(|v| v.len()),
            Some(2)
        );
        assert_eq!(parse_form("wap-si").ok(), Some(As::WapSi));
        assert!(parse_form("mms").is_err());
    }
}
