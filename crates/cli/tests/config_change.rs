//! A publisher whose picture size changes mid-stream (640x360 → 320x180 → 640x360, each step a
//! new encoder with a new AVC sequence header before a key frame), published over RTMP by ffmpeg
//! to a real `vshare serve`: the recorded MP4 and HLS VOD decode with ffmpeg without an error,
//! every frame sent at the size it was sent.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use vshare_testkit::ffmpeg::{
    decode_errors, ffprobe, frame_count, frame_sizes, make_test_clip, size_runs,
};
use vshare_testkit::flv::{read_tags, write_tags};
use vshare_testkit::process::require_tool;

/// One FLV tag: type, timestamp (ms), body.
type Tag = (u8, u32, Vec<u8>);

/// The tags of an FLV file.
fn flv_tags(path: &Path) -> Vec<Tag> {
    read_tags(path)
}

/// `seconds` of H.264 at `size` (30 fps, a key frame each second) and AAC, made by ffmpeg as
/// FLV: x264 is asked for global headers, so the parameter sets are only in the AVC sequence
/// header (as with the upload protocol's WebCodecs encoders), never in the frames.
fn clip(dir: &Path, size: &str, seconds: u32) -> PathBuf {
    make_test_clip(
        &dir.join(format!("{size}.flv")),
        size,
        seconds,
        Some(44100),
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a",
            "aac", "-ac", "2", "-f", "flv",
        ],
    )
}

/// Is this video tag an AVC sequence header (AVCPacketType 0)?
fn is_sequence_header(tag: &Tag) -> bool {
    tag.0 == 9 && tag.2.len() > 1 && tag.2[0] & 0x0f == 7 && tag.2[1] == 0
}

/// Is this video tag a coded frame (AVCPacketType 1)?
fn is_frame(tag: &Tag) -> bool {
    tag.0 == 9 && tag.2.len() > 1 && tag.2[0] & 0x0f == 7 && tag.2[1] == 1
}

fn record<'a>(video: &'a serde_json::Value, format: &str) -> &'a serde_json::Value {
    video["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == format))
        .unwrap_or_else(|| panic!("no {format} record in {video}"))
}

#[test]
fn picture_size_change_mid_stream_is_recorded_whole() {
    require_tool("ffprobe");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    // The default ladder: a 240p rendition is transcoded from the source as well.
    let server = Server::start(&data, &[]);

    // 640x360 → 320x180 → 640x360: each clip's own sequence headers and frames, 3 s apart.
    let big = flv_tags(&clip(dir.path(), "640x360", 3));
    let small = flv_tags(&clip(dir.path(), "320x180", 3));
    let mut tags: Vec<Tag> = Vec::new();
    for (i, clip) in [&big, &small, &big].into_iter().enumerate() {
        let offset = 3000 * i as u32;
        tags.extend(
            clip.iter()
                .filter(|t| t.0 == 8 || t.0 == 9)
                .map(|(k, ts, b)| (*k, ts + offset, b.clone())),
        );
    }
    let sent_frames = tags.iter().filter(|t| is_frame(t)).count();
    assert_eq!(sent_frames, 270);
    let headers: Vec<&Vec<u8>> = tags
        .iter()
        .filter(|t| is_sequence_header(t))
        .map(|t| &t.2)
        .collect();
    assert_eq!(headers.len(), 3);
    assert_ne!(headers[0], headers[1], "the two sizes have different avcC");
    let spliced = dir.path().join("spliced.flv");
    write_tags(&spliced, tags.iter().map(|(k, t, b)| (*k, *t, b)));

    // ffmpeg republishes the file over RTMP; its FLV demuxer and muxer carry each new sequence
    // header through as a new sequence header.
    let mut publisher = ffmpeg_publish(&spliced, &server.rtmp_url(&key));
    let status = publisher.wait().expect("ffmpeg publish");
    assert!(status.success(), "ffmpeg publish failed");
    let video = wait_video_state(&server, &key, &["ready"], Duration::from_secs(60));
    server.expect_logged("codec configuration changed");
    let log = server.log();
    assert!(!log.contains("the VOD keeps the first"), "{log}");

    // The MP4: every frame decodes, at the size it was sent, in order.
    let mp4 = record(&video, "mp4");
    let mp4_url = mp4["url"].as_str().expect("mp4 url");
    let errors = decode_errors(mp4_url);
    assert!(errors.is_empty(), "MP4 decode errors: {errors}");
    let expected = [((640, 360), 90), ((320, 180), 90), ((640, 360), 90)];
    assert_eq!(size_runs(&frame_sizes(mp4_url)), expected);
    assert_eq!(frame_count(mp4_url, "v:0"), sent_frames as u64);
    // The record announces the largest picture, as the MP4's track header does.
    assert_eq!(
        (mp4["width"].as_u64(), mp4["height"].as_u64()),
        (Some(640), Some(360))
    );
    let probe = ffprobe(mp4_url);
    assert_eq!(
        probe["format"]["size"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok()),
        mp4["size"].as_u64()
    );

    // The transcoded rendition, made across the change, is whole too.
    let rung = video["attributes"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|r| r["format"] == "mp4" && r["url"] != mp4["url"])
        })
        .unwrap_or_else(|| panic!("no transcoded MP4 in {video}"));
    let rung_url = rung["url"].as_str().expect("rung url");
    let errors = decode_errors(rung_url);
    assert!(errors.is_empty(), "{rung_url} decode errors: {errors}");
    assert_eq!(frame_count(rung_url, "v:0"), sent_frames as u64);

    // The HLS VOD: a new EXT-X-MAP at each change, on one timeline (no discontinuity).
    let hls_url = record(&video, "hls")["url"].as_str().expect("hls url");
    let (status, body) = http_get(hls_url);
    assert_eq!(status, 200);
    let playlist = String::from_utf8(body).expect("utf8");
    assert!(!playlist.contains("DISCONTINUITY"), "{playlist}");
    let maps: Vec<&str> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"")?.strip_suffix('"'))
        .collect();
    assert_eq!(maps.len(), 3, "{playlist}");
    assert_eq!(maps[0], "init.mp4", "the first keeps its old name");
    assert!(
        maps[1..]
            .iter()
            .all(|m| m.starts_with("init") && *m != "init.mp4")
    );
    // A player loads each map's init segment for the segments after it: each run, fetched
    // over HTTP as a player does, decodes by itself.
    let base = hls_url.trim_end_matches("index.m3u8");
    let mut runs: Vec<Vec<u8>> = Vec::new();
    for line in playlist.lines() {
        let uri = match line.strip_prefix("#EXT-X-MAP:URI=\"") {
            Some(rest) => rest.trim_end_matches('"'),
            None if !line.starts_with('#') && !line.is_empty() => line,
            None => continue,
        };
        let (status, bytes) = http_get(&format!("{base}{uri}"));
        assert_eq!(status, 200, "{uri}");
        if line.starts_with('#') {
            runs.push(bytes);
        } else {
            runs.last_mut().expect("a map first").extend(bytes);
        }
    }
    let mut hls_runs = Vec::new();
    for (i, bytes) in runs.iter().enumerate() {
        let path = dir.path().join(format!("run{i}.mp4"));
        std::fs::write(&path, bytes).expect("write");
        let path = path.to_str().expect("path");
        let errors = decode_errors(path);
        assert!(errors.is_empty(), "HLS run {i} decode errors: {errors}");
        hls_runs.extend(size_runs(&frame_sizes(path)));
    }
    assert_eq!(hls_runs, expected);
}
