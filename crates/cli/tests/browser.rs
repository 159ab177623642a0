//! The browser pages in real headless Chromium (tests/browser/flow.mjs, playwright-core): sign
//! up, publish from the fake camera over the upload protocol, play live and the recording,
//! share by SMS through `vshare smsc` to `vshare open`, the library, and a browser without
//! WebCodecs. Also the JavaScript unit tests of the upload sender (web/test), and a recording
//! whose picture size changed played to its end by the watch page (tests/browser/vod_changes.mjs).
//!
//! Skips with a printed reason only when node or chromium is missing; `scripts/setup.sh --test`
//! installs both (and playwright-core with `npm ci` in web/).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, create_key, ffmpeg_publish, page_result, vshare, wait_video_state};
use vshare_testkit::ffmpeg::{
    conversion_warnings, decode_errors, make_test_clip, video_packet_times,
};
use vshare_testkit::flv::{read_tags, write_tags};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::{run_with_limit, wait_for};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Why the browser tests cannot run here, if they cannot.
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
        return Some(format!(
            "chromium is not installed at {} (scripts/setup.sh --test installs it; CHROMIUM=path to use another)",
            chromium()
        ));
    }
    None
}

/// playwright-core comes from web/node_modules: without it the setup is incomplete (a failure,
/// not a skip).
fn require_playwright() {
    let p = root().join("web/node_modules/playwright-core/package.json");
    assert!(
        p.is_file(),
        "web/node_modules/playwright-core is missing: run `npm ci` in web/ (scripts/setup.sh --test does)"
    );
}

/// Each Chromium test runs alone: a server, Chromium (and ffmpeg or the studio's encoder) per
/// test, several at once on a 2-core machine, starve the pages' timers and encoders until
/// players stall — a load no user has.
fn one_browser_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn upload_sender_javascript_unit_tests() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the JavaScript unit tests: {why}");
        return;
    }
    let mut cmd = Command::new("node");
    cmd.arg("--test").arg(root().join("web/test"));
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(60));
    assert!(ok, "node --test web/test failed:\n{out}\n{err}");
    assert!(
        out.contains("# fail 0"),
        "unexpected node --test summary:\n{out}"
    );
}

#[test]
fn studio_publishes_live_and_vod_play_share_reaches_open_in_chromium() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the browser test: {why}");
        return;
    }
    require_playwright();
    let _one = one_browser_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");

    let smsc_addr = format!("127.0.0.1:{}", free_port());
    let _smsc = Reaped(
        vshare()
            .args(["smsc", "--listen", &smsc_addr])
            .env("VSHARE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vshare smsc"),
    );
    wait_for("vshare smsc to listen", Duration::from_secs(10), || {
        TcpStream::connect(&smsc_addr).ok()
    });
    let server = Server::start(&tmp.path().join("data"), &["--smsc", &smsc_addr]);

    let shots = std::env::var("SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/browser-screenshots"));
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/flow.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("VSHARE", env!("CARGO_BIN_EXE_vshare"))
        .env("VSHARE_SMSC", &smsc_addr)
        .env("SHARE_NUMBER", "+8613900139000")
        .env("WORK_DIR", tmp.path())
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(400));
    assert!(
        ok,
        "tests/browser/flow.mjs failed:\n{out}\n{err}\n--- server log (last 60 lines)\n{}",
        server
            .log()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let r = page_result(&out, &err);
    eprintln!("browser flow: {r:#}");

    // Live in page B with hls.js, and the server's own view.
    assert_eq!(r["live"]["engine"], "hls.js");
    assert!(r["live"]["advanced_s"].as_f64().unwrap_or(0.0) > 2.5);
    assert!(r["live"]["width"].as_u64().unwrap_or(0) > 0);
    // The upload resumed once after its connection was cut.
    assert!(r["upload"]["resumes"].as_u64().unwrap_or(0) >= 1);
    // The recording played to its end (HLS VOD, hls.js).
    let vod_s = r["vod"]["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let end_s = r["vod"]["played"]["end_s"].as_f64().unwrap_or(0.0);
    assert!(
        vod_s > 5.0 && (end_s - vod_s).abs() < 1.0,
        "played {end_s} of {vod_s} s"
    );
    // Both shares reached `vshare open`, which downloaded the whole MP4.
    let shares = r["share"].as_array().expect("share results");
    assert_eq!(shares.len(), 2);
    for s in shares {
        assert_eq!(s["downloaded"], r["vod"]["size"], "{s}");
        assert!(s["open_records"].as_u64().unwrap_or(0) >= 1, "{s}");
    }

    // The recording that `vshare open` downloaded has no hole although the upload connection
    // was cut once, holds every video frame the page sent, and plays in ffmpeg's default
    // conversion without a warning, whatever the capture clock's jitter on this machine
    // (docs/timestamps.md: the server snaps the frames to their grid).
    let mp4 = tmp.path().join("shared-text.mp4");
    let mp4 = mp4.to_str().expect("utf-8 path");
    assert_eq!(decode_errors(mp4), "", "the recording decodes cleanly");
    let warnings = conversion_warnings(mp4);
    assert!(
        warnings.trim().is_empty(),
        "ffmpeg converts the recording without a warning (capture {}):\n{warnings}",
        r["capture"]
    );
    let pts = video_packet_times(mp4);
    let sent = r["capture"]["video_frames_sent"].as_u64().unwrap_or(0) as usize;
    assert!(sent > 100, "the page sent {sent} video frames");
    // The frames the live send dropped through the outage were all kept (the page checks)
    // and sent late (IndexedDB held most of them): the VOD holds those too.
    let dropped = r["capture"]["dropped"].as_u64().unwrap_or(0) as usize;
    assert!(
        dropped >= 30,
        "the outage made the sender drop video: {}",
        r["capture"]
    );
    assert_eq!(
        pts.len(),
        sent + dropped,
        "every video frame the page encoded is in the recording, the late ones too (capture {})",
        r["capture"]
    );
    let gap = common::largest_gap(&pts);
    let step_max = r["capture"]["step_max_us"].as_f64().unwrap_or(0.0) / 1e6;
    if gap > step_max + 0.05 {
        // Where, and what the server said about the stream's timing and configurations.
        let at = pts.windows(2).position(|w| w[1] - w[0] >= gap).unwrap_or(0);
        let around = &pts[at.saturating_sub(3)..(at + 4).min(pts.len())];
        let said: Vec<String> = server
            .log()
            .lines()
            .filter(|l| {
                ["repaired", "configuration", "resum", "dropped", "rejected"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .map(str::to_string)
            .collect();
        panic!(
            "largest gap between video frames {gap:.3} s at frame {at} (times {around:?}); the \
             capture clock's largest step {step_max:.3} s (capture {}); server:\n{}",
            r["capture"],
            said.join("\n")
        );
    }

    // Every page the test photographs has its screenshot in docs/screenshots (kept current by
    // running this test with SCREENSHOTS=docs/screenshots).
    for name in r["screenshots"].as_array().expect("screenshots") {
        let name = name.as_str().expect("name");
        assert!(shots.join(name).is_file(), "{name} was not written");
        assert!(
            root().join("docs/screenshots").join(name).is_file(),
            "docs/screenshots/{name} is missing: run this test with SCREENSHOTS=docs/screenshots"
        );
    }
}

/// A recording whose picture size changed twice (640x360 → 320x180 → 640x360, each part with its
/// own avcC) plays in the watch page's hls.js as one continuous buffered range to its end: the
/// playlists name each new init segment on the same timeline (docs/packaging.md).
#[test]
fn a_recording_whose_picture_size_changed_plays_to_its_end() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the browser test: {why}");
        return;
    }
    require_playwright();
    let _one = one_browser_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let key = create_key(&data);
    let server = Server::start(&data, &["--ladder", "none"]);
    let clip = |size: &str| {
        make_test_clip(
            &tmp.path().join(format!("{size}.flv")),
            size,
            3,
            Some(44100),
            &[
                "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-ac", "2", "-f", "flv",
            ],
        )
    };
    let (big, small) = (read_tags(&clip("640x360")), read_tags(&clip("320x180")));
    let mut tags = Vec::new();
    for (i, part) in [&big, &small, &big].into_iter().enumerate() {
        let offset = 3000 * i as u32;
        tags.extend(
            part.iter()
                .filter(|t| t.0 == 8 || t.0 == 9)
                .map(|(k, ts, b)| (*k, ts + offset, b)),
        );
    }
    let spliced = tmp.path().join("spliced.flv");
    write_tags(&spliced, tags);
    let mut publisher = ffmpeg_publish(&spliced, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let video = wait_video_state(&server, &key, &["ready"], Duration::from_secs(60));
    let id = video["id"].as_str().expect("id");

    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/vod_changes.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("VIDEO", id)
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(120));
    assert!(ok, "vod_changes.mjs failed:\n{out}\n{err}");
    let result = page_result(&out, &err);
    assert_eq!(result["engine"], "hls.js", "{result}");
    assert_eq!(result["ended"], true, "{result}");
    let buffered = result["buffered"].as_array().expect("buffered");
    // With a discontinuity at each change hls.js buffered three ranges with ~120 ms holes
    // between them. (Its errors are in the message only: a loaded machine makes it report
    // stalls, and a seek over the 67 ms before the first frame, that say nothing about this.)
    assert_eq!(buffered.len(), 1, "one continuous buffered range: {result}");
    let duration = result["duration"].as_f64().expect("duration");
    assert!((duration - 9.0).abs() < 0.3, "{result}");
}

/// The Share dialog shows the SMS count of each form before sending: the count the server's
/// share-preview gives, one SMS for the compact text and WAP Push (tests/browser/share_count.mjs).
#[test]
fn the_share_dialog_shows_the_sms_count_before_sending() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the browser test: {why}");
        return;
    }
    require_playwright();
    let _one = one_browser_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&tmp.path().join("data"), &["--ladder", "none"]);
    let signup = common::curl::curl(
        None,
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&serde_json::json!({ "username": "ann", "password": "a long password" })),
        &[],
    );
    assert_eq!(signup.status, 201, "{}", signup.body);
    let session = signup.session();
    let key = signup.json()["stream_key"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    let clip = common::make_clip(tmp.path(), "clip.mp4", 2, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let video = wait_video_state(&server, &key, &["ready"], Duration::from_secs(30));
    let id = video["id"].as_str().expect("id");
    let preview = |q: &str| -> u64 {
        let r = common::curl::curl(
            None,
            "GET",
            &format!("{}/api/v1/videos/{id}/share-preview?{q}", server.http),
            None,
            &[format!("Cookie: vshare_session={session}")],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["parts"].as_u64().expect("parts")
    };

    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/share_count.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("VIDEO", id)
        .env("SESSION", &session)
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(120));
    assert!(ok, "share_count.mjs failed:\n{out}\n{err}");
    let result = page_result(&out, &err);
    println!("the Share dialog showed {result}");
    assert_eq!(result["text"]["parts"], 1, "{result}");
    assert_eq!(
        result["text"]["text"], "1 SMS (GSM 7-bit) per number",
        "{result}"
    );
    assert_eq!(result["wap-si"]["parts"], 1, "{result}");
    for (form, q) in [
        ("text-full", "form=text&full=true"),
        ("wap-si-full", "form=wap-si&full=true"),
    ] {
        let want = preview(q);
        assert!(want > 1, "{form}: {want}");
        assert_eq!(result[form]["parts"], want, "{form}: {result}");
    }
}

/// The poster in Chromium (tests/browser/poster.mjs): on the watch page before play, live and
/// then the recording's, and in the library; each loads as an image with the video's shape.
#[test]
fn the_poster_shows_before_play_and_in_the_library_in_chromium() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the browser poster test: {why}");
        return;
    }
    require_playwright();
    let _one = one_browser_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("vshare.toml");
    std::fs::write(&conf, "[posters]\nlive_interval_s = 1\n").expect("conf");
    let server = Server::start(
        &tmp.path().join("data"),
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    );
    let clip = common::make_clip(tmp.path(), "clip.mp4", 8, &[]);
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/poster.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("CLIP", &clip)
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(180));
    assert!(
        ok,
        "poster.mjs failed:\n{out}\n{err}\n--- server log\n{}",
        server.log()
    );
    let r = page_result(&out, &err);
    eprintln!("browser poster: {r:#}");
    let id = r["id"].as_str().expect("id");
    let poster = format!("{}/vod/{id}/poster.jpg", server.http);
    // 640x360 source: every picture shown has its 16:9 shape.
    let shape = |v: &serde_json::Value| {
        let (w, h) = (
            v["width"].as_f64().unwrap_or(0.0),
            v["height"].as_f64().unwrap_or(0.0),
        );
        h > 0.0 && (w / h - 640.0 / 360.0).abs() < 0.02
    };
    for page in ["live", "vod"] {
        let p = &r[page];
        assert!(
            p["url"].as_str().is_some_and(|u| u.starts_with(&poster)),
            "{page}: {p}"
        );
        assert!(shape(p), "{page}: {p}");
        // Before play: nothing loaded into the player, which shows the poster.
        assert_eq!(p["paused"], true, "{page}: {p}");
        assert_eq!(p["time"], 0, "{page}: {p}");
        assert_eq!(p["src"], "", "{page}: {p}");
    }
    let lib = &r["library"];
    assert_eq!(lib["src"], poster.as_str(), "{lib}");
    assert!(
        shape(lib) && lib["shown"].as_f64().unwrap_or(0.0) > 0.0,
        "{lib}"
    );
    assert_eq!(r["errors"], serde_json::json!([]), "page errors");
}

/// Scrubbing previews in Chromium (tests/browser/scrub.mjs): the recording's seek bar shows the
/// sprite tile of the WebVTT cue for the time under the mouse (25 % and 75 %) and under a
/// dragging finger, and seeks on a click and where the finger lifts; a private video's track
/// and sprite load under its signed link.
#[test]
fn the_seek_bar_previews_sprite_tiles_and_seeks_in_chromium() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the browser scrubbing test: {why}");
        return;
    }
    require_playwright();
    let _one = one_browser_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("vshare.toml");
    std::fs::write(&conf, "[posters]\nsprite_interval_s = 1\n").expect("conf");
    let server = Server::start(
        &tmp.path().join("data"),
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    );
    let clip = common::make_clip(tmp.path(), "clip.mp4", 10, &[]);
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/scrub.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("CLIP", &clip)
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(180));
    assert!(
        ok,
        "scrub.mjs failed:\n{out}\n{err}\n--- server log\n{}",
        server.log()
    );
    let r = page_result(&out, &err);
    eprintln!("browser scrub: {r:#}");
    // A tile a second of a 10 s clip (a busy machine may skip a few), all read by the page.
    assert!(r["cues"].as_u64().unwrap_or(0) >= 5, "{r}");
    let start = |p: &serde_json::Value| p["cue"]["start"].as_f64().unwrap_or(-1.0);
    assert!(
        start(&r["hover"]["0.25"]) < start(&r["hover"]["0.75"]),
        "{r}"
    );
    assert_ne!(
        r["hover"]["0.25"]["position"], r["hover"]["0.75"]["position"],
        "{r}"
    );
    assert_eq!(r["image"]["loaded"], true, "{r}");
    assert_eq!(r["private"]["image"]["loaded"], true, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "page errors");
}

/// Rewind while live and who is watching (tests/browser/dvr.mjs): with a live playlist of two
/// segments, the watch page's DVR playback seeks over the whole recording so far, plays from
/// its start, and LIVE returns to the live edge; the studio counts the open watch page and stops
/// counting it within `[watching] window_s` of its last beacon once it closed.
#[test]
fn rewind_while_live_and_the_studio_counts_watchers_in_chromium() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the browser test: {why}");
        return;
    }
    require_playwright();
    let _one = one_browser_at_a_time();
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("vshare.toml");
    let (segment_s, window_s, beacon_s) = (1.0, 3.0, 1.0);
    std::fs::write(
        &conf,
        "[live]\npart_target_ms = 250\nsegment_target_ms = 1000\nwindow_segments = 2\n\
         dvr_window_s = 600\n[watching]\nbeacon_s = 1\nwindow_s = 3\n",
    )
    .expect("config");
    let server = Server::start(
        &tmp.path().join("data"),
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    );
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/browser/dvr.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("CHROMIUM", chromium());
    let (ok, out, err) = run_with_limit(cmd, Duration::from_secs(240));
    assert!(ok, "dvr.mjs failed:\n{out}\n{err}\n--- server log\n{}", {
        let log = server.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    });
    let r = page_result(&out, &err);
    eprintln!("dvr: {r:#}");
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    assert_eq!(
        r["dvr"], 600,
        "the live record announces the DVR window: {r}"
    );
    // The live playlist is short; the DVR playback seeks over the whole recording so far.
    assert!(
        r["live_playlist_segments"].as_u64().unwrap_or(99) <= 3,
        "{r}"
    );
    // The page opened after 12 segments: live, it seeks over its short playlist only.
    let live_span = f(&r["live"]["seekable"][1]) - f(&r["live"]["seekable"][0]);
    let at_open = r["recorded_at_open"].as_u64().unwrap_or(0) as f64;
    assert!(
        live_span < (at_open - 2.0) * segment_s,
        "live seekable {} against {at_open} recorded segments: {r}",
        r["live"]["seekable"]
    );
    let seekable = &r["rewound"]["seekable"];
    let span = f(&seekable[1]) - f(&seekable[0]);
    let recorded = r["recorded_segments"].as_u64().unwrap_or(0) as f64;
    assert!(recorded >= 12.0, "{r}");
    assert!(
        // hls.js's seekable end trails the listed duration by up to ~2 s (the media source's
        // duration follows the playlist with a delay), so: all but the last 3 segments.
        f(&seekable[0]) < 0.5 && span >= (recorded - 3.0) * segment_s,
        "rewound seekable {seekable} covers the {recorded} segments recorded before: {r}"
    );
    // Seeking back to the start plays on from there.
    assert!(
        f(&r["seek"]["played_to"]) >= f(&r["seek"]["target"]) + 1.0,
        "{r}"
    );
    // The burnt-in clock of the frames shown: live, a moment ago; after the seek, from the
    // start of the recording, earlier than anything the live playlist still listed.
    let clock = |v: &serde_json::Value| f(&v["ms"]);
    let live_lag = f(&r["live_clock"]["now"]) - clock(&r["live_clock"]);
    assert!(
        live_lag < 3000.0 * segment_s,
        "live shows a frame {live_lag} ms old: {r}"
    );
    let seek = &r["seek"]["clock"];
    assert!(f(&seek["t"]) < 6.0, "{r}");
    // DVR time 0 in wall-clock time: the start of the recording, long before the live frame.
    let origin = clock(seek) - 1000.0 * f(&seek["t"]);
    assert!(
        clock(&r["live_clock"]) - origin > (at_open - 3.0) * 1000.0 * segment_s,
        "the DVR playlist starts at the start of the recording: {r}"
    );
    assert!(
        clock(seek) < clock(&r["live_clock"]) - 3000.0 * segment_s,
        "after the seek a frame from earlier than live: {r}"
    );
    let edge_lag = f(&r["edge"]["clock"]["now"]) - clock(&r["edge"]["clock"]);
    assert!(
        edge_lag < 3000.0 * segment_s,
        "back at the edge, {edge_lag} ms behind: {r}"
    );
    // LIVE: back within a few segments of the live edge, in the live mode.
    assert_eq!(r["edge"]["mode"], "live", "{r}");
    assert!(f(&r["edge"]["distance"]) < 3.0 * segment_s, "{r}");
    // The studio counted the watch page, and stopped once it closed.
    assert!(r["studio_open"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(
        f(&r["count_fell_ms"]) / 1000.0 >= window_s - beacon_s - 0.5,
        "the count falls only after the window: {r}"
    );
}
