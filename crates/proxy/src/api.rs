//! The proxy's HTTP API, an axum [`Router`] the server merges into its own:
//!
//! - `POST /api/v1/subscriptions` `{"source","channel","address","form"?}` → 201 Subscription
//!   (phone numbers: `pending-confirmation`, and a code goes to the number by SMS);
//! - `POST /api/v1/subscriptions/{id}/confirm` `{"code"}` → the active Subscription;
//! - `GET /api/v1/subscriptions?source=…`, `DELETE /api/v1/subscriptions/{id}` → 204;
//! - `GET /api/v1/notifications?video=…|source=…` → who got what, in which state;
//! - `GET /api/v1/listen?id=…[&source=…]` (WebSocket) and `GET /api/v1/listen/sse?id=…`;
//! - `GET /api/v1/webpush/key` → `{"public_key"}` (VAPID, for `applicationServerKey`).
//!
//! Lists that show addresses need `Authorization: Bearer <admin token>` when one is set.

use std::convert::Infallible;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::{SinkExt, Stream, StreamExt};
use serde::Deserialize;

use crate::Proxy;
use crate::store::{Channel, NewSubscription, StoreError, SubState};

/// Errors as HTTP answers, in one place.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            StoreError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router; `admin_token` guards the lists (None: open, for development).
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
        .with_state(Api { proxy, admin_token })
}

#[derive(Clone)]
struct Api {
    proxy: Proxy,
    admin_token: Option<String>,
}

impl Api {
    fn authorize(&self, headers: &HeaderMap) -> ApiResult<()> {
        let Some(token) = &self.admin_token else {
            return Ok(());
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given == Some(token.as_str()) {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "this list needs Authorization: Bearer <admin token>".into(),
            ))
        }
    }
}

/// An early, clear 400 for a webhook or push endpoint the proxy would refuse to reach (the
/// check that counts is made again on the resolved address at each delivery).
fn check_destination(egress: &crate::egress::EgressPolicy, req: &NewSubscription) -> ApiResult<()> {
    let bad = |e: String| ApiError(StatusCode::BAD_REQUEST, e);
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
    Json(req): Json<NewSubscription>,
) -> ApiResult<impl IntoResponse> {
    if !api.proxy.source_exists(&req.source).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no source {:?}", req.source),
        ));
    }
    if req.channel == Channel::Webpush && api.proxy.config.vapid.is_none() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no VAPID key configured for web push".into(),
        ));
    }
    check_destination(&api.proxy.config.egress, &req)?;
    let smpp = api.proxy.config.smpp.clone();
    if matches!(req.channel, Channel::Sms | Channel::Wap) {
        crate::store::normalize_number(&req.address)?;
    }
    if matches!(req.channel, Channel::Sms | Channel::Wap) && smpp.is_none() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no SMSC configured to send the confirmation code".into(),
        ));
    }
    let sub = api.proxy.store.subscribe(&req, api.proxy.now_ms()).await?;
    if sub.state == SubState::PendingConfirmation
        && let Some(smpp) = smpp
    {
        let code = sub.code.clone().unwrap_or_default();
        let text = format!(
            "vshare: reply YES {code} to get {}'s videos by SMS.",
            sub.source
        );
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
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no subscription {id}"),
        ))
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
    let sub = api
        .proxy
        .store
        .subscription(&id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no subscription {id}")))?;
    if sub.state == SubState::PendingConfirmation && sub.code.as_deref() == Some(&body.code) {
        api.proxy
            .store
            .set_sub_state(&id, SubState::Active, api.proxy.now_ms())
            .await?;
        Ok(Json(crate::Subscription {
            state: SubState::Active,
            code: None,
            ..sub
        }))
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            "wrong code or nothing to confirm".into(),
        ))
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
    source: Option<String>,
}

/// Registers a listener (subscribing it to `source` if given) and makes its waiting rows due.
async fn start_listening(
    api: &Api,
    q: &ListenQuery,
) -> ApiResult<(
    crate::ip::Registration,
    tokio::sync::mpsc::Receiver<std::sync::Arc<str>>,
)> {
    if let Some(source) = &q.source {
        if !api.proxy.source_exists(source).await? {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no source {source:?}"),
            ));
        }
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
        ApiError(
            StatusCode::NOT_FOUND,
            "no VAPID key configured for web push".into(),
        )
    })?;
    Ok(Json(
        serde_json::json!({ "public_key": vapid.public_key() }),
    ))
}
