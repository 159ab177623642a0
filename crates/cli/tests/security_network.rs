//! Attacks on the network side of `vshare serve`, each against the real server: requests into
//! the server's own network (SSRF) through webhooks and Web Push, and memory or connections
//! held for nothing (hostile RTMP commands, dripped handshakes and headers, idle connections,
//! large WebSocket messages, slow readers of recordings). Timing bounds come from the limits
//! set small in each test's configuration.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use vshare_testkit::wait::wait_for;

/// Starts the server with `toml` as its configuration file and a stream key named `alice`.
fn start(dir: &Path, toml: &str, envs: &[(&str, String)]) -> (Server, String) {
    let data = dir.join("data");
    let key = create_named_key(&data, "alice");
    let config = dir.join("vshare.toml");
    std::fs::write(&config, toml).expect("config");
    let server = Server::start_with_env(
        &data,
        &[
            "--ladder",
            "none",
            "--config",
            config.to_str().expect("path"),
        ],
        envs,
    );
    (server, key)
}

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Writes `bytes` one at a time, `gap` apart, until the server closes; how long it took to be
/// closed and how many bytes went out.
fn drip(s: &mut TcpStream, bytes: &[u8], gap: Duration) -> (Duration, usize) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut buf = [0u8; 8192];
    for (i, b) in bytes.iter().enumerate() {
        if s.write_all(&[*b]).is_err() {
            return (t0.elapsed(), i);
        }
        std::thread::sleep(gap);
        match s.read(&mut buf) {
            Ok(0) => return (t0.elapsed(), i + 1),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (t0.elapsed(), i + 1);
            }
            _ => {}
        }
    }
    (t0.elapsed(), bytes.len())
}

/// A plain RTMP handshake (C0 C1, then C2 echoing S1).
fn rtmp_handshake(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut c01 = vec![3u8];
    c01.extend((0..1536u32).map(|i| (i * 7 + 13) as u8));
    c01[1..9].fill(0);
    s.write_all(&c01).expect("C0 C1");
    let mut s012 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s012).expect("S0 S1 S2");
    s.write_all(&s012[1..1537]).expect("C2");
    s
}

/// The first chunk of an AMF0 command message (type 20) of `len` bytes on chunk stream 3.
fn command_chunk(len: u32, payload: &[u8]) -> Vec<u8> {
    let l = len.to_be_bytes();
    let mut b = vec![0x03, 0, 0, 0, l[1], l[2], l[3], 20, 0, 0, 0, 0];
    b.extend_from_slice(payload);
    b
}

#[test]
fn rtmp_hostile_commands_and_dripped_handshakes_get_no_memory_and_no_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _key) = start(
        dir.path(),
        "[limits]\nrtmp_handshake_timeout_s = 2\nrtmp_idle_timeout_s = 30\n",
        &[],
    );
    let pid = server.child.id();
    let before = rss(pid);

    // A command claiming 8 MiB before connect: refused at its header (it was buffered and
    // decoded: a strict array with a count as large as the bytes left reserved 32 bytes per
    // byte, +469 MB for two such commands).
    for _ in 0..2 {
        let mut s = rtmp_handshake(server.rtmp_port);
        let mut body = vec![0x0a];
        body.extend_from_slice(&(8_000_000u32).to_be_bytes());
        body.resize(128, 0x05);
        let _ = s.write_all(&command_chunk(8_000_000, &body));
        assert!(
            closed_within(&mut s, Duration::from_secs(10)).is_some(),
            "an oversized command before connect did not close the connection"
        );
    }
    server.expect_logged("larger than the 65536-byte limit");

    // A command within the limit, all of it one strict array of nulls: decoded up to the
    // value budget, then refused; memory stays flat.
    for _ in 0..2 {
        let mut s = rtmp_handshake(server.rtmp_port);
        // Chunk size 65536 first (Set Chunk Size, type 1, on chunk stream 2).
        let _ = s.write_all(&[2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0]);
        let len = 60_000u32;
        let mut body = vec![0x0a];
        body.extend_from_slice(&(len - 5).to_be_bytes());
        body.resize(len as usize, 0x05);
        let _ = s.write_all(&command_chunk(len, &body));
        assert!(
            closed_within(&mut s, Duration::from_secs(10)).is_some(),
            "a hostile strict array did not close the connection"
        );
    }
    let grown = rss(pid).saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "RSS grew by {} MB after four hostile commands",
        grown >> 20
    );

    // The handshake dripped at one byte every 200 ms: each byte used to restart the idle
    // timer (30 s here); the handshake deadline (2 s) closes it however the bytes come.
    let mut s = TcpStream::connect(("127.0.0.1", server.rtmp_port)).expect("connect");
    let mut c01 = vec![3u8];
    c01.resize(1537, 0);
    let (took, sent) = drip(&mut s, &c01, Duration::from_millis(200));
    assert!(
        sent < c01.len() && took >= Duration::from_millis(1500) && took < Duration::from_secs(20),
        "dripped handshake: closed after {took:?} and {sent} bytes"
    );

    // A completed handshake that never publishes is closed at the same deadline.
    let mut s = rtmp_handshake(server.rtmp_port);
    let took = closed_within(&mut s, Duration::from_secs(20));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(20)),
        "a connection without publish stayed open: {took:?}"
    );
    server.expect_logged("not done within 2s");
}

#[test]
fn http_silent_and_dribbled_connections_are_closed_at_the_header_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _key) = start(dir.path(), "[limits]\nhttp_header_timeout_s = 2\n", &[]);
    let addr = server.http.trim_start_matches("http://").to_string();

    // Silent from the start.
    let mut s = TcpStream::connect(&addr).expect("connect");
    let took = closed_within(&mut s, Duration::from_secs(20));
    assert!(
        took.is_some_and(|t| t >= Duration::from_millis(1500)),
        "a silent connection: {took:?}"
    );

    // Headers dribbled at 4 bytes a second: cut off at the deadline, long before the end.
    let request = format!(
        "GET /api/v1/videos HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: slow\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(64)
    );
    let mut s = TcpStream::connect(&addr).expect("connect");
    let (took, sent) = drip(&mut s, request.as_bytes(), Duration::from_millis(250));
    assert!(
        sent < request.len() && took < Duration::from_secs(20),
        "dribbled headers: {sent} of {} bytes in {took:?}",
        request.len()
    );

    // A keep-alive connection left silent after its request is closed too.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.write_all(format!("GET /api/v1/videos HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("request");
    let mut head = [0u8; 12];
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.read_exact(&mut head).expect("answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    let took = closed_within(&mut s, Duration::from_secs(20));
    assert!(took.is_some(), "an idle keep-alive connection stayed open");
}

#[test]
fn connections_are_capped_per_client_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _key) = start(
        dir.path(),
        "[limits]\nmax_connections_per_ip = 4\nhttp_header_timeout_s = 60\nrtmp_handshake_timeout_s = 60\nrtmp_idle_timeout_s = 60\n",
        &[],
    );
    let http = server.http.trim_start_matches("http://").to_string();
    let rtmp: SocketAddr = ([127, 0, 0, 1], server.rtmp_port).into();
    for (name, addr) in [
        (
            "http",
            http.to_socket_addrs().expect("addr").next().expect("addr"),
        ),
        ("rtmp", rtmp),
    ] {
        let mut held: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        // The fifth from the same address is closed at once (the limits of the others are
        // 60 s away).
        let mut fifth = TcpStream::connect(addr).expect("connect");
        assert!(
            closed_within(&mut fifth, Duration::from_secs(15)).is_some(),
            "{name}: a fifth connection from one address was held"
        );
        // The four are still open.
        for s in &mut held {
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let mut b = [0u8; 1];
            assert!(
                matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
                "{name}: an admitted connection was closed"
            );
        }
        // One leaves; its place is free again.
        drop(held.pop());
        wait_for(
            &format!("{name}: a place after one left"),
            Duration::from_secs(10),
            || {
                let mut s = TcpStream::connect(addr).ok()?;
                if name == "http" {
                    s.write_all(format!("GET /api/v1/videos HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
                    let mut head = [0u8; 12];
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    s.read_exact(&mut head).ok()?;
                    (&head == b"HTTP/1.1 200").then_some(())
                } else {
                    closed_within(&mut s, Duration::from_millis(500))
                        .is_none()
                        .then_some(())
                }
            },
        );
    }
    // Refusals are counted, per listener.
    let (status, metrics) = http_get(&format!("{}/metrics", server.http));
    let metrics = String::from_utf8_lossy(&metrics);
    for listener in ["http", "rtmp"] {
        let refused = metrics
            .lines()
            .find(|l| {
                l.starts_with("vshare_connections_refused_total")
                    && l.contains(&format!("listener=\"{listener}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            status == 200 && refused.is_some_and(|n| n >= 1),
            "{listener}: refusals not counted:\n{metrics}"
        );
    }
}

#[test]
fn a_listener_cannot_send_large_websocket_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _key) = start(dir.path(), "", &[]);
    let url = format!(
        "{}/api/v1/listen?id=sec-net-listener&secret=a-listener-secret-of-32-chars-xx",
        server.http.replace("http://", "ws://")
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("listen");
        // An ack-sized message is fine.
        ws.send(Message::text(r#"{"ack":"nothing"}"#))
            .await
            .expect("ack");
        // 1 MiB (the audit sent 60 MiB, +156 MB RSS): the connection is closed.
        let _ = ws.send(Message::text("x".repeat(1 << 20))).await;
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) => return None,
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await;
        assert!(
            matches!(closed, Ok(None | Some(1009))),
            "a 1 MiB listener message was taken: {closed:?}"
        );
    });
}

/// A POST of JSON through curl; status and body.
fn post_json(url: &str, body: &serde_json::Value) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "30"])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(body.to_string())
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// An HTTP receiver on `ip`: answers every request with `answer`, records request lines.
fn receiver(ip: IpAddr, answer: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((ip, 0)).expect("bind receiver");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let got2 = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut line = String::new();
            let mut len = 0usize;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim().split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(answer.as_bytes());
            got2.lock().expect("lock").push(first.trim().to_string());
        }
    });
    (port, got)
}

#[test]
fn webhooks_and_push_endpoints_cannot_reach_the_internal_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = "sec-net-admin".to_string();
    // 127.0.0.2 stands for an internal receiver the operator allows by CIDR.
    let (server, key) = start(
        dir.path(),
        "[proxy]\nallowed_destinations = [\"127.0.0.2/32\"]\n",
        &[("VSHARE_ADMIN_TOKEN", admin.clone())],
    );
    let subs = format!("{}/api/v1/subscriptions", server.http);
    let webhook = |url: &str| {
        post_json(
            &subs,
            &serde_json::json!({"source": "alice", "channel": "webhook", "address": url}),
        )
    };

    // Literal internal destinations: a clear 400 at subscribe time (they were 201).
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/hook",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let (status, body) = webhook(url);
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.contains("refused"), "{url}: {body}");
    }
    // Web Push: https only, and not into the network. p256dh is the P-256 generator point.
    let g =
        "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
    for endpoint in [
        "http://169.254.169.254/push",
        "https://169.254.169.254/push",
        "https://[fd00::1]/push",
        "http://push.example.org/push",
    ] {
        let address = serde_json::json!({"endpoint": endpoint, "keys": {"p256dh": g, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}});
        let (status, body) = post_json(
            &subs,
            &serde_json::json!({"source": "alice", "channel": "webpush", "address": address.to_string()}),
        );
        assert_eq!(status, 400, "{endpoint}: {body}");
        assert!(body.contains("push endpoint"), "{endpoint}: {body}");
    }

    // A name is checked where it counts, on the address it resolves to when the request is
    // made: this machine's own name resolves to a loopback or private address.
    let host = std::process::Command::new("hostname")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("hostname");
    let resolved = (host.as_str(), 0)
        .to_socket_addrs()
        .expect("resolve hostname")
        .map(|a| a.ip())
        .find(|ip| vshare_proxy::egress::special_range(*ip).is_some())
        .unwrap_or_else(|| panic!("{host} does not resolve to a loopback or private address"));
    let (inner_port, inner_got) = receiver(
        resolved,
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
    );
    let host_url = format!(
        "http://{}:{inner_port}/by-name",
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        }
    );
    let (status, body) = webhook(&host_url);
    assert_eq!(status, 201, "{body}");
    // An allowed receiver that redirects inside: the redirect is not followed, and what it said
    // is not shown.
    let target = match resolved {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let (allowed_port, allowed_got) = receiver(
        "127.0.0.2".parse().expect("ip"),
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{target}:{inner_port}/redirected\r\ncontent-length: 20\r\nconnection: close\r\n\r\ninternal-secret-body"
        ),
    );
    let (status, body) = webhook(&format!("http://127.0.0.2:{allowed_port}/allowed"));
    assert_eq!(status, 201, "{body}");

    let clip = make_clip(dir.path(), "clip.mp4", 3, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let auth = format!("Authorization: Bearer {admin}");
    let rows = wait_for("both webhooks settled", Duration::from_secs(60), || {
        let (status, body) = http_get_with(
            &format!("{}/api/v1/notifications?source=alice", server.http),
            &[&auth],
        );
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let rows: Vec<serde_json::Value> = v.as_array()?.clone();
        let settled = |needle: &str| {
            rows.iter().any(|r| {
                r["address"].as_str().is_some_and(|a| a.contains(needle))
                    && r["last_error"].is_string()
                    && !matches!(r["state"].as_str(), Some("queued" | "sending"))
            })
        };
        (status == 200 && settled("/by-name") && settled("/allowed")).then_some(rows)
    });
    // Rows tried so far (the second event's may still wait): each failed for its reason.
    for r in rows.iter().filter(|r| r["last_error"].is_string()) {
        let address = r["address"].as_str().unwrap_or_default();
        let error = r["last_error"].as_str().unwrap_or_default();
        assert!(!error.contains("internal-secret-body"), "{r}");
        if address.contains("/by-name") {
            assert!(error.starts_with("refused: "), "{r}");
        }
        if address.contains("/allowed") {
            assert!(error.contains("307"), "{r}");
        }
    }
    assert!(
        !allowed_got.lock().expect("lock").is_empty(),
        "the allowed receiver got nothing"
    );
    assert!(
        inner_got.lock().expect("lock").is_empty(),
        "the internal receiver was reached: {:?}",
        inner_got.lock().expect("lock")
    );
}

#[test]
fn recordings_stream_to_slow_readers_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two 1-second segments in the live window, so that older ones are served from storage.
    let (server, key) = start(
        dir.path(),
        "[live]\nwindow_segments = 2\nsegment_target_ms = 1000\n",
        &[],
    );
    // About 6 MB: 6 s at 8 Mbit/s, padded to constant bit rate.
    let clip = make_clip(
        dir.path(),
        "big.mp4",
        6,
        &[
            "-b:v",
            "8M",
            "-minrate",
            "8M",
            "-maxrate",
            "8M",
            "-bufsize",
            "2M",
            "-x264-params",
            "nal-hrd=cbr",
        ],
    );
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(30));
    let id = live["id"].as_str().expect("id").to_string();
    // A live segment that has left the window comes from storage, streamed, the same bytes.
    let playlist = format!("{}/live/{id}/index.m3u8", server.http);
    wait_for(
        "segment 0 out of the live window",
        Duration::from_secs(30),
        || {
            let (status, body) = http_get(&playlist);
            let text = String::from_utf8_lossy(&body);
            (status == 200 && !text.contains("seg0.m4s") && text.contains(".m4s")).then_some(())
        },
    );
    let (status, live_seg0) = http_get(&format!("{}/live/{id}/seg0.m4s", server.http));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&live_seg0));
    assert!(publisher.wait().expect("ffmpeg").success());
    wait_video_state(&server, &key, &["ready"], Duration::from_secs(30));
    let (status, vod_seg0) = http_get(&format!("{}/vod/{id}/seg0.m4s", server.http));
    assert_eq!(status, 200);
    assert!(live_seg0.len() > 100_000 && live_seg0 == vod_seg0);
    let url = format!("{}/vod/{id}/video.mp4", server.http);
    let (status, whole) = http_get(&url);
    assert_eq!(status, 200);
    let size = whole.len();
    assert!(size > 2_000_000, "the recording is only {size} bytes");

    // Ranges keep their meaning.
    let (status, part) = http_get_with(&url, &["Range: bytes=100-199"]);
    assert_eq!((status, &part[..]), (206, &whole[100..200]));
    let (status, part) = http_get_with(&url, &["Range: bytes=0-"]);
    assert_eq!((status, part.len()), (206, size));
    assert_eq!(part, whole);
    let (status, _) = http_get_with(&url, &[&format!("Range: bytes={size}-")]);
    assert_eq!(status, 416);

    // 40 readers that take the headers and then nothing: each held the whole file (+90 to
    // 170 MB for 40 readers of 5.2 MB); now each holds what the socket and a chunk take.
    let pid = server.child.id();
    let before = rss(pid);
    let addr = server.http.trim_start_matches("http://").to_string();
    let mut readers = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(
            format!(
                "GET /vod/{id}/video.mp4 HTTP/1.1\r\nHost: {addr}\r\n{}\r\n",
                if i % 2 == 0 {
                    "Range: bytes=0-\r\n"
                } else {
                    ""
                }
            )
            .as_bytes(),
        )
        .expect("request");
        // Take a little so the server is into the body, then stop reading.
        let mut b = [0u8; 1024];
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.read_exact(&mut b).expect("first bytes");
        readers.push(s);
    }
    // The server fills what it can of each connection, then waits; look at the peak.
    let mut peak = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        peak = peak.max(rss(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown = peak.saturating_sub(before);
    eprintln!("40 slow readers of {size} bytes: RSS +{} KiB", grown >> 10);
    assert!(
        grown < 40 * (256 << 10) + (8 << 20),
        "RSS grew by {} MB with 40 slow readers of a {size}-byte file",
        grown >> 20
    );
    drop(readers);
}
