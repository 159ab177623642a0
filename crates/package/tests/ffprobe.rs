//! End to end through real tools: an ffmpeg-made H.264/AAC FLV goes through the packager; every
//! part and segment, the LL-HLS playlist and the fast-start MP4 are checked with ffprobe/ffmpeg.
//! Needs the `ffmpeg` and `ffprobe` binaries (Debian package `ffmpeg`); fails if they are missing.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;
use vshare_media::MediaEvent;
use vshare_package::{Packager, PackagerConfig, PackagerOutput, VodMp4Builder};
use vshare_testkit::dir::with_dir;
use vshare_testkit::ffmpeg::{decode_errors, ffmpeg_make, ffprobe_json, number};
use vshare_testkit::flv::read_events;

const WALL_START_US: i64 = 1_795_000_000_000_000;

fn av_clip(dir: &Path) -> PathBuf {
    ffmpeg_make(
        &dir.join("in.flv"),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=f=1000:sample_rate=44100",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-bf",
            "2",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ],
    )
}

struct StreamInfo {
    codec_type: String,
    start_time: f64,
    frames: u64,
    packets: u64,
}

fn streams(file: &Path) -> Vec<StreamInfo> {
    let v = ffprobe_json(
        &[
            "-count_frames",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,start_time,nb_read_frames,nb_read_packets",
        ],
        file,
    );
    v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| StreamInfo {
            codec_type: s["codec_type"].as_str().unwrap_or("").to_string(),
            start_time: if s["start_time"].is_null() {
                f64::NAN
            } else {
                number(&s["start_time"])
            },
            frames: if s["nb_read_frames"].is_null() {
                0
            } else {
                number(&s["nb_read_frames"]) as u64
            },
            packets: if s["nb_read_packets"].is_null() {
                0
            } else {
                number(&s["nb_read_packets"]) as u64
            },
        })
        .collect()
}

fn stream<'a>(list: &'a [StreamInfo], kind: &str) -> &'a StreamInfo {
    list.iter()
        .find(|s| s.codec_type == kind)
        .unwrap_or_else(|| panic!("no {kind} stream"))
}

/// Decode-time span of the video packets (first dts to last dts + duration), seconds.
fn video_span(file: &Path) -> f64 {
    let v = ffprobe_json(
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts_time,duration_time",
        ],
        file,
    );
    let packets = v["packets"].as_array().expect("packets");
    let first = number(&packets.first().expect("a packet")["dts_time"]);
    let last = packets.last().expect("a packet");
    number(&last["dts_time"]) + number(&last["duration_time"]) - first
}

/// Presentation span over all streams: earliest pts to the latest pts + duration, seconds.
fn presentation_span(file: &Path) -> f64 {
    let v = ffprobe_json(&["-show_entries", "packet=pts_time,duration_time"], file);
    let (mut start, mut end) = (f64::MAX, f64::MIN);
    for p in v["packets"].as_array().expect("packets") {
        let pts = number(&p["pts_time"]);
        start = start.min(pts);
        end = end.max(pts + number(&p["duration_time"]));
    }
    end - start
}

fn format_duration(file: &Path) -> f64 {
    number(&ffprobe_json(&["-show_entries", "format=duration"], file)["format"]["duration"])
}

struct Run {
    init: Bytes,
    parts: Vec<(u64, u32, bool, i64, Bytes)>,
    segments: Vec<(u64, i64, i64, Bytes)>,
    mid_playlist: String,
    final_playlist: String,
    inits: usize,
    /// Per part: time its output was produced minus the arrival of its earliest frame, µs.
    latencies_us: Vec<i64>,
}

fn package(events: Vec<(i64, MediaEvent)>, config: PackagerConfig) -> Run {
    let mut p = Packager::new(config);
    let mut outputs = Vec::new();
    let mut mid_playlist = String::new();
    let mut latencies_us = Vec::new();
    let half = events.len() / 2;
    for (i, (ts, ev)) in events.into_iter().enumerate() {
        let now = WALL_START_US + ts * 1000;
        let out = p.push(ev, now).expect("push");
        for o in &out {
            if let PackagerOutput::Part {
                first_arrival_unix_us,
                ..
            } = o
            {
                latencies_us.push(now - first_arrival_unix_us);
            }
        }
        outputs.extend(out);
        if i == half {
            mid_playlist = p.media_playlist().expect("playlist mid-stream");
        }
    }
    outputs.extend(p.finish());
    assert!(p.is_finished());
    let mut run = Run {
        init: p.init_segment().expect("init"),
        parts: Vec::new(),
        segments: Vec::new(),
        mid_playlist,
        final_playlist: p.media_playlist().expect("final playlist"),
        inits: 0,
        latencies_us,
    };
    for o in outputs {
        match o {
            PackagerOutput::Init { bytes, .. } => {
                run.inits += 1;
                assert_eq!(bytes, run.init);
            }
            PackagerOutput::Part {
                msn,
                index,
                independent,
                duration_us,
                bytes,
                ..
            } => {
                assert!(p.is_listed(msn, Some(index)));
                run.parts
                    .push((msn, index, independent, duration_us, bytes));
            }
            PackagerOutput::Segment {
                msn,
                duration_us,
                program_date_time_unix_ms,
                bytes,
            } => {
                assert!(p.is_listed(msn, None));
                run.segments
                    .push((msn, duration_us, program_date_time_unix_ms, bytes));
            }
        }
    }
    run
}

fn write(dir: &Path, name: &str, parts: &[&[u8]]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, parts.concat()).expect("write");
    path
}

fn tag_value<'a>(playlist: &'a str, tag: &str) -> &'a str {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("playlist lacks {tag}:\n{playlist}"))
}

#[test]
fn av_stream_parts_segments_playlist_and_vod_check_out_with_ffprobe() {
    with_dir(|dir| check_clip(dir, &av_clip(dir), true, true));
}

#[test]
fn video_only_stream_checks_out_with_ffprobe() {
    with_dir(|dir| {
        let flv = ffmpeg_make(
            &dir.join("video.flv"),
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-g",
                "50",
                "-bf",
                "3",
                "-f",
                "flv",
            ],
        );
        check_clip(dir, &flv, true, false);
    });
}

#[test]
fn audio_only_stream_checks_out_with_ffprobe() {
    with_dir(|dir| {
        let flv = ffmpeg_make(
            &dir.join("audio.flv"),
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:sample_rate=48000",
                "-t",
                "6",
                "-c:a",
                "aac",
                "-f",
                "flv",
            ],
        );
        check_clip(dir, &flv, false, true);
    });
}

/// Packages `flv` and checks every output with ffprobe/ffmpeg.
fn check_clip(dir: &Path, flv: &Path, has_video: bool, has_audio: bool) {
    let input = streams(flv);
    let input_duration = presentation_span(flv);
    let config = PackagerConfig::default();
    let run = package(read_events(flv, 0), config.clone());
    assert_eq!(run.inits, 1);
    // One frame of the lead track: the checks below allow this much.
    let frame = if has_video {
        let v = ffprobe_json(
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "stream=r_frame_rate",
            ],
            flv,
        );
        let r = v["streams"][0]["r_frame_rate"]
            .as_str()
            .expect("rate")
            .to_string();
        let (n, d) = r.split_once('/').expect("n/d");
        number(&Value::String(d.into())) / number(&Value::String(n.into()))
    } else {
        1024.0 / 48_000.0
    };

    // Playlist text.
    let pl = &run.mid_playlist;
    assert!(pl.starts_with("#EXTM3U\n"), "{pl}");
    for tag in [
        "#EXT-X-VERSION:",
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=",
        "#EXT-X-PART-INF:PART-TARGET=",
        "#EXT-X-MEDIA-SEQUENCE:",
        "#EXT-X-MAP:URI=\"init.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-18T11:06:4",
        "#EXT-X-PART:DURATION=",
        if has_video {
            ",INDEPENDENT=YES"
        } else {
            "#EXT-X-PART:"
        },
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part",
        "#EXTINF:",
    ] {
        assert!(pl.contains(tag), "mid-stream playlist lacks {tag}:\n{pl}");
    }
    assert!(!pl.contains("#EXT-X-ENDLIST"));
    let version: u32 = tag_value(pl, "#EXT-X-VERSION:").parse().expect("version");
    assert!(version >= 6);
    let part_target: f64 = tag_value(pl, "#EXT-X-PART-INF:PART-TARGET=")
        .parse()
        .expect("part target");
    let hold_back: f64 = tag_value(
        pl,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=",
    )
    .parse()
    .expect("hold back");
    assert!(
        hold_back >= 3.0 * part_target - 1e-6,
        "PART-HOLD-BACK {hold_back} < 3 × {part_target}"
    );
    let fin = &run.final_playlist;
    assert!(fin.ends_with("#EXT-X-ENDLIST\n"), "{fin}");
    assert!(!fin.contains("PRELOAD-HINT"), "{fin}");
    let target: f64 = tag_value(fin, "#EXT-X-TARGETDURATION:")
        .parse()
        .expect("target duration");
    let pdt_count = fin
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME:"))
        .count();
    let extinf_count = fin.lines().filter(|l| l.starts_with("#EXTINF:")).count();
    assert_eq!(pdt_count, extinf_count, "one PROGRAM-DATE-TIME per segment");
    assert_eq!(extinf_count, run.segments.len());

    // Files as the playlist names them.
    std::fs::write(dir.join("init.mp4"), &run.init).expect("write init");
    std::fs::write(dir.join("index.m3u8"), fin).expect("write playlist");

    // Every part decodes: an independent part on its own (init + part), a dependent one after
    // the parts it refers to (init + the parts since the last independent one), as a player
    // joining at the last independent part would. Durations within PART-TARGET, and equal to the
    // span ffprobe sees.
    let mut max_part = 0.0f64;
    let mut chain: Vec<u8> = Vec::new();
    for (msn, index, independent, duration_us, bytes) in &run.parts {
        let name = format!("part{msn}.{index}.m4s");
        std::fs::write(dir.join(&name), bytes).expect("write part");
        let d = *duration_us as f64 / 1e6;
        max_part = max_part.max(d);
        assert!(
            d <= part_target + 1e-9,
            "{name}: {d} s > PART-TARGET {part_target}"
        );
        if *independent {
            chain.clear();
        }
        assert!(
            *independent || !chain.is_empty(),
            "{name}: dependent part without an independent one before it"
        );
        chain.extend_from_slice(bytes);
        let file = write(dir, &format!("check-{name}.mp4"), &[&run.init, &chain]);
        let errors = decode_errors(&file);
        assert!(errors.is_empty(), "{name}: {errors}");
        let alone = write(dir, &format!("alone-{name}.mp4"), &[&run.init, bytes]);
        let s = streams(&alone);
        if has_video {
            assert!(stream(&s, "video").packets > 0, "{name}: no video");
            if *independent {
                assert!(stream(&s, "video").frames > 0, "{name}: no decodable video");
            }
        }
        if has_audio {
            assert!(stream(&s, "audio").packets > 0, "{name}: no audio");
        }
        let probed = lead_span(&alone, has_video);
        assert!(
            (probed - d).abs() <= 0.002,
            "{name}: ffprobe {probed} s vs listed {d} s"
        );
    }
    let listed: Vec<i64> = run.parts.iter().map(|p| p.3 / 1000).collect();
    eprintln!("part durations (ms): {listed:?}");
    assert!(
        run.parts.len() as f64 >= input_duration / part_target,
        "{} parts for {input_duration} s",
        run.parts.len()
    );

    // Every segment decodes cleanly and lasts no more than TARGETDURATION (rounded).
    let mut total = 0.0;
    for (msn, duration_us, pdt, bytes) in &run.segments {
        let name = format!("seg{msn}.m4s");
        std::fs::write(dir.join(&name), bytes).expect("write segment");
        let d = *duration_us as f64 / 1e6;
        total += d;
        assert!(
            d.round() <= target,
            "{name}: {d} s rounds above TARGETDURATION {target}"
        );
        assert!(*pdt >= WALL_START_US / 1000);
        let file = write(dir, &format!("check-{name}.mp4"), &[&run.init, bytes]);
        let errors = decode_errors(&file);
        assert!(errors.is_empty(), "{name}: {errors}");
        let probed = lead_span(&file, has_video);
        assert!(
            (probed - d).abs() <= 0.002,
            "{name}: ffprobe {probed} s vs listed {d} s"
        );
        let s = streams(&file);
        assert!(!has_video || stream(&s, "video").frames > 0);
        assert!(!has_audio || stream(&s, "audio").frames > 0);
        assert!(
            fin.contains(&format!("\n{name}\n")),
            "{name} not in the final playlist"
        );
    }
    let input_span = lead_span(flv, has_video);
    assert!(
        (total - input_span).abs() <= 0.002,
        "segments {total} s vs input video {input_span} s"
    );

    // A plain HLS player (FFmpeg's HLS demuxer ignores the LL-HLS tags) plays the playlist.
    let playlist = dir.join("index.m3u8");
    let errors = decode_errors(&playlist);
    assert!(errors.is_empty(), "index.m3u8: {errors}");
    let hls = streams(&playlist);
    for kind in ["video", "audio"] {
        if (kind == "video" && has_video) || (kind == "audio" && has_audio) {
            assert_eq!(
                stream(&hls, kind).frames,
                stream(&input, kind).frames,
                "{kind} frames via HLS"
            );
        }
    }

    // The fast-start MP4.
    let mut vod = VodMp4Builder::new(&run.init).expect("vod from init");
    for (_, _, _, bytes) in &run.segments {
        vod.add_segment(bytes).expect("add segment");
    }
    let header = vod.header();
    let mut mp4 = header.to_vec();
    for (seg, range) in vod.payload_ranges() {
        mp4.extend_from_slice(&run.segments[seg].3[range]);
    }
    assert_eq!(mp4.len() as u64, vod.total_size());
    let mp4_path = write(dir, "video.mp4", &[&mp4]);
    let order = top_level(&mp4);
    assert_eq!(order, ["ftyp", "moov", "mdat"], "box order");
    let errors = decode_errors(&mp4_path);
    assert!(errors.is_empty(), "video.mp4: {errors}");
    let out = streams(&mp4_path);
    let duration = format_duration(&mp4_path);
    assert!(
        (duration - input_duration).abs() <= frame,
        "video.mp4 lasts {duration} s, input {input_duration} s"
    );
    assert!((vod.duration_us() as f64 / 1e6 - duration).abs() <= 0.002);
    for kind in ["video", "audio"] {
        if (kind == "video" && has_video) || (kind == "audio" && has_audio) {
            assert_eq!(
                stream(&out, kind).frames,
                stream(&input, kind).frames,
                "{kind} frames in video.mp4"
            );
        }
    }
    let mut starts = String::new();
    if has_video && has_audio {
        let (v, a) = (stream(&out, "video"), stream(&out, "audio"));
        assert!(
            (v.start_time - a.start_time).abs() <= frame,
            "start times {} / {}",
            v.start_time,
            a.start_time
        );
        let input_offset = stream(&input, "video").start_time - stream(&input, "audio").start_time;
        assert!(
            ((v.start_time - a.start_time) - input_offset).abs() <= 0.002,
            "A/V offset {} s, input {input_offset} s",
            v.start_time - a.start_time
        );
        starts = format!(", starts v {:.3} a {:.3}", v.start_time, a.start_time);
    }
    let mut lat = run.latencies_us.clone();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    eprintln!(
        "video={has_video} audio={has_audio}: parts {} (max {max_part:.3} s), segments {}, target {target}, \
         vod {duration:.3} s / input {input_duration:.3} s{starts}; earliest frame -> part out: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        run.parts.len(),
        run.segments.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

/// Decode-time span of the lead track (video if there is one, else audio), seconds.
fn lead_span(file: &Path, has_video: bool) -> f64 {
    if has_video {
        return video_span(file);
    }
    let v = ffprobe_json(
        &[
            "-select_streams",
            "a",
            "-show_entries",
            "packet=pts_time,duration_time",
        ],
        file,
    );
    let packets = v["packets"].as_array().expect("packets");
    let first = number(&packets.first().expect("a packet")["pts_time"]);
    let last = packets.last().expect("a packet");
    // FFmpeg leaves the duration of a lone AAC packet unset (its first packet, with the
    // encoder-delay side data): one AAC frame it is.
    let duration = match &last["duration_time"] {
        Value::Null if packets.len() == 1 => 1024.0 / 48_000.0,
        d => number(d),
    };
    number(&last["pts_time"]) + duration - first
}

fn top_level(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let mut size = u64::from(u32::from_be_bytes(
            data[pos..pos + 4].try_into().expect("4"),
        ));
        if size == 1 {
            size = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().expect("8"));
        }
        out.push(String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned());
        assert!(size >= 8, "box size {size} at {pos}");
        pos += size as usize;
    }
    assert_eq!(pos, data.len(), "boxes cover the file");
    out
}
