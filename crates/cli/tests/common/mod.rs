//! Helpers for end-to-end tests: start the real `vshare` binary and real third-party tools.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn vshare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vshare"))
}

/// Fails the test with a clear message when an external tool is missing.
pub fn require_tool(name: &str) {
    let ok = Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "{name} is not installed; run scripts/setup.sh");
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
        let mut child = vshare()
            .args([
                "serve",
                "--rtmp",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
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
                l.push_str(&line);
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while rtmp_port.is_none() || http.is_none() {
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
            if let Some(rest) = line.trim().strip_prefix("watch:") {
                http = Some(rest.trim().split('/').take(3).collect::<Vec<_>>().join("/"));
            }
        }
        Server {
            child,
            data: data.to_path_buf(),
            rtmp_port: rtmp_port.expect("port"),
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
    let out = vshare()
        .args(["keys", "create", "--quiet", "--data"])
        .arg(data)
        .output()
        .expect("keys create");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// Makes an H.264/AAC test clip with the ffmpeg CLI: 640x360 at 30 fps, keyframe each second.
pub fn make_clip(dir: &Path, name: &str, seconds: u32, extra: &[&str]) -> PathBuf {
    require_tool("ffmpeg");
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size=640x360:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=1000:sample_rate=44100:duration={seconds}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "800k", "-c:a", "aac",
            "-b:a", "96k", "-ac", "2",
        ])
        .args(extra)
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg could not make the clip");
    path
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

/// Polls until `f` returns Some or the timeout passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// ffprobe's JSON for a file or URL.
pub fn ffprobe(input: &str) -> serde_json::Value {
    require_tool("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            input,
        ])
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// `ffmpeg -i INPUT -f null -` at log level `level`: what it printed (empty when clean), and
/// its exit status when it failed.
fn ffmpeg_to_null(input: &str, level: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", level, "-i", input])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let mut s = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        s.push_str(&format!("\nexit status {:?}", out.status.code()));
    }
    s
}

/// Decodes every frame with ffmpeg and returns its error output (empty when clean).
pub fn decode_errors(input: &str) -> String {
    ffmpeg_to_null(input, "error")
}

/// ffmpeg's default conversion of a file or URL: its warnings and errors (empty when clean).
pub fn conversion_warnings(input: &str) -> String {
    ffmpeg_to_null(input, "warning")
}

/// Counts decoded frames per stream type with ffprobe -count_frames.
pub fn frame_count(input: &str, stream: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            input,
        ])
        .output()
        .expect("ffprobe");
    // HLS inputs list the stream once per program and once on its own: take the first.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or(0)
}

/// Presentation span of a stream from its packets: (first pts, last pts + duration), seconds.
/// (ffprobe's own duration of a lone fragment counts from time zero.)
pub fn packet_span(input: &str, stream: &str) -> (f64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
            input,
        ])
        .output()
        .expect("ffprobe");
    let mut first = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',');
        let pts: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let dur: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if pts.is_finite() {
            first = first.min(pts);
            end = end.max(pts + dur);
        }
    }
    (first, end)
}

pub fn parse_rate(s: &str) -> f64 {
    match s.split_once('/') {
        Some((n, d)) => n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0),
        None => s.parse().unwrap_or(0.0),
    }
}

pub fn stream_of<'a>(probe: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

pub fn f(v: &serde_json::Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
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

/// Video packet times of a file or URL, seconds, in order (ffprobe).
pub fn video_packet_times(input: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0", input])
        .output()
        .expect("ffprobe");
    let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// The largest step between consecutive times.
pub fn largest_gap(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// Output of a tool that must succeed.
pub fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One packet of a track: times in the track's time base, keyframe flag, payload.
pub struct Packet {
    pub pts: i64,
    pub dts: i64,
    pub key: bool,
    pub data: Vec<u8>,
}

/// A track's packets read with the ffmpeg CLI alone: times, sizes and flags from ffprobe, the
/// payloads (as stored in the MP4: length-prefixed NAL units, raw AAC) from `-f data`.
pub fn packets(path: &Path, stream: &str) -> (i64, Vec<Packet>) {
    let p = path.to_str().expect("path");
    let tb = String::from_utf8(run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "stream=time_base",
            "-of",
            "csv=p=0",
            p,
        ],
    ))
    .expect("utf8");
    let den: i64 = tb
        .trim()
        .split_once('/')
        .and_then(|(_, d)| d.parse().ok())
        .expect("time base 1/N");
    let list = String::from_utf8(run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts,dts,size,flags",
            "-of",
            "csv=p=0",
            p,
        ],
    ))
    .expect("utf8");
    let map = format!("0:{stream}");
    let data = run(
        "ffmpeg",
        &[
            "-v", "error", "-i", p, "-map", &map, "-c", "copy", "-f", "data", "-",
        ],
    );
    let mut out = Vec::new();
    let mut at = 0;
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let size: usize = f[2].parse().expect("size");
        out.push(Packet {
            pts: f[0].parse().expect("pts"),
            dts: f[1].parse().expect("dts"),
            key: f[3].starts_with('K'),
            data: data[at..at + size].to_vec(),
        });
        at += size;
    }
    assert_eq!(at, data.len(), "packet sizes add up");
    (den, out)
}

/// The body of an MP4's decoder configuration box (`avcC`, `hvcC`).
pub fn config_box(path: &Path, name: &[u8; 4]) -> Vec<u8> {
    let mp4 = std::fs::read(path).expect("read");
    let at = mp4
        .windows(4)
        .position(|w| w == name)
        .expect("configuration box");
    let size = u32::from_be_bytes([mp4[at - 4], mp4[at - 3], mp4[at - 2], mp4[at - 1]]) as usize;
    mp4[at + 4..at - 4 + size].to_vec()
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
