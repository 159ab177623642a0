//! The packager and the VOD builder driven by hand-built frames: audio only, video only,
//! negative composition offsets, A/V alignment, windows, discontinuities and bad input.

use bytes::Bytes;
use mp4_atom::{Decode, Moof};
use vshare_media::{AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};
use vshare_package::{PackageError, Packager, PackagerConfig, PackagerOutput, VodMp4Builder};

use vshare_testkit::media::{AVCC_720P30, audio_config, video_config};

fn video(dts: i64, pts: i64, key: bool) -> MediaEvent {
    MediaEvent::Frame(Frame {
        track: TrackKind::Video,
        pts,
        dts,
        key,
        data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
    })
}

fn audio(t: i64) -> MediaEvent {
    MediaEvent::Frame(Frame {
        track: TrackKind::Audio,
        pts: t,
        dts: t,
        key: true,
        data: Bytes::from_static(&[0x21, 0x10, 0x04]),
    })
}

/// Audio frame `i` of a 44.1 kHz stream starting at `start`, timestamp rounded to ms like FLV.
fn audio_ts(start: i64, i: i64) -> i64 {
    start + (i * 1024 * 1000 / 44100) * 1000
}

/// Video frame `i` at 30 fps starting at `start`, rounded to ms.
fn video_ts(start: i64, i: i64) -> i64 {
    start + (i * 1000 / 30) * 1000
}

fn push_all(p: &mut Packager, events: Vec<(i64, MediaEvent)>) -> Vec<PackagerOutput> {
    let mut out = Vec::new();
    for (arrival, e) in events {
        out.extend(p.push(e, arrival).expect("push"));
    }
    out
}

/// Events of an interleaved A/V stream, sorted by decode time, `seconds` long.
fn av_events(
    start: i64,
    seconds: i64,
    with_video: bool,
    with_audio: bool,
) -> Vec<(i64, MediaEvent)> {
    let mut frames: Vec<(i64, MediaEvent)> = Vec::new();
    if with_video {
        for i in 0..seconds * 30 {
            let t = video_ts(start, i);
            frames.push((t, video(t, t, i % 30 == 0)));
        }
    }
    if with_audio {
        for i in 0..seconds * 44100 / 1024 {
            let t = audio_ts(start, i);
            frames.push((t, audio(t)));
        }
    }
    frames.sort_by_key(|(t, _)| *t);
    let mut events = Vec::new();
    if with_video {
        events.push((start, video_config()));
    }
    if with_audio {
        events.push((start, audio_config()));
    }
    // Arrival: the wall clock of some day, frames arriving at their own pace.
    events.extend(frames);
    events
        .into_iter()
        .map(|(t, e)| (1_700_000_000_000_000 + t - start, e))
        .collect()
}

fn moofs(bytes: &[u8]) -> Vec<Moof> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4")) as usize;
        if &bytes[pos + 4..pos + 8] == b"moof" {
            out.push(Moof::decode(&mut &bytes[pos..pos + size]).expect("moof decodes"));
        }
        pos += size;
    }
    out
}

struct Collected {
    inits: Vec<Bytes>,
    parts: Vec<(u64, u32, bool, i64, Bytes)>,
    segments: Vec<(u64, i64, Bytes)>,
}

fn collect(out: Vec<PackagerOutput>) -> Collected {
    let mut c = Collected {
        inits: Vec::new(),
        parts: Vec::new(),
        segments: Vec::new(),
    };
    for o in out {
        match o {
            PackagerOutput::Init { bytes, .. } => c.inits.push(bytes),
            PackagerOutput::Part {
                msn,
                index,
                independent,
                duration_us,
                bytes,
                ..
            } => c.parts.push((msn, index, independent, duration_us, bytes)),
            PackagerOutput::Segment {
                msn,
                duration_us,
                bytes,
                ..
            } => c.segments.push((msn, duration_us, bytes)),
        }
    }
    c
}

fn vod_of(init: &[u8], segments: &[(u64, i64, Bytes)]) -> VodMp4Builder {
    let mut vod = VodMp4Builder::new(init).expect("init");
    for (_, _, s) in segments {
        vod.add_segment(s).expect("segment");
    }
    vod
}

#[test]
fn video_only_stream() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = push_all(&mut p, av_events(5_000_000_000, 6, true, false));
    out.extend(p.finish());
    let c = collect(out);
    assert_eq!(c.inits.len(), 1);
    assert_eq!(c.segments.len(), 3, "6 s in 2 s segments");
    for (_, _, independent, d, bytes) in &c.parts {
        assert!(*d <= 333_333, "part of {d} µs");
        for moof in moofs(bytes) {
            assert_eq!(moof.traf.len(), 1);
            assert_eq!(moof.traf[0].tfhd.track_id, 1);
        }
        let _ = independent;
    }
    // Segments start with independent parts.
    for (msn, index, independent, _, _) in &c.parts {
        if *index == 0 {
            assert!(*independent, "part {msn}.0");
        }
    }
    let vod = vod_of(&c.inits[0], &c.segments);
    assert_eq!(vod.sample_counts(), vec![(1, 180)]);
    assert!(
        (vod.duration_us() - 6_000_000).abs() <= 1_000,
        "{}",
        vod.duration_us()
    );
    let pl = p.media_playlist().expect("playlist");
    assert!(
        pl.ends_with("#EXT-X-ENDLIST\n") && !pl.contains("PRELOAD-HINT"),
        "{pl}"
    );
}

#[test]
fn audio_only_stream_has_no_drift() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = push_all(&mut p, av_events(-3_000_000, 5, false, true));
    out.extend(p.finish());
    let c = collect(out);
    assert_eq!(c.inits.len(), 1);
    assert!(!c.segments.is_empty());
    let mut next_tfdt = None;
    let mut samples = 0;
    for (_, _, independent, d, bytes) in &c.parts {
        assert!(*independent, "audio parts are independent");
        assert!(*d <= 333_333, "part of {d} µs");
        for moof in moofs(bytes) {
            let traf = &moof.traf[0];
            assert_eq!(traf.tfhd.track_id, 2);
            let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            if let Some(n) = next_tfdt {
                assert_eq!(tfdt, n, "audio timeline is continuous");
            }
            let mut t = tfdt;
            for e in traf.trun[0].samples.iter() {
                // ms-rounded timestamps, but every AAC frame lasts exactly 1024 samples.
                assert_eq!(e.duration, Some(1024));
                t += 1024;
                samples += 1;
            }
            next_tfdt = Some(t);
        }
    }
    assert_eq!(samples, 5 * 44100 / 1024);
    let vod = vod_of(&c.inits[0], &c.segments);
    assert_eq!(vod.sample_counts(), vec![(2, samples)]);
}

#[test]
fn audio_and_video_keep_their_alignment() {
    // Audio starts 20 ms before video, but arrives after the first video frame.
    let start = 123_456_789;
    let mut p = Packager::new(PackagerConfig::default());
    let mut events = vec![(0, video_config()), (0, audio_config())];
    for i in 0..90 {
        let t = video_ts(start, i);
        events.push((t, video(t, t + 66_000, i % 30 == 0)));
        let a = audio_ts(start - 20_000, i);
        events.push((a + 40_000, audio(a)));
    }
    let mut out = push_all(&mut p, events);
    out.extend(p.finish());
    let c = collect(out);
    let first = moofs(&c.parts[0].4).remove(0);
    let tfdt = |id: u32| {
        let traf = first
            .traf
            .iter()
            .find(|t| t.tfhd.track_id == id)
            .expect("track in the first part");
        traf.tfdt.as_ref().expect("tfdt").base_media_decode_time as f64
    };
    let v = tfdt(1) / 90_000.0;
    let a = tfdt(2) / 44_100.0;
    assert!((v - a - 0.020).abs() < 0.0005, "video {v} s, audio {a} s");
    // The composition offset is carried: first video sample presents 66 ms after it decodes.
    let traf = first
        .traf
        .iter()
        .find(|t| t.tfhd.track_id == 1)
        .expect("video");
    assert_eq!(traf.trun[0].samples.get(0).and_then(|e| e.cts), Some(5940));
}

#[test]
fn negative_composition_offsets_use_signed_trun() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut events = vec![(0, video_config())];
    for i in 0..60 {
        let t = video_ts(1_000_000, i);
        // Every other frame presents one frame before it decodes.
        let pts = if i % 2 == 1 { t - 33_000 } else { t };
        events.push((t, video(t, pts, i % 30 == 0)));
    }
    let mut out = push_all(&mut p, events);
    out.extend(p.finish());
    let c = collect(out);
    let mut negatives = 0;
    for (_, _, _, _, bytes) in &c.parts {
        for moof in moofs(bytes) {
            for e in moof.traf[0].trun[0].samples.iter() {
                if e.cts.is_some_and(|c| c < 0) {
                    negatives += 1;
                    assert_eq!(e.cts, Some(-2970));
                }
            }
        }
    }
    assert_eq!(negatives, 30);
    let vod = vod_of(&c.inits[0], &c.segments);
    assert_eq!(vod.sample_counts(), vec![(1, 60)]);
    assert!(vod.header().len() > 100);
}

#[test]
fn window_slides_and_blocking_reload_conditions_hold() {
    let mut p = Packager::new(PackagerConfig {
        window_segments: 2,
        ..Default::default()
    });
    let events = av_events(0, 14, true, true);
    let mut seen_hint = false;
    let mut complete = 0u64;
    for (arrival, e) in events {
        let out = p.push(e, arrival).expect("push");
        complete += out
            .iter()
            .filter(|o| matches!(o, PackagerOutput::Segment { .. }))
            .count() as u64;
        if let Some(pl) = p.media_playlist() {
            // The preload hint names a part that is not listed yet.
            let hint = pl
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part"))
                .expect("hint");
            let (msn, rest) = hint.split_once('.').expect("msn.index");
            let index = rest.trim_end_matches(".m4s\"");
            let (msn, index): (u64, u32) =
                (msn.parse().expect("msn"), index.parse().expect("index"));
            assert!(!p.is_listed(msn, Some(index)), "{pl}");
            assert_eq!(p.next_part(), (msn, index));
            if index > 0 {
                assert!(p.is_listed(msn, Some(index - 1)));
            }
            seen_hint = true;
        }
    }
    assert!(seen_hint);
    let pl = p.media_playlist().expect("playlist");
    assert_eq!(complete, 6);
    assert!(pl.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{pl}");
    assert_eq!(pl.matches("#EXTINF:").count(), 2, "{pl}");
    assert!(p.is_listed(0, None) && p.is_listed(5, None) && p.is_listed(5, Some(40)));
    assert!(!p.is_listed(6, None));
    p.finish();
    assert!(p.is_listed(6, None) && p.is_finished());
    assert!(
        p.push(audio(100_000_000), 0).is_err(),
        "events after finish are refused"
    );
}

#[test]
fn codec_change_starts_a_new_init_on_the_same_timeline() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = push_all(&mut p, av_events(0, 3, true, false));
    // The publisher adds audio mid-stream.
    out.extend(p.push(audio_config(), 0).expect("config"));
    for i in 90..150 {
        let t = video_ts(0, i);
        out.extend(p.push(video(t, t, i % 30 == 0), t).expect("video"));
        out.extend(p.push(audio(t), t).expect("audio"));
    }
    let c = collect(out);
    assert_eq!(c.inits.len(), 2);
    assert_ne!(c.inits[0], c.inits[1]);
    assert_eq!(p.init_segment().as_ref(), Some(&c.inits[1]));
    let pl = p.media_playlist().expect("playlist");
    assert_eq!(pl.matches("#EXT-X-MAP:").count(), 2, "{pl}");
    assert!(!pl.contains("DISCONTINUITY"), "{pl}");
    // The new init is named after the first segment under it; the old one still maps the
    // segments before.
    let first_new = pl
        .lines()
        .filter_map(|l| {
            l.strip_prefix("#EXT-X-MAP:URI=\"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .nth(1)
        .expect("the map of the new configuration")
        .to_string();
    assert!(
        pl.starts_with("#EXTM3U") && pl.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"),
        "{pl}"
    );
    let msn: u64 = first_new
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
        .and_then(|n| n.parse().ok())
        .expect("init{msn}.mp4");
    let seg_after = pl
        .lines()
        .skip_while(|l| !l.starts_with("#EXT-X-MAP:URI=\"init") || l.contains("init.mp4"))
        .find(|l| l.contains(".m4s"))
        .expect("a segment or part after the new map");
    assert!(
        seg_after.contains(&format!("seg{msn}.m4s")) || seg_after.contains(&format!("part{msn}.")),
        "{seg_after} in {pl}"
    );
    assert!(
        VodMp4Builder::new(&c.inits[1])
            .expect("new init")
            .sample_counts()
            .len()
            == 2
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut p = Packager::new(PackagerConfig::default());
    assert_eq!(
        p.push(video(0, 0, true), 0).unwrap_err(),
        PackageError::FrameBeforeConfig {
            track: TrackKind::Video,
            dts_us: 0
        }
    );
    assert!(matches!(
        p.push(audio(0), 0),
        Err(PackageError::FrameBeforeConfig {
            track: TrackKind::Audio,
            ..
        })
    ));
    p.push(video_config(), 0).expect("config");
    p.push(video(1_000_000, 1_000_000, true), 0).expect("first");
    p.push(video(1_033_000, 1_033_000, false), 0)
        .expect("second");
    let e = p.push(video(1_000_000, 1_000_000, false), 0).unwrap_err();
    assert_eq!(
        e,
        PackageError::NonIncreasingDts {
            track: TrackKind::Video,
            dts_us: 1_000_000,
            previous_us: 1_033_000
        }
    );
    assert!(e.to_string().contains("went backwards"), "{e}");
    let e = p.push(video(1_033_000, 1_033_000, false), 0).unwrap_err();
    assert!(matches!(e, PackageError::NonIncreasingDts { .. }));
    let e = p
        .push(
            MediaEvent::Frame(Frame {
                track: TrackKind::Video,
                pts: 2_000_000,
                dts: 2_000_000,
                key: false,
                data: Bytes::new(),
            }),
            0,
        )
        .unwrap_err();
    assert!(matches!(e, PackageError::FrameSize { size: 0, .. }), "{e}");
    let e = p.push(video(1_066_000, i64::MAX, false), 0).unwrap_err();
    assert!(matches!(e, PackageError::TimestampRange { .. }), "{e}");
    let e = p.push(video(i64::MIN, i64::MIN, false), 0).unwrap_err();
    assert!(
        matches!(
            e,
            PackageError::BeforeOrigin { .. } | PackageError::TimestampRange { .. }
        ),
        "{e}"
    );
    let e = p
        .push(video(1_000_000 - 2_000_000, 0, false), 0)
        .unwrap_err();
    assert!(matches!(e, PackageError::BeforeOrigin { .. }), "{e}");
    // After the refusals the stream carries on.
    p.push(video(1_066_000, 1_066_000, false), 0)
        .expect("third");
    let out = p.finish();
    assert!(
        out.iter()
            .any(|o| matches!(o, PackagerOutput::Segment { .. }))
    );
}

#[test]
fn vod_builder_refuses_what_is_not_ours() {
    for garbage in [
        &b""[..],
        b"\0\0\0",
        b"\0\0\0\x08free",
        b"\0\0\0\x10moov\0\0\0\0\0\0\0\0",
        b"\xff\xff\xff\xffmoov",
    ] {
        let e = VodMp4Builder::new(garbage).unwrap_err();
        assert!(matches!(e, PackageError::Mp4 { .. }), "{e}");
    }
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = push_all(&mut p, av_events(0, 3, true, true));
    out.extend(p.finish());
    let c = collect(out);
    let init = &c.inits[0];
    // Every truncation of the init segment is refused or read, never a panic.
    for n in 0..init.len() {
        let _ = VodMp4Builder::new(&init[..n]);
    }
    let mut vod = VodMp4Builder::new(init).expect("init");
    let seg = &c.segments[0].2;
    let e = vod.add_segment(&seg[..seg.len() - 1]).unwrap_err();
    assert!(e.to_string().starts_with("media segment 0: "), "{e}");
    // Every truncation is refused or (at a moof/mdat boundary) read, never a panic.
    for n in 0..seg.len().min(4000) {
        let _ = vod.clone().add_segment(&seg[..n]);
    }
    let e = vod.add_segment(init).unwrap_err();
    assert!(
        e.to_string().contains("unexpected box 'ftyp' at byte 0"),
        "{e}"
    );
    // A data offset pointing outside the mdat.
    let mut bad = seg.to_vec();
    let pos = bad.windows(4).position(|w| w == b"trun").expect("trun") + 4 + 4 + 4;
    bad[pos..pos + 4].copy_from_slice(&0x7fff_0000u32.to_be_bytes());
    let e = vod.add_segment(&bad).unwrap_err();
    assert!(e.to_string().contains("outside the mdat payload"), "{e}");
    assert_eq!(vod.segment_count(), 0, "refused segments are not recorded");
    // Extreme decode times (a damaged tfdt) are read without overflow.
    for value in [u64::MAX, u64::MAX / 2, 1 << 63] {
        let mut extreme = seg.to_vec();
        for (i, _) in seg.windows(4).enumerate().filter(|(_, w)| *w == b"tfdt") {
            extreme[i + 8..i + 16].copy_from_slice(&value.to_be_bytes());
        }
        let mut v = vod.clone();
        v.add_segment(seg).expect("normal first");
        v.add_segment(&extreme)
            .expect("extreme tfdt is still a segment");
        v.add_segment(seg).expect("and back");
        assert!(v.header().len() > 100);
        let _ = v.duration_us();
    }
    vod.add_segment(seg).expect("the real one");
    assert_eq!(vod.segment_count(), 1);
    assert_eq!(vod.payload_ranges().first().map(|r| r.0), Some(0));
}

/// The init segment of `video_config()` + `audio_config()`, kept as the fuzz target's seed.
/// `VSHARE_BLESS=1` rewrites it after an intended change of the init segment.
#[test]
fn init_fixture_matches_the_packager() {
    let mut p = Packager::new(PackagerConfig::default());
    p.push(video_config(), 0).expect("video config");
    p.push(audio_config(), 0).expect("audio config");
    let init = p.init_segment().expect("init");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/init_av.mp4");
    if std::env::var_os("VSHARE_BLESS").is_some() {
        std::fs::write(&path, &init).expect("write fixture");
    }
    assert_eq!(std::fs::read(&path).expect("fixture"), init.to_vec());
    assert_eq!(
        VodMp4Builder::new(&init)
            .expect("reads back")
            .sample_counts(),
        vec![(1, 0), (2, 0)]
    );
}

/// Random byte flips and truncations of real segments (a deterministic stand-in for the
/// `fmp4_segment` fuzz target in every `cargo test`): errors, never panics.
#[test]
fn mutated_segments_never_panic() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = push_all(&mut p, av_events(0, 3, true, true));
    out.extend(p.finish());
    let c = collect(out);
    let init = &c.inits[0];
    let seg = &c.segments[0].2;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base = VodMp4Builder::new(init).expect("init");
    for _ in 0..3000 {
        let mut s = seg.to_vec();
        let mut i = init.to_vec();
        for _ in 0..1 + rand() % 4 {
            // Hit the headers more often than the sample data.
            let limit = if rand() % 2 == 0 {
                400.min(s.len())
            } else {
                s.len()
            };
            let at = (rand() as usize) % limit;
            s[at] = rand() as u8;
            let at = (rand() as usize) % i.len();
            i[at] = rand() as u8;
        }
        if rand() % 4 == 0 {
            s.truncate((rand() as usize) % s.len());
        }
        let mut vod = base.clone();
        if vod.add_segment(&s).is_ok() {
            let _ = vod.header();
        }
        if let Ok(mut vod) = VodMp4Builder::new(&i) {
            let _ = vod.add_segment(seg);
            let _ = vod.header();
        }
    }
}

/// A 10-minute A/V recording: the VOD header at stop must be quick (the server has 1 s from
/// publisher stop to a ready file). Prints the figures.
#[test]
fn ten_minute_recording_header_is_quick() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut out = push_all(&mut p, av_events(0, 600, true, true));
    out.extend(p.finish());
    assert_eq!(p.codecs().as_deref(), Some("avc1.64001F,mp4a.40.2"));
    let c = collect(out);
    let mut vod = VodMp4Builder::new(&c.inits[0]).expect("init");
    let t = std::time::Instant::now();
    for (_, _, s) in &c.segments {
        vod.add_segment(s).expect("segment");
    }
    let add = t.elapsed();
    let t = std::time::Instant::now();
    let header = vod.header();
    let ranges = vod.payload_ranges();
    let build = t.elapsed();
    assert_eq!(
        vod.sample_counts(),
        vec![(1, 18_000), (2, 600 * 44_100 / 1024)]
    );
    assert!(
        (vod.duration_us() - 600_000_000).abs() < 50_000,
        "{}",
        vod.duration_us()
    );
    eprintln!(
        "10 min: {} segments, {} parts; add_segment total {add:?}; header {} bytes + {} ranges in {build:?}",
        c.segments.len(),
        c.parts.len(),
        header.len(),
        ranges.len()
    );
    assert!(build.as_millis() < 1000, "header took {build:?}");
}

/// Video stops after 1 s (a camera switched off) while audio goes on: audio is still published
/// in parts within PART-TARGET, and memory stays bounded.
#[test]
fn audio_goes_on_when_video_stops() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut events = vec![(0, video_config()), (0, audio_config())];
    for i in 0..30 {
        let t = video_ts(0, i);
        events.push((t, video(t, t, i == 0)));
    }
    for i in 0..20 * 44100 / 1024 {
        let t = audio_ts(0, i);
        events.push((t, audio(t)));
    }
    events.sort_by_key(|(t, _)| *t);
    let c = collect(push_all(&mut p, events));
    let audio_parts = c
        .parts
        .iter()
        .filter(|p| {
            moofs(&p.4)
                .iter()
                .all(|m| m.traf.iter().all(|t| t.tfhd.track_id == 2))
        })
        .count();
    assert!(audio_parts > 30, "{audio_parts} audio-only parts");
    for (msn, index, _, d, _) in &c.parts {
        assert!(*d <= 333_333, "part {msn}.{index}: {d} µs");
    }
    assert!(c.segments.len() >= 5, "{} segments", c.segments.len());
    let out = collect(p.finish());
    assert!(!out.segments.is_empty());
}

/// The sample entry declares 4-byte NAL lengths (what frames carry after FLV parsing) whatever
/// the publisher's record said (a record with a cut High-profile extension, if the codec layer
/// accepts it, gets the same treatment).
#[test]
fn avcc_in_the_init_segment_is_normalised() {
    use mp4_atom::{Codec, Moov};
    let mut two_byte = AVCC_720P30.to_vec();
    two_byte[4] = 0xfd;
    let cut = AVCC_720P30[..AVCC_720P30.len() - 2].to_vec();
    let mut checked = 0;
    for record in [two_byte, cut] {
        let Ok(config) = AvcConfig::parse(Bytes::from(record.clone())) else {
            continue;
        };
        checked += 1;
        let mut p = Packager::new(PackagerConfig::default());
        p.push(MediaEvent::Config(TrackConfig::Avc(config)), 0)
            .expect("config accepted");
        let init = p.init_segment().expect("init");
        let moov_at = init.windows(4).position(|w| w == b"moov").expect("moov") - 4;
        let moov = Moov::decode(&mut &init[moov_at..]).expect("moov");
        let Some(Codec::Avc1(avc1)) = moov.trak[0].mdia.minf.stbl.stsd.codecs.first() else {
            panic!("no avc1");
        };
        assert_eq!(avc1.avcc.length_size, 4);
        assert_eq!(avc1.avcc.sequence_parameter_sets.len(), 1);
    }
    eprintln!("{checked} records checked");
    assert!(checked >= 1);
}
