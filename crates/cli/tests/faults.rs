//! Bad input and crashes: each fault gets a clear error, and a good stream running beside it,
//! or a recording cut by kill -9, is not lost.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vshare_testkit::ffmpeg::{decode_errors, ffprobe, frame_count, number};
use vshare_testkit::wait::wait_exit;

#[test]
fn bad_publishers_are_refused_and_a_good_stream_is_unharmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "good.mp4", 10, &[]);
    let server = Server::start(&data, &["--idle-timeout", "2"]);
    let mut good = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    wait_video_state(&server, &key, &["live"], Duration::from_secs(15));

    // An unknown stream key: refused with an RTMP status, ffmpeg fails.
    let mut bad = ffmpeg_publish(&clip, &server.rtmp_url("not-a-key"));
    let status =
        wait_exit(&mut bad, Duration::from_secs(10)).expect("ffmpeg with a bad key should stop");
    assert!(!status.success());
    server.expect_logged("unknown or revoked stream key");

    // A second publisher on a key that is live: refused.
    let mut second = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let status =
        wait_exit(&mut second, Duration::from_secs(10)).expect("second publisher should stop");
    assert!(!status.success());
    server.expect_logged("already publishing");

    // A codec we do not support (Sorenson H.263, FLV codec id 2): the connection is closed.
    let key2 = create_key(&data);
    let mut h263 = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=15:duration=5",
            "-c:v",
            "flv",
            "-f",
            "flv",
        ])
        .arg(server.rtmp_url(&key2))
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let status =
        wait_exit(&mut h263, Duration::from_secs(15)).expect("h263 publisher should be cut off");
    assert!(!status.success());
    server.expect_logged("codec id 2 is not supported");

    // Garbage instead of a handshake: closed.
    let mut s = TcpStream::connect(("127.0.0.1", server.rtmp_port)).expect("connect");
    let garbage: Vec<u8> = (0..6000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&garbage);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).is_some(),
        "garbage connection left open"
    );

    // A client that connects and stalls: closed after the idle timeout.
    let mut s = TcpStream::connect(("127.0.0.1", server.rtmp_port)).expect("connect");
    let took = closed_within(&mut s, Duration::from_secs(8)).expect("stalled connection left open");
    assert!(
        took >= Duration::from_millis(1500),
        "closed after {took:?}, before the idle timeout"
    );

    // The good stream carried on and its recording is whole.
    let status = good.wait().expect("ffmpeg");
    assert!(status.success(), "good publisher failed");
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(10));
    let mp4 = ready["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .expect("mp4")
        .clone();
    let url = mp4["url"].as_str().expect("url");
    assert!(decode_errors(url).is_empty());
    assert_eq!(
        frame_count(url, "v:0"),
        frame_count(clip.to_str().expect("clip"), "v:0")
    );
}

#[test]
fn kill_9_during_recording_then_restart_leaves_a_playable_partial_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "long.mp4", 30, &[]);
    let mut server = Server::start(&data, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(15));
    let id = live["id"].as_str().expect("id").to_string();
    std::thread::sleep(Duration::from_secs(6));
    server.kill9();
    let _ = wait_exit(&mut publisher, Duration::from_secs(10));

    let server = Server::start(&data, &[]);
    let v = get_json(&format!("{}/api/v1/videos/{id}", server.http));
    assert_eq!(v["state"], "partial", "{v}");
    let mp4 = v["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .expect("mp4 record")
        .clone();
    let url = mp4["url"].as_str().expect("url");
    let errors = decode_errors(url);
    assert!(errors.is_empty(), "recovered MP4 does not decode: {errors}");
    let probe = ffprobe(url);
    let duration = number(&probe["format"]["duration"]);
    // About 8 s were streamed; at most the segment in progress (≤ 2 s here) may be lost.
    assert!(duration >= 4.0, "recovered only {duration}s");
    assert_eq!(
        mp4["size"].as_u64(),
        probe["format"]["size"]
            .as_str()
            .and_then(|s| s.parse().ok())
    );
    let listed = get_json(&format!("{}/api/v1/videos", server.http));
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .any(|x| x["id"] == id.as_str())
    );
}

#[test]
fn frames_without_codec_configuration_and_oversized_messages_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let key2 = create_key(&data);
    let clip = make_clip(dir.path(), "good.mp4", 6, &[]);
    let server = Server::start(&data, &[]);
    let mut good = ffmpeg_publish(&clip, &server.rtmp_url(&key));

    // A keyframe before any AVC sequence header.
    let (mut s, mut c) = raw_publisher(server.rtmp_port, &key2);
    c.send_video(
        0,
        &vshare_media::flv::video_frame(true, 0, &[0, 0, 0, 2, 0x65, 0x88]),
    )
    .expect("send");
    let _ = send_all(&mut s, &mut c);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).is_some(),
        "connection left open"
    );
    server.expect_logged("arrived before the AVC sequence header");

    // A 20 MB message: over the limit, refused before it is buffered.
    let (mut s, mut c) = raw_publisher(server.rtmp_port, &key2);
    let huge = vec![0x17u8; 20 << 20];
    let _ = c.send_video(0, &huge);
    let _ = send_all(&mut s, &mut c);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).is_some(),
        "connection left open"
    );

    let status = good.wait().expect("ffmpeg");
    assert!(status.success(), "good publisher failed: {}", server.log());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(10));
    assert_eq!(ready["attributes"][0]["width"].as_u64(), Some(640));
}
