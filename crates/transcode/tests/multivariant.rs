//! Ladder → packager → multivariant playlist, played by ffmpeg/ffprobe.

mod common;

use common::*;
use vshare_media::MediaEvent;
use vshare_package::{
    Packager, PackagerConfig, PackagerOutput, VariantMeter, multivariant_playlist, vod_playlist,
};
use vshare_testkit::ffmpeg::{ffprobe, parse_rate, stream_of};
use vshare_testkit::process::run_tool_text;
use vshare_transcode::{LadderConfig, Transcoder};

#[test]
fn multivariant_playlist_plays_and_declares_measured_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 1280, 720, 30, 8, 30);
    let events = read_events(&src);
    let (v, a) = configs(&events);
    let config = LadderConfig {
        renditions: vec![
            spec("480p", 480, 1_000_000, 128_000),
            spec("240p", 240, 300_000, 64_000),
        ],
        passthrough: false,
    };
    let mut t = Transcoder::new(&config, v.as_ref(), a.as_ref()).expect("transcoder");
    let infos = t.renditions();
    let n = infos.len();
    let mut packagers: Vec<Packager> = (0..n)
        .map(|_| Packager::new(PackagerConfig::default()))
        .collect();
    let mut meters: Vec<VariantMeter> = (0..n).map(|_| VariantMeter::new(2_000_000)).collect();
    let mut store: Vec<Vec<PackagerOutput>> = vec![Vec::new(); n];
    let mut outs = Vec::new();
    for e in events.iter().filter(|e| matches!(e, MediaEvent::Frame(_))) {
        outs.extend(
            t.push(match e {
                MediaEvent::Frame(f) => f,
                MediaEvent::Config(_) => unreachable!(),
            })
            .expect("push"),
        );
    }
    outs.extend(t.finish().expect("finish"));
    for (i, ev) in outs {
        meters[i].push(&ev);
        let arrival = match &ev {
            MediaEvent::Frame(f) => 1_700_000_000_000_000 + f.dts,
            MediaEvent::Config(_) => 1_700_000_000_000_000,
        };
        store[i].extend(packagers[i].push(ev, arrival).expect("package"));
    }
    let mut variants = Vec::new();
    for i in 0..n {
        store[i].extend(packagers[i].finish());
        let sub = dir.path().join(&infos[i].name);
        std::fs::create_dir_all(&sub).expect("mkdir");
        let mut segs = Vec::new();
        for o in &store[i] {
            match o {
                PackagerOutput::Init { bytes, .. } => {
                    std::fs::write(sub.join("init.mp4"), bytes).expect("w")
                }
                PackagerOutput::Segment {
                    msn,
                    duration_us,
                    bytes,
                    ..
                } => {
                    let name = format!("seg{msn}.m4s");
                    std::fs::write(sub.join(&name), bytes).expect("w");
                    segs.push((name, *duration_us));
                }
                PackagerOutput::Part { .. } => {}
            }
        }
        std::fs::write(
            sub.join("index.m3u8"),
            vod_playlist(&segs, "init.mp4", true),
        )
        .expect("w");
        // Both configurations came before any frame: one init segment, no discontinuity.
        let inits = store[i]
            .iter()
            .filter(|o| matches!(o, PackagerOutput::Init { .. }))
            .count();
        assert_eq!(inits, 1, "{}: init segments", infos[i].name);
        variants.push(
            meters[i]
                .variant(&format!("{}/index.m3u8", infos[i].name))
                .expect("variant"),
        );
    }
    let master = multivariant_playlist(&variants);
    eprintln!("{master}");
    let mpath = dir.path().join("index.m3u8");
    std::fs::write(&mpath, &master).expect("w");

    for (i, var) in variants.iter().enumerate() {
        assert_eq!((var.width, var.height), (infos[i].width, infos[i].height));
        assert_eq!(var.frame_rate, 30.0);
        assert!(
            var.codecs.starts_with("avc1.") && var.codecs.ends_with(",mp4a.40.2"),
            "{}",
            var.codecs
        );
        assert!(var.bandwidth >= var.average_bandwidth);
        // ffprobe's view of the rendition: bits of all packets over the duration.
        let media = dir.path().join(&infos[i].name).join("index.m3u8");
        let m = media.to_str().expect("p");
        let sizes = run_tool_text(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "packet=size",
                "-of",
                "csv=p=0",
                m,
            ],
        );
        let bits: u64 = sizes
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .map(|b| b * 8)
            .sum();
        let p = ffprobe(&media);
        let dur: f64 = p["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("duration");
        let probe_rate = bits as f64 / dur;
        eprintln!(
            "{}: ours {} b/s, ffprobe {probe_rate:.0} b/s over {dur} s",
            infos[i].name, var.average_bandwidth
        );
        assert!(
            (probe_rate / var.average_bandwidth as f64 - 1.0).abs() < 0.05,
            "{}: {probe_rate} vs {}",
            infos[i].name,
            var.average_bandwidth
        );
        let vs = stream_of(&p, "video");
        assert_eq!(vs["width"].as_u64(), Some(u64::from(var.width)));
        assert!(
            (parse_rate(vs["r_frame_rate"].as_str().expect("r")) - var.frame_rate).abs() < 0.01
        );
    }
    // The multivariant playlist: ffprobe sees every variant, ffmpeg decodes all of it.
    let p = ffprobe(&mpath);
    let widths: Vec<u64> = p["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .filter_map(|s| s["width"].as_u64())
        .collect();
    assert_eq!(
        widths,
        variants
            .iter()
            .map(|v| u64::from(v.width))
            .collect::<Vec<_>>()
    );
    let mp = mpath.to_str().expect("p");
    run_tool_text(
        "ffmpeg",
        &[
            "-v", "error", "-xerror", "-i", mp, "-map", "0", "-f", "null", "-",
        ],
    );
}
