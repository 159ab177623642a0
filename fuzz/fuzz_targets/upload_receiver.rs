//! The upload protocol's receiver on arbitrary messages: each input is split into messages
//! (a length byte, a kind byte: odd = text, even = binary). The receiver must answer every one
//! with Ok or a ProtocolError, never panic, and hand on frames whose sequence numbers count up
//! by one (timestamps are the session's to repair, so any dts goes on). The `backfill`
//! extension is granted, so late frames and promises are fuzzed too: late frames are numbered
//! with the rest, never outnumber the promise, and completion comes once, with nothing owed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vshare_upload::{ReceiverEvent, ReceiverLimits, TrackInfo, UploadReceiver};

fuzz_target!(|data: &[u8]| {
    let tracks = vec![
        TrackInfo {
            track: 0,
            kind: Some("video".into()),
            codec: "avc1.42e01f".into(),
            description: None,
            sample_rate: None,
            channels: None,
        },
        TrackInfo {
            track: 1,
            kind: Some("audio".into()),
            codec: "opus".into(),
            description: None,
            sample_rate: Some(48_000),
            channels: Some(1),
        },
    ];
    let limits = ReceiverLimits {
        window_bytes: 4096,
        max_frame_bytes: 2048,
        max_piece_bytes: 512,
        max_messages_per_second: 200,
        max_late_frames: 50,
        max_late_bytes: 8192,
        ..ReceiverLimits::default()
    };
    let mut rx = UploadReceiver::new(limits, tracks, 500, 2000);
    rx.enable_backfill();
    let mut late = 0u32;
    let mut complete = false;
    rx.connected(0);
    let mut now = 0i64;
    let mut next = 0u32;
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(rest[0]).min(rest.len() - 2);
        let kind = rest[1];
        let msg = &rest[2..2 + len];
        rest = &rest[2 + len..];
        now += i64::from(kind) * 1000;
        let result = if kind % 2 == 1 {
            match std::str::from_utf8(msg) {
                Ok(t) => rx.handle_text(t, now),
                Err(_) => continue,
            }
        } else {
            rx.handle_binary(msg, now)
        };
        if result.is_err() {
            return;
        }
        while let Some(e) = rx.poll_event() {
            match e {
                ReceiverEvent::Frame(f) => {
                    assert_eq!(f.seq, next);
                    next += 1;
                }
                ReceiverEvent::Config(_) => next += 1,
                ReceiverEvent::End => {}
                ReceiverEvent::LateFrame(f) => {
                    assert_eq!(f.seq, next);
                    assert!(!complete, "a late frame after completion");
                    next += 1;
                    late += 1;
                    assert!(late <= 50);
                }
                ReceiverEvent::BackfillComplete => {
                    assert!(!complete, "completion twice");
                    assert_eq!(rx.late_owed(), 0);
                    complete = true;
                }
            }
        }
        while rx.poll_transmit(now).is_some() {}
        if kind == 0xfe {
            rx.connected(now);
        }
    }
});
