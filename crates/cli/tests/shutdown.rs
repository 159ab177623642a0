//! A graceful stop of `vshare serve` (SIGTERM, as `systemctl stop` sends): mid-stream, the
//! server ends the publish as if the publisher had stopped, finishes the VOD (`ready`, not left
//! `live` for recovery to mark `partial`), pushes the end of the stream to live servers over
//! the hand-off, and exits 0 within `[limits] shutdown_grace_s`; an upload in progress ends the
//! same way and its sender is sent the VOD records first. And after a `kill -9`, the
//! restarted video server's recovery ends the interrupted stream on the live servers, long
//! before `handoff_orphan_s` would have had them forget it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use vshare_testkit::ffmpeg::{decode_errors, frame_count};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::{wait_exit, wait_for};

const SECRET: &str = "shutdown test secret 0123456789ab";
const PART_MS: u64 = 250;
const SEGMENT_MS: u64 = 1000;
const GRACE_S: u64 = 10;
const KEEPALIVE_MS: u64 = 250;
const RECONNECT_MAX_MS: u64 = 250;
/// Long, so that an ended playlist can only come from an end of stream, never from a live
/// server forgetting an orphaned stream.
const ORPHAN_S: u64 = 120;
/// The test clip's frame rate (one segment of `SEGMENT_MS` holds this many frames).
const FPS: u64 = 30;

fn write_config(dir: &Path) -> std::path::PathBuf {
    write_config_with_grace(dir, GRACE_S)
}

fn write_config_with_grace(dir: &Path, grace_s: u64) -> std::path::PathBuf {
    let path = dir.join(format!("vshare-{grace_s}.toml"));
    std::fs::write(
        &path,
        format!(
            "[live]\npart_target_ms = {PART_MS}\nsegment_target_ms = {SEGMENT_MS}\n\
             handoff_keepalive_ms = {KEEPALIVE_MS}\nhandoff_reconnect_max_ms = {RECONNECT_MAX_MS}\n\
             handoff_orphan_s = {ORPHAN_S}\n\
             [limits]\nshutdown_grace_s = {grace_s}\n\
             [transcode]\nladder = \"none\"\n"
        ),
    )
    .expect("config");
    path
}

fn config_args(config: &Path) -> Vec<String> {
    vec!["--config".into(), config.to_str().expect("path").into()]
}

fn text(url: &str) -> Option<String> {
    let (status, body) = http_get(url);
    (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
}

fn segments_listed(playlist: &str) -> usize {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .count()
}

/// Waits until the playlist at `url` lists two segments; how many it lists then.
fn wait_two_segments(url: &str) -> usize {
    wait_for(
        "two segments on the live server",
        Duration::from_secs(20),
        || text(url).map(|p| segments_listed(&p)).filter(|n| *n >= 2),
    )
}

fn sigterm(server: &Server) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM");
}

/// Sends SIGTERM and waits for the exit: status 0 within the grace bound. Returns how long.
fn stop(server: &mut Server) -> Duration {
    let at = Instant::now();
    sigterm(server);
    // The server exits by itself at the grace period at the latest; the margin is for the
    // process to be reaped on a busy machine, not for the stop.
    let status = wait_exit(&mut server.child, Duration::from_secs(GRACE_S + 5))
        .unwrap_or_else(|| panic!("no exit after SIGTERM; log:\n{}", server.log()));
    let took = at.elapsed();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM; log:\n{}",
        server.log()
    );
    assert!(
        took <= Duration::from_secs(GRACE_S),
        "stopped after {took:?}, over shutdown_grace_s = {GRACE_S}"
    );
    server.expect_logged("stopped");
    took
}

/// The video's MP4 from `http`: it decodes and has at least `frames` video frames.
fn mp4_has(dir: &Path, http: &str, id: &str, frames: u64) -> u64 {
    let (s, mp4) = http_get(&format!("{http}/vod/{id}/video.mp4"));
    assert_eq!(s, 200, "video.mp4");
    let path = dir.join(format!("{id}.mp4"));
    std::fs::write(&path, &mp4).expect("write mp4");
    assert_eq!(decode_errors(&path), "", "the MP4 does not decode");
    let n = frame_count(&path, "v:0");
    assert!(
        n >= frames,
        "{n} video frames in the MP4; {frames} had been received before the stop"
    );
    n
}

#[test]
fn sigterm_mid_stream_finishes_the_vod_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 30, &[]);
    let args = config_args(&config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(&data, &args);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let status = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = status["id"].as_str().expect("id").to_string();
    // Three whole segments received (and listed) before the stop.
    let listed = wait_for("three segments", Duration::from_secs(20), || {
        text(&format!("{}/live/{id}/index.m3u8", server.http))
            .map(|p| segments_listed(&p))
            .filter(|n| *n >= 3)
    });
    let took = stop(&mut server);
    let log = server.log();
    assert!(
        log.contains("server stopping; ending the publish") && log.contains("streams=1"),
        "the stop ended the publish; log:\n{log}"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();

    // Started again on the same data: the video is ready, recovery had nothing to do.
    let server = Server::start(&data, &args);
    let video = get_json(&format!("{}/api/v1/videos/{id}", server.http));
    assert_eq!(video["state"], "ready", "{video}");
    assert!(
        !server.log().contains("recovered interrupted recording"),
        "recovery ran; log:\n{}",
        server.log()
    );
    let frames = mp4_has(dir.path(), &server.http, &id, listed as u64 * FPS);
    eprintln!(
        "SIGTERM mid-stream: exit 0 after {} ms; {listed} segments listed before it, {frames} frames in the MP4",
        took.as_millis()
    );
}

fn live_server(data: &Path, config: &Path, port: u16) -> Server {
    let mut args = config_args(config);
    args.extend([
        "--roles".into(),
        "live".into(),
        "--live-listen".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_with_env(
        data,
        &args,
        &[("VSHARE_LIVE_HANDOFF_SECRET", SECRET.to_string())],
    )
}

fn video_server(data: &Path, config: &Path, live_port: u16, live: &Server) -> Server {
    let mut args = config_args(config);
    args.extend([
        "--roles".into(),
        "video".into(),
        "--live-push".into(),
        format!("tcp://127.0.0.1:{live_port}"),
        "--live-public-url".into(),
        live.http.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_with_env(
        data,
        &args,
        &[("VSHARE_LIVE_HANDOFF_SECRET", SECRET.to_string())],
    )
}

/// Polls the live server's playlist until it carries EXT-X-ENDLIST; how long that took.
fn ended_within(url: &str, bound: Duration, log: impl Fn() -> String) -> (Duration, String) {
    let at = Instant::now();
    loop {
        if let Some(p) = text(url).filter(|p| p.contains("#EXT-X-ENDLIST")) {
            return (at.elapsed(), p);
        }
        assert!(
            at.elapsed() < bound,
            "no EXT-X-ENDLIST within {bound:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_on_a_video_server_ends_the_stream_on_the_live_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 30, &[]);
    let live_port = free_port();
    let mut live = live_server(&data, &config, live_port);
    let mut video = video_server(&data, &config, live_port, &live);
    let mut publisher = ffmpeg_publish(&clip, &video.rtmp_url(&key));
    let status = wait_video_state(&video, &key, &["live"], Duration::from_secs(20));
    let id = status["id"].as_str().expect("id").to_string();
    let url = format!("{}/live/{id}/index.m3u8", live.http);
    let listed = wait_two_segments(&url);
    let took = stop(&mut video);
    // The end was written to the live server, and its FIN read, before the video server
    // exited: the playlist is ended by the time it is asked, within one keepalive of polling.
    let (after, playlist) =
        ended_within(&url, Duration::from_millis(KEEPALIVE_MS * 4), || live.log());
    assert!(
        segments_listed(&playlist) >= listed,
        "the ended playlist lists what was live:\n{playlist}"
    );
    let log = video.log();
    assert!(
        log.contains("live_servers_flushed=1"),
        "the hand-off was flushed; log:\n{log}"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
    // The live server reads the shared database: the video is ready.
    let v = get_json(&format!("{}/api/v1/videos/{id}", live.http));
    assert_eq!(v["state"], "ready", "{v}");
    mp4_has(dir.path(), &live.http, &id, listed as u64 * FPS);
    eprintln!(
        "SIGTERM on the video server: exit 0 after {} ms; EXT-X-ENDLIST on the live server {} ms after the exit",
        took.as_millis(),
        after.as_millis()
    );
    // A live-only process stops too: it only stops accepting.
    stop(&mut live);
}

#[test]
fn recovery_after_kill_9_ends_the_interrupted_stream_on_the_live_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 30, &[]);
    let live_port = free_port();
    let live = live_server(&data, &config, live_port);
    let mut video = video_server(&data, &config, live_port, &live);
    let mut publisher = ffmpeg_publish(&clip, &video.rtmp_url(&key));
    let status = wait_video_state(&video, &key, &["live"], Duration::from_secs(20));
    let id = status["id"].as_str().expect("id").to_string();
    let url = format!("{}/live/{id}/index.m3u8", live.http);
    wait_two_segments(&url);
    video.kill9();
    let _ = publisher.kill();
    let _ = publisher.wait();
    // The stalled window: no end was sent.
    let stalled = text(&url).expect("the live server keeps the stream");
    assert!(!stalled.contains("#EXT-X-ENDLIST"), "{stalled}");

    let video = video_server(&data, &config, live_port, &live);
    // Recovery ran before the server said it was ready; the link comes up within the
    // reconnect wait and its first resync carries the end.
    let (after, playlist) = ended_within(
        &url,
        Duration::from_millis(RECONNECT_MAX_MS + KEEPALIVE_MS * 4),
        || format!("{}\nvideo server:\n{}", live.log(), video.log()),
    );
    let v = get_json(&format!("{}/api/v1/videos/{id}", live.http));
    assert_eq!(v["state"], "partial", "{v}");
    // The ended playlist points at the recovered VOD's segments, which the live server serves.
    let first = playlist
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .unwrap_or_else(|| panic!("no segment in the ended playlist:\n{playlist}"));
    let seg = first
        .strip_prefix("../../")
        .unwrap_or_else(|| panic!("segment URI {first:?}"));
    let (s, bytes) = http_get(&format!("{}/{seg}", live.http));
    assert!(
        s == 200 && !bytes.is_empty(),
        "{seg} from the ended playlist: HTTP {s}"
    );
    eprintln!(
        "kill -9, restart: EXT-X-ENDLIST on the live server {} ms after the video server was ready ({} segments)",
        after.as_millis(),
        segments_listed(&playlist)
    );
}

/// Seconds of media the playlist's segments hold (the sum of their EXTINF).
fn listed_seconds(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|d| d.split(',').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn sigterm_mid_upload_finishes_the_vod_and_tells_the_sender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let key = create_key(&data);
    let args = config_args(&config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(&data, &args);
    let mut sender = vshare()
        .args([
            "publish",
            "--protocol",
            "upload",
            &server.http,
            "--key",
            &key,
        ])
        .args(["--test-pattern", "--duration", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vshare publish");
    let status = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = status["id"].as_str().expect("id").to_string();
    let playlist = wait_for("three segments", Duration::from_secs(20), || {
        text(&format!("{}/live/{id}/index.m3u8", server.http)).filter(|p| segments_listed(p) >= 3)
    });
    let took = stop(&mut server);
    server.expect_logged("server stopping; ending the upload");
    // The sender was sent the VOD's records before the exit (it prints each record; it then
    // tries to resume, which a later server would refuse, so it is stopped here).
    let _ = sender.kill();
    let out = sender.wait_with_output().expect("sender output");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.lines()
            .any(|l| l.starts_with("vod:") && l.contains("/vod/")),
        "the sender got the VOD records:\n{said}"
    );

    let server = Server::start(&data, &args);
    let video = get_json(&format!("{}/api/v1/videos/{id}", server.http));
    assert_eq!(video["state"], "ready", "{video}");
    let (s, mp4) = http_get(&format!("{}/vod/{id}/video.mp4", server.http));
    assert_eq!(s, 200, "video.mp4");
    let path = dir.path().join("upload.mp4");
    std::fs::write(&path, &mp4).expect("write");
    assert_eq!(decode_errors(&path), "", "the MP4 does not decode");
    let listed = listed_seconds(&playlist);
    let probe = vshare_testkit::ffmpeg::ffprobe(&path);
    let duration = vshare_testkit::ffmpeg::number(&probe["format"]["duration"]);
    assert!(
        duration + 0.05 >= listed,
        "{duration} s in the MP4; {listed} s were listed before the stop"
    );
    eprintln!(
        "SIGTERM mid-upload: exit 0 after {} ms; {listed:.2} s listed before it, {duration:.2} s in the MP4",
        took.as_millis()
    );
}

/// A blocking playlist request (`_HLS_msn` one beyond the next segment) to a live server whose
/// stream no longer grows: held for the configured wait (three segment targets).
fn held_request(live: &Server, id: &str) -> std::process::Child {
    let url = format!("{}/live/{id}/index.m3u8", live.http);
    let playlist = text(&url).expect("playlist");
    let first: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("media sequence");
    let next = first + segments_listed(&playlist) as u64;
    std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null"])
        .arg(format!("{url}?_HLS_msn={}", next + 1))
        .spawn()
        .expect("curl")
}

/// Waits until the live server has taken a blocking playlist request (its request counter).
fn wait_held(live: &Server) {
    wait_for("the held request", Duration::from_secs(10), || {
        text(&format!("{}/metrics", live.http))?
            .lines()
            .filter(|l| {
                l.starts_with("vshare_live_requests_total") && l.contains("blocking_playlist")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .find(|n| *n >= 1.0)
    });
}

/// The exit code and how long the exit took from now.
fn exit_code_after(server: &mut Server, within: Duration) -> (Option<i32>, Duration) {
    let at = Instant::now();
    let status = wait_exit(&mut server.child, within)
        .unwrap_or_else(|| panic!("no exit within {within:?}; log:\n{}", server.log()));
    (status.code(), at.elapsed())
}

#[test]
fn a_stop_held_up_by_a_request_exits_at_the_deadline_and_a_second_signal_at_once() {
    const SHORT_S: u64 = 1;
    const LONG_S: u64 = 120;
    // A blocking request is held this long at most (three segment targets).
    let hold = Duration::from_millis(SEGMENT_MS * 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 30, &[]);
    let short = write_config_with_grace(dir.path(), SHORT_S);
    let long = write_config_with_grace(dir.path(), LONG_S);
    let (short_port, long_port) = (free_port(), free_port());
    let mut short_live = live_server(&data, &short, short_port);
    let mut long_live = live_server(&data, &long, long_port);
    let mut args = config_args(&long);
    args.extend([
        "--roles".into(),
        "video".into(),
        "--live-push".into(),
        format!("tcp://127.0.0.1:{short_port},tcp://127.0.0.1:{long_port}"),
        "--live-public-url".into(),
        long_live.http.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut video = Server::start_with_env(
        &data,
        &args,
        &[("VSHARE_LIVE_HANDOFF_SECRET", SECRET.to_string())],
    );
    let mut publisher = ffmpeg_publish(&clip, &video.rtmp_url(&key));
    let status = wait_video_state(&video, &key, &["live"], Duration::from_secs(20));
    let id = status["id"].as_str().expect("id").to_string();
    for live in [&short_live, &long_live] {
        let url = format!("{}/live/{id}/index.m3u8", live.http);
        wait_two_segments(&url);
    }
    // The stream stops growing: a request for a later segment is held for the whole wait.
    video.kill9();
    let _ = publisher.kill();
    let _ = publisher.wait();

    // Held longer than the grace period: the stop exits at its deadline, status 1.
    let mut curl = held_request(&short_live, &id);
    wait_held(&short_live);
    sigterm(&short_live);
    let (code, took) = exit_code_after(&mut short_live, hold + Duration::from_secs(5));
    assert_eq!(code, Some(1), "log:\n{}", short_live.log());
    assert!(
        took >= Duration::from_secs(SHORT_S) && took < hold,
        "exited after {took:?}: the deadline is {SHORT_S} s, the request is held {hold:?}"
    );
    short_live.expect_logged("shutdown_grace_s passed");
    let _ = curl.wait();

    // A long grace period: the stop waits for the held request, and a second signal ends
    // the wait at once (well before the request would have been answered).
    let mut curl = held_request(&long_live, &id);
    wait_held(&long_live);
    sigterm(&long_live);
    long_live.expect_logged("stopping: no new publishers");
    let ok = std::process::Command::new("kill")
        .args(["-INT", &long_live.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -INT");
    let (code, second) = exit_code_after(&mut long_live, hold + Duration::from_secs(5));
    assert_eq!(code, Some(1), "log:\n{}", long_live.log());
    assert!(second < hold, "exited {second:?} after the second signal");
    long_live.expect_logged("second signal");
    let _ = curl.wait();
    eprintln!(
        "a stop held by a request: exit 1 after {} ms (grace {SHORT_S} s, hold {} ms); a second signal: exit 1 after {} ms",
        took.as_millis(),
        hold.as_millis(),
        second.as_millis()
    );
}
