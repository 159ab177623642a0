//! HEVC over Enhanced RTMP comes out as the standard ladder: a libx265 clip (made with the ffmpeg
//! CLI, B-frames and open GOPs) is wrapped into Enhanced RTMP tags by this test and published in
//! real time with our own RTMP client (Debian's FFmpeg 5.1 cannot publish Enhanced RTMP). The
//! server converts it to H.264 at ingest; the live playlist, the VOD MP4 and the VOD HLS decode
//! as H.264 with the source's frame count and duration, and the attribute records say what
//! ffprobe measures. Bad enhanced input is refused stream by stream.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use vshare_media::flv;
use vshare_testkit::ffmpeg::{
    config_box, decode_errors, ffprobe, frame_count, packet_span, packets, parse_rate, stream_of,
};
use vshare_testkit::process::{require_tool, run_tool};

/// libx265 video (x265's default B-frames and open GOPs, a keyframe each second) and AAC-LC
/// 48 kHz stereo in an MP4.
fn hevc_clip(path: &Path, seconds: u32) {
    require_tool("ffmpeg");
    run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=640x360:rate=30:duration={seconds},noise=alls=8:allf=t"),
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=1000:sample_rate=48000:duration={seconds}"),
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=30:min-keyint=30:scenecut=0",
            "-tag:v",
            "hvc1",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-ac",
            "2",
            "-ar",
            "48000",
            path.to_str().expect("path"),
        ],
    );
}

enum Kind {
    Video,
    Audio,
}

/// The clip as RTMP messages: Enhanced RTMP HEVC video tags and AAC audio tags, in decode order,
/// timestamps in ms shifted so that the first (negative, B-frames) decode time is 0.
fn rtmp_tags(clip: &Path) -> Vec<(i64, Kind, bytes::Bytes)> {
    let (vden, video) = packets(clip, "v:0");
    let (aden, audio) = packets(clip, "a:0");
    let ms = |t: i64, den: i64| (t * 1000).div_euclid(den);
    let shift = -video
        .iter()
        .map(|p| ms(p.dts, vden))
        .min()
        .unwrap_or(0)
        .min(0);
    let mut tags = vec![
        (
            0,
            Kind::Video,
            flv::ex_video_sequence_start(&config_box(clip, b"hvcC")),
        ),
        // AudioSpecificConfig: AAC-LC (2), 48 kHz (index 3), 2 channels.
        (0, Kind::Audio, flv::audio_sequence_header(&[0x11, 0x90])),
    ];
    for p in &video {
        let dts = ms(p.dts, vden) + shift;
        let cts = (ms(p.pts, vden) - ms(p.dts, vden)) as i32;
        tags.push((dts, Kind::Video, flv::ex_video_frame(p.key, cts, &p.data)));
    }
    for p in &audio {
        tags.push((
            ms(p.dts, aden) + shift,
            Kind::Audio,
            flv::audio_frame(&p.data),
        ));
    }
    tags.sort_by_key(|t| t.0);
    let end = tags.last().map_or(0, |t| t.0);
    tags.push((end, Kind::Video, flv::ex_video_sequence_end()));
    tags
}

/// (frame count, first pts, end) of a file's or URL's video, from ffprobe's packets.
fn video_span(input: &str) -> (u64, f64, f64) {
    let (first, end) = packet_span(input, "v:0");
    (frame_count(input, "v:0"), first, end)
}

#[test]
fn hevc_over_enhanced_rtmp_comes_out_as_the_h264_ladder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = dir.path().join("hevc.mp4");
    let seconds = 6;
    hevc_clip(&clip, seconds);
    let source_probe = ffprobe(clip.to_str().expect("path"));
    assert_eq!(stream_of(&source_probe, "video")["codec_name"], "hevc");
    let (src_frames, src_first, src_end) = video_span(clip.to_str().expect("path"));
    assert_eq!(src_frames, u64::from(seconds) * 30);
    let tags = rtmp_tags(&clip);

    let server = Server::start(&data, &[]);
    let (mut s, mut c) = raw_publisher(server.rtmp_port, &key);
    // In real time: each tag leaves at its timestamp.
    let started = Instant::now();
    let mut id = None;
    for (ts, kind, body) in &tags {
        let due = started + Duration::from_millis(*ts as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        match kind {
            Kind::Video => c.send_video(*ts, body).expect("video"),
            Kind::Audio => c.send_audio(*ts, body).expect("audio"),
        }
        assert!(send_all(&mut s, &mut c), "server closed: {}", server.log());
        // While live: the multivariant playlist offers H.264 only.
        if id.is_none() && *ts > 4000 {
            let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(5));
            let record = &live["attributes"][0];
            assert_eq!(
                (record["width"].as_u64(), record["height"].as_u64()),
                (Some(640), Some(360)),
                "{record}"
            );
            assert_eq!(record["frame_rate"].as_f64(), Some(30.0), "{record}");
            assert!(
                record["codecs"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("avc1.")),
                "{record}"
            );
            let master_url = record["url"].as_str().expect("url");
            let (status, body) = http_get(master_url);
            let master = String::from_utf8_lossy(&body).to_string();
            assert_eq!(status, 200, "{master}");
            assert!(master.contains("CODECS=\"avc1."), "{master}");
            assert!(!master.contains("hvc1"), "{master}");
            assert!(master.contains("RESOLUTION=640x360"), "{master}");
            id = Some(live["id"].as_str().expect("id").to_string());
        }
    }
    c.finish();
    send_all(&mut s, &mut c);
    let id = id.expect("went live");
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(30));
    server.expect_logged("HEVC source: converting to H.264 at ingest");
    let log = server.log();
    assert!(!log.contains("conversion fell behind"), "{log}");
    let records = ready["attributes"].as_array().expect("records");

    // The recording of the source rendition: H.264, every frame, the source's duration.
    let mp4 = records
        .iter()
        .find(|r| r["format"] == "mp4" && r["height"] == 360)
        .unwrap_or_else(|| panic!("no source MP4 record: {records:?}"));
    let url = mp4["url"].as_str().expect("url");
    let errors = decode_errors(url);
    assert!(errors.is_empty(), "VOD MP4 decode: {errors}");
    let probe = ffprobe(url);
    let v = stream_of(&probe, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(stream_of(&probe, "audio")["codec_name"], "aac");
    assert_eq!(
        (mp4["width"].as_u64(), mp4["height"].as_u64()),
        (v["width"].as_u64(), v["height"].as_u64())
    );
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    let fps = parse_rate(v["avg_frame_rate"].as_str().expect("rate"));
    assert!((fps - 30.0).abs() < 0.05, "ffprobe frame rate {fps}");
    assert!(
        (mp4["frame_rate"].as_f64().expect("fps") - fps).abs() < 0.05,
        "record {} vs ffprobe {fps}",
        mp4["frame_rate"]
    );
    let codecs = mp4["codecs"].as_str().expect("codecs");
    assert!(
        codecs.starts_with("avc1.") && codecs.contains("mp4a.40.2"),
        "{codecs}"
    );
    let (frames, first, end) = video_span(url);
    assert_eq!(frames, src_frames, "every source frame in the VOD");
    let (dur, src_dur) = (end - first, src_end - src_first);
    assert!(
        (dur - src_dur).abs() < 0.034,
        "VOD video lasts {dur:.3} s, the source {src_dur:.3} s"
    );

    // The HLS recording of the source has every frame too.
    let hls = records
        .iter()
        .find(|r| {
            r["format"] == "hls"
                && r["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with(&format!("/vod/{id}/index.m3u8")))
        })
        .unwrap_or_else(|| panic!("no source HLS record: {records:?}"));
    let hls_url = hls["url"].as_str().expect("url");
    assert!(decode_errors(hls_url).is_empty());
    assert_eq!(frame_count(hls_url, "v:0"), src_frames);

    // The live media playlist (kept a minute after the end) decodes as H.264.
    let live_url = format!("{}/live/{id}/index.m3u8", server.http);
    let errors = decode_errors(&live_url);
    assert!(errors.is_empty(), "live decode: {errors}");
    let live = ffprobe(&live_url);
    let lv = stream_of(&live, "video");
    assert_eq!(lv["codec_name"], "h264");
    assert_eq!(
        (lv["width"].as_u64(), lv["height"].as_u64()),
        (Some(640), Some(360))
    );

    // The ladder was made from the converted source: a 240p rendition, H.264, decodable.
    let low = records
        .iter()
        .find(|r| r["format"] == "mp4" && r["height"] == 240)
        .unwrap_or_else(|| panic!("no 240p record: {records:?}"));
    let low_url = low["url"].as_str().expect("url");
    assert!(decode_errors(low_url).is_empty());
    assert_eq!(stream_of(&ffprobe(low_url), "video")["codec_name"], "h264");
    assert_eq!(frame_count(low_url, "v:0"), src_frames);
}

#[test]
fn bad_enhanced_rtmp_input_is_refused_and_other_streams_carry_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let good_key = create_key(&data);
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "good.mp4", 8, &[]);
    let hevc = dir.path().join("hevc.mp4");
    hevc_clip(&hevc, 1);
    let record = config_box(&hevc, b"hvcC");
    let server = Server::start(&data, &["--ladder", "none"]);
    let mut good = ffmpeg_publish(&clip, &server.rtmp_url(&good_key));
    wait_video_state(&server, &good_key, &["live"], Duration::from_secs(15));

    let refused = |bodies: Vec<bytes::Bytes>, expect: &str| {
        let (mut s, mut c) = raw_publisher(server.rtmp_port, &key);
        for (i, b) in bodies.iter().enumerate() {
            c.send_video(i as i64 * 33, b).expect("send");
            if !send_all(&mut s, &mut c) {
                break;
            }
            // Three times real time: the converter keeps up, nothing is dropped.
            std::thread::sleep(Duration::from_millis(11));
        }
        assert!(
            closed_within(&mut s, Duration::from_secs(10)).is_some(),
            "connection left open ({expect})"
        );
        server.expect_logged(expect);
    };
    // AV1 and VP9 over Enhanced RTMP: refused by name, like Sorenson H.263.
    for fourcc in [b"av01", b"vp09"] {
        let mut body = vec![0x90];
        body.extend_from_slice(fourcc);
        body.extend_from_slice(&[0x81, 0, 0, 0]);
        let name = String::from_utf8_lossy(fourcc).to_string();
        refused(
            vec![bytes::Bytes::from(body)],
            &format!("codec '{name}' is not supported (only HEVC, 'hvc1')"),
        );
    }
    // A truncated hvcC.
    refused(
        vec![flv::ex_video_sequence_start(&record[..30])],
        "HEVCDecoderConfigurationRecord: array 0 NAL unit 0",
    );
    // A good record, then frames that are no HEVC pictures: the converter gives up.
    let mut bodies = vec![flv::ex_video_sequence_start(&record)];
    for i in 0..200u8 {
        bodies.push(flv::ex_video_frame(
            i % 30 == 0,
            0,
            &[0, 0, 0, 6, 0x7e, 0x01, i, 1, 2, 3],
        ));
    }
    refused(
        bodies,
        "HEVC source refused: the HEVC decoder made no picture from 150 frames in a row",
    );

    // The good stream never noticed.
    let status = good.wait().expect("ffmpeg");
    assert!(status.success(), "good publisher failed: {}", server.log());
    let ready = wait_video_state(&server, &good_key, &["ready"], Duration::from_secs(15));
    let url = ready["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .and_then(|r| r["url"].as_str())
        .expect("good mp4")
        .to_string();
    assert!(decode_errors(&url).is_empty());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
