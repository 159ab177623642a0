//! HEVC sources become H.264 at ingest: HEVC clips made by the ffmpeg CLI (libx265, B-frames,
//! open GOPs) go through `HevcToAvc` and `ConvertWorker`; the H.264 that comes out is written
//! to FLV and checked with ffprobe/ffmpeg — frame for frame, same capture times, IDRs exactly on
//! the source's keyframes, clean decode.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use vshare_media::{Frame, HevcConfig, HevcEvent, MediaEvent, TrackConfig, TrackKind};
use vshare_testkit::ffmpeg::{config_box, decode_errors, ffprobe, frame_count, packets, stream_of};
use vshare_testkit::process::run_tool_text;
use vshare_transcode::{ConvertSettings, ConvertWorker, HevcToAvc};

/// An HEVC MP4 made by libx265: testsrc2 with noise, `keyint` frames per GOP, x265's default
/// B-frames and open GOPs unless `x265_extra` says otherwise.
fn hevc_clip(path: &Path, size: &str, fps: u32, seconds: f64, pix_fmt: &str, x265_extra: &str) {
    let video = format!("testsrc2=s={size}:r={fps}:d={seconds},noise=alls=8:allf=t");
    let params = format!("log-level=error:keyint={fps}:min-keyint={fps}:scenecut=0{x265_extra}");
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &video,
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            pix_fmt,
            "-x265-params",
            &params,
            "-tag:v",
            "hvc1",
            path.to_str().expect("path"),
        ],
    );
}

/// The `hvcC` record and the video packets of an MP4, read with the ffmpeg CLI alone: packet
/// times, sizes and flags from ffprobe, payloads from `-f data` (the samples as stored:
/// 4-byte length-prefixed NAL units), the record from the file's `hvcC` box.
fn hevc_frames(path: &Path) -> (HevcConfig, Vec<Frame>) {
    let config = HevcConfig::parse(Bytes::from(config_box(path, b"hvcC"))).expect("hvcC");
    let (den, list) = packets(path, "v:0");
    let us = |t: i64| t * 1_000_000 / den;
    let frames = list
        .into_iter()
        .map(|p| Frame {
            track: TrackKind::Video,
            pts: us(p.pts),
            dts: us(p.dts),
            key: p.key,
            data: Bytes::from(p.data),
        })
        .collect();
    (config, frames)
}

fn video_frames(events: &[MediaEvent]) -> Vec<&Frame> {
    frames(events, TrackKind::Video)
}

fn key_pts(frames: &[&Frame]) -> Vec<i64> {
    frames.iter().filter(|f| f.key).map(|f| f.pts).collect()
}

/// Decodes a file with ffmpeg; returns its error output (empty when clean) and the frame count.
fn decode(path: &Path) -> (String, u64) {
    (decode_errors(path), frame_count(path, "v:0"))
}

#[test]
fn hevc_becomes_h264_frame_for_frame_with_the_sources_keyframes() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.mp4");
    hevc_clip(&src, "640x360", 30, 3.0, "yuv420p", "");
    let (config, source) = hevc_frames(&src);
    assert_eq!((config.width, config.height), (640, 360));
    assert_eq!(source.len(), 90);
    assert!(
        source.iter().any(|f| f.pts != f.dts),
        "the source has B-frames"
    );

    let mut conv = HevcToAvc::new(&config, ConvertSettings::default()).expect("converter");
    let mut out = Vec::new();
    for f in &source {
        out.extend(conv.push(f).expect("push"));
    }
    out.extend(conv.finish().expect("finish"));
    assert_eq!(conv.decode_errors(), 0);

    let MediaEvent::Config(TrackConfig::Avc(avc)) = &out[0] else {
        panic!(
            "the first event is not the H.264 configuration: {:?}",
            out[0]
        );
    };
    assert_eq!((avc.width, avc.height), (640, 360));
    // x265 writes VUI timing: the decoder reads 30 fps from the SPS, the encoder keeps it.
    assert_eq!(avc.frame_rate, Some(30.0));
    assert!(avc.codec_string().starts_with("avc1."));
    let frames = video_frames(&out);
    assert_eq!(frames.len(), source.len(), "one H.264 frame per HEVC frame");
    let mut src_pts: Vec<i64> = source.iter().map(|f| f.pts).collect();
    src_pts.sort_unstable();
    let out_pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
    assert_eq!(
        out_pts, src_pts,
        "capture times kept, in presentation order"
    );
    assert!(frames.iter().all(|f| f.dts == f.pts), "no reordering");
    let src_refs: Vec<&Frame> = source.iter().collect();
    let mut src_keys = key_pts(&src_refs);
    src_keys.sort_unstable();
    assert_eq!(src_keys.len(), 3);
    assert_eq!(
        key_pts(&frames),
        src_keys,
        "IDRs exactly on the source keyframes"
    );

    let flv = dir.path().join("out.flv");
    write_flv(&flv, &out);
    let (errors, count) = decode(&flv);
    assert!(errors.is_empty(), "decode errors: {errors}");
    assert_eq!(count, 90);
    let p = ffprobe(&flv);
    let v = stream_of(&p, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    let keys: Vec<f64> = video_packets(&flv)
        .iter()
        .filter(|p| p.1)
        .map(|p| p.0)
        .collect();
    assert_eq!(keys.len(), 3, "ffprobe sees the three keyframes: {keys:?}");
}

#[test]
fn ten_bit_source_without_timing_info_gets_its_rate_measured() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.mp4");
    hevc_clip(
        &src,
        "320x240",
        25,
        2.0,
        "yuv420p10le",
        ":vui-timing-info=0",
    );
    let (config, source) = hevc_frames(&src);
    assert_eq!(config.bit_depth_luma, 10);
    let mut conv = HevcToAvc::new(&config, ConvertSettings::default()).expect("converter");
    let mut out = Vec::new();
    for f in &source {
        out.extend(conv.push(f).expect("push"));
    }
    out.extend(conv.finish().expect("finish"));
    assert_eq!(
        conv.frame_rate(),
        Some(25.0),
        "measured from the frame times"
    );
    let MediaEvent::Config(TrackConfig::Avc(avc)) = &out[0] else {
        panic!("no H.264 configuration first");
    };
    assert_eq!(
        (avc.width, avc.height, avc.frame_rate),
        (320, 240, Some(25.0))
    );
    assert_eq!(video_frames(&out).len(), source.len());
    let flv = dir.path().join("out.flv");
    write_flv(&flv, &out);
    let (errors, count) = decode(&flv);
    assert!(errors.is_empty(), "decode errors: {errors}");
    assert_eq!(count, source.len() as u64);
    let p = ffprobe(&flv);
    assert_eq!(stream_of(&p, "video")["pix_fmt"], "yuv420p");
}

#[test]
fn worker_behind_drops_until_a_keyframe_and_keeps_audio_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.mp4");
    hevc_clip(
        &src,
        "640x360",
        30,
        4.0,
        "yuv420p",
        ":keyint=10:min-keyint=10",
    );
    let (config, source) = hevc_frames(&src);
    let out: Arc<Mutex<Vec<(MediaEvent, i64)>>> = Arc::default();
    let o = out.clone();
    // A slow receiver: the worker falls behind at once with room for two frames.
    let mut w = ConvertWorker::spawn(ConvertSettings::default(), 2, move |e, stamp| {
        std::thread::sleep(std::time::Duration::from_millis(3));
        o.lock().expect("lock").push((e, stamp));
        true
    });
    assert!(w.push_hevc(HevcEvent::Config(config), 0));
    let started = std::time::Instant::now();
    let mut audio_sent = 0;
    for f in &source {
        // Stamp = pts + 7: each output frame must carry the stamp of its own source frame.
        w.push_hevc(HevcEvent::Frame(f.clone()), f.pts + 7);
        let a = Frame {
            track: TrackKind::Audio,
            pts: f.dts,
            dts: f.dts,
            key: true,
            data: Bytes::from(vec![audio_sent as u8; 4]),
        };
        assert!(w.push_media(MediaEvent::Frame(a), -1));
        audio_sent += 1;
    }
    assert!(
        started.elapsed().as_millis() < 500,
        "pushing must not wait for the converter ({:?})",
        started.elapsed()
    );
    let stats = w.finish();
    assert!(
        stats.frames_dropped > 0 && stats.drop_episodes > 0,
        "{stats:?}"
    );
    assert_eq!(stats.failed, None);
    let out = std::mem::take(&mut *out.lock().expect("lock"));
    assert!(
        matches!(out[0].0, MediaEvent::Config(TrackConfig::Avc(_))),
        "the H.264 configuration comes before any frame"
    );
    let audio: Vec<u8> = out
        .iter()
        .filter_map(|(e, _)| match e {
            MediaEvent::Frame(f) if f.track == TrackKind::Audio => Some(f.data[0]),
            _ => None,
        })
        .collect();
    let expected: Vec<u8> = (0..audio_sent).map(|i| i as u8).collect();
    assert_eq!(audio, expected, "every audio frame, in order");
    let video: Vec<(&Frame, i64)> = out
        .iter()
        .filter_map(|(e, s)| match e {
            MediaEvent::Frame(f) if f.track == TrackKind::Video => Some((f, *s)),
            _ => None,
        })
        .collect();
    assert!(!video.is_empty());
    assert_eq!(video.len() as u64, stats.frames_out);
    assert!(
        video.iter().all(|(f, s)| *s == f.pts + 7),
        "stamps follow their frames"
    );
    let src_keys: Vec<i64> = source.iter().filter(|f| f.key).map(|f| f.pts).collect();
    for (f, _) in &video {
        assert_eq!(
            f.key,
            src_keys.contains(&f.pts),
            "IDR only on source keyframes"
        );
    }
    let video_count = video.len() as u64;
    let events: Vec<MediaEvent> = out
        .iter()
        .filter(|(e, _)| !matches!(e, MediaEvent::Frame(f) if f.track == TrackKind::Audio))
        .map(|(e, _)| e.clone())
        .collect();
    let flv = dir.path().join("out.flv");
    write_flv(&flv, &events);
    let (errors, count) = decode(&flv);
    assert!(errors.is_empty(), "decode errors after drops: {errors}");
    assert_eq!(count, video_count);
}

#[test]
fn undecodable_source_stops_the_conversion_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.mp4");
    hevc_clip(&src, "320x240", 25, 0.5, "yuv420p", "");
    let (config, _) = hevc_frames(&src);
    // Frames whose NAL units are well framed but no HEVC pictures (type 63, unspecified):
    // FFmpeg swallows them without an error and makes nothing.
    let garbage = |i: i64| {
        let mut data = vec![0, 0, 0, 12, 0x7e, 0x01];
        data.extend((0..10).map(|j| (i * 31 + j * 7) as u8 | 0x80));
        Frame {
            track: TrackKind::Video,
            pts: i * 40_000,
            dts: i * 40_000,
            key: i % 25 == 0,
            data: Bytes::from(data),
        }
    };
    let mut conv = HevcToAvc::new(&config, ConvertSettings::default()).expect("converter");
    let mut error = None;
    for i in 0..400 {
        match conv.push(&garbage(i)) {
            Ok(out) => assert!(out.is_empty(), "a picture from garbage"),
            Err(e) => {
                error = Some((i, e.to_string()));
                break;
            }
        }
    }
    let (at, why) = error.expect("the conversion gives up");
    assert!(at < 200, "gave up only after {at} frames");
    assert!(why.contains("the source is not decodable HEVC"), "{why}");

    // Through the worker: the reason is there for ingest to refuse the stream with.
    let mut w = ConvertWorker::spawn(ConvertSettings::default(), 1000, |_, _| true);
    w.push_hevc(HevcEvent::Config(config), 0);
    for i in 0..400 {
        w.push_hevc(HevcEvent::Frame(garbage(i)), 0);
    }
    let stats = w.finish();
    assert_eq!(stats.frames_out, 0);
    let why = stats.failed.expect("failed");
    assert!(why.contains("not decodable HEVC"), "{why}");
}
