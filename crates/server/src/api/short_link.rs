//! `GET /w/{id}`: the short link that compact SMS carry (docs/http-api.md). A browser is sent
//! on to the watch page (303); a client that asks for the attribute record (`Accept:
//! application/vnd.vshare.attributes+xml` or `application/json`, or `?format=xml|text|json`)
//! gets every record of the video. Private videos answer only under a signed link or the
//! owner's session (the `private_videos` middleware checks first); a signed link's query is
//! kept on the redirect and on the records' URLs.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vshare_messaging::api::ATTRIBUTES_XML;

use super::auth::authorize;
use super::error::ApiError;
use super::state::AppStateRef;
use crate::accounts::Grant;

#[derive(Deserialize)]
pub struct LinkParams {
    format: Option<String>,
}

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Page,
    Xml,
    Text,
    Json,
}

fn want(format: Option<&str>, headers: &HeaderMap) -> Result<Want, ApiError> {
    if let Some(f) = format {
        return match f {
            "xml" => Ok(Want::Xml),
            "text" => Ok(Want::Text),
            "json" => Ok(Want::Json),
            other => Err(ApiError::bad_request(format!(
                "format must be xml, text or json, not {other:?}"
            ))),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(if accept.contains(ATTRIBUTES_XML) {
        Want::Xml
    } else if accept.contains("application/json") && !accept.contains("text/html") {
        Want::Json
    } else {
        Want::Page
    })
}

pub async fn short_link(
    State(st): AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<LinkParams>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let want = want(q.format.as_deref(), &headers)?;
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(ApiError::not_found("video"));
    }
    let (_, grant) = authorize(&st, &id, &headers, uri.query())
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    let signed = match &grant {
        Grant::Signed(query) => Some(query.clone()),
        _ => None,
    };
    let vary = [(header::VARY, HeaderValue::from_static("accept"))];
    if want == Want::Page {
        let mut to = format!("/watch/{id}");
        if let Some(query) = &signed {
            to.push('?');
            to.push_str(query);
        }
        let location = HeaderValue::from_str(&to).map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok((StatusCode::SEE_OTHER, vary, [(header::LOCATION, location)]).into_response());
    }
    let v = st
        .db
        .get_video(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("video"))?;
    let mut v = st.videos.with_live_record(v);
    if let Some(query) = &signed {
        st.accounts.sign_records(&mut v, query);
    }
    if v.attributes.is_empty() {
        return Err(ApiError::conflict(format!(
            "video {id} has no attribute records yet"
        )));
    }
    let (content_type, body) = match want {
        Want::Xml => (
            ATTRIBUTES_XML,
            vshare_attributes::forms::encode_xml(&v.attributes)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        Want::Text => (
            "text/plain; charset=utf-8",
            vshare_attributes::forms::encode_text(&v.attributes)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        _ => (
            "application/json",
            serde_json::to_string(&v.attributes).map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        vary,
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_the_page_and_clients_the_record() {
        let mut h = HeaderMap::new();
        assert_eq!(want(None, &h).ok(), Some(Want::Page));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert_eq!(want(None, &h).ok(), Some(Want::Page));
        h.insert(header::ACCEPT, HeaderValue::from_static(ATTRIBUTES_XML));
        assert_eq!(want(None, &h).ok(), Some(Want::Xml));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(want(None, &h).ok(), Some(Want::Json));
        assert_eq!(want(Some("text"), &h).ok(), Some(Want::Text));
        assert!(want(Some("tlv"), &h).is_err());
    }
}
