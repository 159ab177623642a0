//! The hand-off to the communication proxy: signed webhooks, retried after a failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use vshare_testkit::wait::wait_for;

struct Delivery {
    headers: Vec<(String, String)>,
    body: String,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A receiver that answers 500 to the first request and 200 to the rest.
fn receiver() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let got2 = got.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
            got2.lock().expect("lock").push(Delivery {
                headers,
                body: String::from_utf8_lossy(&body).into(),
            });
        }
    });
    (url, got)
}

/// HMAC-SHA256 by Python's standard library, an implementation independent of ours.
fn python_hmac(secret: &str, body: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import hmac,hashlib,sys; print('sha256='+hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())", secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn live_and_ready_events_are_signed_and_retried() {
    events_are_signed_and_retried(&[]);
}

/// Without the proxy role the webhook still goes out: only the outbox's webhook dispatcher runs.
#[test]
fn the_webhook_is_delivered_without_the_proxy_role() {
    events_are_signed_and_retried(&["--no-proxy"]);
}

fn events_are_signed_and_retried(extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 5, &[]);
    let (url, got) = receiver();
    let secret = "s3cret-for-tests";
    let mut args = vec!["--webhook-url", &url, "--webhook-secret", secret];
    args.extend_from_slice(extra);
    let server = Server::start(&data, &args);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(10));

    // Both events arrive; the first attempt was answered 500 and was retried.
    wait_for("two delivered events", Duration::from_secs(20), || {
        let g = got.lock().expect("lock");
        let events: Vec<_> = g
            .iter()
            .skip(1)
            .filter_map(|d| d.header("x-vshare-event").map(str::to_string))
            .collect();
        (events.contains(&"stream.live".to_string()) && events.contains(&"video.ready".to_string()))
            .then_some(())
    });
    let g = got.lock().expect("lock");
    let first_id = g[0]
        .header("x-vshare-delivery")
        .expect("delivery id")
        .to_string();
    assert!(
        g.iter()
            .skip(1)
            .any(|d| d.header("x-vshare-delivery") == Some(first_id.as_str())),
        "failed delivery was not retried"
    );
    for d in g.iter() {
        assert_eq!(
            d.header("x-vshare-signature").map(str::to_string),
            Some(python_hmac(secret, &d.body)),
            "bad signature"
        );
    }
    let ready_event = g
        .iter()
        .find(|d| d.header("x-vshare-event") == Some("video.ready"))
        .expect("ready");
    let body: serde_json::Value = serde_json::from_str(&ready_event.body).expect("json");
    assert_eq!(body["event"], "video.ready");
    assert_eq!(body["video"]["id"], ready["id"]);
    assert_eq!(body["video"]["attributes"], ready["attributes"]);
}
