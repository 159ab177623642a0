//! A PAP client (WAP-247): POSTs a push-message to a Push Proxy Gateway such as Kannel's.

use vshare_wap::pap::{PushMessage, PushResponse};

/// Sends one push; returns the gateway's answer (an error if it refused the push).
pub async fn push(
    ppg_url: &str,
    message: &PushMessage,
    auth: Option<(&str, &str)>,
) -> anyhow::Result<PushResponse> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()?;
    let mut req = client
        .post(ppg_url)
        .header(reqwest::header::CONTENT_TYPE, message.http_content_type())
        .body(message.body());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("POST {ppg_url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    let answer = PushResponse::parse(&text)
        .map_err(|e| anyhow::anyhow!("PPG answered HTTP {status}: {e}: {text}"))?;
    if !answer.accepted() {
        anyhow::bail!("PPG refused the push: {} {}", answer.code, answer.desc);
    }
    Ok(answer)
}
