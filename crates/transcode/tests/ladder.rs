//! The ladder against real FFmpeg output, checked with ffprobe/ffmpeg.

mod common;

use std::collections::BTreeSet;

use common::*;
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_testkit::ffmpeg::{ffprobe, stream_of};
use vshare_testkit::process::run_tool_text;
use vshare_transcode::{LadderConfig, Transcoder};

/// Runs the ladder over a whole source; events per rendition.
fn transcode(config: &LadderConfig, events: &[MediaEvent]) -> (Transcoder, Vec<Vec<MediaEvent>>) {
    let (v, a) = configs(events);
    let mut t = Transcoder::new(config, v.as_ref(), a.as_ref()).expect("transcoder");
    let n = t.renditions().len();
    let mut out: Vec<Vec<MediaEvent>> = vec![Vec::new(); n];
    let mut seen_config = [false, false];
    for e in events {
        // The first configs went to new(); later ones are changes.
        if let MediaEvent::Config(c) = e {
            let k = usize::from(c.kind() == TrackKind::Audio);
            if !seen_config[k] {
                seen_config[k] = true;
                continue;
            }
        }
        for (i, ev) in t.push_event(e).expect("push") {
            out[i].push(ev);
        }
    }
    for (i, ev) in t.finish().expect("finish") {
        out[i].push(ev);
    }
    (t, out)
}

fn key_pts(events: &[MediaEvent]) -> Vec<i64> {
    frames(events, TrackKind::Video)
        .iter()
        .filter(|f| f.key)
        .map(|f| f.pts)
        .collect()
}

#[test]
fn ladder_renditions_decode_match_and_stay_in_sync() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 1280, 720, 30, 6, 30);
    let events = read_events(&src);
    let config = LadderConfig {
        renditions: vec![
            spec("720p", 720, 2_500_000, 128_000),
            spec("480p", 480, 1_000_000, 128_000),
            spec("360p", 360, 600_000, 96_000),
            spec("240p", 240, 300_000, 64_000),
        ],
        passthrough: true,
    };
    let (t, outs) = transcode(&config, &events);
    let infos = t.renditions();
    // 720p is not smaller than the source: skipped.
    assert_eq!(
        infos.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["480p", "360p", "240p"]
    );
    assert_eq!(
        infos
            .iter()
            .map(|r| (r.width, r.height))
            .collect::<Vec<_>>(),
        [(854, 480), (640, 360), (426, 240)]
    );
    let source_keys = key_pts(&events);
    assert!(source_keys.len() >= 6, "source keyframes {source_keys:?}");
    let source_frames = frames(&events, TrackKind::Video).len();
    let (src_off, src_n) = av_offset(&src);
    eprintln!(
        "source: A/V offset {:.1} ms over {src_n} flashes",
        src_off * 1e3
    );

    for (i, out) in outs.iter().enumerate() {
        let info = &infos[i];
        assert!(info.failed.is_none(), "{info:?}");
        // Configs first, each parses, and says what ffprobe will see.
        let MediaEvent::Config(TrackConfig::Aac(_)) = &out[0] else {
            panic!("audio config first: {:?}", out[0])
        };
        let vcfg = out
            .iter()
            .find_map(|e| match e {
                MediaEvent::Config(TrackConfig::Avc(c)) => Some(c.clone()),
                _ => None,
            })
            .expect("video config");
        assert_eq!((vcfg.width, vcfg.height), (info.width, info.height));
        // Both configurations before any frame: the packager writes one init segment.
        let first_frame = out.iter().position(|e| matches!(e, MediaEvent::Frame(_)));
        let video_config = out
            .iter()
            .position(|e| matches!(e, MediaEvent::Config(TrackConfig::Avc(_))));
        assert!(
            video_config < first_frame,
            "{}: a frame before the video config",
            info.name
        );
        assert_eq!(vcfg.frame_rate, Some(30.0), "SPS frame rate");
        // Keyframes exactly where the source has them.
        assert_eq!(key_pts(out), source_keys, "{} keyframes", info.name);
        assert_eq!(
            frames(out, TrackKind::Video).len(),
            source_frames,
            "{} frames",
            info.name
        );

        let path = dir.path().join(format!("{}.flv", info.name));
        write_flv(&path, out);
        let p = ffprobe(&path);
        let v = stream_of(&p, "video");
        assert_eq!(v["codec_name"], "h264");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(u64::from(info.width)), Some(u64::from(info.height)))
        );
        let a = stream_of(&p, "audio");
        assert_eq!(
            (a["codec_name"].as_str(), a["sample_rate"].as_str()),
            (Some("aac"), Some("48000"))
        );
        // Frame rate and bitrate measured by ffprobe from the packets vs ours from the frames.
        let pk = video_packets(&path);
        assert_eq!(pk.len(), source_frames);
        let span = pk.last().map(|l| l.0).unwrap_or(0.0) - pk[0].0;
        let probe_fps = (pk.len() - 1) as f64 / span;
        assert!(
            (probe_fps - 30.0).abs() < 0.3,
            "{} fps {probe_fps}",
            info.name
        );
        let probe_bits: u64 = pk.iter().map(|p| p.2 * 8).sum();
        let ours: u64 = frames(out, TrackKind::Video)
            .iter()
            .map(|f| f.data.len() as u64 * 8)
            .sum();
        let dur = pk.len() as f64 / 30.0;
        let probe_rate = probe_bits as f64 / dur;
        let our_rate = ours as f64 / dur;
        assert!(
            (probe_rate / our_rate - 1.0).abs() < 0.05,
            "{}: ffprobe {probe_rate} ours {our_rate}",
            info.name
        );
        // And the encoder hit its target within reason.
        assert!(
            (our_rate / info.video_bitrate as f64 - 1.0).abs() < 0.35,
            "{}: {our_rate} b/s vs target {}",
            info.name,
            info.video_bitrate
        );
        // ffprobe's keyframes: the same instants in every rendition.
        let keys: Vec<i64> = pk
            .iter()
            .filter(|p| p.1)
            .map(|p| (p.0 * 1000.0).round() as i64)
            .collect();
        let shift = flv_shift(out);
        let want: Vec<i64> = source_keys.iter().map(|k| (k - shift) / 1000).collect();
        assert_eq!(keys, want, "{} keyframes by ffprobe", info.name);
        // A/V sync: every flash has its beep within one frame.
        let (off, n) = av_offset(&path);
        eprintln!(
            "{}: {}x{} {:.0} b/s A/V offset {:.1} ms over {n} flashes",
            info.name,
            info.width,
            info.height,
            our_rate,
            off * 1e3
        );
        assert!(n >= 5, "{}: {n} flashes paired", info.name);
        assert!(off <= 1.0 / 30.0, "{}: A/V offset {off}", info.name);
        // The whole file decodes.
        run_tool_text(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-xerror",
                "-i",
                path.to_str().expect("p"),
                "-f",
                "null",
                "-",
            ],
        );
    }
}

#[test]
fn default_preset_skips_rungs_not_smaller_than_the_source() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 640, 480, 25, 1, 25);
    let events = read_events(&src);
    let (v, a) = configs(&events);
    let t = Transcoder::new(
        &LadderConfig::preset("default").expect("preset"),
        v.as_ref(),
        a.as_ref(),
    )
    .expect("t");
    let names: BTreeSet<String> = t.renditions().into_iter().map(|r| r.name).collect();
    assert_eq!(names, BTreeSet::from(["240p".to_string()]));
    assert!(t.passthrough());
}

#[test]
fn failing_rendition_does_not_disturb_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 640, 360, 30, 2, 30);
    let events = read_events(&src);
    let mut broken = spec("broken", 240, 300_000, 64_000);
    broken.encoder = Some("h264_vaapi".into());
    let mut missing = spec("missing", 180, 300_000, 64_000);
    missing.encoder = Some("no_such_encoder".into());
    let config = LadderConfig {
        renditions: vec![spec("288p", 288, 500_000, 64_000), broken, missing],
        passthrough: false,
    };
    let (t, outs) = transcode(&config, &events);
    let infos = t.renditions();
    assert!(infos[0].failed.is_none(), "{:?}", infos[0]);
    assert!(
        infos[1]
            .failed
            .as_deref()
            .is_some_and(|e| e.contains("h264_vaapi")),
        "{:?}",
        infos[1]
    );
    assert!(
        infos[2]
            .failed
            .as_deref()
            .is_some_and(|e| e.contains("no_such_encoder")),
        "{:?}",
        infos[2]
    );
    assert_eq!(
        frames(&outs[0], TrackKind::Video).len(),
        frames(&events, TrackKind::Video).len()
    );
    assert!(frames(&outs[1], TrackKind::Video).is_empty());
    // Audio of the failed renditions still flows (its own path).
    assert!(!frames(&outs[1], TrackKind::Audio).is_empty());
    let path = dir.path().join("ok.flv");
    write_flv(&path, &outs[0]);
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-xerror",
            "-i",
            path.to_str().expect("p"),
            "-f",
            "null",
            "-",
        ],
    );
}

/// Shifts every frame of `events` by `us`.
fn shifted(events: &[MediaEvent], us: i64) -> Vec<MediaEvent> {
    events
        .iter()
        .map(|e| match e {
            MediaEvent::Frame(f) => {
                let mut f = f.clone();
                f.pts += us;
                f.dts += us;
                MediaEvent::Frame(f)
            }
            c => c.clone(),
        })
        .collect()
}

#[test]
fn resolution_change_mid_stream_keeps_outputs_valid() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = dir.path().join("a.flv");
    let b = dir.path().join("b.flv");
    flash_source(&a, 640, 360, 30, 2, 30);
    // The phone rotates: portrait after 2 s.
    flash_source(&b, 360, 640, 30, 2, 30);
    let mut events = read_events(&a);
    let last = frames(&events, TrackKind::Video)
        .last()
        .map(|f| f.dts)
        .expect("frames");
    events.extend(shifted(&read_events(&b), last + 33_333));
    let config = LadderConfig {
        renditions: vec![spec("240p", 240, 300_000, 64_000)],
        passthrough: true,
    };
    let (t, outs) = transcode(&config, &events);
    assert!(t.renditions()[0].failed.is_none());
    let sizes: Vec<(u32, u32)> = outs[0]
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Config(TrackConfig::Avc(c)) => Some((c.width, c.height)),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [(426, 240), (136, 240)]);
    assert_eq!(
        frames(&outs[0], TrackKind::Video).len(),
        frames(&events, TrackKind::Video).len()
    );
    assert_eq!(key_pts(&outs[0]), key_pts(&events));
    // ffmpeg decodes the whole output and sees both sizes.
    let path = dir.path().join("out.flv");
    write_flv(&path, &outs[0]);
    let p = path.to_str().expect("p");
    let s = run_tool_text(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=width,height",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    let sizes: Vec<&str> = s
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .collect();
    let seen: BTreeSet<&str> = sizes.iter().copied().collect();
    assert_eq!(seen, BTreeSet::from(["426,240", "136,240"]), "{s}");
    assert_eq!(sizes.len(), frames(&events, TrackKind::Video).len());
}

#[test]
fn corrupt_frames_are_skipped_and_the_renditions_carry_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 640, 360, 30, 3, 30);
    let mut events = read_events(&src);
    let mut n = 0;
    for e in events.iter_mut() {
        if let MediaEvent::Frame(f) = e {
            n += 1;
            match n {
                // Garbage with a NAL length larger than the frame.
                20 => f.data = bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x65, 1, 2, 3]),
                // Truncated in the middle of a slice.
                41 => f.data = f.data.slice(..f.data.len() / 3),
                // Noise.
                60 => {
                    f.data = bytes::Bytes::from(
                        (0..500u32)
                            .map(|i| (i * 7919 % 251) as u8)
                            .collect::<Vec<u8>>(),
                    )
                }
                // Empty.
                75 => f.data = bytes::Bytes::new(),
                _ => {}
            }
        }
    }
    let config = LadderConfig {
        renditions: vec![
            spec("240p", 240, 300_000, 64_000),
            spec("144p", 144, 150_000, 64_000),
        ],
        passthrough: true,
    };
    let (t, outs) = transcode(&config, &events);
    for (i, info) in t.renditions().iter().enumerate() {
        assert!(info.failed.is_none(), "{info:?}");
        let vf = frames(&outs[i], TrackKind::Video);
        assert!(vf.len() >= 80, "{}: {} frames", info.name, vf.len());
        assert_eq!(key_pts(&outs[i]), key_pts(&events));
        let path = dir.path().join(format!("{}.flv", info.name));
        write_flv(&path, &outs[i]);
        run_tool_text(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-xerror",
                "-i",
                path.to_str().expect("p"),
                "-f",
                "null",
                "-",
            ],
        );
    }
}

/// A/V sync over 10 minutes of source: the last flash still has its beep within one frame.
/// Run with `cargo test -p vshare-transcode --test ladder -- --ignored`.
#[test]
#[ignore = "10 minutes of media: about two minutes of CPU"]
fn av_sync_holds_over_ten_minutes() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 640, 360, 30, 600, 60);
    let events = read_events(&src);
    let config = LadderConfig {
        renditions: vec![spec("240p", 240, 300_000, 64_000)],
        passthrough: true,
    };
    let (_t, outs) = transcode(&config, &events);
    let path = dir.path().join("240p.flv");
    write_flv(&path, &outs[0]);
    let flashes = flash_times(&path);
    let beeps = beep_times(&path);
    assert!(flashes.len() >= 595, "{} flashes", flashes.len());
    let offset = |f: f64| {
        beeps
            .iter()
            .map(|b| b - f)
            .fold(f64::MAX, |a, d| if d.abs() < a.abs() { d } else { a })
    };
    let first = offset(flashes[0]);
    let last = offset(*flashes.last().expect("flash"));
    let (worst, n) = av_offset(&path);
    eprintln!(
        "10 min: first flash {:.1} ms, last flash (t={:.1} s) {:.1} ms, worst {:.1} ms over {n} flashes",
        first * 1e3,
        flashes.last().copied().unwrap_or(0.0),
        last * 1e3,
        worst * 1e3
    );
    assert!(first.abs() <= 1.0 / 30.0 && last.abs() <= 1.0 / 30.0 && worst <= 1.0 / 30.0);
}

#[test]
fn phone_source_with_variable_frame_rate_and_odd_sample_rate() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    phone_source(&src, 4);
    let events = read_events(&src);
    let (_, a) = configs(&events);
    assert_eq!(a.map(|a| (a.sample_rate, a.channels)), Some((22050, 1)));
    let config = LadderConfig {
        renditions: vec![spec("240p", 240, 300_000, 64_000)],
        passthrough: true,
    };
    let (t, outs) = transcode(&config, &events);
    assert!(t.renditions()[0].failed.is_none());
    // Capture times kept frame for frame (the variable rate survives).
    let src_pts: Vec<i64> = frames(&events, TrackKind::Video)
        .iter()
        .map(|f| f.pts)
        .collect();
    let mut out_pts: Vec<i64> = frames(&outs[0], TrackKind::Video)
        .iter()
        .map(|f| f.pts)
        .collect();
    let mut sorted = src_pts.clone();
    sorted.sort_unstable();
    out_pts.sort_unstable();
    assert_eq!(out_pts, sorted);
    let path = dir.path().join("240p.flv");
    write_flv(&path, &outs[0]);
    let p = ffprobe(&path);
    let a = stream_of(&p, "audio");
    assert_eq!(
        (a["sample_rate"].as_str(), a["channels"].as_u64()),
        (Some("48000"), Some(2))
    );
    let (off, n) = av_offset(&path);
    eprintln!(
        "phone source: A/V offset {:.1} ms over {n} flashes",
        off * 1e3
    );
    assert!(n >= 3 && off <= 1.0 / 30.0, "offset {off} over {n}");
}
