//! The HTTP API of `vshare serve` (`GET /api/v1/videos/{id}`).

use serde::Deserialize;
use vshare_attributes::AttributeRecord;

/// A video as the API returns it (fields this crate does not need are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Video {
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub state: String,
    #[serde(default)]
    pub attributes: Vec<AttributeRecord>,
}

/// Fetches one video; `server` is like `http://127.0.0.1:8080`. A `file:` or plain path reads a
/// JSON fixture instead (for tests without a server).
pub async fn fetch_video(server: &str, id: &str) -> anyhow::Result<Video> {
    if let Some(path) = server.strip_prefix("file:") {
        let text = tokio::fs::read_to_string(path).await?;
        return parse_video(&text, id);
    }
    let url = format!("{}/api/v1/videos/{id}", server.trim_end_matches('/'));
    let resp = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        anyhow::bail!("no video {id:?} on {server}");
    }
    if !resp.status().is_success() {
        anyhow::bail!("GET {url}: HTTP {}", resp.status());
    }
    let text = resp.text().await?;
    parse_video(&text, id)
}

/// Reads a Video object, or finds `id` in an array of them.
pub fn parse_video(text: &str, id: &str) -> anyhow::Result<Video> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let v = match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .find(|x| x.get("id").and_then(|i| i.as_str()) == Some(id))
            .ok_or_else(|| anyhow::anyhow!("no video {id:?} in the fixture"))?,
        other => other,
    };
    Ok(serde_json::from_value(v)?)
}

/// The media type of the XML form, which a short link (`/w/<id>`) answers with the video's
/// full records.
pub const ATTRIBUTES_XML: &str = "application/vnd.vshare.attributes+xml";

/// Fetches the full attribute records from a short link (the compact form's `/w/<id>`).
pub async fn fetch_link(link: &str) -> anyhow::Result<Vec<AttributeRecord>> {
    let resp = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(link)
        .header(reqwest::header::ACCEPT, ATTRIBUTES_XML)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {link}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        anyhow::bail!("GET {link}: HTTP {status}");
    }
    let bytes = resp.bytes().await?;
    Ok(vshare_attributes::forms::decode_xml(&bytes)?)
}
