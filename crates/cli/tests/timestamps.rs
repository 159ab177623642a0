//! A corpus of real encoders' timestamp quirks (docs/timestamps.md), each published to a real
//! `vshare serve` and checked with ffprobe and ffmpeg on what comes out: video DTS strictly
//! increasing, duration within one frame of what was sent, `r_frame_rate` equal to the source's
//! nominal rate where it has one, audio and video starting within one frame, and ffmpeg's
//! default conversion with no warning.
//!
//! GStreamer (x264enc with B-frames through flvmux, which clamps the first decode times to 0)
//! and the ffmpeg CLI (B-frames; 29.97 fps in millisecond FLV timestamps; timestamps past the
//! 24-bit FLV field into extended timestamps) publish for themselves. The quirks no tool makes on
//! request (jumps, a variable frame rate, WebCodecs-style jitter with duplicates) are made by
//! this test: it takes the packets of a libx264 clip and publishes them with our own RTMP client
//! at the timestamps it chooses.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vshare_media::flv;
use vshare_testkit::ffmpeg::{
    config_box, conversion_warnings, ffprobe, ffprobe_csv, frame_count, packet_span, packets,
    stream_of,
};
use vshare_testkit::process::require_tool;
use vshare_testkit::wait::{wait_exit, wait_for};

/// (pts, dts) of a stream's packets in seconds, in file order.
fn packet_times(input: &str, stream: &str) -> Vec<(f64, f64)> {
    ffprobe_csv(input, stream, "packet=pts_time,dts_time")
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let pts = it.next()?.trim().parse().ok()?;
            let dts = it.next()?.trim().parse().ok()?;
            Some((pts, dts))
        })
        .collect()
}

/// What the source sent, to check the recording against.
struct Sent {
    /// Seconds of video sent (frames × nominal frame duration, or the last frame's end).
    video_s: f64,
    /// The nominal frame rate as ffprobe writes it ("30000/1001"), where the source has one.
    rate: Option<&'static str>,
    /// Frames of video sent, where known exactly.
    frames: Option<usize>,
    /// How far the duration may be off: one frame (the longest, for a variable rate), s.
    slack_s: f64,
}

/// One frame at 30 fps, s.
const SLACK: f64 = 1.0 / 30.0;

/// Checks one recording (a VOD MP4 or HLS URL) against what was sent.
fn check_recording(what: &str, input: &str, sent: &Sent) {
    let probe = ffprobe(input);
    let video = stream_of(&probe, "video");
    let audio = stream_of(&probe, "audio");
    let times = packet_times(input, "v:0");
    assert!(!times.is_empty(), "{what}: no video packets");
    // One line a recording, before any assertion: the figures for the closing note.
    let (first, end) = packet_span(input, "v:0");
    let (afirst, _) = packet_span(input, "a:0");
    let warnings = conversion_warnings(input);
    eprintln!(
        "CORPUS {what}: {} video packets ({:?} sent), {} DTS not increasing, {} pts < dts, \
         r_frame_rate {} (nominal {:?}), video {:.3} s ({:.3} s sent), video − audio start \
         {:+.3} s, {} ffmpeg warning lines",
        times.len(),
        sent.frames,
        times.windows(2).filter(|w| w[1].1 <= w[0].1).count(),
        times.iter().filter(|(p, d)| p < d).count(),
        video["r_frame_rate"],
        sent.rate,
        end - first,
        sent.video_s,
        first - afirst,
        warnings.lines().filter(|l| !l.trim().is_empty()).count()
    );
    for (i, w) in times.windows(2).enumerate() {
        assert!(
            w[1].1 > w[0].1,
            "{what}: video dts not increasing at packet {}: {} then {}",
            i + 1,
            w[0].1,
            w[1].1
        );
    }
    for (i, (pts, dts)) in times.iter().enumerate() {
        assert!(pts >= dts, "{what}: packet {i} pts {pts} < dts {dts}");
    }
    if let Some(n) = sent.frames {
        assert_eq!(times.len(), n, "{what}: every frame sent is recorded");
    }
    let frame = sent.slack_s;
    if let Some(r) = sent.rate {
        assert_eq!(
            video["r_frame_rate"],
            r,
            "{what}: r_frame_rate; first packets {:?}",
            &times[..times.len().min(12)]
        );
    }
    let duration = end - first;
    assert!(
        (duration - sent.video_s).abs() <= frame + 0.001,
        "{what}: video lasts {duration:.3} s, {:.3} s sent; first packets {:?}, last {:?}",
        sent.video_s,
        &times[..times.len().min(6)],
        &times[times.len().saturating_sub(4)..]
    );
    let offset = first - afirst;
    assert!(
        offset.abs() <= frame + 0.001,
        "{what}: video starts {offset:.3} s after audio ({first} vs {afirst}); audio {audio}"
    );
    assert!(
        warnings.trim().is_empty(),
        "{what}: ffmpeg warns:\n{warnings}"
    );
}

/// The MP4 and HLS VOD records of the latest video of `key`, once ready.
fn vod_urls(server: &Server, key: &str) -> (String, String) {
    let v = wait_video_state(server, key, &["ready"], Duration::from_secs(60));
    let url = |format: &str| {
        v["attributes"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|r| r["format"] == format && r["rendition"].is_null())
            })
            .or_else(|| {
                v["attributes"]
                    .as_array()
                    .and_then(|a| a.iter().find(|r| r["format"] == format))
            })
            .and_then(|r| r["url"].as_str())
            .unwrap_or_else(|| panic!("no {format} record in {v}"))
            .to_string()
    };
    (url("mp4"), url("hls"))
}

fn check_vod(server: &Server, key: &str, sent: &Sent) {
    let (mp4, hls) = vod_urls(server, key);
    check_recording("VOD MP4", &mp4, sent);
    check_recording("HLS VOD", &hls, sent);
}

/// A server without the ladder (each test publishes one stream; the ladder has its own tests).
fn start_server(dir: &Path) -> (Server, String) {
    let data = dir.join("data");
    let key = create_key(&data);
    let server = Server::start(&data, &["--ladder", "none"]);
    (server, key)
}

fn wait_child(mut child: std::process::Child, what: &str, timeout: Duration) {
    let Some(status) = wait_exit(&mut child, timeout) else {
        panic!("{what} did not finish in {timeout:?}");
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "{what} failed: {err}");
}

#[test]
fn gstreamer_flvmux_with_b_frames() {
    require_tool("ffmpeg");
    if Command::new("gst-launch-1.0")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        panic!("gst-launch-1.0 is not installed; run scripts/setup.sh --test");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let frames = 120;
    // Sources that are not live: rtmp2sink paces the stream to the clock, and flvmux keeps the
    // encoder's timestamps (DTS 0, 0, 0, 33, 66 … ms for x264's first B-frames).
    let pipeline = format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc bframes=2 key-int-max=30 speed-preset=veryfast ! h264parse ! queue \
         ! flvmux name=m streamable=true ! rtmp2sink location={} \
         audiotestsrc num-buffers={} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
         ! audioconvert ! avenc_aac ! aacparse ! queue ! m.",
        server.rtmp_url(&key),
        frames * 48_000 / 30 / 1024,
    );
    let child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0");
    wait_child(child, "gst-launch-1.0", Duration::from_secs(60));
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: frames as f64 / 30.0,
            rate: Some("30/1"),
            frames: Some(frames),
            slack_s: SLACK,
        },
    );
    server.expect_logged("clamped_start");
}

/// Publishes `clip` with the ffmpeg CLI in real time and waits for it to finish.
fn publish_clip(clip: &Path, url: &str, extra: &[&str]) {
    let child = common::ffmpeg_publish_with(clip, url, extra);
    wait_child(child, "ffmpeg publish", Duration::from_secs(60));
}

#[test]
fn ffmpeg_with_three_b_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let clip = make_clip(dir.path(), "bf3.mp4", 4, &["-bf", "3"]);
    publish_clip(&clip, &server.rtmp_url(&key), &[]);
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: 4.0,
            rate: Some("30/1"),
            frames: Some(120),
            slack_s: SLACK,
        },
    );
}

#[test]
fn ntsc_rate_in_millisecond_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let clip = make_clip(dir.path(), "ntsc.mp4", 4, &["-r", "30000/1001"]);
    let frames = frame_count(clip.to_str().expect("path"), "v:0") as usize;
    publish_clip(&clip, &server.rtmp_url(&key), &[]);
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: frames as f64 * 1001.0 / 30000.0,
            rate: Some("30000/1001"),
            frames: Some(frames),
            slack_s: SLACK,
        },
    );
}

#[test]
fn timestamps_past_the_24_bit_field() {
    // 0xFFFFFF ms is 16 777.215 s: start 2 s before it, so the stream crosses into extended
    // timestamps in its middle.
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let clip = make_clip(dir.path(), "ext.mp4", 4, &[]);
    publish_clip(
        &clip,
        &server.rtmp_url(&key),
        &["-output_ts_offset", "16775.2"],
    );
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: 4.0,
            rate: Some("30/1"),
            frames: Some(120),
            slack_s: SLACK,
        },
    );
}

/// A clip's frames as RTMP tags, each at the time `retime(index, kind, dts_ms) -> ms` gives
/// (None drops the frame), in the order of those times.
fn retimed_tags(
    clip: &Path,
    mut retime: impl FnMut(usize, &str, i64) -> Option<i64>,
) -> (Vec<(i64, &'static str, bytes::Bytes)>, usize) {
    let (vden, video) = packets(clip, "v:0");
    let (aden, audio) = packets(clip, "a:0");
    let ms = |t: i64, den: i64| (t * 1000).div_euclid(den);
    // B-frames start the decode times below zero: shift the clip so they start at 0.
    let shift = -video
        .iter()
        .map(|p| ms(p.dts, vden))
        .min()
        .unwrap_or(0)
        .min(0);
    let ms = |t: i64, den: i64| ms(t, den) + shift;
    // In the clip's decode order (a stable sort keeps B-frames' order among equal times), each
    // at its new time: the order the source sends them in.
    let mut order: Vec<(i64, &'static str, usize)> = video
        .iter()
        .enumerate()
        .map(|(i, p)| (ms(p.dts, vden), "video", i))
        .chain(
            audio
                .iter()
                .enumerate()
                .map(|(i, p)| (ms(p.dts, aden), "audio", i)),
        )
        .collect();
    order.sort_by_key(|o| o.0);
    let mut tags = Vec::new();
    let mut sent_video = 0;
    for (t, kind, i) in order {
        let Some(at) = retime(i, kind, t) else {
            continue;
        };
        if kind == "video" {
            let p = &video[i];
            let cts = (ms(p.pts, vden) - ms(p.dts, vden)) as i32;
            tags.push((at, "video", flv::video_frame(p.key, cts, &p.data)));
            sent_video += 1;
        } else {
            tags.push((at, "audio", flv::audio_frame(&audio[i].data)));
        }
    }
    (tags, sent_video)
}

/// Publishes tags with our own RTMP client, as fast as the socket takes them (so a jump in the
/// timestamps is not a pause on the wall clock).
fn publish_tags(
    server: &Server,
    key: &str,
    clip: &Path,
    tags: &[(i64, &'static str, bytes::Bytes)],
) {
    let (mut s, mut c) = raw_publisher(server.rtmp_port, key);
    let asc = {
        // AAC-LC (2), 44.1 kHz (index 4), 2 channels: what make_clip writes.
        [0x12u8, 0x10]
    };
    c.send_video(0, &flv::video_sequence_header(&config_box(clip, b"avcC")))
        .expect("video header");
    c.send_audio(0, &flv::audio_sequence_header(&asc))
        .expect("audio header");
    for (t, kind, body) in tags {
        match *kind {
            "video" => c.send_video(*t, body).expect("video"),
            _ => c.send_audio(*t, body).expect("audio"),
        }
        assert!(send_all(&mut s, &mut c), "server closed: {}", server.log());
    }
    drop(s);
}

#[test]
fn a_jump_forward_and_one_backward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let clip = make_clip(dir.path(), "jumps.mp4", 6, &[]);
    // +5 s at 2 s (a clock jump), then −4 s at 4 s (an encoder restart's new clock).
    let (tags, frames) = retimed_tags(&clip, |_, _, t| {
        Some(match t {
            t if t < 2000 => t,
            t if t < 4000 => t + 5000,
            t => t + 1000,
        })
    });
    publish_tags(&server, &key, &clip, &tags);
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: 6.0,
            rate: Some("30/1"),
            frames: Some(frames),
            slack_s: SLACK,
        },
    );
    server.expect_logged("jump_forward");
    server.expect_logged("jump_backward");
}

#[test]
fn a_variable_frame_rate_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let clip = make_clip(dir.path(), "vfr.mp4", 5, &["-bf", "0"]);
    // A phone camera in changing light: each frame 30 to 70 ms after the one before.
    let mut seed = 99u64;
    let mut next = 0;
    let mut video_times = Vec::new();
    let (tags, frames) = retimed_tags(&clip, |_, kind, t| {
        if kind == "audio" {
            return Some(t);
        }
        let at = next;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        next += 30 + (seed >> 33) as i64 % 41;
        // Audio lasts 5 s: video stops where it does.
        (at < 5000).then(|| {
            video_times.push(at);
            at
        })
    });
    publish_tags(&server, &key, &clip, &tags);
    let last_step = video_times.windows(2).last().map_or(33, |w| w[1] - w[0]);
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: (video_times[video_times.len() - 1] + last_step) as f64 / 1000.0,
            rate: None,
            frames: Some(frames),
            slack_s: 0.070,
        },
    );
}

#[test]
fn webcodecs_jitter_and_duplicate_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key) = start_server(dir.path());
    let clip = make_clip(dir.path(), "jitter.mp4", 5, &["-bf", "0"]);
    // A capture timer that jitters with the machine's load (±7 ms), a frame repeating the time
    // of the one before now and then.
    let jitter = [0, 5, -4, 7, -6, 2, 0, -7, 6, 1, 3, -2, 4];
    let mut last = 0;
    let (tags, frames) = retimed_tags(&clip, |i, kind, t| {
        if kind == "audio" {
            return Some(t);
        }
        let mut at = (t + jitter[i % jitter.len()]).max(0);
        if i % 40 == 20 {
            at = last;
        }
        last = at;
        Some(at)
    });
    publish_tags(&server, &key, &clip, &tags);
    check_vod(
        &server,
        &key,
        &Sent {
            video_s: 5.0,
            rate: Some("30/1"),
            frames: Some(frames),
            slack_s: SLACK,
        },
    );
}

#[test]
fn every_output_of_a_b_frame_source_is_right() {
    // The transcoded rendition and the WebM/3GP files take their times from the normalised
    // frames: each is checked like the source's recording.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let server = Server::start(&data, &["--vod-formats", "webm,3gp"]);
    let clip = make_clip(dir.path(), "all.mp4", 4, &["-bf", "3"]);
    publish_clip(&clip, &server.rtmp_url(&key), &[]);
    let v = wait_for("webm and 3gp records", Duration::from_secs(120), || {
        let v = wait_video_state(&server, &key, &["ready"], Duration::from_secs(60));
        let formats: Vec<&str> = v["attributes"]
            .as_array()?
            .iter()
            .filter_map(|r| r["format"].as_str())
            .collect();
        (formats.contains(&"webm") && formats.contains(&"3gp")).then_some(v.clone())
    });
    let records = v["attributes"].as_array().expect("records");
    let mut checked = Vec::new();
    for r in records.iter().filter(|r| r["kind"] == "vod") {
        let url = r["url"].as_str().expect("url");
        let what = format!("{} {url}", r["format"]);
        check_recording(
            &what,
            url,
            &Sent {
                video_s: 4.0,
                rate: Some("30/1"),
                frames: Some(120),
                slack_s: SLACK,
            },
        );
        checked.push(what);
    }
    // The source's MP4 and HLS, a rendition's MP4 and HLS at least, WebM and 3GP.
    assert!(checked.len() >= 6, "{checked:?}");
}
