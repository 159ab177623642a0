//! `vshare open --listen <server>`: the target listens on the communication proxy's WebSocket,
//! subscribed to a source, and acts on the VOD notification: it downloads the recording and
//! checks its size against the attributes.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use vshare_testkit::ffmpeg::{ffprobe, stream_of};
use vshare_testkit::wait::{wait_exit, wait_for};

#[test]
fn open_listen_on_the_proxy_downloads_the_vod_it_is_told_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_named_key(&data, "alice");
    // The notification list is an admin endpoint: closed without an admin token.
    let server = Server::start_with_env(
        &data,
        &["--ladder", "none"],
        &[("VSHARE_ADMIN_TOKEN", "open-listen-admin".to_string())],
    );
    let clip = make_clip(dir.path(), "clip.mp4", 4, &[]);

    // An unknown source is refused, clearly and at once.
    let out = vshare()
        .args(["open", "--listen", &server.http, "--source", "nobody"])
        .args(["--download", "--player", "none", "--timeout", "10"])
        .output()
        .expect("vshare open");
    assert!(
        !out.status.success(),
        "listening to an unknown source worked"
    );

    let file = dir.path().join("got.mp4");
    let mut opener = vshare()
        .args(["open", "--listen", &server.http, "--source", "alice"])
        .args(["--id", "phone-b", "--download", "-o"])
        .arg(&file)
        .args(["--player", "none", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vshare open --listen");
    // Let it connect (and subscribe) before the stream starts.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        opener.try_wait().expect("try_wait").is_none(),
        "vshare open --listen exited before any notification"
    );

    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(20));
    let id = ready["id"].as_str().expect("id").to_string();
    let mp4 = ready["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .find(|r| r["kind"] == "vod" && r["format"] == "mp4")
        .unwrap_or_else(|| panic!("no mp4 record in {ready}"))
        .clone();
    let size = mp4["size"].as_u64().expect("size");
    assert!(size > 0, "{mp4}");

    let Some(status) = wait_exit(&mut opener, Duration::from_secs(30)) else {
        panic!(
            "vshare open --listen did not finish; server:\n{}",
            server.log()
        );
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    opener
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    opener
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(status.success(), "vshare open failed:\n{stderr}\n{stdout}");

    // It showed the live record while waiting, then the VOD records, and downloaded the MP4.
    assert!(
        stdout.contains(&format!("/live/{id}/index.m3u8")),
        "no live record shown:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("vod mp4 {}", mp4["url"].as_str().expect("url"))),
        "no VOD record shown:\n{stdout}"
    );
    assert!(
        stderr.contains("size matches the attributes"),
        "no size check:\n{stderr}"
    );
    let got = std::fs::read(&file).expect("downloaded file");
    assert_eq!(
        got.len() as u64,
        size,
        "downloaded size differs from the record"
    );
    // Byte for byte the server's recording: as stored in its data directory and as served.
    let stored = std::fs::read(
        data.join("media")
            .join("videos")
            .join(&id)
            .join("video.mp4"),
    )
    .expect("the server's stored video.mp4");
    assert!(
        got == stored,
        "downloaded bytes differ from the server's file"
    );
    let (code, body) = http_get(mp4["url"].as_str().expect("url"));
    assert_eq!(code, 200);
    assert!(
        got == body,
        "downloaded bytes differ from what the server serves"
    );
    let probe = ffprobe(file.to_str().expect("path"));
    assert_eq!(stream_of(&probe, "video")["codec_name"], "h264");

    // The listener acknowledged both notifications: the proxy lists them delivered.
    let mut last = String::new();
    wait_for(
        "both notifications delivered",
        Duration::from_secs(10),
        || {
            let out = vshare()
                .args(["subscribe", "--server", &server.http, "status", &id])
                .env("VSHARE_ADMIN_TOKEN", "open-listen-admin")
                .output()
                .expect("subscribe status");
            last = String::from_utf8_lossy(&out.stdout).to_string();
            (last.matches("delivered").count() == 2).then_some(())
        },
    );
    assert_eq!(last.lines().count(), 2, "{last}");
}
