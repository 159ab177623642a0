//! The session driven by hand-built events: what goes live, what is recorded, what is derived,
//! in what order — no clock, storage or ffmpeg.

use bytes::Bytes;
use vshare_media::{Frame, MediaEvent, TrackKind};
use vshare_package::PackagerConfig;
use vshare_testkit::media::{audio_config, video_config};

use super::*;

fn video(i: i64) -> MediaEvent {
    let t = 5_000_000 + i * 1_000_000 / 30;
    MediaEvent::Frame(Frame {
        track: TrackKind::Video,
        pts: t,
        dts: t,
        key: i % 30 == 0,
        data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
    })
}

fn audio(i: i64) -> MediaEvent {
    let t = 5_000_000 + i * 1024 * 1_000_000 / 44_100;
    MediaEvent::Frame(Frame {
        track: TrackKind::Audio,
        pts: t,
        dts: t,
        key: true,
        data: Bytes::from_static(&[0x21, 0x10, 0x04]),
    })
}

/// `seconds` of 30 fps video and 44.1 kHz AAC, interleaved by time, each arriving at its own
/// media time (µs since the epoch, for the packager's latency figures).
fn stream(seconds: i64) -> Vec<(MediaEvent, i64)> {
    let mut out = vec![(video_config(), 0), (audio_config(), 0)];
    let (mut v, mut a) = (0, 0);
    let frames = seconds * 30;
    let samples = seconds * 44_100 / 1024;
    while v < frames || a < samples {
        let next = if a >= samples
            || (v < frames && v * 1_000_000 / 30 <= a * 1024 * 1_000_000 / 44_100)
        {
            v += 1;
            video(v - 1)
        } else {
            a += 1;
            audio(a - 1)
        };
        let arrival = match &next {
            MediaEvent::Frame(f) => f.dts,
            MediaEvent::Config(_) => 0,
        };
        out.push((next, arrival));
    }
    out
}

fn config(derive: bool, ladder: bool) -> SessionConfig {
    SessionConfig {
        packager: PackagerConfig::default(),
        public_url: "https://v.example".into(),
        ladder,
        derive,
        dvr_window_s: 600,
        feed: false,
    }
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll()).collect()
}

fn run(s: &mut Session, events: Vec<(MediaEvent, i64)>) -> Vec<Action> {
    let mut actions = Vec::new();
    for (e, t) in events {
        s.push(e, t);
        actions.extend(drain(s));
    }
    actions
}

#[test]
fn a_stream_goes_live_at_its_first_segment_and_every_segment_is_published_then_recorded() {
    let mut s = Session::new("v1", "walk", config(false, false));
    let mut actions = run(&mut s, stream(6));
    let closed = s.close();
    actions.extend(drain(&mut s));

    // The init segment goes to the live server and the recorder before any part.
    let first_part = actions
        .iter()
        .position(|a| matches!(a, Action::Live(LiveMessage::Part { .. })))
        .expect("parts");
    assert!(
        matches!(&actions[0], Action::Live(LiveMessage::Init { stream, name, .. }) if stream == "v1" && name == "init.mp4")
    );
    assert!(matches!(
        &actions[1],
        Action::Record {
            rendition: 0,
            message: RecordMessage::Init(_)
        }
    ));
    assert!(first_part > 1);

    // Every segment the live server hears of is recorded, in order, right after.
    let live: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Live(LiveMessage::Segment { msn, .. }) => Some(*msn),
            _ => None,
        })
        .collect();
    let recorded: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Record {
                message: RecordMessage::Segment { msn, .. },
                ..
            } => Some(*msn),
            _ => None,
        })
        .collect();
    assert!(live.len() >= 2, "{live:?}");
    assert_eq!(live, recorded);
    assert_eq!(live, (0..live.len() as u64).collect::<Vec<_>>());

    // Live once, at the first segment, with the measured picture and sound.
    let went: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| matches!(a, Action::WentLive(_)).then_some(i))
        .collect();
    assert_eq!(went.len(), 1);
    let first_segment = actions
        .iter()
        .position(|a| matches!(a, Action::Live(LiveMessage::Segment { .. })))
        .expect("segment");
    assert!(went[0] > first_segment);
    let Action::WentLive(rec) = &actions[went[0]] else {
        unreachable!()
    };
    assert_eq!(rec.url, "https://v.example/live/v1/index.m3u8");
    assert_eq!((rec.width, rec.height), (1280, 720));
    assert_eq!(rec.frame_rate, 30.0);
    assert_eq!((rec.audio_sample_rate, rec.audio_channels), (44_100, 2));
    assert_eq!(rec.format, "ll-hls");
    assert_eq!(rec.title, "walk");
    let records = actions
        .iter()
        .filter(|a| matches!(a, Action::LiveRecord(_)))
        .count();
    assert_eq!(records, live.len());

    // Parts are timed from the frames' arrival; the stream ends with an ENDLIST playlist.
    assert!(actions.iter().any(|a| matches!(a, Action::PartPublished { first_arrival_unix_us } if *first_arrival_unix_us >= 5_000_000)));
    assert!(
        matches!(actions.last(), Some(Action::Live(LiveMessage::End { stream, playlist })) if stream == "v1" && playlist.contains("#EXT-X-ENDLIST"))
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Derive(_) | Action::StartDerived { .. }))
    );

    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].measured.video_frames(), 180);
    assert_eq!(s.frames().video, 180);
    assert_eq!(s.frames().audio, 6 * 44_100 / 1024);
}

#[test]
fn derived_outputs_start_at_the_first_frame_and_rungs_are_published_beside_the_source() {
    let mut s = Session::new("v2", "t", config(true, true));
    let mut actions = Vec::new();
    let mut rung_events = Vec::new();
    for (e, t) in stream(5) {
        s.push(e, t);
        for a in drain(&mut s) {
            match a {
                Action::StartDerived { video, audio } => {
                    assert!(video.is_some() && audio.is_some());
                    s.add_rungs(["240p".to_string()]);
                    // The transcoder's rung opens with its own configurations.
                    rung_events.push(video_config());
                    rung_events.push(audio_config());
                    actions.push(Action::StartDerived { video, audio });
                }
                // A stand-in for the transcoder: the rung gets the source's events back.
                Action::Derive(event) => rung_events.push(event),
                other => actions.push(other),
            }
        }
        for event in rung_events.drain(..) {
            s.push_transcoded(0, event, 0);
        }
        actions.extend(drain(&mut s));
    }
    s.close();
    actions.extend(drain(&mut s));
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::StartDerived { .. }))
            .count(),
        1
    );
    let rung_segments = actions
        .iter()
        .filter(|a| matches!(a, Action::Live(LiveMessage::Segment { stream, .. }) if stream == "v2/240p"))
        .count();
    assert!(rung_segments >= 2);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Record {
            rendition: 1,
            message: RecordMessage::Segment { .. }
        }
    )));
    let master = actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Live(LiveMessage::Multivariant { stream, playlist }) => {
                Some((stream.clone(), playlist.clone()))
            }
            _ => None,
        })
        .expect("multivariant playlist");
    assert_eq!(master.0, "v2");
    assert!(master.1.contains("index.m3u8") && master.1.contains("240p/index.m3u8"));
    let Some(Action::WentLive(rec)) = actions.iter().find(|a| matches!(a, Action::WentLive(_)))
    else {
        panic!("never live")
    };
    assert_eq!(rec.url, "https://v.example/live/v2/master.m3u8");
    // The rung's part and record actions never count as the source's.
    let parts = actions
        .iter()
        .filter(|a| matches!(a, Action::PartPublished { .. }))
        .count();
    let source_parts = actions
        .iter()
        .filter(|a| matches!(a, Action::Live(LiveMessage::Part { stream, .. }) if stream == "v2"))
        .count();
    assert_eq!(parts, source_parts);
}

#[test]
fn repairs_and_refused_frames_are_reported_without_flooding() {
    let mut s = Session::new("v3", "t", config(false, false));
    let mut actions = run(&mut s, stream(2));
    // Duplicated timestamps from a broken encoder are repaired and said.
    let mut dup = stream(1);
    dup.retain(|(e, _)| matches!(e, MediaEvent::Frame(f) if f.track == TrackKind::Video));
    let tail: Vec<_> = dup
        .into_iter()
        .map(|(e, t)| match e {
            MediaEvent::Frame(f) => (
                MediaEvent::Frame(Frame {
                    dts: 7_100_000,
                    pts: 7_100_000,
                    ..f
                }),
                t,
            ),
            other => (other, t),
        })
        .take(4)
        .collect();
    actions.extend(run(&mut s, tail));
    s.end();
    actions.extend(drain(&mut s));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Repairs(r) if !r.is_empty()))
    );

    // A rung that sends the same time again is refused: said at 1, 2, 4, … not every time.
    s.add_rungs(["240p".to_string()]);
    s.push_transcoded(0, video_config(), 0);
    for _ in 0..5 {
        s.push_transcoded(0, video(0), 0);
    }
    let counts: Vec<u64> = drain(&mut s)
        .into_iter()
        .filter_map(|a| match a {
            Action::Rejected {
                rendition, count, ..
            } => {
                assert_eq!(rendition.as_deref(), Some("240p"));
                Some(count)
            }
            _ => None,
        })
        .collect();
    assert_eq!(counts, [1, 2, 4]);
}

#[test]
fn nothing_is_taken_after_the_end() {
    let mut s = Session::new("v4", "t", config(true, false));
    run(&mut s, stream(1));
    s.end();
    drain(&mut s);
    let before = s.frames();
    s.push(video(100), 0);
    assert_eq!(s.frames(), before);
    assert!(drain(&mut s).is_empty());
    let closed = s.close();
    assert_eq!(closed.len(), 1);
    assert!(closed[0].measured.media_bytes > 0);
}

#[test]
fn a_sources_own_opus_is_fed_on_its_aacs_timeline_in_place_of_the_aac() {
    let mut s = Session::new(
        "v5",
        "t",
        SessionConfig {
            feed: true,
            ..config(true, false)
        },
    );
    // 4 s; from 2 s on every input time is 4 s earlier (an encoder restart), which the
    // discipline closes by moving both tracks.
    const JUMP_AT: i64 = 7_000_000;
    let mut fed_opus = Vec::new();
    let mut derived_audio = Vec::new();
    let mut fed_audio = 0;
    let mut fed_video = 0;
    for (mut e, arrival) in stream(4) {
        if let MediaEvent::Frame(f) = &mut e {
            if f.dts >= JUMP_AT {
                f.dts -= 4_000_000;
                f.pts -= 4_000_000;
            }
            if f.track == TrackKind::Audio {
                // The source's Opus goes just before the AAC made from it.
                s.push_opus(f.pts, Bytes::from_static(b"opus"));
            }
        }
        s.push(e, arrival);
        for a in drain(&mut s) {
            match a {
                Action::FeedOpus { pts, data } => {
                    assert_eq!(&data[..], b"opus");
                    fed_opus.push((pts, arrival));
                }
                Action::Feed(MediaEvent::Frame(f)) if f.track == TrackKind::Audio => fed_audio += 1,
                Action::Feed(MediaEvent::Frame(_)) => fed_video += 1,
                Action::Derive(MediaEvent::Frame(f)) if f.track == TrackKind::Audio => {
                    derived_audio.push(f.pts)
                }
                _ => {}
            }
        }
    }
    assert_eq!(fed_audio, 0, "the AAC is not fed beside the source's Opus");
    assert!(fed_video > 100, "video is fed as before");
    assert_eq!(fed_opus.len(), derived_audio.len());
    // Each Opus packet where its AAC went, within half an AAC frame (the contiguity repair),
    // except the one that arrived as the jump showed (it came before its AAC closed it).
    let half_frame = 1024 * 1_000_000 / 44_100 / 2;
    let mut off = 0;
    for ((opus, arrival), aac) in fed_opus.iter().zip(&derived_audio) {
        if (opus - aac).abs() > half_frame {
            off += 1;
            assert!(
                (arrival - JUMP_AT).abs() < 100_000,
                "{opus} vs {aac} at {arrival}"
            );
        }
    }
    assert!(off <= 1, "{off} packets off their AAC's time");
    // Past the jump, both went on from where they were: 4 s of media in all.
    let last = derived_audio.last().copied().unwrap_or_default();
    assert!(
        (last - derived_audio[0] - 4_000_000).abs() < 100_000,
        "{last}"
    );
}
