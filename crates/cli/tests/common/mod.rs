//! Helpers for end-to-end tests: start the real `vshare` binary and real third-party tools.
#![allow(dead_code)]

pub mod curl;
pub mod garage;
pub mod nginx;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `vshare serve` on ephemeral RTMP and HTTP ports with `data` as its data directory.
pub fn serve_command(data: &Path) -> Command {
    let mut cmd = vshare();
    cmd.args([
        "serve",
        "--rtmp",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
    ])
    .arg(data);
    cmd
}

/// The log line as text: tracing colours field names and levels with ANSI escapes, which
/// would sit between a field and its value (`resumed=true`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

pub fn vshare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vshare"))
}

/// A running `vshare serve` on ephemeral ports; killed on drop.
pub struct Server {
    pub child: Child,
    pub data: PathBuf,
    pub rtmp_port: u16,
    pub http: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data, extra, &[])
    }

    pub fn start_with_env(data: &Path, extra: &[&str], envs: &[(&str, String)]) -> Server {
        let mut child = serve_command(data)
            .args(extra)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env("VSHARE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vshare serve");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log2.lock().expect("log lock");
                l.push_str(&without_colours(&line));
                l.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut rtmp_port = None;
        let mut http = None;
        // A server without the video role has no RTMP address (its port is 0 here).
        let mut no_rtmp = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        while (rtmp_port.is_none() && !no_rtmp) || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("server did not start; log:\n{}", log.lock().expect("log"))
            });
            if let Some(rest) = line.trim().strip_prefix("publish: rtmp://") {
                let port = rest
                    .split(':')
                    .nth(1)
                    .and_then(|p| p.split('/').next())
                    .expect("rtmp port");
                rtmp_port = Some(port.parse().expect("port number"));
            }
            if let Some(rest) = line.trim().strip_prefix("roles:") {
                no_rtmp = !rest.split(',').any(|r| r.trim() == "video");
            }
            if let Some(rest) = line.trim().strip_prefix("watch:") {
                http = Some(rest.trim().split('/').take(3).collect::<Vec<_>>().join("/"));
            }
        }
        Server {
            child,
            data: data.to_path_buf(),
            rtmp_port: rtmp_port.unwrap_or(0),
            http: http.expect("http"),
            log,
        }
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp_port)
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the log holds `needle`. The server writes a line before the effect a test
    /// sees (a closed socket, a client that exits), but the thread reading its stderr pipe can
    /// be scheduled after the test's own thread; on a busy machine it was.
    pub fn expect_logged(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the server never logged {needle:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn create_key(data: &Path) -> String {
    keys_create(data, &[])
}

/// A stream key with a source name (what subscribers subscribe to).
pub fn create_named_key(data: &Path, name: &str) -> String {
    keys_create(data, &["--name", name])
}

pub fn keys_create(data: &Path, extra: &[&str]) -> String {
    let out = vshare()
        .args(["keys", "create", "--quiet"])
        .args(extra)
        .arg("--data")
        .arg(data)
        .output()
        .expect("keys create");
    assert!(
        out.status.success(),
        "keys create {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// Makes an H.264/AAC test clip with the ffmpeg CLI: 640x360 at 30 fps, keyframe each second.
pub fn make_clip(dir: &Path, name: &str, seconds: u32, extra: &[&str]) -> PathBuf {
    let mut encode = vec![
        "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "800k", "-c:a", "aac",
        "-b:a", "96k", "-ac", "2",
    ];
    encode.extend(extra);
    vshare_testkit::ffmpeg::make_test_clip(
        &dir.join(name),
        "640x360",
        seconds,
        Some(44100),
        &encode,
    )
}

/// `ffmpeg -re -i CLIP -c copy -f flv URL` in the background.
pub fn ffmpeg_publish(clip: &Path, url: &str) -> Child {
    ffmpeg_publish_with(clip, url, &[])
}

/// The same with `extra` output options (e.g. `-output_ts_offset`) before the URL.
pub fn ffmpeg_publish_with(clip: &Path, url: &str, extra: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(clip)
        .args(["-c", "copy"])
        .args(extra)
        .args(["-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg")
}

pub fn http_get(url: &str) -> (u16, Vec<u8>) {
    http_get_with(url, &[])
}

/// A blocking HTTP GET through curl (an independent client), returning status and body.
pub fn http_get_with(url: &str, headers: &[&str]) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "30"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (status, body)
}

pub fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = http_get(url);
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

/// Waits until the video of `key`'s latest publish is in `state`, returning its JSON.
pub fn wait_video_state(
    server: &Server,
    key: &str,
    states: &[&str],
    timeout: Duration,
) -> serde_json::Value {
    let auth = format!("Authorization: Bearer {key}");
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) =
            http_get_with(&format!("{}/api/v1/publish/status", server.http), &[&auth]);
        let last = format!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        if let Some(v) = (status == 200)
            .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .flatten()
        {
            let has_records = v["attributes"].as_array().is_some_and(|a| !a.is_empty());
            if has_records && states.iter().any(|s| v["state"] == *s) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for video state {states:?}; last answer {last}; server log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The largest step between consecutive times.
pub fn largest_gap(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// Publishes with our own RTMP client over a blocking socket, up to `Published`.
pub fn raw_publisher(port: u16, key: &str) -> (TcpStream, vshare_rtmp::ClientConnection) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut c =
        vshare_rtmp::ClientConnection::new("live", key, &format!("rtmp://127.0.0.1:{port}/live"));
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(b) = c.poll_transmit() {
            s.write_all(&b).expect("write");
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                vshare_rtmp::ClientEvent::Published => return (s, c),
                vshare_rtmp::ClientEvent::Rejected { code, description } => {
                    panic!("rejected: {code} {description}")
                }
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "publish did not start");
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "server closed during publish");
        c.handle_input(&buf[..n]).expect("rtmp");
    }
}

/// Writes what the client has queued; false once the server has closed the connection.
pub fn send_all(s: &mut TcpStream, c: &mut vshare_rtmp::ClientConnection) -> bool {
    while let Some(b) = c.poll_transmit() {
        if s.write_all(&b).is_err() {
            return false;
        }
    }
    true
}

/// Reads until the server closes the connection; how long that took, or None if it stayed open
/// for `timeout`.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return Some(t0.elapsed());
            }
            Err(_) => return None,
        }
    }
}

/// A server with 500 ms parts and 1 s segments and no ladder, a key in its data directory and
/// a clip of `clip_s` seconds to publish: the setup of the live-window tests.
pub fn short_parts_server(dir: &Path, clip_s: u32) -> (Server, String, PathBuf) {
    let data = dir.join("data");
    let key = create_key(&data);
    let clip = make_clip(dir, "clip.mp4", clip_s, &[]);
    let conf = dir.join("vshare.toml");
    std::fs::write(
        &conf,
        "[live]\npart_target_ms = 500\nsegment_target_ms = 1000\n",
    )
    .expect("conf");
    let server = Server::start(
        &data,
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    );
    (server, key, clip)
}

/// The JSON a page script printed on its `RESULT ` line.
pub fn page_result(out: &str, err: &str) -> serde_json::Value {
    out.lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no RESULT line (or not JSON):\n{out}\n{err}"))
}
