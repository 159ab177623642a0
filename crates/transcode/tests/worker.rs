//! The worker never blocks its caller and recovers at keyframes when it falls behind.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use vshare_media::{MediaEvent, TrackKind};
use vshare_testkit::process::run_tool_text;
use vshare_transcode::{LadderConfig, RenditionSpec, TranscodeWorker, Transcoder};

fn setup(seconds: u32) -> (tempfile::TempDir, Vec<MediaEvent>, Transcoder) {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 640, 360, 30, seconds, 15);
    let events = read_events(&src);
    let (v, a) = configs(&events);
    let config = LadderConfig {
        renditions: vec![
            RenditionSpec {
                name: "288p".into(),
                height: 288,
                video_bitrate: 500_000,
                audio_bitrate: 64_000,
                encoder: None,
                preset: None,
            },
            RenditionSpec {
                name: "144p".into(),
                height: 144,
                video_bitrate: 150_000,
                audio_bitrate: 64_000,
                encoder: None,
                preset: None,
            },
        ],
        passthrough: true,
    };
    let t = Transcoder::new(&config, v.as_ref(), a.as_ref()).expect("transcoder");
    (dir, events, t)
}

fn frame_events(events: &[MediaEvent]) -> impl Iterator<Item = &MediaEvent> {
    events.iter().filter(|e| matches!(e, MediaEvent::Frame(_)))
}

#[test]
fn full_queue_drops_until_the_next_keyframe_without_blocking() {
    let (dir, events, t) = setup(4);
    let out: Arc<Mutex<Vec<Vec<MediaEvent>>>> = Arc::new(Mutex::new(vec![Vec::new(), Vec::new()]));
    let o = out.clone();
    let mut w = TranscodeWorker::spawn(t, 4, move |i, e| o.lock().expect("lock")[i].push(e));
    let started = Instant::now();
    let mut slowest = 0u128;
    for e in frame_events(&events) {
        let t0 = Instant::now();
        w.push(e);
        slowest = slowest.max(t0.elapsed().as_micros());
    }
    let pushed_in = started.elapsed();
    let stats = w.finish();
    eprintln!(
        "pushed {} events in {pushed_in:?} (slowest push {slowest} µs): {stats:?}",
        events.len()
    );
    assert!(slowest < 20_000, "a push blocked for {slowest} µs");
    assert!(
        stats.frames_dropped > 0 && stats.drop_episodes >= 1,
        "{stats:?}"
    );
    let out = out.lock().expect("lock");
    let source_keys: Vec<i64> = frames(&events, TrackKind::Video)
        .iter()
        .filter(|f| f.key)
        .map(|f| f.pts)
        .collect();
    let mut per_rung_keys = Vec::new();
    for (i, o) in out.iter().enumerate() {
        let vf = frames(o, TrackKind::Video);
        assert!(!vf.is_empty(), "rendition {i} made nothing");
        assert!(vf[0].key);
        let keys: Vec<i64> = vf.iter().filter(|f| f.key).map(|f| f.pts).collect();
        assert!(
            keys.iter().all(|k| source_keys.contains(k)),
            "keyframes off the source's: {keys:?}"
        );
        per_rung_keys.push(keys);
        let path = dir.path().join(format!("r{i}.flv"));
        write_flv(&path, o);
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
    assert_eq!(
        per_rung_keys[0], per_rung_keys[1],
        "keyframes differ between renditions"
    );
}

#[test]
fn a_queue_with_room_loses_nothing() {
    let (_dir, events, t) = setup(2);
    let out: Arc<Mutex<Vec<Vec<MediaEvent>>>> = Arc::new(Mutex::new(vec![Vec::new(), Vec::new()]));
    let o = out.clone();
    let mut w = TranscodeWorker::spawn(t, 10_000, move |i, e| o.lock().expect("lock")[i].push(e));
    for e in frame_events(&events) {
        assert!(w.push(e));
    }
    let stats = w.finish();
    assert_eq!((stats.frames_dropped, stats.drop_episodes), (0, 0));
    let out = out.lock().expect("lock");
    for o in out.iter() {
        assert_eq!(
            frames(o, TrackKind::Video).len(),
            frames(&events, TrackKind::Video).len()
        );
    }
    assert_eq!(stats.renditions.len(), 2);
    assert!(
        stats
            .renditions
            .iter()
            .all(|r| r.failed.is_none() && r.video_frames > 0)
    );
}
