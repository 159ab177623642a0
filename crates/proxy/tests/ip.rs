//! The direct-IP path and the HTTP API: webhooks that fail or never answer (retries, then dead,
//! nobody else delayed), WebSocket and SSE listeners, subscribe/unsubscribe over the API.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use vshare_proxy::dispatcher::State;
use vshare_proxy::{Channel, Message, Proxy};
use vshare_testkit::wait::wait_until;

#[derive(Default)]
struct Hooks {
    ok: Vec<(Instant, String, String, String)>,
    failed: usize,
    hung: usize,
}

async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, router).await.expect("serve") });
    format!("127.0.0.1:{}", a.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_failing_or_silent_retry_then_dead_and_delay_nobody() {
    init_tracing();
    let hooks = Arc::new(Mutex::new(Hooks::default()));
    let app = Router::new()
        .route(
            "/ok/{i}",
            post(
                |AxState(h): AxState<Arc<Mutex<Hooks>>>,
                 Path(i): Path<String>,
                 headers: HeaderMap,
                 body: String| async move {
                    let sig = headers
                        .get("x-vshare-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    h.lock()
                        .expect("lock")
                        .ok
                        .push((Instant::now(), i, sig, body));
                    StatusCode::OK
                },
            ),
        )
        .route(
            "/fail",
            post(|AxState(h): AxState<Arc<Mutex<Hooks>>>| async move {
                h.lock().expect("lock").failed += 1;
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/hang",
            post(|AxState(h): AxState<Arc<Mutex<Hooks>>>| async move {
                h.lock().expect("lock").hung += 1;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK
            }),
        )
        .route("/gone", post(|| async { StatusCode::GONE }))
        .with_state(hooks.clone());
    let base = serve(app).await;
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), None))
        .await
        .expect("proxy");
    let mut urls: Vec<String> = vec![
        format!("http://{base}/fail"),
        format!("http://{base}/hang"),
        format!("http://{base}/gone"),
        // Nothing listens on port 9 of loopback: connection refused.
        "http://127.0.0.1:9/refused".to_string(),
    ];
    urls.extend((0..40).map(|i| format!("http://{base}/ok/{i}")));
    proxy
        .store
        .bulk_active("alice", Channel::Webhook, "json", &urls, 1)
        .await
        .expect("subs");
    let _tasks = proxy.spawn();
    let t0 = Instant::now();
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    wait_until(Duration::from_secs(5), "40 good webhooks", || async {
        hooks.lock().expect("lock").ok.len() >= 40
    })
    .await;
    let last_ok = hooks
        .lock()
        .expect("lock")
        .ok
        .iter()
        .map(|o| o.0)
        .max()
        .expect("some");
    assert!(
        last_ok - t0 < Duration::from_millis(1500),
        "good endpoints were delayed: {:?}",
        last_ok - t0
    );
    for (_, _, sig, body) in &hooks.lock().expect("lock").ok {
        assert_eq!(*sig, vshare_proxy::ip::signature("s3cret", body.as_bytes()));
        let m: Message = serde_json::from_str(body).expect("message JSON");
        assert_eq!(m.video_id, "v1");
        assert_eq!(m.records, vec![record("v1")]);
    }
    wait_until(
        Duration::from_secs(20),
        "the bad endpoints to be given up",
        || async {
            proxy
                .store
                .notifications(Some("v1"), None)
                .await
                .expect("rows")
                .iter()
                .all(|r| r.state.is_final())
        },
    )
    .await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    let by = |suffix: &str| {
        rows.iter()
            .find(|r| r.address.ends_with(suffix))
            .expect("row")
    };
    assert_eq!((by("/fail").state, by("/fail").attempts), (State::Dead, 4));
    assert_eq!(
        by("/fail").last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    assert_eq!((by("/hang").state, by("/hang").attempts), (State::Dead, 4));
    assert!(
        by("/hang")
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no answer"))
    );
    assert_eq!((by("/gone").state, by("/gone").attempts), (State::Dead, 1));
    assert_eq!(
        (by("/refused").state, by("/refused").attempts),
        (State::Dead, 4)
    );
    assert_eq!(
        rows.iter().filter(|r| r.state == State::Delivered).count(),
        40
    );
    let h = hooks.lock().expect("lock");
    assert_eq!(
        (h.failed, h.hung, h.ok.len()),
        (4, 4, 40),
        "no duplicate deliveries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_sse_listeners_receive_the_message() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), None))
        .await
        .expect("proxy");
    let _tasks = proxy.spawn();
    let base = serve(proxy.router(None)).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{base}/api/v1/listen?id=phone-1&secret=phone-1-secret-0123&source=alice"
    ))
    .await
    .expect("ws connect");
    // An SSE listener subscribes itself the same way.
    let http = reqwest::Client::new();
    let mut sse = http
        .get(format!(
            "http://{base}/api/v1/listen/sse?id=browser-1&secret=browser-secret-0123&source=alice"
        ))
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);

    assert_eq!(
        proxy
            .handle_event(&live_event("v1", "alice"))
            .await
            .expect("event"),
        2
    );
    let text = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("in time")
        .expect("a message")
        .expect("ws ok");
    let WsMessage::Text(text) = text else {
        panic!("not text: {text:?}")
    };
    let m: Message = serde_json::from_str(&text).expect("json");
    assert_eq!((m.video_id.as_str(), m.source.as_str()), ("v1", "alice"));
    assert_eq!(m.records, vec![record("v1")]);
    ws.send(WsMessage::Text(
        serde_json::json!({ "ack": m.notification })
            .to_string()
            .into(),
    ))
    .await
    .expect("ack");

    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline.into(), sse.chunk())
            .await
            .expect("sse in time")
            .expect("sse read")
            .expect("sse open");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(got.starts_with("event: notification\ndata: "), "{got:?}");
    let data = got
        .trim_end()
        .trim_start_matches("event: notification\ndata: ");
    let m2: Message = serde_json::from_str(data).expect("sse json");
    assert_eq!(m2.video_id, "v1");

    wait_until(Duration::from_secs(5), "ack recorded", || async {
        proxy
            .store
            .notifications(Some("v1"), None)
            .await
            .expect("rows")
            .iter()
            .any(|r| r.address == "phone-1" && r.state == State::Delivered)
    })
    .await;

    // A listener subscribed over the API but offline gets its message when it connects.
    let r = http
        .post(format!("http://{base}/api/v1/subscriptions"))
        .json(&serde_json::json!({"source": "bob", "channel": "websocket", "address": "late-1"}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    proxy
        .handle_event(&live_event("v2", "bob"))
        .await
        .expect("event");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (mut late, _) = tokio_tungstenite::connect_async(format!(
        "ws://{base}/api/v1/listen?id=late-1&secret=late-1-secret-01234"
    ))
    .await
    .expect("late connect");
    let t0 = Instant::now();
    let msg = tokio::time::timeout(Duration::from_secs(3), late.next())
        .await
        .expect("backlog in time")
        .expect("message")
        .expect("ok");
    assert!(msg.to_text().expect("text").contains("\"video_id\":\"v2\""));
    assert!(t0.elapsed() < Duration::from_secs(2));

    // The client `vshare subscribe listen` (and `vshare open`) uses.
    let api = vshare_proxy::client::ApiClient::new(&format!("http://{base}"), None);
    let listening = tokio::spawn(async move {
        let mut got = Vec::new();
        api.listen("cli-1", "cli-1-secret-0123456", Some("carol"), |m| {
            got.push(m);
            false
        })
        .await
        .expect("listen");
        got
    });
    wait_until(Duration::from_secs(5), "cli-1 connected", || async {
        proxy.hub.is_connected("cli-1")
    })
    .await;
    proxy
        .handle_event(&live_event("v3", "carol"))
        .await
        .expect("event");
    let got = tokio::time::timeout(Duration::from_secs(5), listening)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].video_id, "v3");
    wait_until(Duration::from_secs(5), "cli-1 ack", || async {
        proxy
            .store
            .notifications(Some("v3"), None)
            .await
            .expect("rows")
            .iter()
            .all(|r| r.state == State::Delivered)
    })
    .await;
}

#[tokio::test]
async fn api_subscribe_errors_list_and_unsubscribe() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), None))
        .await
        .expect("proxy")
        .with_source_check(Arc::new(|s: String| {
            Box::pin(async move { Ok(s == "alice") })
        }));
    let base = serve(proxy.router(Some("admin".into()))).await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("http://{base}/api/v1/subscriptions"))
            .json(&body)
            .send()
    };
    let r =
        post(serde_json::json!({"source": "nobody", "channel": "webhook", "address": "http://x/"}))
            .await
            .expect("post");
    assert_eq!(r.status(), 404);
    let r = post(serde_json::json!({"source": "alice", "channel": "sms", "address": "call me"}))
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("not a phone number"));
    // A number needs an SMSC to confirm it.
    let r = post(serde_json::json!({"source": "alice", "channel": "sms", "address": "+15551234"}))
        .await
        .expect("post");
    assert_eq!(r.status(), 503);
    let r = post(serde_json::json!({"source": "alice", "channel": "webhook", "address": "https://example.invalid/hook"}))
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let sub: serde_json::Value = r.json().await.expect("json");
    assert_eq!(sub["state"], "active");
    let id = sub["id"].as_str().expect("id").to_string();
    let r = http
        .get(format!("http://{base}/api/v1/notifications?video=v1"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("http://{base}/api/v1/subscriptions?source=alice"))
        .bearer_auth("admin")
        .send()
        .await
        .expect("get");
    let list: serde_json::Value = r.json().await.expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let r = http
        .delete(format!("http://{base}/api/v1/subscriptions/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let r = http
        .delete(format!("http://{base}/api/v1/subscriptions/nope"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 404);
    assert_eq!(
        proxy
            .handle_event(&live_event("v1", "alice"))
            .await
            .expect("e"),
        0
    );
    let r = http
        .get(format!("http://{base}/api/v1/notifications?video=v1"))
        .bearer_auth("admin")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}
