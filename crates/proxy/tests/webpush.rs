//! Web Push to a local push service: the test plays the browser (its own P-256 key and auth
//! secret) and the push service (an HTTP endpoint), decrypts the RFC 8291 payload with
//! `web_push_native::decrypt`, and checks the RFC 8292 VAPID token.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use vshare_proxy::dispatcher::State;
use vshare_proxy::webpush::Vapid;
use vshare_proxy::{Channel, Message, NewSubscription, Proxy};
use vshare_testkit::wait::wait_until;
use web_push_native::jwt_simple::prelude::*;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::rand_core::{OsRng, RngCore};

type Pushed = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_reaches_the_push_service_encrypted_and_signed() {
    init_tracing();
    let pushed: Pushed = Arc::default();
    let app = Router::new()
        .route(
            "/push/abc",
            post(
                |AxState(p): AxState<Pushed>, headers: HeaderMap, body: Bytes| async move {
                    p.lock().expect("lock").push((headers, body));
                    StatusCode::CREATED
                },
            ),
        )
        .route("/push/gone", post(|| async { StatusCode::GONE }))
        .with_state(pushed.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(l, app).await.expect("serve") });

    // The browser's side of RFC 8291: a P-256 key pair and a 16-octet auth secret.
    let ua_secret = p256::SecretKey::random(&mut OsRng);
    let ua_public = ua_secret.public_key();
    let mut auth = [0u8; 16];
    OsRng.fill_bytes(&mut auth);
    let subscription = |path: &str| {
        serde_json::json!({
            "endpoint": format!("http://127.0.0.1:{port}{path}"),
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(ua_public.to_sec1_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            }
        })
        .to_string()
    };

    let dir = tempfile::tempdir().expect("tmp");
    let mut c = config(&sqlite_url(&dir), None);
    let (vapid, private) = Vapid::generate("mailto:ops@vshare.test");
    // The stored private key gives the same key back.
    assert_eq!(
        Vapid::from_private(&private, "mailto:ops@vshare.test")
            .expect("reload")
            .public_key(),
        vapid.public_key()
    );
    c.vapid = Some(vapid.clone());
    let proxy = Proxy::open(c).await.expect("proxy");
    for path in ["/push/abc", "/push/gone"] {
        proxy
            .store
            .subscribe_test(
                &NewSubscription {
                    source: "alice".into(),
                    channel: Channel::Webpush,
                    address: subscription(path),
                    form: None,
                },
                1,
            )
            .await
            .expect("subscribe");
    }
    // A subscription with a bad key is refused clearly.
    let bad = proxy
        .store
        .subscribe_test(
            &NewSubscription {
                source: "alice".into(),
                channel: Channel::Webpush,
                address: r#"{"endpoint":"https://push.example/x","keys":{"p256dh":"AAAA","auth":"AAAA"}}"#.into(),
                form: None,
            },
            1,
        )
        .await
        .expect_err("bad key");
    assert!(bad.to_string().contains("p256dh"), "{bad}");

    let _tasks = proxy.spawn();
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    wait_until(Duration::from_secs(10), "both pushes final", || async {
        proxy
            .store
            .notifications(Some("v1"), None)
            .await
            .expect("rows")
            .iter()
            .all(|r| r.state.is_final())
    })
    .await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    let by = |p: &str| rows.iter().find(|r| r.address.contains(p)).expect("row");
    assert_eq!(by("/push/abc").state, State::Sent);
    assert_eq!(by("/push/gone").state, State::Dead);

    let got = pushed.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "one push");
    let (headers, body) = &got[0];
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(h("content-encoding"), "aes128gcm");
    assert!(h("ttl").parse::<u64>().is_ok());
    // RFC 8291: decrypt with the browser's secret.
    let plain = web_push_native::decrypt(
        body.to_vec(),
        &ua_secret,
        &web_push_native::Auth::clone_from_slice(&auth),
    )
    .expect("decrypt");
    let m: Message = serde_json::from_slice(&plain).expect("message JSON");
    assert_eq!(m.video_id, "v1");
    assert_eq!(m.records, vec![record("v1")]);
    // RFC 8292: "vapid t=<JWT>, k=<public key>", signed by our key, for the push service.
    let authz = h("authorization");
    let rest = authz.strip_prefix("vapid t=").expect("vapid scheme");
    let (token, k) = rest.split_once(", k=").expect("t and k");
    assert_eq!(k, vapid.public_key());
    let key = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(k).expect("k")).expect("key");
    let claims = key
        .verify_token::<NoCustomClaims>(token, None)
        .expect("valid JWT");
    assert_eq!(claims.subject.as_deref(), Some("mailto:ops@vshare.test"));
    assert!(claims.audiences.is_some());
}

/// What the scripted push service saw on one path: (seconds since start, status answered).
type Seen = Arc<Mutex<Vec<(String, f64, u16)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_service_answering_500_or_429_is_retried_and_accepts_once() {
    init_tracing();
    let t0 = std::time::Instant::now();
    let seen: Seen = Arc::default();
    // /push/flaky: 500 once, then 201. /push/busy: 429 with Retry-After: 2 once, then 201.
    let app = Router::new()
        .route(
            "/push/{name}",
            post(
                move |AxState(s): AxState<Seen>,
                      axum::extract::Path(name): axum::extract::Path<String>| async move {
                    let mut s = s.lock().expect("lock");
                    let first = !s.iter().any(|(n, _, _)| *n == name);
                    let (status, retry) = match (name.as_str(), first) {
                        ("flaky", true) => (StatusCode::INTERNAL_SERVER_ERROR, None),
                        ("busy", true) => (StatusCode::TOO_MANY_REQUESTS, Some("2")),
                        _ => (StatusCode::CREATED, None),
                    };
                    s.push((name, t0.elapsed().as_secs_f64(), status.as_u16()));
                    let mut headers = HeaderMap::new();
                    if let Some(r) = retry {
                        headers.insert("retry-after", r.parse().expect("header"));
                    }
                    (status, headers)
                },
            ),
        )
        .with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(l, app).await.expect("serve") });

    let ua_secret = p256::SecretKey::random(&mut OsRng);
    let mut auth = [0u8; 16];
    OsRng.fill_bytes(&mut auth);
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = config(&sqlite_url(&dir), None);
    c.vapid = Some(Vapid::generate("mailto:ops@vshare.test").0);
    let proxy = Proxy::open(c).await.expect("proxy");
    for name in ["flaky", "busy"] {
        proxy
            .store
            .subscribe_test(
                &NewSubscription {
                    source: "alice".into(),
                    channel: Channel::Webpush,
                    address: serde_json::json!({
                        "endpoint": format!("http://127.0.0.1:{port}/push/{name}"),
                        "keys": {
                            "p256dh": URL_SAFE_NO_PAD.encode(ua_secret.public_key().to_sec1_bytes()),
                            "auth": URL_SAFE_NO_PAD.encode(auth),
                        }
                    })
                    .to_string(),
                    form: None,
                },
                1,
            )
            .await
            .expect("subscribe");
    }
    let _tasks = proxy.spawn();
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    wait_until(Duration::from_secs(10), "both pushes final", || async {
        proxy
            .store
            .notifications(Some("v1"), None)
            .await
            .expect("rows")
            .iter()
            .all(|r| r.state.is_final())
    })
    .await;
    // Time for a second (duplicate) push to show up, were there one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    for name in ["flaky", "busy"] {
        let r = rows
            .iter()
            .find(|r| r.address.contains(&format!("/push/{name}")))
            .expect("row");
        // RFC 8030 §5: 201 means the push service accepted it; the row is `sent` (no push
        // receipt asked for, so no delivery to the browser is claimed).
        assert_eq!(r.state, State::Sent, "{name}: {r:?}");
        assert_eq!(r.attempts, 2, "{name}: one failed try, one accepted");
    }
    let seen = seen.lock().expect("lock").clone();
    eprintln!("push service saw {seen:?}");
    for name in ["flaky", "busy"] {
        let hits: Vec<_> = seen.iter().filter(|(n, _, _)| n == name).collect();
        assert_eq!(hits.len(), 2, "{name}: {hits:?}");
        assert_eq!(
            hits.iter().filter(|(_, _, s)| *s == 201).count(),
            1,
            "{name}: accepted once"
        );
    }
    let at = |name: &str, i: usize| {
        seen.iter()
            .filter(|(n, _, _)| n == name)
            .nth(i)
            .expect("hit")
            .1
    };
    // The 500 is retried after the backoff (100 ms ± 20 % here)…
    let flaky_gap = at("flaky", 1) - at("flaky", 0);
    assert!(
        (0.07..1.5).contains(&flaky_gap),
        "500 retried after {flaky_gap:.2} s"
    );
    // …the 429 no sooner than its Retry-After: 2.
    let busy_gap = at("busy", 1) - at("busy", 0);
    assert!(
        (2.0..3.5).contains(&busy_gap),
        "429 retried after {busy_gap:.2} s"
    );
}
