//! A client of the proxy's API, for `vshare subscribe` and `vshare open --listen ws://…`:
//! subscribe, confirm, unsubscribe, list notifications, and listen on a WebSocket.

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::Message;
use crate::store::{NewSubscription, NotificationView, Subscription};

/// The API of a server (`http://127.0.0.1:8080` by default).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            token,
        }
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn check(r: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(body);
        bail!("{status}: {msg}")
    }

    pub async fn subscribe(&self, req: &NewSubscription) -> anyhow::Result<Subscription> {
        let r = self
            .auth(
                self.http
                    .post(format!("{}/api/v1/subscriptions", self.base)),
            )
            .json(req)
            .send()
            .await
            .with_context(|| format!("POST {}/api/v1/subscriptions", self.base))?;
        Ok(Self::check(r).await?.json().await?)
    }

    pub async fn confirm(&self, id: &str, code: &str) -> anyhow::Result<Subscription> {
        let r = self
            .auth(
                self.http
                    .post(format!("{}/api/v1/subscriptions/{id}/confirm", self.base)),
            )
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await?;
        Ok(Self::check(r).await?.json().await?)
    }

    pub async fn unsubscribe(&self, id: &str) -> anyhow::Result<()> {
        let r = self
            .auth(
                self.http
                    .delete(format!("{}/api/v1/subscriptions/{id}", self.base)),
            )
            .send()
            .await?;
        Self::check(r).await?;
        Ok(())
    }

    pub async fn subscriptions(&self, source: Option<&str>) -> anyhow::Result<Vec<Subscription>> {
        let mut url = format!("{}/api/v1/subscriptions", self.base);
        if let Some(s) = source {
            url.push_str("?source=");
            url.push_str(&encode(s));
        }
        let r = self.auth(self.http.get(url)).send().await?;
        Ok(Self::check(r).await?.json().await?)
    }

    pub async fn notifications(&self, video: &str) -> anyhow::Result<Vec<NotificationView>> {
        let r = self
            .auth(self.http.get(format!(
                "{}/api/v1/notifications?video={}",
                self.base,
                encode(video)
            )))
            .send()
            .await?;
        Ok(Self::check(r).await?.json().await?)
    }

    /// Connects as listener `id` with its `secret` (the first connection that names a listener
    /// binds it to its secret), subscribing it to `source` if given, and calls `on_message`
    /// for each notification, acknowledging it, until `on_message` returns false.
    pub async fn listen(
        &self,
        id: &str,
        secret: &str,
        source: Option<&str>,
        mut on_message: impl FnMut(Message) -> bool,
    ) -> anyhow::Result<()> {
        let ws_base = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        let mut url = format!(
            "{ws_base}/api/v1/listen?id={}&secret={}",
            encode(id),
            encode(secret)
        );
        if let Some(s) = source {
            url.push_str("&source=");
            url.push_str(&encode(s));
        }
        let shown = format!("{ws_base}/api/v1/listen?id={}", encode(id));
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("WebSocket {shown}"))?;
        let url = shown;
        while let Some(m) = ws.next().await {
            match m.with_context(|| format!("WebSocket {url}"))? {
                WsMessage::Text(t) => {
                    let msg: Message = serde_json::from_str(t.as_str())
                        .with_context(|| format!("a notification that is not ours: {t}"))?;
                    ws.send(WsMessage::Text(
                        serde_json::json!({ "ack": msg.notification })
                            .to_string()
                            .into(),
                    ))
                    .await?;
                    if !on_message(msg) {
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                }
                WsMessage::Close(_) => bail!("the server closed {url}"),
                _ => {}
            }
        }
        bail!("the server closed {url}")
    }
}

/// Percent-encodes a query value (RFC 3986 §2.3 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
