//! The live server in its own process: a `--roles video` server pushes a published stream over
//! the live hand-off (docs/live-handoff.md) to a `--roles live` server sharing its storage; the
//! live server's playlist lists parts and segments that decode; after `kill -9` and a restart
//! the live server has the stream again — its whole window, not only what came after — within
//! a bound made of the configured reconnect wait and one segment; a live server that stops
//! reading does not hold the video server up and catches up when it reads again; a wrong
//! secret is refused.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use vshare_testkit::ffmpeg::{decode_errors, frame_count};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::{wait_exit, wait_for};

const SECRET: &str = "live-tier test secret 0123456789";
const PART_MS: u64 = 250;
const SEGMENT_MS: u64 = 1000;
/// The video server waits at most this long between reconnect attempts.
const RECONNECT_MAX_MS: u64 = 250;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("vshare.toml");
    std::fs::write(
        &path,
        format!(
            "[live]\npart_target_ms = {PART_MS}\nsegment_target_ms = {SEGMENT_MS}\n\
             handoff_keepalive_ms = 250\nhandoff_reconnect_max_ms = {RECONNECT_MAX_MS}\n\
             [transcode]\nladder = \"none\"\n"
        ),
    )
    .expect("config");
    path
}

fn live_server(data: &Path, config: &Path, port: u16, secret: &str) -> Server {
    Server::start_with_env(
        data,
        &[
            "--config",
            config.to_str().expect("path"),
            "--roles",
            "live",
            "--live-listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[("VSHARE_LIVE_HANDOFF_SECRET", secret.to_string())],
    )
}

fn text(url: &str) -> Option<String> {
    let (status, body) = http_get(url);
    (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
}

/// URIs of the playlist's segments and parts.
fn listed(playlist: &str) -> (Vec<String>, Vec<String>) {
    let segments = playlist
        .lines()
        .filter(|l| l.starts_with("seg") && l.ends_with(".m4s"))
        .map(str::to_string)
        .collect();
    let parts = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1))
        .filter_map(|u| u.split('"').next())
        .map(str::to_string)
        .collect();
    (segments, parts)
}

/// (msn, index) of a part URI `part{msn}.{index}.m4s`.
fn part_number(uri: &str) -> (u64, u32) {
    let n = uri
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
        .and_then(|r| r.split_once('.'))
        .and_then(|(m, i)| Some((m.parse().ok()?, i.parse().ok()?)));
    n.unwrap_or_else(|| panic!("part URI {uri:?}"))
}

fn signal(server: &Server, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(sig)
        .arg(server.child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

/// init.mp4 and one segment of the live server, decoded by ffprobe.
fn decodes(dir: &Path, base: &str, seg: &str) {
    let (s, init) = http_get(&format!("{base}/init.mp4"));
    assert_eq!(s, 200, "init.mp4");
    let (s, media) = http_get(&format!("{base}/{seg}"));
    assert_eq!(s, 200, "{seg}");
    let path = dir.join(format!("check-{seg}.mp4"));
    let mut f = std::fs::File::create(&path).expect("file");
    f.write_all(&init)
        .and_then(|_| f.write_all(&media))
        .expect("write");
    assert_eq!(decode_errors(&path), "", "{seg} does not decode");
    assert!(frame_count(&path, "v:0") > 0, "{seg} has no video frames");
}

#[test]
fn a_live_server_in_its_own_process_serves_the_stream_and_recovers_from_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 24, &[]);

    let live_port = free_port();
    let wrong_port = free_port();
    let mut live = live_server(&data, &config, live_port, SECRET);
    let wrong = live_server(
        &data,
        &config,
        wrong_port,
        "another secret, not the video server's",
    );
    let video = Server::start_with_env(
        &data,
        &[
            "--config",
            config.to_str().expect("path"),
            "--roles",
            "video",
            "--live-push",
            &format!("tcp://127.0.0.1:{live_port},tcp://127.0.0.1:{wrong_port}"),
            "--live-public-url",
            &live.http,
        ],
        &[("VSHARE_LIVE_HANDOFF_SECRET", SECRET.to_string())],
    );
    let mut publisher = ffmpeg_publish(&clip, &video.rtmp_url(&key));
    let status = wait_video_state(&video, &key, &["live"], Duration::from_secs(20));
    let id = status["id"].as_str().expect("video id").to_string();
    let url = status["attributes"][0]["url"].as_str().expect("url");
    assert_eq!(
        url,
        format!("{}/live/{id}/index.m3u8", live.http),
        "the live record names the live server"
    );

    // The live server lists parts and segments, and they decode.
    let base = format!("{}/live/{id}", live.http);
    let playlist = wait_for(
        "two segments on the live server",
        Duration::from_secs(20),
        || text(&format!("{base}/index.m3u8")).filter(|p| listed(p).0.len() >= 2),
    );
    let (segments, parts) = listed(&playlist);
    assert!(!parts.is_empty(), "no parts listed:\n{playlist}");
    decodes(dir.path(), &base, &segments[0]);
    decodes(dir.path(), &base, &segments[segments.len() - 1]);
    let (s, part) = http_get(&format!("{base}/{}", parts[parts.len() - 1]));
    assert!(s == 200 && !part.is_empty(), "newest part: HTTP {s}");

    // The live server with another secret: refused, and it has no stream.
    video.expect_logged("wrong shared secret");
    assert_eq!(
        http_get(&format!("{}/live/{id}/index.m3u8", wrong.http)).0,
        404
    );

    // A client that does not know the secret: the live server refuses its proof and says why.
    let mut s = TcpStream::connect(("127.0.0.1", live_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut hello = vec![0, 0, 0, 39, 0x01];
    hello.extend_from_slice(b"VSHO");
    hello.extend_from_slice(&1u16.to_be_bytes());
    hello.extend_from_slice(&[7; 32]);
    s.write_all(&hello).expect("hello");
    let mut challenge = [0u8; 4 + 67];
    s.read_exact(&mut challenge).expect("challenge");
    assert_eq!(&challenge[..5], &[0, 0, 0, 67, 0x02]);
    let mut proof = vec![0, 0, 0, 33, 0x03];
    proof.extend_from_slice(&[0; 32]);
    s.write_all(&proof).expect("proof");
    let mut refuse = [0u8; 6];
    s.read_exact(&mut refuse).expect("refusal");
    assert_eq!(refuse, [0, 0, 0, 2, 0x05, 2], "refused: wrong secret");
    live.expect_logged("wrong shared secret");

    // kill -9 the live server and start it again: within the reconnect wait and one segment
    // it serves the stream with the window it had (segments made before the restart), so a
    // player reloading the playlist sees no gap.
    live.kill9();
    let restarted_at = Instant::now();
    let live = live_server(&data, &config, live_port, SECRET);
    let ready = Instant::now();
    // Its HTTP port is a new ephemeral one (in service the address stays).
    let base = format!("{}/live/{id}", live.http);
    let bound = Duration::from_millis(RECONNECT_MAX_MS + SEGMENT_MS);
    let mut recovered = None;
    while ready.elapsed() < bound * 4 {
        if let Some(p) = text(&format!("{base}/index.m3u8")).filter(|p| !listed(p).1.is_empty()) {
            recovered = Some((ready.elapsed(), p));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (took, playlist) = recovered.unwrap_or_else(|| {
        panic!(
            "the restarted live server never served the stream; log:\n{}\nvideo server:\n{}",
            live.log(),
            video.log()
        )
    });
    eprintln!(
        "live server recovered {} ms after it was ready ({} ms after kill -9)",
        took.as_millis(),
        restarted_at.elapsed().as_millis()
    );
    assert!(
        took <= bound,
        "recovered after {took:?}, over the bound {bound:?}; log:\n{}",
        live.log()
    );
    let (segments, parts) = listed(&playlist);
    assert!(
        segments.len() >= 2,
        "the resync brings the window, not only new parts:\n{playlist}"
    );
    // The oldest part listed: a byte range of a stored segment, from the resync's lengths.
    let (s, part) = http_get(&format!("{base}/{}", parts[0]));
    assert!(
        s == 200 && !part.is_empty(),
        "oldest part {}: HTTP {s}",
        parts[0]
    );
    decodes(dir.path(), &base, &segments[0]);
    live.expect_logged("a video server connected");

    // A live server that stops reading (SIGSTOP) does not hold the video server up: its own
    // window goes on, the link is dropped once silent for three keepalives, and after SIGCONT
    // the live server catches up by a resync within the same bound.
    let own = format!("{}/live/{id}/index.m3u8", video.http);
    let newest = |p: &str| listed(p).1.last().map(|u| part_number(u));
    let before = text(&own)
        .and_then(|p| newest(&p))
        .expect("video server's playlist");
    signal(&live, "-STOP");
    // Lost once at the kill -9, and now again.
    wait_for(
        "the video server to drop the stopped live server",
        bound * 4,
        || (video.log().matches("live hand-off lost").count() >= 2).then_some(()),
    );
    let during = wait_for(
        "the video server's window to go on",
        Duration::from_secs(10),
        || {
            text(&own)
                .and_then(|p| newest(&p))
                .filter(|n| n.0 > before.0)
        },
    );
    signal(&live, "-CONT");
    let resumed = Instant::now();
    let caught_up = wait_for("the live server to catch up", bound * 4, || {
        text(&format!("{base}/index.m3u8"))
            .and_then(|p| newest(&p))
            .filter(|n| *n >= during)
    });
    let took = resumed.elapsed();
    eprintln!(
        "live server stopped from part {before:?} to {during:?}; caught up to {caught_up:?} {} ms after SIGCONT",
        took.as_millis()
    );
    assert!(took <= bound, "caught up after {took:?}, over {bound:?}");

    // The publisher ends: the live server's playlist ends too.
    let status = wait_exit(&mut publisher, Duration::from_secs(60)).expect("ffmpeg ends");
    assert!(status.success());
    wait_for(
        "EXT-X-ENDLIST on the live server",
        Duration::from_secs(20),
        || text(&format!("{base}/index.m3u8")).filter(|p| p.contains("#EXT-X-ENDLIST")),
    );
    drop(wrong);

    // What the hand-off cost on the wire against the media it carried (the recording's init
    // and segments): framing, tags, the playlist with every part, and two resyncs.
    let metrics = text(&format!("{}/metrics", video.http)).expect("metrics");
    let sent: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("vshare_live_handoff_bytes_total")
                && l.contains(&format!(":{live_port}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("hand-off byte counter:\n{metrics}"));
    let media: u64 = std::fs::read_dir(data.join("media/videos").join(&id))
        .expect("recording")
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("seg") || n.starts_with("init")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "hand-off: {sent} bytes sent for {media} bytes of media ({:.1} %)",
        sent * 100.0 / media as f64
    );
    assert!(sent > 0.0 && media > 0);
}
