//! The spine end to end: ffmpeg publishes over RTMP; the live stream plays as LL-HLS while it
//! runs; the VOD is ready when it stops; the attribute data matches what ffprobe measures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use vshare_testkit::db::{POSTGRES_SKIPPED, fresh_postgres_blocking};
use vshare_testkit::ffmpeg::{
    decode_errors, ffprobe, frame_count, number, packet_span, parse_rate, stream_of,
};

/// Parses `#EXT-X-…:A=B,C="D"` attribute lists and plain `#TAG:value` lines.
fn tag_value<'a>(playlist: &'a str, tag: &str) -> Option<&'a str> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag)?.strip_prefix(':'))
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        let k = k.rsplit(':').next()?;
        (k == name).then(|| v.trim_matches('"'))
    })
}

#[test]
fn ffmpeg_rtmp_to_ll_hls_and_vod_with_measured_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 12, &["-bf", "2"]);
    // The source as received (remux only); the ladder has its own test.
    let server = Server::start(&data, &["--ladder", "none"]);

    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(15));
    let id = live["id"].as_str().expect("id").to_string();
    let live_attr = &live["attributes"][0];
    assert_eq!(live_attr["kind"], "live");
    assert_eq!(live_attr["format"], "ll-hls");
    assert_eq!(
        (live_attr["width"].as_u64(), live_attr["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(live_attr["frame_rate"].as_f64(), Some(30.0));
    let live_url = live_attr["url"].as_str().expect("url").to_string();
    assert_eq!(live_url, format!("{}/live/{id}/index.m3u8", server.http));

    // The playlist has the LL-HLS tags.
    let (status, body) = http_get(&live_url);
    assert_eq!(status, 200);
    let playlist = String::from_utf8(body).expect("utf8");
    for tag in [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-SERVER-CONTROL:",
        "CAN-BLOCK-RELOAD=YES",
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-MAP:URI=\"init.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXT-X-PART:",
        "#EXT-X-PRELOAD-HINT:TYPE=PART",
    ] {
        assert!(playlist.contains(tag), "playlist lacks {tag}:\n{playlist}");
    }

    // A blocking request for the next segment returns once that segment exists.
    let media_seq: u64 = tag_value(&playlist, "#EXT-X-MEDIA-SEQUENCE")
        .expect("media sequence")
        .parse()
        .expect("number");
    let segments_listed = playlist.lines().filter(|l| l.starts_with("seg")).count() as u64;
    let next = media_seq + segments_listed;
    let t0 = Instant::now();
    let (status, body) = http_get(&format!("{live_url}?_HLS_msn={next}"));
    let waited = t0.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let blocked = String::from_utf8(body).expect("utf8");
    assert!(
        blocked.contains(&format!("seg{next}.m4s")),
        "blocking reload returned without seg{next}:\n{blocked}"
    );
    assert!(
        waited < Duration::from_secs(7),
        "blocking reload took {waited:?}"
    );
    // A part request too.
    let (status, _) = http_get(&format!("{live_url}?_HLS_msn={}&_HLS_part=0", next + 1));
    assert_eq!(status, 200);
    // A request far in the future is refused rather than held.
    let (status, _) = http_get(&format!("{live_url}?_HLS_msn={}", next + 100));
    assert_eq!(status, 400);

    // Every part and segment listed now decodes; durations agree with the declared targets.
    let (_, body) = http_get(&live_url);
    let playlist = String::from_utf8(body).expect("utf8");
    let target: f64 = tag_value(&playlist, "#EXT-X-TARGETDURATION")
        .expect("target")
        .parse()
        .expect("number");
    let part_target: f64 = attr(
        tag_value(&playlist, "#EXT-X-PART-INF").expect("part-inf"),
        "PART-TARGET",
    )
    .expect("PART-TARGET")
    .parse()
    .expect("number");
    let base = live_url.trim_end_matches("index.m3u8");
    let (_, init) = http_get(&format!("{base}init.mp4"));
    let mut checked_parts = 0;
    // A part that does not start with a keyframe depends on the parts before it: each part is
    // decoded together with the parts since the last independent one.
    let mut since_independent: Vec<u8> = Vec::new();
    let mut checked_segments = 0;
    let mut last_extinf = None;
    // The parts of the segment being listed, concatenated: a complete segment is exactly its
    // parts (older ones are served as byte ranges of the stored segment).
    let mut parts_of_segment: Vec<u8> = Vec::new();
    let mut segments_matching_parts = 0;
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let dur: f64 = attr(rest, "DURATION")
                .expect("DURATION")
                .parse()
                .expect("number");
            assert!(
                dur <= part_target + 1e-6,
                "part of {dur}s exceeds PART-TARGET {part_target}: {line}"
            );
            let uri = attr(rest, "URI").expect("URI");
            let (status, part) = http_get(&format!("{base}{uri}"));
            assert_eq!(status, 200, "{uri}");
            if rest.contains("INDEPENDENT=YES") {
                since_independent.clear();
            } else {
                assert!(
                    !since_independent.is_empty() || checked_parts == 0,
                    "{uri}: dependent part with no independent part before it"
                );
            }
            since_independent.extend_from_slice(&part);
            parts_of_segment.extend_from_slice(&part);
            let file = dir.path().join(uri.replace('/', "_") + ".mp4");
            std::fs::write(
                &file,
                [init.as_slice(), since_independent.as_slice()].concat(),
            )
            .expect("write");
            let errors = decode_errors(file.to_str().expect("path"));
            assert!(errors.is_empty(), "{uri} does not decode: {errors}");
            checked_parts += 1;
        } else if let Some(rest) = line.strip_prefix("#EXTINF:") {
            last_extinf = rest
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse::<f64>().ok());
        } else if line.starts_with("seg") {
            let dur = last_extinf.take().expect("EXTINF before segment");
            assert!(
                dur.round() <= target,
                "segment {line} of {dur}s exceeds TARGETDURATION {target}"
            );
            let (status, seg) = http_get(&format!("{base}{line}"));
            assert_eq!(status, 200, "{line}");
            if !parts_of_segment.is_empty() {
                assert!(
                    parts_of_segment == seg,
                    "{line} is not its parts concatenated"
                );
                segments_matching_parts += 1;
            }
            parts_of_segment.clear();
            let file = dir.path().join(format!("{line}.mp4"));
            std::fs::write(&file, [init.as_slice(), seg.as_slice()].concat()).expect("write");
            let (start, end) = packet_span(file.to_str().expect("path"), "v:0");
            let got = end - start;
            assert!(
                (got - dur).abs() < 0.04,
                "{line}: EXTINF {dur} but ffprobe's video packets span {got}"
            );
            let errors = decode_errors(file.to_str().expect("path"));
            assert!(errors.is_empty(), "{line} does not decode: {errors}");
            checked_segments += 1;
        }
    }
    assert!(
        checked_parts >= 3 && checked_segments >= 1 && segments_matching_parts >= 1,
        "only {checked_parts} parts, {checked_segments} segments listed \
         ({segments_matching_parts} with their parts)"
    );

    // A plain HLS client opens the live playlist.
    let probe = ffprobe(&live_url);
    assert_eq!(stream_of(&probe, "video")["width"].as_u64(), Some(640));

    // The recording is playable while it grows.
    let vod_playlist = format!("{}/vod/{id}/index.m3u8", server.http);
    let (status, body) = http_get(&vod_playlist);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
    let probe = ffprobe(&vod_playlist);
    assert_eq!(stream_of(&probe, "audio")["sample_rate"], "44100");

    // Stop: the VOD is ready, the live playlist ends.
    let status = publisher.wait().expect("ffmpeg");
    assert!(status.success(), "ffmpeg publisher failed");
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(10));
    let (_, body) = http_get(&live_url);
    assert!(
        String::from_utf8_lossy(&body).contains("#EXT-X-ENDLIST"),
        "live playlist did not end"
    );

    let records = ready["attributes"].as_array().expect("records");
    let mp4 = records
        .iter()
        .find(|r| r["format"] == "mp4")
        .expect("mp4 record");
    let hls = records
        .iter()
        .find(|r| r["format"] == "hls")
        .expect("hls record");
    let mp4_url = mp4["url"].as_str().expect("url");
    let (status, body) = http_get(mp4_url);
    assert_eq!(status, 200);
    let file = dir.path().join("vod.mp4");
    std::fs::write(&file, &body).expect("write");
    let path = file.to_str().expect("path");

    // Fast start: moov before mdat.
    let moov = body.windows(4).position(|w| w == b"moov").expect("moov");
    let mdat = body.windows(4).position(|w| w == b"mdat").expect("mdat");
    assert!(moov < mdat, "moov at {moov} after mdat at {mdat}");

    let errors = decode_errors(path);
    assert!(
        errors.is_empty(),
        "VOD MP4 does not decode cleanly: {errors}"
    );
    let probe = ffprobe(path);
    let v = stream_of(&probe, "video");
    let a = stream_of(&probe, "audio");
    // Attribute data equals what ffprobe measures.
    assert_eq!(mp4["width"].as_u64(), v["width"].as_u64());
    assert_eq!(mp4["height"].as_u64(), v["height"].as_u64());
    let fps = parse_rate(v["avg_frame_rate"].as_str().expect("avg_frame_rate"));
    assert!(
        (mp4["frame_rate"].as_f64().expect("fps") - fps).abs() < 0.01,
        "frame rate {} vs ffprobe {fps}",
        mp4["frame_rate"]
    );
    assert_eq!(
        mp4["size"].as_u64(),
        probe["format"]["size"]
            .as_str()
            .and_then(|s| s.parse().ok())
    );
    assert_eq!(mp4["size"].as_u64(), Some(body.len() as u64));
    let ff_bitrate = number(&probe["format"]["bit_rate"]);
    let our_bitrate = mp4["bitrate"].as_f64().expect("bitrate");
    assert!(
        (our_bitrate - ff_bitrate).abs() / ff_bitrate < 0.05,
        "bitrate {our_bitrate} vs ffprobe {ff_bitrate}"
    );
    assert_eq!(
        mp4["audio_sample_rate"].as_u64(),
        a["sample_rate"].as_str().and_then(|s| s.parse().ok())
    );
    assert_eq!(mp4["audio_channels"].as_u64(), a["channels"].as_u64());
    assert_eq!(
        mp4["codecs"].as_str().map(|c| c.starts_with("avc1.64")),
        Some(true)
    );

    // Duration within one frame of what was sent; audio and video start within one frame.
    let sent = ffprobe(clip.to_str().expect("clip"));
    let sent_duration = number(&stream_of(&sent, "video")["duration"]);
    let got_duration = number(&v["duration"]);
    assert!(
        (got_duration - sent_duration).abs() <= 1.0 / 30.0 + 1e-3,
        "video duration {got_duration} vs sent {sent_duration}"
    );
    let (vs, as_) = (number(&v["start_time"]), number(&a["start_time"]));
    assert!(
        (vs - as_).abs() <= 1.0 / 30.0 + 1e-3,
        "video starts at {vs}, audio at {as_}"
    );
    assert_eq!(
        frame_count(path, "v:0"),
        frame_count(clip.to_str().expect("clip"), "v:0"),
        "video frames lost"
    );
    assert!(
        (mp4["duration_ms"].as_f64().expect("duration") / 1000.0
            - number(&probe["format"]["duration"]))
        .abs()
            < 0.05
    );

    // Range requests.
    let (status, part) = http_get_with(mp4_url, &["Range: bytes=100-199"]);
    assert_eq!((status, part.as_slice()), (206, &body[100..200]));
    let (status, _) = http_get_with(mp4_url, &[&format!("Range: bytes={}-", body.len())]);
    assert_eq!(status, 416);

    // The HLS VOD plays to the end with the same frames.
    let hls_url = hls["url"].as_str().expect("url");
    let (_, body) = http_get(hls_url);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("#EXT-X-ENDLIST") && text.contains("#EXT-X-PLAYLIST-TYPE:VOD"),
        "{text}"
    );
    let errors = decode_errors(hls_url);
    assert!(errors.is_empty(), "HLS VOD does not decode: {errors}");
    assert_eq!(
        frame_count(hls_url, "v:0"),
        frame_count(clip.to_str().expect("clip"), "v:0")
    );

    // Metrics.
    let (_, body) = http_get(&format!("{}/metrics", server.http));
    let metrics = String::from_utf8_lossy(&body);
    for m in [
        "vshare_bytes_in_total",
        "vshare_frames_total",
        "vshare_part_publish_latency_seconds_bucket",
        "vshare_publishers",
    ] {
        assert!(metrics.contains(m), "metrics lack {m}");
    }
}

/// The same server on PostgreSQL instead of SQLite (`VSHARE_TEST_POSTGRES_URL`, set by
/// scripts/test.sh).
#[test]
fn serves_and_records_with_postgresql() {
    let Some(url) = fresh_postgres_blocking("vshare_e2e") else {
        eprintln!("{POSTGRES_SKIPPED}");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = vshare()
        .args([
            "keys",
            "create",
            "--quiet",
            "--database-url",
            &url,
            "--data",
        ])
        .arg(&data)
        .output()
        .expect("keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let clip = make_clip(dir.path(), "clip.mp4", 5, &[]);
    let server = Server::start(&data, &["--database-url", &url]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(10));
    let mp4 = ready["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .expect("mp4")
        .clone();
    assert!(decode_errors(mp4["url"].as_str().expect("url")).is_empty());
    let listed = get_json(&format!("{}/api/v1/videos", server.http));
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(
        !data.join("vshare.db").exists(),
        "SQLite was used although PostgreSQL was configured"
    );
}
