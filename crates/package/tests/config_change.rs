//! A stream whose codec configuration changes mid-way (a publisher that steps its picture size
//! down and back up, or changes its audio sample rate) goes through the real packager; the
//! fast-start MP4 and the HLS VOD made from its init segments and segments are checked with
//! ffprobe/ffmpeg: every frame decodes, at the size it was sent.
//! Needs the `ffmpeg` and `ffprobe` binaries (Debian package `ffmpeg`); fails if they are missing.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use mp4_atom::{Codec, Decode, Moov};
use serde_json::Value;
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_package::fmp4::top_level_boxes;
use vshare_package::{
    Packager, PackagerConfig, PackagerOutput, VodMp4Builder, VodSegment, vod_playlist_segments,
};
use vshare_testkit::dir::with_dir;
use vshare_testkit::ffmpeg::{decode_errors, ffprobe_json, frame_sizes, make_test_clip, size_runs};
use vshare_testkit::flv::read_events;

const WALL_START_US: i64 = 1_795_000_000_000_000;

/// An H.264 (+ AAC) FLV made by ffmpeg: `seconds` of a test pattern at `size`, 30 fps, a key
/// frame each second, B-frames; the flv muxer asks x264 for global headers, so the parameter
/// sets live only in the sequence header, as with the upload protocol's WebCodecs encoders.
fn clip(dir: &Path, size: &str, sample_rate: Option<u32>, seconds: u32) -> PathBuf {
    let mut encode = vec![
        "-c:v", "libx264", "-g", "30", "-bf", "2", "-pix_fmt", "yuv420p",
    ];
    if sample_rate.is_some() {
        encode.extend(["-c:a", "aac", "-ac", "2"]);
    }
    encode.extend(["-f", "flv"]);
    let out = dir.join(format!("{size}-{}.flv", sample_rate.unwrap_or(0)));
    make_test_clip(&out, size, seconds, sample_rate, &encode)
}

fn video_frames(events: &[(i64, MediaEvent)]) -> usize {
    events
        .iter()
        .filter(|(_, e)| matches!(e, MediaEvent::Frame(f) if f.track == TrackKind::Video))
        .count()
}

/// Seconds of AAC sent: the frames at the frame size and sample rate of the configuration in force.
fn audio_seconds(events: &[(i64, MediaEvent)]) -> f64 {
    let (mut rate, mut samples) = (0u32, 0u32);
    let mut total = 0.0;
    for (_, e) in events {
        match e {
            MediaEvent::Config(TrackConfig::Aac(c)) => {
                (rate, samples) = (c.sample_rate, c.samples_per_frame)
            }
            MediaEvent::Frame(f) if f.track == TrackKind::Audio => {
                total += f64::from(samples) / f64::from(rate)
            }
            _ => {}
        }
    }
    total
}

/// The (pts, duration) of a file's audio packets, seconds.
fn audio_packets(file: &Path) -> Vec<(f64, f64)> {
    let v = ffprobe_json(
        &[
            "-select_streams",
            "a",
            "-show_entries",
            "packet=pts_time,duration_time",
        ],
        file,
    );
    let time = |p: &Value, k: &str| -> f64 {
        p[k].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {p}"))
    };
    v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| (time(p, "pts_time"), time(p, "duration_time")))
        .collect()
}

/// Presentation span of a stream from its packets: (first pts, last pts + duration), seconds.
fn span(file: &Path, stream: &str) -> (f64, f64) {
    let v = ffprobe_json(
        &[
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time,duration_time",
        ],
        file,
    );
    let mut start = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for p in v["packets"].as_array().expect("packets") {
        let get = |k: &str| -> f64 { p[k].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0) };
        start = start.min(get("pts_time"));
        end = end.max(get("pts_time") + get("duration_time"));
    }
    (start, end)
}

/// What the packager made: init segments and segments, each segment with the index of the init
/// segment it was packaged under.
struct Packaged {
    inits: Vec<Bytes>,
    segments: Vec<(u64, i64, usize, Bytes)>,
    live_playlist: String,
}

fn package(events: Vec<(i64, MediaEvent)>) -> Packaged {
    let mut p = Packager::new(PackagerConfig::default());
    let mut outputs = Vec::new();
    for (ts, ev) in events {
        outputs.extend(p.push(ev, WALL_START_US + ts * 1000).expect("push"));
    }
    outputs.extend(p.finish());
    let mut run = Packaged {
        inits: Vec::new(),
        segments: Vec::new(),
        live_playlist: p.media_playlist().expect("playlist"),
    };
    for o in outputs {
        match o {
            PackagerOutput::Init { bytes, .. } => run.inits.push(bytes),
            PackagerOutput::Segment {
                msn,
                duration_us,
                bytes,
                ..
            } => {
                let init = run.inits.len().checked_sub(1).expect("init first");
                run.segments.push((msn, duration_us, init, bytes));
            }
            PackagerOutput::Part { .. } => {}
        }
    }
    run
}

/// The fast-start MP4 as the recorder builds it: a new init segment is handed to the builder
/// before the first segment packaged under it.
fn build_mp4(run: &Packaged, path: &Path) -> VodMp4Builder {
    let mut vod = VodMp4Builder::new(&run.inits[0]).expect("first init");
    let mut current = 0;
    for (_, _, init, bytes) in &run.segments {
        if *init != current {
            vod.add_init(&run.inits[*init]).expect("later init");
            current = *init;
        }
        vod.add_segment(bytes).expect("segment");
    }
    let mut file = vod.header().to_vec();
    for (index, range) in vod.payload_ranges() {
        file.extend_from_slice(&run.segments[index].3[range]);
    }
    assert_eq!(file.len() as u64, vod.total_size());
    std::fs::write(path, file).expect("write mp4");
    vod
}

fn moov_of(file: &[u8]) -> Moov {
    let boxes = top_level_boxes(file, "test").expect("boxes");
    let b = boxes.iter().find(|b| &b.kind == b"moov").expect("moov");
    Moov::decode(&mut &file[b.start..b.end]).expect("decode moov")
}

/// Writes the HLS VOD as the server serves it (the first init segment as `init.mp4`, later ones
/// named by their first segment) and returns the playlist's path.
fn write_hls(dir: &Path, run: &Packaged) -> PathBuf {
    let mut names: Vec<Option<String>> = vec![None; run.inits.len()];
    let mut list = Vec::new();
    for (msn, duration_us, init, bytes) in &run.segments {
        let name = names[*init]
            .get_or_insert_with(|| {
                let name = if *init == 0 {
                    "init.mp4".to_string()
                } else {
                    format!("init{msn}.mp4")
                };
                std::fs::write(dir.join(&name), &run.inits[*init]).expect("write init");
                name
            })
            .clone();
        std::fs::write(dir.join(format!("seg{msn}.m4s")), bytes).expect("write segment");
        list.push(VodSegment {
            uri: format!("seg{msn}.m4s"),
            duration_us: *duration_us,
            init_uri: name,
        });
    }
    let path = dir.join("index.m3u8");
    std::fs::write(&path, vod_playlist_segments(&list, true)).expect("write playlist");
    path
}

/// Follows the playlist as a player does: each EXT-X-MAP's init segment with the segments after
/// it, up to the next map, is one run that must decode by itself. Returns the runs' files.
fn hls_runs(dir: &Path, playlist: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(playlist).expect("playlist");
    let mut runs: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        if let Some(uri) = line
            .strip_prefix("#EXT-X-MAP:URI=\"")
            .and_then(|r| r.strip_suffix('"'))
        {
            runs.push(std::fs::read(dir.join(uri)).expect("map"));
        } else if !line.starts_with('#') && !line.is_empty() {
            let seg = std::fs::read(dir.join(line)).expect("segment");
            runs.last_mut().expect("map before segment").extend(seg);
        }
    }
    runs.iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("run{i}.mp4"));
            std::fs::write(&path, bytes).expect("write run");
            path
        })
        .collect()
}

#[test]
fn picture_size_steps_down_and_up_in_one_mp4_and_hls_vod() {
    with_dir(|dir| {
        let big = clip(dir, "640x360", Some(44100), 3);
        let small = clip(dir, "320x180", Some(44100), 3);
        // 640x360 → 320x180 → 640x360, each a new AVC sequence header before a key frame.
        let mut input = read_events(&big, 0);
        input.extend(read_events(&small, 3000));
        input.extend(read_events(&big, 6000));
        let sent = video_frames(&input);
        assert_eq!(sent, 270);
        let audio_sent = audio_seconds(&input);
        let run = package(input);
        assert_eq!(run.inits.len(), 3, "a new init segment at each change");
        // A new map at each change, on one timeline: no discontinuity (playlist.rs says why).
        assert_eq!(run.live_playlist.matches("#EXT-X-MAP:").count(), 3);
        assert!(!run.live_playlist.contains("DISCONTINUITY"));

        let mp4 = dir.join("vod.mp4");
        let vod = build_mp4(&run, &mp4);
        let errors = decode_errors(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        let sizes = frame_sizes(&mp4);
        assert_eq!(sizes.len(), sent, "every frame sent is decoded");
        assert_eq!(
            size_runs(&sizes),
            [((640, 360), 90), ((320, 180), 90), ((640, 360), 90)]
        );
        let (start, end) = span(&mp4, "v");
        assert!(((end - start) - 9.0).abs() < 0.002, "video {start}..{end}");
        // The audio: every frame sent (each clip's AAC lasts a little over its 3 s), no gaps.
        let audio_s = audio_sent;
        let (start, end) = span(&mp4, "a");
        assert!(
            ((end - start) - audio_s).abs() < 0.001,
            "audio {start}..{end}, sent {audio_s} s"
        );
        assert!(vod.duration_us() >= 9_000_000);

        // The video track lists the two distinct sample entries (the step back up reuses the
        // first) and its chunks refer to them in the order they were sent; the tkhd announces
        // the larger picture.
        let moov = moov_of(&std::fs::read(&mp4).expect("read mp4"));
        let video = moov
            .trak
            .iter()
            .find(|t| matches!(t.mdia.minf.stbl.stsd.codecs.first(), Some(Codec::Avc1(_))))
            .expect("video trak");
        let entries: Vec<(u16, u16)> = video
            .mdia
            .minf
            .stbl
            .stsd
            .codecs
            .iter()
            .map(|c| match c {
                Codec::Avc1(a) => (a.visual.width, a.visual.height),
                other => panic!("not avc1: {other:?}"),
            })
            .collect();
        assert_eq!(entries, [(640, 360), (320, 180)]);
        let mut indices: Vec<u32> = video
            .mdia
            .minf
            .stbl
            .stsc
            .entries
            .iter()
            .map(|e| e.sample_description_index)
            .collect();
        indices.dedup();
        assert_eq!(indices, [1, 2, 1]);
        assert_eq!(
            (video.tkhd.width.integer(), video.tkhd.height.integer()),
            (640, 360)
        );
        let audio = moov
            .trak
            .iter()
            .find(|t| matches!(t.mdia.minf.stbl.stsd.codecs.first(), Some(Codec::Mp4a(_))))
            .expect("audio trak");
        assert_eq!(
            audio.mdia.minf.stbl.stsd.codecs.len(),
            1,
            "the unchanged audio keeps one entry"
        );

        // The HLS VOD: a new map at each change, on one timeline; each run decodes.
        let playlist = write_hls(dir, &run);
        let text = std::fs::read_to_string(&playlist).expect("playlist");
        assert!(!text.contains("DISCONTINUITY"), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 3, "{text}");
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"), "{text}");
        let mut hls_sizes = Vec::new();
        for path in hls_runs(dir, &playlist) {
            let errors = decode_errors(&path);
            assert!(errors.is_empty(), "{path:?}: decode errors: {errors}");
            hls_sizes.extend(frame_sizes(&path));
        }
        assert_eq!(
            size_runs(&hls_sizes),
            [((640, 360), 90), ((320, 180), 90), ((640, 360), 90)]
        );
    });
}

#[test]
fn audio_sample_rate_change_keeps_the_track_timescale() {
    with_dir(|dir| {
        let first = clip(dir, "320x180", Some(44100), 3);
        let second = clip(dir, "640x360", Some(48000), 3);
        let mut input = read_events(&first, 0);
        input.extend(read_events(&second, 3000));
        let sent = video_frames(&input);
        let audio_sent = audio_seconds(&input);
        let run = package(input);
        assert_eq!(run.inits.len(), 2, "one init segment for both changes");
        let mp4 = dir.join("vod.mp4");
        build_mp4(&run, &mp4);
        let errors = decode_errors(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(
            size_runs(&frame_sizes(&mp4)),
            [((320, 180), 90), ((640, 360), 90)]
        );
        assert_eq!(frame_sizes(&mp4).len(), sent);
        let moov = moov_of(&std::fs::read(&mp4).expect("read mp4"));
        let audio = moov
            .trak
            .iter()
            .find(|t| matches!(t.mdia.minf.stbl.stsd.codecs.first(), Some(Codec::Mp4a(_))))
            .expect("audio trak");
        assert_eq!(audio.mdia.mdhd.timescale, 44100);
        assert_eq!(audio.mdia.minf.stbl.stsd.codecs.len(), 2);
        // The audio plays for as long as it was sent (each clip's AAC lasts a little over its
        // 3 s, at its own rate), converted sample by sample: no gap, no drift after the change.
        let packets = audio_packets(&mp4);
        let mut previous_end = packets[0].0;
        for (pts, duration) in &packets {
            assert!((pts - previous_end).abs() < 0.0001, "gap before {pts}");
            previous_end = pts + duration;
        }
        let played = previous_end - packets[0].0;
        assert!(
            (played - audio_sent).abs() < 0.001,
            "audio {played} s, sent {audio_sent} s"
        );
    });
}

#[test]
fn audio_added_mid_stream_becomes_a_track_that_starts_later() {
    with_dir(|dir| {
        let silent = clip(dir, "320x180", None, 3);
        let with_audio = clip(dir, "320x180", Some(48000), 3);
        let mut input = read_events(&silent, 0);
        input.extend(read_events(&with_audio, 3000));
        let sent = video_frames(&input);
        let audio_sent = audio_seconds(&input);
        let run = package(input);
        assert_eq!(run.inits.len(), 2);
        let mp4 = dir.join("vod.mp4");
        let vod = build_mp4(&run, &mp4);
        assert_eq!(vod.sample_counts().len(), 2);
        let errors = decode_errors(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(frame_sizes(&mp4).len(), sent);
        let (video_start, _) = span(&mp4, "v");
        let (audio_start, audio_end) = span(&mp4, "a");
        // The audio starts where it was sent, 3 s in, and lasts as long as it was sent.
        assert!(
            (audio_start - video_start - 3.0).abs() < 0.06,
            "video from {video_start}, audio from {audio_start}"
        );
        assert!(((audio_end - audio_start) - audio_sent).abs() < 0.001);
    });
}

#[test]
fn an_init_segment_that_turns_video_into_audio_is_refused_and_changes_nothing() {
    with_dir(|dir| {
        let input = read_events(&clip(dir, "320x180", Some(44100), 5), 0);
        let run = package(input);
        let mut vod = VodMp4Builder::new(&run.inits[0]).expect("init");
        vod.add_segment(&run.segments[0].3).expect("segment");
        // The same init segment with the audio track renumbered as track 1 (the video's).
        let init = &run.inits[0];
        let boxes = top_level_boxes(init, "test").expect("boxes");
        let moov_box = boxes.iter().find(|b| &b.kind == b"moov").expect("moov");
        let mut moov = moov_of(init);
        moov.trak
            .retain(|t| matches!(t.mdia.minf.stbl.stsd.codecs[0], Codec::Mp4a(_)));
        moov.trak[0].tkhd.track_id = 1;
        if let Some(mvex) = moov.mvex.as_mut() {
            mvex.trex.retain(|t| t.track_id == 2);
            mvex.trex[0].track_id = 1;
        }
        let mut bad = init[..moov_box.start].to_vec();
        mp4_atom::Encode::encode(&moov, &mut bad).expect("encode");
        let before = vod.header();
        let e = vod.add_init(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "init segment 1: track 1 changes from video to audio at byte {}",
                moov_box.start
            )
        );
        assert_eq!(vod.header(), before);
        // Segments still read against the first init segment.
        vod.add_segment(&run.segments[1].3).expect("next segment");
        // Garbage as a later init segment is an error, never a panic.
        for n in 0..init.len() {
            let _ = vod.clone().add_init(&init[..n]);
        }
        assert!(vod.add_init(b"\0\0\0\x08free").is_err());
    });
}
