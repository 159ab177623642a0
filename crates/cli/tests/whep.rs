//! WHEP playback (docs/webrtc.md): `vshare serve` with `[webrtc]` on an ephemeral UDP port, an
//! RTMP publish by ffmpeg (H.264 baseline without B-frames, AAC), and headless Chromium
//! playing the stream over WebRTC (tests/browser/whep.mjs): H.264 frames decoded, Opus audio
//! received, and the session deleted; then the watch page plays it over WebRTC. Offers that are
//! not SDP, or not sent as SDP, are refused.
//!
//! Skips with a printed reason only when node or chromium is missing, like tests/browser.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, create_key, ffmpeg_publish, make_clip, wait_video_state};
use vshare_testkit::wait::run_with_limit;

/// Seconds of the published clip (30 fps, a keyframe each second).
const CLIP_S: u32 = 30;
/// Video frames the browser must decode: one second of the source.
const MIN_FRAMES: u64 = 30;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn missing_tools() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not installed (scripts/setup.sh --test installs it)".into());
    }
    if !Path::new(&chromium()).is_file() {
        return Some(format!("chromium is not installed at {}", chromium()));
    }
    None
}

/// A POST through curl: status, head, body.
fn post(url: &str, content_type: &str, body: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "30", "-X", "POST", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(body)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

#[test]
fn chromium_plays_a_live_rtmp_stream_over_whep() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the WHEP browser test: {why}");
        return;
    }
    assert!(
        root()
            .join("web/node_modules/playwright-core/package.json")
            .is_file(),
        "web/node_modules/playwright-core is missing: run `npm ci` in web/"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(
        tmp.path(),
        "clip.mp4",
        CLIP_S,
        &["-bf", "0", "-profile:v", "baseline"],
    );
    let conf = tmp.path().join("vshare.toml");
    std::fs::write(&conf, "[webrtc]\nenabled = true\nudp_port = 0\n").expect("conf");
    let server = Server::start(
        &data,
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    );
    server.expect_logged("WebRTC (WHEP) on UDP");

    // Before any publish: no such stream.
    let (status, _, body) = post(
        &format!("{}/whep/nosuchvideo", server.http),
        "application/sdp",
        "v=0\r\n",
    );
    assert_eq!(status, 404, "{body}");

    let started = Instant::now();
    let mut ffmpeg = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    // The stream is live after its first segment (2 s of the clip, sent in real time).
    let v = wait_video_state(
        &server,
        &key,
        &["live"],
        Duration::from_secs(u64::from(CLIP_S) / 2),
    );
    let id = v["id"].as_str().expect("video id").to_string();
    let whep = format!("{}/whep/{id}", server.http);

    // Not SDP: 400 with the reason. Not sent as SDP: 415.
    let (status, _, body) = post(&whep, "application/sdp", "this is not SDP");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SDP"), "{body}");
    let (status, _, body) = post(&whep, "application/json", "{}");
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("application/sdp"), "{body}");

    // The browser has what is left of the clip to decode one second of it.
    let left = Duration::from_secs(u64::from(CLIP_S)).saturating_sub(started.elapsed());
    assert!(
        left > Duration::from_secs(5),
        "the clip is nearly over before the browser started"
    );
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/whep.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("VIDEO", &id)
        .env("MIN_FRAMES", MIN_FRAMES.to_string())
        .env("WAIT_MS", left.as_millis().to_string())
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, left + Duration::from_secs(60));
    let log = server.log();
    assert!(
        ok,
        "tests/browser/whep.mjs failed:\n{out}\n{err}\n--- server log\n{log}"
    );
    let r: serde_json::Value = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no RESULT line:\n{out}\n{err}"));
    eprintln!("WHEP in Chromium: {r:#}");
    assert!(r["error"].is_null(), "{r:#}\n--- server log\n{log}");

    // H.264 decoded at the source's size, from the session's first keyframe on.
    let video = &r["stats"]["video"];
    let frames = video["framesDecoded"].as_u64().unwrap_or(0);
    assert!(frames > MIN_FRAMES, "{frames} frames decoded: {r:#}\n{log}");
    assert!(
        video["keyFramesDecoded"].as_u64().unwrap_or(0) >= 1,
        "{r:#}"
    );
    assert_eq!(r["width"], 640, "{r:#}");
    assert_eq!(r["height"], 360, "{r:#}");
    let codecs = r["stats"]["codecs"].to_string();
    assert!(codecs.contains("video/H264"), "{codecs}");
    assert!(codecs.contains("audio/opus"), "{codecs}");
    // Opus audio arrived and was played out, not only concealed.
    let audio = &r["stats"]["audio"];
    assert!(audio["packetsReceived"].as_u64().unwrap_or(0) > 50, "{r:#}");
    let samples = audio["totalSamplesReceived"].as_f64().unwrap_or(0.0);
    let concealed = audio["concealedSamples"].as_f64().unwrap_or(0.0);
    assert!(samples > 0.0 && concealed < samples, "{r:#}");

    // DELETE ends the session: 204, then 404 for the same location.
    assert_eq!(r["deleteStatus"], 204, "{r:#}");
    assert_eq!(r["deleteAgainStatus"], 404, "{r:#}");
    server.expect_logged("WHEP session deleted");

    // The watch page played the stream over WebRTC, 2 s of it.
    assert!(r["watchError"].is_null(), "{r:#}\n{log}");
    assert_eq!(r["watch"]["last"]["engine"], "webrtc", "{r:#}");
    assert_eq!(r["watch"]["last"]["width"], 640, "{r:#}");

    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}
