//! The communication proxy role of `vshare serve`: a listener subscribed to a source gets the
//! live stream's and the VOD's attribute records, once each, with delivery states visible.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn a_websocket_listener_gets_live_and_ready_notifications_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_named_key(&data, "alice");
    // The notification list is an admin endpoint: closed without an admin token.
    let server = Server::start_with_env(
        &data,
        &["--ladder", "none"],
        &[("VSHARE_ADMIN_TOKEN", "proxy-test-admin".to_string())],
    );

    // A source that does not exist is refused.
    let out = vshare()
        .args([
            "subscribe",
            "--server",
            &server.http,
            "listen",
            "nobody",
            "--count",
            "1",
        ])
        .output()
        .expect("subscribe");
    assert!(
        !out.status.success(),
        "subscribing to an unknown source succeeded"
    );

    let mut listener = vshare()
        .args([
            "subscribe",
            "--server",
            &server.http,
            "listen",
            "alice",
            "--id",
            "phone-b",
            "--count",
            "2",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vshare subscribe listen");
    let stdout = listener.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Let the listener connect before the stream starts.
    std::thread::sleep(Duration::from_secs(1));

    let clip = make_clip(dir.path(), "clip.mp4", 5, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(15));
    let id = ready["id"].as_str().expect("id").to_string();

    let mut messages = Vec::new();
    while messages.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("listener got {messages:?}; server:\n{}", server.log()));
        messages.push(
            serde_json::from_str::<serde_json::Value>(&line)
                .unwrap_or_else(|e| panic!("{e}: {line}")),
        );
    }
    let status = listener.wait().expect("listener");
    assert!(status.success());
    let text = serde_json::to_string(&messages).expect("json");
    assert!(
        text.contains(&format!("/live/{id}/index.m3u8")),
        "no live record: {text}"
    );
    assert!(
        text.contains(&format!("/vod/{id}/video.mp4")),
        "no VOD record: {text}"
    );

    // The notifications are listed with their delivery state.
    let out = vshare()
        .args(["subscribe", "--server", &server.http, "status", &id])
        .env("VSHARE_ADMIN_TOKEN", "proxy-test-admin")
        .output()
        .expect("status");
    let status_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status_text.matches("delivered").count(), 2, "{status_text}");
}
