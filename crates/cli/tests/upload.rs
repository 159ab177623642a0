//! The upload protocol end to end: `vshare publish --protocol upload` against `vshare serve`,
//! a connection cut mid-stream and resumed, and bad senders closed with their codes while a
//! good upload goes on. Recordings are checked with ffprobe.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vshare_testkit::ffmpeg::{
    decode_errors, ffprobe, ffprobe_csv, frame_count, number, stream_of, video_packet_times,
};
use vshare_testkit::process::require_tool;

/// Runs `vshare publish --protocol upload --json` and returns its statistics.
fn upload(server: &str, key: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    let out = vshare()
        .args(["publish", "--protocol", "upload", server, "--key", key])
        .args([
            "--test-pattern",
            "--duration",
            &format!("{seconds}s"),
            "--json",
        ])
        .args(extra)
        .stderr(Stdio::inherit())
        .output()
        .expect("run vshare publish");
    assert!(
        out.status.success(),
        "publish failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.find('{').map(|i| &text[i..]).expect("JSON output");
    serde_json::from_str(json).expect("stats JSON")
}

fn vod_mp4(server: &Server, key: &str) -> (serde_json::Value, String) {
    let v = wait_video_state(server, key, &["ready"], Duration::from_secs(30));
    let url = v["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .and_then(|r| r["url"].as_str())
        .expect("an mp4 record")
        .to_string();
    (v, url)
}

#[test]
fn an_upload_goes_live_returns_its_records_and_records_every_frame() {
    require_tool("ffprobe");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--no-proxy", "--ladder", "none"]);
    let key = create_key(dir.path());
    let stats = upload(&server.http, &key, 6, &[]);
    let sent = stats["video_frames"].as_u64().expect("video frames");
    // A loaded machine's capture may fall behind 30 fps; what counts is that every frame sent
    // is recorded (below), so only "a real stream was sent" is asked here.
    assert!(sent >= 60, "frames of 6 s at 30 fps: {stats}");
    assert_eq!(stats["dropped_frames"], 0, "loopback needs no dropping");
    let (video, mp4) = vod_mp4(&server, &key);
    assert_eq!(decode_errors(&mp4), "", "the VOD decodes cleanly");
    assert_eq!(
        frame_count(&mp4, "v:0"),
        sent,
        "every frame sent is recorded"
    );
    let audio = frame_count(&mp4, "a:0");
    assert!(audio >= 270, "6 s of 48 kHz AAC is ~281 frames: {audio}");
    let probe = ffprobe(&mp4);
    let duration = number(&probe["format"]["duration"]);
    assert!((duration - 6.0).abs() < 0.2, "duration {duration}");
    // The attribute data describes what ffprobe sees.
    let record = video["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .expect("mp4 record");
    let v = stream_of(&probe, "video");
    assert_eq!(record["width"], v["width"]);
    assert_eq!(record["height"], v["height"]);
    // The video names its source (what viewers subscribe to): the key's id, as it has no name.
    let listed = vshare()
        .args(["keys", "list", "--data"])
        .arg(dir.path())
        .output()
        .expect("keys list");
    let key_id = String::from_utf8_lossy(&listed.stdout)
        .split('\t')
        .next()
        .unwrap_or_default()
        .to_string();
    let id = video["id"].as_str().expect("id");
    let full = get_json(&format!("{}/api/v1/videos/{id}", server.http));
    assert_eq!(full["source"], key_id.as_str(), "{full}");
    // Protocol overhead on loopback: headers and control messages are a small share.
    let media = stats["media_bytes"].as_f64().expect("media bytes");
    let wire = stats["wire_bytes"].as_f64().expect("wire bytes");
    assert!(
        wire > media && wire < media * 1.03,
        "wire {wire} vs media {media}"
    );
}

/// A TCP relay that can cut every connection through it and refuse new ones for a while.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        o.lock().expect("lock").push(c);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, down, open }
    }

    /// Cuts every connection and refuses new ones for `outage`.
    fn cut_for(&self, outage: Duration) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        std::thread::sleep(outage);
        self.down.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_connection_resumes_and_the_recording_has_no_hole() {
    require_tool("ffprobe");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--no-proxy", "--ladder", "none"]);
    let key = create_key(dir.path());
    let relay = Relay::start(server.http.trim_start_matches("http://").to_string());
    let via = format!("http://127.0.0.1:{}", relay.port);
    let cutter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        relay.cut_for(Duration::from_secs(2));
        relay
    });
    let stats = upload(&via, &key, 10, &[]);
    let _relay = cutter.join().expect("cutter");
    assert!(
        stats["reconnects"].as_u64() >= Some(1),
        "it reconnected: {stats}"
    );
    assert_eq!(
        stats["dropped_frames"], 0,
        "nothing dropped while the line was down"
    );
    let sent = stats["video_frames"].as_u64().expect("frames");
    let (_, mp4) = vod_mp4(&server, &key);
    assert_eq!(decode_errors(&mp4), "", "the VOD decodes cleanly");
    assert_eq!(
        frame_count(&mp4, "v:0"),
        sent,
        "every frame sent is in the recording once"
    );
    let times = video_packet_times(&mp4);
    let gap = largest_gap(&times);
    assert!(
        gap < 0.05,
        "no hole: the largest gap between frames is {gap:.3} s"
    );
    let span = times.last().copied().unwrap_or(0.0) - times.first().copied().unwrap_or(0.0);
    assert!((span - 10.0).abs() < 0.2, "10 s recorded: {span:.3}");
    server.expect_logged("resumed=true");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(http: &str) -> Ws {
    let url = format!("{}/api/v1/upload", http.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "vshare-upload.1".parse().expect("header"),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"vshare-upload.1"[..])
    );
    ws
}

/// An audio-only hello (AAC-LC 48 kHz stereo).
fn hello(token: &str) -> Message {
    Message::text(
        serde_json::json!({
            "type": "hello", "version": 1, "token": token,
            "tracks": [{"track": 1, "kind": "audio", "codec": "mp4a.40.2", "description": "EZA="}]
        })
        .to_string(),
    )
}

fn piece(seq: u32, dts: i64, offset: u32, total: u32, len: usize) -> Message {
    let mut m = vec![1u8, 1, 1, 0];
    if offset as usize + len == total as usize {
        m[2] |= 2;
    }
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&dts.to_be_bytes());
    m.extend_from_slice(&dts.to_be_bytes());
    m.extend_from_slice(&offset.to_be_bytes());
    m.extend_from_slice(&total.to_be_bytes());
    m.extend(std::iter::repeat_n(0x21u8, len));
    Message::binary(m)
}

/// Reads until the close frame; returns (close code, the `error` message's text).
async fn close_of(ws: &mut Ws) -> (u16, String) {
    let mut error = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["type"] == "error" {
                    error = v["message"].as_str().unwrap_or_default().to_string();
                }
            }
            Ok(Some(Ok(Message::Close(Some(f))))) => return (u16::from(f.code), error),
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn welcomed(http: &str, key: &str) -> Ws {
    let mut ws = open(http).await;
    ws.send(hello(key)).await.expect("hello");
    loop {
        let m = ws.next().await.expect("message").expect("ok");
        if let Message::Text(t) = m
            && t.as_str().contains("\"welcome\"")
        {
            return ws;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_senders_are_closed_with_their_codes_while_a_good_upload_goes_on() {
    require_tool("ffprobe");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--no-proxy", "--ladder", "none"]);
    let good_key = create_key(dir.path());
    let bad_key = create_key(dir.path());
    let http = server.http.clone();
    let good = {
        let (http, key) = (http.clone(), good_key.clone());
        tokio::task::spawn_blocking(move || upload(&http, &key, 8, &[]))
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A wrong token.
    let mut ws = open(&http).await;
    ws.send(hello("sk-not-a-key")).await.expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4001, "{why}");
    assert!(why.contains("token"), "{why}");
    // Binary before hello.
    let mut ws = open(&http).await;
    ws.send(piece(0, 0, 0, 10, 10)).await.expect("send");
    assert_eq!(close_of(&mut ws).await.0, 4000);
    // A frame over the 8 MiB limit.
    let mut ws = welcomed(&http, &bad_key).await;
    ws.send(piece(0, 0, 0, 9 << 20, 100)).await.expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4002, "{why}");
    // Out of order: frame 1 before frame 0 (the key is free again once the session ended).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = welcomed(&http, &bad_key).await;
    ws.send(piece(1, 0, 0, 10, 10)).await.expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4003, "{why}");
    assert!(why.contains("where 0 was due"), "{why}");
    // A flood of tiny messages.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = welcomed(&http, &bad_key).await;
    let mut sent = 0u32;
    for i in 0..3000u32 {
        if ws.send(piece(i, i64::from(i), 0, 10, 10)).await.is_err() {
            break;
        }
        sent += 1;
    }
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4004, "{why} after {sent} messages");
    // Garbage JSON.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = welcomed(&http, &bad_key).await;
    ws.send(Message::text("{\"type\":\"launch\"}"))
        .await
        .expect("send");
    assert_eq!(close_of(&mut ws).await.0, 4000);
    // A second upload on a key that is publishing.
    let mut ws = open(&http).await;
    ws.send(hello(&good_key)).await.expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4005, "{why}");
    // Resuming a session that does not exist.
    let mut ws = open(&http).await;
    let resume = serde_json::json!({"type": "hello", "version": 1, "token": bad_key,
                                    "resume": {"session": "nosuchsession"}});
    ws.send(Message::text(resume.to_string()))
        .await
        .expect("send");
    assert_eq!(close_of(&mut ws).await.0, 4006);

    // Meanwhile the good upload went on whole.
    let stats = good.await.expect("good upload");
    let sent = stats["video_frames"].as_u64().expect("frames");
    assert_eq!(stats["reconnects"], 0);
    let (_, mp4) = vod_mp4(&server, &good_key);
    assert_eq!(frame_count(&mp4, "v:0"), sent);
    for needle in ["close 4001", "close 4002", "close 4003", "close 4004"] {
        server.expect_logged(needle);
    }
}

/// Reads messages until `welcome`; returns it.
async fn welcome_of(ws: &mut Ws) -> serde_json::Value {
    loop {
        let m = ws.next().await.expect("message").expect("ok");
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON");
            if v["type"] == "welcome" {
                return v;
            }
        }
    }
}

fn hello_with(token: &str, features: &[&str]) -> Message {
    Message::text(
        serde_json::json!({
            "type": "hello", "version": 1, "token": token, "features": features,
            "tracks": [{"track": 1, "kind": "audio", "codec": "mp4a.40.2", "description": "EZA="}]
        })
        .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_is_negotiated_bounded_and_waited_for_as_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let conf = dir.path().join("vshare.toml");
    std::fs::write(
        &conf,
        "[limits]\nupload_backfill_max_frames = 5\nupload_backfill_wait_s = 1\n",
    )
    .expect("config");
    let server = Server::start(
        &data,
        &[
            "--config",
            conf.to_str().expect("path"),
            "--no-proxy",
            "--ladder",
            "none",
        ],
    );
    let key = create_key(&data);
    let http = server.http.clone();

    // Asked for: granted, with the configured limits; a promise over them is a flood.
    let mut ws = open(&http).await;
    ws.send(hello_with(&key, &["backfill"]))
        .await
        .expect("send");
    let w = welcome_of(&mut ws).await;
    assert_eq!(w["features"], serde_json::json!(["backfill"]));
    assert_eq!(w["backfill"]["max_frames"], 5);
    assert_eq!(w["backfill"]["max_bytes"], 64 << 20);
    assert_eq!(w["backfill"]["wait_ms"], 1000);
    ws.send(Message::text(r#"{"type":"backfill","frames":6}"#))
        .await
        .expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4004, "{why}");

    // Not asked for (an old sender): nothing granted, and a late frame is malformed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = open(&http).await;
    ws.send(hello(&key)).await.expect("send");
    let w = welcome_of(&mut ws).await;
    assert!(
        w.get("features").is_none() && w.get("backfill").is_none(),
        "{w}"
    );
    let Message::Binary(mut late) = piece(0, 0, 0, 10, 10) else {
        panic!("binary")
    };
    let mut bytes = late.to_vec();
    bytes[2] |= 0x04;
    late = bytes.into();
    ws.send(Message::Binary(late)).await.expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 4000, "{why}");

    // One frame promised and never sent: the server waits the configured second after `end`,
    // then closes normally and says the backfill is incomplete, one frame owed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = open(&http).await;
    ws.send(hello_with(&key, &["backfill"]))
        .await
        .expect("send");
    welcome_of(&mut ws).await;
    ws.send(Message::text(r#"{"type":"backfill","frames":1}"#))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"type":"end","seq":0}"#))
        .await
        .expect("send");
    let ended = std::time::Instant::now();
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 1000, "{why}");
    assert!(
        ended.elapsed() >= Duration::from_millis(900),
        "the server waited for the frame owed"
    );
    let auth = format!("Authorization: Bearer {key}");
    let (status, body) = http_get_with(&format!("{http}/api/v1/publish/status"), &[&auth]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v["backfill"]["state"], "incomplete", "{v}");
    assert_eq!(v["backfill"]["frames_owed"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_vod_records_say_how_many_frames_are_still_coming_until_they_come() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let conf = dir.path().join("vshare.toml");
    // The wait after `end` outlasts the test: only the late frame ends the session.
    std::fs::write(&conf, "[limits]\nupload_backfill_wait_s = 600\n").expect("config");
    let server = Server::start(
        &data,
        &[
            "--config",
            conf.to_str().expect("path"),
            "--no-proxy",
            "--ladder",
            "none",
        ],
    );
    let key = create_key(&data);
    let mut ws = open(&server.http).await;
    ws.send(hello_with(&key, &["backfill"]))
        .await
        .expect("send");
    welcome_of(&mut ws).await;
    // Two seconds of audio frames, the eleventh held back and promised.
    let frame_us = 1024 * 1_000_000 / 48_000;
    let mut seq = 0;
    for i in (0..94).filter(|&i| i != 10) {
        ws.send(piece(seq, i * frame_us, 0, 40, 40))
            .await
            .expect("send");
        seq += 1;
    }
    ws.send(Message::text(r#"{"type":"backfill","frames":1}"#))
        .await
        .expect("send");
    ws.send(Message::text(format!(r#"{{"type":"end","seq":{seq}}}"#)))
        .await
        .expect("send");

    // The VOD made at the stop is there, and its records say one frame is still coming.
    let video = wait_video_state(&server, &key, &["ready"], Duration::from_secs(60));
    let records = video["attributes"].as_array().expect("records");
    assert!(!records.is_empty(), "{video}");
    for r in records {
        assert_eq!(r["frames_coming"], 1, "{r}");
    }
    assert_eq!(video["backfill"]["state"], "pending", "{video}");

    // The frame comes: the VOD is rebuilt with it and the records say nothing more is coming.
    let Message::Binary(late) = piece(seq, 10 * frame_us, 0, 40, 40) else {
        panic!("binary")
    };
    let mut bytes = late.to_vec();
    bytes[2] |= 0x04;
    ws.send(Message::Binary(bytes.into())).await.expect("send");
    let (code, why) = close_of(&mut ws).await;
    assert_eq!(code, 1000, "{why}");
    let auth = format!("Authorization: Bearer {key}");
    let (status, body) = http_get_with(&format!("{}/api/v1/publish/status", server.http), &[&auth]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v["backfill"]["state"], "complete", "{v}");
    let records = v["attributes"].as_array().expect("records");
    assert!(!records.is_empty(), "{v}");
    for r in records {
        assert!(r.get("frames_coming").is_none(), "{r}");
    }
    // The rebuilt MP4 holds all 94 frames (counted as packets: their bytes are filler).
    let mp4 = records
        .iter()
        .find(|r| r["format"] == "mp4")
        .and_then(|r| r["url"].as_str())
        .expect("mp4 record");
    let packets = ffprobe_csv(mp4, "a:0", "packet=pts_time");
    assert_eq!(packets.lines().filter(|l| !l.trim().is_empty()).count(), 94);
}
