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
            .subscribe(
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
        .subscribe(
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
