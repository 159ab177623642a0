use bytes::Bytes;

use super::*;
use crate::{AacConfig, AvcConfig};

fn avc(frame_rate: Option<f64>) -> MediaEvent {
    MediaEvent::Config(TrackConfig::Avc(AvcConfig {
        record: Bytes::new(),
        width: 640,
        height: 360,
        frame_rate,
        profile_idc: 100,
        constraint_flags: 0,
        level_idc: 30,
        nal_length_size: 4,
    }))
}

/// AAC-LC, 48 kHz, stereo: 1024 samples = 21 333.3 µs a frame.
fn aac() -> MediaEvent {
    let c = AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc");
    MediaEvent::Config(TrackConfig::Aac(c))
}

fn frame(track: TrackKind, pts: i64, dts: i64) -> MediaEvent {
    MediaEvent::Frame(Frame {
        track,
        pts,
        dts,
        key: true,
        data: Bytes::from_static(&[1]),
    })
}

fn v(pts_ms: f64, dts_ms: f64) -> MediaEvent {
    frame(
        TrackKind::Video,
        (pts_ms * 1000.0).round() as i64,
        (dts_ms * 1000.0).round() as i64,
    )
}

fn a(ms: f64) -> MediaEvent {
    let t = (ms * 1000.0).round() as i64;
    frame(TrackKind::Audio, t, t)
}

/// Runs events (arrival = index × 1 ms unless given) and returns the frames that came out and
/// the repairs.
fn run(events: Vec<MediaEvent>) -> (Vec<Frame>, Vec<Repair>) {
    run_at(
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (e, i as i64 * 1000))
            .collect(),
    )
}

fn run_at(events: Vec<(MediaEvent, i64)>) -> (Vec<Frame>, Vec<Repair>) {
    let mut n = TimestampNormalizer::new();
    let mut out = Vec::new();
    for (e, at) in events {
        out.extend(n.push(e, at));
    }
    out.extend(n.finish());
    let frames = out
        .into_iter()
        .filter_map(|(e, _)| match e {
            MediaEvent::Frame(f) => Some(f),
            MediaEvent::Config(_) => None,
        })
        .collect();
    (frames, n.take_repairs())
}

fn track(frames: &[Frame], kind: TrackKind) -> Vec<&Frame> {
    frames.iter().filter(|f| f.track == kind).collect()
}

/// The guarantees: strictly increasing DTS and pts ≥ dts, per track.
fn assert_well_formed(frames: &[Frame]) {
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let t = track(frames, kind);
        for w in t.windows(2) {
            assert!(
                w[1].dts > w[0].dts,
                "{kind:?} dts {} then {}",
                w[0].dts,
                w[1].dts
            );
        }
        for f in t {
            assert!(f.pts >= f.dts, "{kind:?} pts {} < dts {}", f.pts, f.dts);
        }
    }
}

/// Video DTS steps in 90 kHz ticks, as the packager will write them.
fn ticks(frames: &[Frame]) -> Vec<i64> {
    track(frames, TrackKind::Video)
        .windows(2)
        .map(|w| ((w[1].dts - w[0].dts) as f64 * 0.09).round() as i64)
        .collect()
}

#[test]
fn gstreamer_clamped_b_frame_start_is_rebuilt() {
    // x264enc bframes=2 through flvmux: DTS clamped to 0 for the first three frames.
    // Decode order I0 P3 B1 B2 P6 B4 B5 …, pts in ms on a 30 fps grid.
    let order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11, 15, 13, 14];
    let p = 1000.0 / 30.0;
    let mut events = vec![avc(None)];
    for (i, &k) in order.iter().enumerate() {
        let dts = ((i as f64 - 2.0).max(0.0) * p).round();
        events.push(v((k as f64 * p).round(), dts));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert_eq!(frames.len(), order.len());
    assert_eq!(ticks(&frames), vec![3000; order.len() - 1]);
    // The first frame decodes two frames before its presentation.
    assert_eq!(frames[0].pts - frames[0].dts, 66_667);
    let rebuilt = repairs
        .iter()
        .filter(|r| r.kind == RepairKind::ClampedStart)
        .count();
    assert!(rebuilt >= 2, "{repairs:?}");
}

#[test]
fn gstreamer_clamp_with_a_start_offset_is_rebuilt_one_frame_apart() {
    // What GStreamer 1.22 sent here: its live clock starts the stream 7 ms in, so the clamped
    // frames are followed by a DTS of 7 ms, not of a whole frame: dts 0, 0, 7, 40, 73 …
    let pts = [7, 107, 40, 73, 207, 140, 173, 307, 240, 273, 407, 340, 373];
    let dts = [0, 0, 7, 40, 73, 107, 140, 173, 207, 240, 273, 307, 340];
    let mut events = vec![avc(None)];
    for (p, d) in pts.iter().zip(dts) {
        events.push(v(f64::from(*p), f64::from(d)));
    }
    let (frames, _) = run(events);
    assert_well_formed(&frames);
    assert!(
        ticks(&frames).iter().all(|&d| d == 3000),
        "{:?}",
        ticks(&frames)
    );
    // pts keep their distances: on one grid with the decode times.
    for w in frames.windows(2) {
        let d = ((w[1].pts - w[0].pts) as f64 * 0.09).round() as i64;
        assert_eq!(d % 3000, 0, "{} then {}", w[0].pts, w[1].pts);
    }
    assert!((frames[0].pts - 7_000).abs() <= 1_000, "{}", frames[0].pts);
}

#[test]
fn ffmpeg_b_frames_with_negative_start_pass_unchanged_on_the_grid() {
    // -bf 3: dts starts at -100 ms (shifted to 0 by the FLV muxer), pts on the grid.
    let p = 40.0; // 25 fps
    let order = [0, 4, 2, 1, 3, 8, 6, 5, 7, 12, 10, 9, 11, 16, 14, 13, 15];
    let mut events = vec![avc(Some(25.0))];
    for (i, &k) in order.iter().enumerate() {
        events.push(v(k as f64 * p + 120.0, i as f64 * p));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert_eq!(ticks(&frames), vec![3600; order.len() - 1]);
    for (f, &k) in frames.iter().zip(&order) {
        assert_eq!(f.pts, k as i64 * 40_000 + 120_000);
    }
    assert!(repairs.is_empty(), "{repairs:?}");
}

#[test]
fn millisecond_rounding_at_29_97_lands_on_the_grid() {
    let mut events = vec![avc(Some(30000.0 / 1001.0))];
    for i in 0..300 {
        let t = (i as f64 * 1001.0 / 30.0).round();
        events.push(v(t, t));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert!(
        ticks(&frames).iter().all(|&d| d == 3003),
        "{:?}",
        ticks(&frames)
    );
    assert!(repairs.is_empty(), "{repairs:?}");
}

#[test]
fn a_29_97_source_without_sps_timing_is_learned() {
    let mut events = vec![avc(None)];
    for i in 0..600 {
        let t = (i as f64 * 1001.0 / 30.0).round();
        events.push(v(t, t));
    }
    let mut n = TimestampNormalizer::new();
    let mut out = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        out.extend(n.push(e, i as i64));
    }
    assert_eq!(
        n.video_rate(),
        Some(Rate {
            num: 30000,
            den: 1001
        })
    );
}

#[test]
fn twenty_five_fps_is_learned_and_fifteen_is_not_taken_for_thirty() {
    for (fps, want) in [
        (25.0, (25, 1)),
        (15.0, (15, 1)),
        (30.0, (30, 1)),
        (60.0, (60, 1)),
    ] {
        let mut n = TimestampNormalizer::new();
        n.push(avc(None), 0);
        for i in 0..40 {
            let t = (i as f64 * 1000.0 / fps).round();
            n.push(v(t, t), i);
        }
        let got = n.video_rate().map(|r| (r.num, r.den));
        assert_eq!(got, Some(want), "{fps} fps");
    }
}

#[test]
fn webcodecs_jitter_and_duplicates_become_distinct_grid_slots() {
    // Capture times from a timer that jitters with load: ±6 ms, some frames late, a duplicate.
    let jitter = [0, 4, -3, 6, -5, 2, 0, -6, 5, 1, 3, -2];
    let mut events = vec![avc(None)];
    let mut t_prev = -1.0;
    for i in 0..240 {
        let mut t = i as f64 * 1000.0 / 30.0 + f64::from(jitter[i % jitter.len()]);
        if i % 50 == 25 {
            t = t_prev; // a duplicate timestamp
        }
        t_prev = t;
        events.push(v(t, t));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert_eq!(frames.len(), 240);
    let steps = ticks(&frames);
    assert!(
        steps.iter().all(|d| d % 3000 == 0 && *d >= 3000),
        "{steps:?}"
    );
    // At most one and a half frames ahead of the capture time (a duplicate after an early frame),
    // never more than half a frame behind.
    for (i, f) in frames.iter().enumerate() {
        let t = i as f64 * 1000.0 / 30.0;
        let off = f.dts as f64 / 1000.0 - t;
        assert!((-23.0..=56.0).contains(&off), "frame {i} off by {off} ms");
    }
    assert!(
        repairs
            .iter()
            .any(|r| r.kind == RepairKind::NonIncreasingDts)
    );
}

#[test]
fn a_source_faster_than_its_grid_stays_within_one_and_a_half_frames() {
    // A 33 ms timer: 30.3 frames a second on a 30 fps grid.
    let mut events = vec![avc(Some(30.0))];
    for i in 0..600 {
        events.push(v(i as f64 * 33.0, i as f64 * 33.0));
    }
    let (frames, _) = run(events);
    assert_well_formed(&frames);
    for (i, f) in frames.iter().enumerate() {
        let lead = f.dts - i as i64 * 33_000;
        assert!((0..=50_500).contains(&lead), "frame {i} leads by {lead} µs");
    }
}

#[test]
fn variable_frame_rate_keeps_capture_times() {
    // A phone camera in low light: intervals wander between 33 and 70 ms, on no grid.
    let mut events = vec![avc(None)];
    let mut t = 0.0;
    let mut times = Vec::new();
    let mut seed = 12345u64;
    for _ in 0..200 {
        times.push(t);
        events.push(v(t, t));
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        t += 30.0 + (seed >> 33) as f64 % 50.0;
    }
    let (frames, _) = run(events);
    assert_well_formed(&frames);
    assert_eq!(frames.len(), times.len());
    for (f, t) in frames.iter().zip(&times) {
        assert_eq!(f.dts, (t * 1000.0).round() as i64);
    }
}

#[test]
fn equal_and_backward_dts_mid_stream_are_made_increasing() {
    let mut events = vec![avc(None)];
    for i in 0..30 {
        let t = i as f64 * 40.0;
        events.push(v(t, t));
    }
    events.push(v(1160.0, 1160.0)); // equal to the previous
    events.push(v(1150.0, 1150.0)); // backwards
    for i in 30..60 {
        let t = i as f64 * 40.0;
        events.push(v(t, t));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert_eq!(frames.len(), 62);
    assert!(
        repairs
            .iter()
            .filter(|r| r.kind == RepairKind::NonIncreasingDts)
            .count()
            >= 2
    );
}

#[test]
fn pts_before_dts_is_raised() {
    let mut events = vec![avc(Some(30.0))];
    for i in 0..20 {
        let t = i as f64 * 1000.0 / 30.0;
        let pts = if i == 15 { t - 20.0 } else { t };
        events.push(v(pts, t));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert!(repairs.iter().any(|r| r.kind == RepairKind::PtsBeforeDts));
}

/// Interleaved A/V at 30 fps and 48 kHz AAC, with times in ms from `time(i)`.
fn av_stream(seconds: f64, video_time: impl Fn(f64) -> f64) -> Vec<MediaEvent> {
    let mut events = vec![avc(Some(30.0)), aac()];
    let mut vi = 0;
    let mut ai = 0;
    let afr = 1024.0 / 48.0;
    loop {
        let vt = vi as f64 * 1000.0 / 30.0;
        let at = ai as f64 * afr;
        if vt.min(at) >= seconds * 1000.0 {
            break;
        }
        if vt <= at {
            let t = video_time(vt).round();
            events.push(v(t, t));
            vi += 1;
        } else {
            events.push(a(video_time(at).floor()));
            ai += 1;
        }
    }
    events
}

/// Video start minus audio start, µs.
fn av_offset(frames: &[Frame]) -> i64 {
    track(frames, TrackKind::Video)[0].dts - track(frames, TrackKind::Audio)[0].dts
}

/// Where each track ends (last dts + one frame), µs, relative to its start.
fn spans(frames: &[Frame]) -> (i64, i64) {
    let v = track(frames, TrackKind::Video);
    let a = track(frames, TrackKind::Audio);
    (
        v[v.len() - 1].dts + 33_333 - v[0].dts,
        a[a.len() - 1].dts + 21_333 - a[0].dts,
    )
}

#[test]
fn a_jump_forward_is_closed_on_both_tracks_and_alignment_kept() {
    let events = av_stream(6.0, |t| if t >= 3000.0 { t + 5000.0 } else { t });
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    let (vspan, aspan) = spans(&frames);
    assert!((vspan - 6_000_000).abs() <= 34_000, "video span {vspan}");
    assert!((aspan - 6_000_000).abs() <= 22_000, "audio span {aspan}");
    // The A/V relation after the jump is what it was before it.
    let v_after = track(&frames, TrackKind::Video)
        .into_iter()
        .find(|f| f.dts >= 4_000_000)
        .map(|f| f.dts)
        .expect("video after");
    let a_after = track(&frames, TrackKind::Audio)
        .into_iter()
        .find(|f| f.dts >= v_after)
        .map(|f| f.dts)
        .expect("audio after");
    assert!(a_after - v_after < 22_000);
    assert!(av_offset(&frames).abs() < 33_334);
    let jumps: Vec<_> = repairs
        .iter()
        .filter(|r| r.kind == RepairKind::JumpForward)
        .collect();
    assert_eq!(jumps.len(), 2, "{repairs:?}");
    assert_eq!(jumps[0].shift_us, jumps[1].shift_us);
}

#[test]
fn a_jump_backward_is_closed() {
    let events = av_stream(6.0, |t| if t >= 3000.0 { t - 2500.0 } else { t });
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    let (vspan, aspan) = spans(&frames);
    assert!((vspan - 6_000_000).abs() <= 34_000, "video span {vspan}");
    assert!((aspan - 6_000_000).abs() <= 22_000, "audio span {aspan}");
    assert_eq!(
        repairs
            .iter()
            .filter(|r| r.kind == RepairKind::JumpBackward)
            .count(),
        2,
        "{repairs:?}"
    );
}

#[test]
fn an_encoder_restart_at_zero_is_a_backward_jump() {
    let events = av_stream(4.0, |t| if t >= 2000.0 { t - 2000.0 } else { t });
    let (frames, _) = run(events);
    assert_well_formed(&frames);
    let (vspan, _) = spans(&frames);
    assert!((vspan - 4_000_000).abs() <= 34_000, "video span {vspan}");
}

#[test]
fn a_video_gap_that_audio_covers_is_kept() {
    // The upload sender dropped 2 s of video (backlog) while audio went on.
    let mut events = av_stream(6.0, |t| t);
    events.retain(|e| match e {
        MediaEvent::Frame(f) => {
            !(f.track == TrackKind::Video && (2_000_000..4_000_000).contains(&f.dts))
        }
        _ => true,
    });
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    let v = track(&frames, TrackKind::Video);
    let gap = v.windows(2).map(|w| w[1].dts - w[0].dts).max().unwrap_or(0);
    assert!(gap > 2_000_000, "gap {gap}");
    assert!(
        !repairs.iter().any(|r| r.kind == RepairKind::JumpForward),
        "{repairs:?}"
    );
}

#[test]
fn a_pause_in_real_time_is_kept() {
    // Both tracks stop for 3 s and the wall clock shows it.
    let events = av_stream(5.0, |t| if t >= 2000.0 { t + 3000.0 } else { t });
    let timed = events
        .into_iter()
        .map(|e| {
            let at = frame_of(&e).map_or(0, |f| f.dts);
            (e, at)
        })
        .collect();
    let (frames, repairs) = run_at(timed);
    assert_well_formed(&frames);
    let (vspan, _) = spans(&frames);
    assert!(vspan > 7_900_000, "video span {vspan}");
    assert!(
        !repairs.iter().any(|r| r.kind == RepairKind::JumpForward),
        "{repairs:?}"
    );
}

#[test]
fn audio_jitter_is_snapped_and_overlap_dropped() {
    let mut events = vec![aac()];
    let afr = 1024.0 / 48.0;
    for i in 0..100 {
        events.push(a((i as f64 * afr).round()));
    }
    events.push(a(99.0 * afr)); // a repeat of the last frame
    for i in 100..150 {
        events.push(a((i as f64 * afr).round() + 1.0));
    }
    let (frames, repairs) = run(events);
    assert_well_formed(&frames);
    assert_eq!(frames.len(), 150);
    for (i, f) in frames.iter().enumerate() {
        let want = (i as f64 * afr * 1000.0).round() as i64;
        assert!((f.dts - want).abs() <= 1, "frame {i}: {} vs {want}", f.dts);
    }
    assert_eq!(
        repairs
            .iter()
            .filter(|r| r.kind == RepairKind::AudioOverlapDropped)
            .count(),
        1
    );
}

#[test]
fn audio_is_not_held() {
    let mut n = TimestampNormalizer::new();
    assert_eq!(n.push(aac(), 0).len(), 1);
    assert_eq!(n.push(a(0.0), 0).len(), 1);
    assert_eq!(n.push(a(21.0), 1).len(), 1);
}

#[test]
fn audio_before_the_video_configuration_does_not_end_the_hold() {
    // GStreamer's flvmux: the first audio frames come before x264's sequence header.
    let mut n = TimestampNormalizer::new();
    let mut out = n.push(aac(), 0);
    out.extend(n.push(a(0.0), 0));
    out.extend(n.push(a(21.0), 0));
    out.extend(n.push(avc(None), 0));
    for (i, (p, d)) in [(3, 0), (103, 0), (37, 3), (70, 37), (203, 70)]
        .into_iter()
        .enumerate()
    {
        let released = n.push(v(f64::from(p), f64::from(d)), i as i64);
        assert!(released.is_empty(), "video held");
    }
    out.extend(n.finish());
    let frames: Vec<Frame> = out
        .into_iter()
        .filter_map(|(e, _)| match e {
            MediaEvent::Frame(f) => Some(f),
            MediaEvent::Config(_) => None,
        })
        .collect();
    let video = track(&frames, TrackKind::Video);
    assert!(video[0].dts < -60_000, "rebuilt: {}", video[0].dts);
}

#[test]
fn the_start_hold_is_bounded() {
    let mut n = TimestampNormalizer::new();
    n.push(avc(Some(30.0)), 0);
    n.push(aac(), 0);
    let mut released = 0;
    for i in 0..5 {
        released += n.push(v(i as f64 * 33.0, i as f64 * 33.0), i).len();
    }
    assert_eq!(released, 0, "held while learning");
    // Video stalls; audio goes on for more than the hold's limit.
    let mut video_out = 0;
    for i in 0..60 {
        let out = n.push(a(i as f64 * 21.0), 10 + i);
        video_out += out
            .iter()
            .filter(|(e, _)| frame_of(e).is_some_and(|f| f.track == TrackKind::Video))
            .count();
    }
    assert_eq!(video_out, 5, "released after {MAX_HOLD_US} µs of audio");
}

#[test]
fn fit_rate_says_none_for_irregular_times() {
    let mut seed = 7u64;
    let times: Vec<i64> = (0..40)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as i64 % 50_000 + 30_000
        })
        .scan(0, |t, step| {
            *t += step;
            Some(*t)
        })
        .collect();
    assert_eq!(fit_rate(&times), None);
}

#[test]
fn hostile_timestamps_do_not_panic() {
    let mut n = TimestampNormalizer::new();
    n.push(avc(Some(30.0)), 0);
    n.push(aac(), 0);
    for (i, t) in [
        i64::MIN,
        i64::MAX,
        0,
        -1,
        i64::MAX / 2,
        i64::MIN / 2,
        5,
        5,
        5,
    ]
    .into_iter()
    .enumerate()
    {
        for track in [TrackKind::Video, TrackKind::Audio] {
            n.push(frame(track, t, t.wrapping_sub(7)), i as i64);
        }
    }
    n.finish();
}
