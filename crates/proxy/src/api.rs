//! The proxy's HTTP API, an axum [`Router`] the server merges into its own:
//!
//! - `POST /api/v1/subscriptions` `{"source","channel","address","form"?}` → 201 Subscription
//!   (phone numbers: `pending-confirmation`, and a code goes to the number by SMS, through the
//!   SMS guard: 429 with `Retry-After` over its limits); 409 without an id when the address
//!   is subscribed already or its code is still pending;
//! - `POST /api/v1/subscriptions/{id}/confirm` `{"code"}` → the active Subscription (codes
//!   expire and allow a few attempts);
//! - `GET /api/v1/subscriptions?source=…`, `DELETE /api/v1/subscriptions/{id}` → 204;
//! - `GET /api/v1/notifications?video=…|source=…` → who got what, in which state;
//! - `GET /api/v1/listen?id=…&secret=…[&source=…]` (WebSocket) and `GET /api/v1/listen/sse?…`:
//!   the first connection that names a listener binds it to its secret;
//! - `GET /api/v1/webpush/key` → `{"public_key"}` (VAPID, for `applicationServerKey`).
//!
//! Lists that show addresses are admin endpoints: closed (403) without an admin token in the
//! configuration, 401 without it in `Authorization: Bearer <admin token>`. Errors never carry
//! internal detail (it is logged).

use std::convert::Infallible;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::{SinkExt, Stream, StreamExt};
use serde::Deserialize;

use crate::Proxy;
use crate::store::{Channel, CodeRules, NewSubscription, StoreError, SubState, Subscribed};

/// Errors as HTTP answers, in one place: a status, a message for the client (never internal
/// detail) and for 429 the seconds to wait.
pub struct ApiError(StatusCode, String, Option<u64>);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into(), None)
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    fn too_many(message: &str, wait_ms: i64) -> ApiError {
        let secs = u64::try_from(wait_ms.max(1)).unwrap_or(1).div_ceil(1000);
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{message}; try again in {secs} s"),
            Some(secs),
        )
    }

    /// Anything unexpected: logged, and 500 without details.
    fn internal(detail: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!("proxy api: {detail}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if let Some(secs) = self.2 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            StoreError::Refused(r) => ApiError::too_many(&r.to_string(), r.wait_ms),
            other => ApiError::internal(&other),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(&format!("{e:#}"))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router; `admin_token` opens the lists (None: they are closed).
pub fn router(proxy: Proxy, admin_token: Option<String>) -> Router {
    Router::new()
        .route(
            "/api/v1/subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route("/api/v1/subscriptions/{id}", delete(delete_subscription))
        .route("/api/v1/subscriptions/{id}/confirm", post(confirm))
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/listen", get(listen_ws))
        .route("/api/v1/listen/sse", get(listen_sse))
        .route("/api/v1/webpush/key", get(vapid_key))
        .with_state(Api {
            proxy,
            admin_token: admin_token.filter(|t| !t.is_empty()),
        })
}

#[derive(Clone)]
struct Api {
    proxy: Proxy,
    admin_token: Option<String>,
}

/// Whether `given` is the admin token, compared in constant time.
pub fn admin_token_matches(expected: Option<&str>, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match (expected, given) {
        (Some(t), Some(g)) => bool::from(t.as_bytes().ct_eq(g.as_bytes())),
        _ => false,
    }
}

/// The client's address, when the server was started with connection info.
fn client_ip(ext: &Extensions) -> Option<String> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

impl Api {
    fn authorize(&self, headers: &HeaderMap) -> ApiResult<()> {
        if self.admin_token.is_none() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this list is an admin endpoint, closed on this server (no admin token configured)",
            ));
        }
        if admin_token_matches(self.admin_token.as_deref(), headers) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this list needs Authorization: Bearer <admin token>",
            ))
        }
    }

    fn code_rules(&self) -> CodeRules {
        CodeRules {
            ttl_ms: self.proxy.config.code_ttl_ms,
            attempts: self.proxy.config.code_attempts,
        }
    }
}

/// The text of a confirmation SMS: fixed words and the code, nothing a requester chose.
pub fn confirmation_text(code: &str) -> String {
    format!(
        "vshare: your code is {code}. Reply YES {code} to get videos by SMS. Not you? Ignore this."
    )
}

/// An early, clear 400 for a webhook or push endpoint the proxy would refuse to reach (the
/// check that counts is made again on the resolved address at each delivery).
fn check_destination(egress: &crate::egress::EgressPolicy, req: &NewSubscription) -> ApiResult<()> {
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    match req.channel {
        Channel::Webhook => egress
            .check_url(req.address.trim())
            .map_err(|e| bad(format!("webhook address: {e}"))),
        Channel::Webpush => {
            let target = crate::push_subscription::parse_subscription(&req.address)
                .map_err(|e| bad(format!("{e:#}")))?;
            crate::webpush::check_endpoint(egress, &target.endpoint.to_string())
                .map_err(|e| bad(format!("push endpoint: {e}")))
        }
        _ => Ok(()),
    }
}

async fn create_subscription(
    State(api): State<Api>,
    ext: Extensions,
    Json(req): Json<NewSubscription>,
) -> ApiResult<impl IntoResponse> {
    if !api.proxy.source_exists(&req.source).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no source {:?}", req.source),
        ));
    }
    if req.channel == Channel::Webpush && api.proxy.config.vapid.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no VAPID key configured for web push",
        ));
    }
    check_destination(&api.proxy.config.egress, &req)?;
    let smpp = api.proxy.config.smpp.clone();
    if matches!(req.channel, Channel::Sms | Channel::Wap) {
        crate::store::normalize_number(&req.address)?;
    }
    if matches!(req.channel, Channel::Sms | Channel::Wap) && smpp.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no SMSC configured to send the confirmation code",
        ));
    }
    let client = client_ip(&ext);
    let now = api.proxy.now_ms();
    let guard = api.proxy.sms_guard.clone();
    let subscribed = api
        .proxy
        .store
        .subscribe(&req, now, api.code_rules(), |number| {
            guard.admit_one(number, true, client.as_deref(), now)
        })
        .await?;
    let Subscribed::Created(sub) = subscribed else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this address is subscribed to this source already, or its confirmation code is \
             still valid; the subscription's id went to whoever made it",
        ));
    };
    if sub.state == SubState::PendingConfirmation
        && let Some(smpp) = smpp
    {
        let text = confirmation_text(sub.code.as_deref().unwrap_or_default());
        let to = sub.address.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::sms::send_text(&smpp, &to, &text).await {
                tracing::warn!("confirmation SMS to {to}: {e:#}");
            }
        });
    }
    if sub.channel == Channel::Websocket {
        api.proxy
            .store
            .make_due(Channel::Websocket, &sub.address, api.proxy.now_ms())
            .await?;
    }
    Ok((StatusCode::CREATED, Json(sub)))
}

#[derive(Deserialize)]
struct SourceQuery {
    source: Option<String>,
}

async fn list_subscriptions(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<SourceQuery>,
) -> ApiResult<impl IntoResponse> {
    api.authorize(&headers)?;
    Ok(Json(
        api.proxy.store.subscriptions(q.source.as_deref()).await?,
    ))
}

async fn delete_subscription(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    // The id is the capability: only who created a subscription knows it.
    if api
        .proxy
        .store
        .set_sub_state(&id, SubState::Stopped, api.proxy.now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "no such subscription"))
    }
}

#[derive(Deserialize)]
struct ConfirmBody {
    code: String,
}

async fn confirm(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(body): Json<ConfirmBody>,
) -> ApiResult<impl IntoResponse> {
    match api
        .proxy
        .store
        .confirm_id(&id, &body.code, api.code_rules(), api.proxy.now_ms())
        .await?
    {
        Some(sub) => Ok(Json(sub)),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong code, or nothing to confirm (codes expire and allow a few attempts)",
        )),
    }
}

#[derive(Deserialize)]
struct NotificationQuery {
    video: Option<String>,
    source: Option<String>,
}

async fn list_notifications(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(q): Query<NotificationQuery>,
) -> ApiResult<impl IntoResponse> {
    api.authorize(&headers)?;
    Ok(Json(
        api.proxy
            .store
            .notifications(q.video.as_deref(), q.source.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
struct ListenQuery {
    id: String,
    /// Binds the listener the first time it is named; opens it afterwards.
    #[serde(default)]
    secret: String,
    source: Option<String>,
}

/// Shortest listener secret accepted.
pub const MIN_LISTENER_SECRET: usize = 16;

/// Registers a listener (subscribing it to `source` if given) and makes its waiting rows due.
async fn start_listening(
    api: &Api,
    q: &ListenQuery,
) -> ApiResult<(
    crate::ip::Registration,
    tokio::sync::mpsc::Receiver<std::sync::Arc<str>>,
)> {
    if q.secret.len() < MIN_LISTENER_SECRET || q.secret.len() > 256 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "a listener needs a secret of {MIN_LISTENER_SECRET} to 256 characters (secret=…); \
                 the first connection that names a listener binds it to its secret"
            ),
        ));
    }
    if !api
        .proxy
        .store
        .claim_listener(&q.id, &q.secret, api.proxy.now_ms())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this listener id is bound to another secret",
        ));
    }
    if let Some(source) = &q.source {
        if !api.proxy.source_exists(source).await? {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no source {source:?}"),
            ));
        }
        // Subscribed already is as good as subscribed now.
        api.proxy
            .store
            .subscribe(
                &NewSubscription {
                    source: source.clone(),
                    channel: Channel::Websocket,
                    address: q.id.clone(),
                    form: None,
                },
                api.proxy.now_ms(),
                api.code_rules(),
                |_| Ok(()),
            )
            .await?;
    }
    let reg = api.proxy.hub.register(&q.id);
    api.proxy
        .store
        .make_due(Channel::Websocket, &q.id, api.proxy.now_ms())
        .await?;
    api.proxy.wake();
    Ok(reg)
}

/// Largest WebSocket message or frame a listener may send, bytes.
pub const LISTENER_MAX_MESSAGE: usize = 4096;

async fn listen_ws(
    State(api): State<Api>,
    Query(q): Query<ListenQuery>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let (reg, rx) = start_listening(&api, &q).await?;
    // A listener only sends acks (`{"ack":"<id>"}`): small messages, small frames.
    Ok(ws
        .max_message_size(LISTENER_MAX_MESSAGE)
        .max_frame_size(LISTENER_MAX_MESSAGE)
        .on_upgrade(move |socket| serve_ws(api, socket, reg, rx)))
}

async fn serve_ws(
    api: Api,
    socket: WebSocket,
    reg: crate::ip::Registration,
    mut rx: tokio::sync::mpsc::Receiver<std::sync::Arc<str>>,
) {
    let (mut tx, mut incoming) = socket.split();
    // Whether the listener said goodbye first (its close is answered by the WebSocket layer).
    let mut peer_closed = false;
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                if tx.send(WsMessage::Text(m.as_ref().into())).await.is_err() {
                    peer_closed = true;
                    break;
                }
            }
            m = incoming.next() => match m {
                Some(Ok(WsMessage::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str())
                        && let Some(id) = v.get("ack").and_then(|a| a.as_str())
                        && let Err(e) = api.proxy.store.ack(id, api.proxy.now_ms()).await
                    {
                        tracing::warn!("listener ack {id}: {e}");
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                    peer_closed = true;
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    if let Ok(mut socket) = tx.reunite(incoming) {
        if peer_closed {
            // Sends the reply to the listener's close frame that the layer queued.
            let _ = socket.flush().await;
        } else {
            crate::ws::close(
                &mut socket,
                Some(axum::extract::ws::CloseFrame {
                    code: 1001,
                    reason: "the listener was replaced or the server is stopping".into(),
                }),
            )
            .await;
        }
    }
    drop(reg);
}

async fn listen_sse(
    State(api): State<Api>,
    Query(q): Query<ListenQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let (reg, rx) = start_listening(&api, &q).await?;
    let stream = futures::stream::unfold((reg, rx), |(reg, mut rx)| async move {
        let m = rx.recv().await?;
        Some((
            Ok(SseEvent::default().event("notification").data(m.as_ref())),
            (reg, rx),
        ))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The VAPID public key for `PushManager.subscribe({applicationServerKey})`.
async fn vapid_key(State(api): State<Api>) -> ApiResult<impl IntoResponse> {
    let vapid = api.proxy.config.vapid.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no VAPID key configured for web push",
        )
    })?;
    Ok(Json(
        serde_json::json!({ "public_key": vapid.public_key() }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, String, Option<String>) {
        let r = e.into_response();
        let status = r.status();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned(), retry)
    }

    #[tokio::test]
    async fn errors_carry_no_internal_detail_and_429_says_when() {
        let (status, body, _) = body_of(
            StoreError::Corrupt("table proxy_subscriptions at /srv/data/vshare.db".into()).into(),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"error":"internal error"}"#);
        let (status, body, _) =
            body_of(anyhow::anyhow!("connect 10.0.0.7:5432: refused").into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("10.0.0.7"), "{body}");
        let refused = crate::guard::Refused {
            scope: crate::guard::Scope::Number,
            wait_ms: 1500,
        };
        let (status, body, retry) = body_of(StoreError::Refused(refused).into()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(body.contains("too many SMS to this number"), "{body}");
        assert_eq!(retry.as_deref(), Some("2"));
    }

    #[test]
    fn the_admin_token_must_be_configured_and_presented() {
        let mut h = HeaderMap::new();
        assert!(!admin_token_matches(Some("t0ken"), &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0ken"),
        );
        assert!(admin_token_matches(Some("t0ken"), &h));
        assert!(!admin_token_matches(Some("t0ken2"), &h));
        assert!(
            !admin_token_matches(None, &h),
            "no token configured: closed"
        );
    }

    #[test]
    fn the_confirmation_text_is_fixed_words_and_the_code() {
        assert_eq!(
            confirmation_text("123456"),
            "vshare: your code is 123456. Reply YES 123456 to get videos by SMS. Not you? Ignore this."
        );
    }
}
