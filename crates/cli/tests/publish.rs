//! `vshare publish` (the source phone on the command line) against a real `vshare serve`.

mod common;

use std::process::Command;

use common::*;
use vshare_testkit::ffmpeg::{decode_errors, ffprobe, frame_count, stream_of};
use vshare_testkit::process::require_tool;

fn publish(server: &Server, key: &str, args: &[&str]) -> serde_json::Value {
    let out = vshare()
        .arg("publish")
        .arg(server.rtmp_url(key))
        .args(["--http", &server.http, "--json"])
        .args(args)
        .output()
        .expect("vshare publish");
    assert!(
        out.status.success(),
        "publish failed: {}\nserver: {}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    serde_json::from_slice(&out.stdout).expect("publish --json output")
}

fn vod_mp4(report: &serde_json::Value) -> serde_json::Value {
    report["vod"]["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .unwrap_or_else(|| panic!("no mp4 record in {report}"))
        .clone()
}

#[test]
fn test_pattern_is_published_in_real_time_and_its_attributes_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let server = Server::start(&data, &[]);
    let report = publish(
        &server,
        &key,
        &[
            "--test-pattern",
            "--duration",
            "4s",
            "--size",
            "426x240",
            "--fps",
            "25",
        ],
    );

    // Real time: four seconds of media took about four seconds.
    let wall = report["published"]["wall_ms"].as_f64().expect("wall_ms");
    assert!(
        (3800.0..5500.0).contains(&wall),
        "4 s of media took {wall} ms"
    );
    // The source got the live record while streaming and the VOD records after.
    assert_eq!(report["live"]["attributes"][0]["format"], "ll-hls");
    let mp4 = vod_mp4(&report);
    let url = mp4["url"].as_str().expect("url");
    assert!(decode_errors(url).is_empty());
    let probe = ffprobe(url);
    let v = stream_of(&probe, "video");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(426), Some(240))
    );
    assert_eq!(
        (mp4["width"].as_u64(), mp4["height"].as_u64()),
        (Some(426), Some(240))
    );
    assert_eq!(mp4["frame_rate"].as_f64(), Some(25.0));
    assert_eq!(
        mp4["size"].as_u64(),
        probe["format"]["size"]
            .as_str()
            .and_then(|s| s.parse().ok())
    );
    assert_eq!(
        frame_count(url, "v:0"),
        report["published"]["video_frames"]
            .as_u64()
            .expect("frames")
    );
}

#[test]
fn a_file_that_needs_re_encoding_arrives_as_h264_and_aac() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    require_tool("ffmpeg");
    let avi = dir.path().join("old.avi");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15:duration=3",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=500:sample_rate=22050:duration=3",
            "-c:v",
            "mpeg4",
            "-c:a",
            "libmp3lame",
        ])
        .arg(&avi)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let server = Server::start(&data, &[]);
    let report = publish(&server, &key, &["--file", avi.to_str().expect("path")]);
    let mp4 = vod_mp4(&report);
    assert!(
        mp4["codecs"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.") && c.contains("mp4a.40.2")),
        "{mp4}"
    );
    let url = mp4["url"].as_str().expect("url");
    let probe = ffprobe(url);
    assert_eq!(stream_of(&probe, "video")["codec_name"], "h264");
    assert_eq!(stream_of(&probe, "audio")["codec_name"], "aac");
    assert!(decode_errors(url).is_empty());
    assert_eq!(frame_count(url, "v:0"), 45, "3 s at 15 fps");
}

#[test]
fn an_unknown_key_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _ = create_key(&data);
    let server = Server::start(&data, &[]);
    let out = vshare()
        .args([
            "publish",
            &server.rtmp_url("wrong"),
            "--test-pattern",
            "--duration",
            "2s",
            "--no-status",
        ])
        .output()
        .expect("vshare publish");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NetStream.Publish.BadName") && err.contains("unknown or revoked stream key"),
        "{err}"
    );
}
