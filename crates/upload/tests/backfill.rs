//! The `backfill` extension: frames dropped from the live send reach the receiver late, marked
//! for the recording only, with their capture timestamps; the promise says how many are still
//! coming; old peers on either side keep working; the receiver's bounds hold.

use bytes::Bytes;
use vshare_upload::wire::{BackfillLimits, FEATURE_BACKFILL};
use vshare_upload::{
    CloseCode, PieceHeader, ReceiverEvent, ReceiverLimits, ServerMessage, TrackInfo, UploadFrame,
    UploadReceiver, UploadSender, WireMessage,
};

fn tracks() -> Vec<TrackInfo> {
    vec![TrackInfo {
        track: 0,
        kind: Some("video".into()),
        codec: "avc1.42e01f".into(),
        description: None,
        sample_rate: None,
        channels: None,
    }]
}

fn limits() -> ReceiverLimits {
    ReceiverLimits {
        window_bytes: 100_000,
        max_piece_bytes: 1000,
        max_late_frames: 10,
        max_late_bytes: 20_000,
        ..ReceiverLimits::default()
    }
}

fn welcome(rx: &UploadReceiver) -> ServerMessage {
    let l = limits();
    ServerMessage::Welcome {
        session: "s1".into(),
        video_id: "v1".into(),
        next_seq: rx.next_seq(),
        window_bytes: l.window_bytes,
        max_piece_bytes: l.max_piece_bytes,
        resume_grace_ms: 10_000,
        watch_url: String::new(),
        features: if rx.backfill() {
            vec![FEATURE_BACKFILL.into()]
        } else {
            Vec::new()
        },
        backfill: rx.backfill().then_some(BackfillLimits {
            max_frames: l.max_late_frames,
            max_bytes: l.max_late_bytes,
            wait_ms: 5000,
        }),
    }
}

fn data(i: i64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|j| (i as usize * 7 + j) as u8)
            .collect::<Vec<_>>(),
    )
}

fn pump(tx: &mut UploadSender, rx: &mut UploadReceiver, now: i64) {
    loop {
        let mut moved = false;
        while let Some(m) = tx.poll_transmit() {
            moved = true;
            match m {
                WireMessage::Binary(b) => rx.handle_binary(&b, now).expect("receiver accepts"),
                WireMessage::Text(t) => rx.handle_text(&t, now).expect("receiver accepts"),
            }
        }
        while let Some(m) = rx.poll_transmit(now) {
            moved = true;
            tx.handle_server(&m);
        }
        if !moved {
            return;
        }
    }
}

#[derive(Default)]
struct Got {
    live: Vec<UploadFrame>,
    late: Vec<UploadFrame>,
    ended: bool,
    complete: bool,
}

fn drain(rx: &mut UploadReceiver, got: &mut Got) {
    while let Some(e) = rx.poll_event() {
        match e {
            ReceiverEvent::Frame(f) => got.live.push(f),
            ReceiverEvent::LateFrame(f) => got.late.push(f),
            ReceiverEvent::End => got.ended = true,
            ReceiverEvent::BackfillComplete => got.complete = true,
            ReceiverEvent::Config(_) => {}
        }
    }
}

/// Frames 0..10 at 33 ms; 3, 4 and 5 dropped from the live send and kept.
fn capture(tx: &mut UploadSender) {
    for i in 0..10i64 {
        let (pts, d) = (i * 33_333, data(i, 1500));
        if (3..6).contains(&i) {
            assert!(tx.keep_late(0, false, pts, pts, d), "frame {i} kept");
        } else {
            tx.push_frame(0, i % 6 == 0, pts, pts, d);
        }
    }
}

#[test]
fn dropped_frames_arrive_late_for_the_recording_only() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    rx.enable_backfill();
    let mut tx = UploadSender::new().with_backfill(1 << 20);
    let WireMessage::Text(hello) = tx.hello("k", "t", tracks(), 500, 2000) else {
        panic!("text")
    };
    assert!(
        hello.contains(r#""features":["keyframe","backfill"]"#),
        "{hello}"
    );
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    assert!(tx.backfill());
    capture(&mut tx);
    pump(&mut tx, &mut rx, 0);
    let mut got = Got::default();
    drain(&mut rx, &mut got);
    // The live stream has the frames sent live; the receiver knows 3 are still coming.
    let live_pts: Vec<i64> = got.live.iter().map(|f| f.pts / 33_333).collect();
    assert_eq!(live_pts, [0, 1, 2, 6, 7, 8, 9]);
    assert!(got.late.is_empty());
    assert_eq!(rx.late_owed(), 3);
    assert_eq!(tx.late_waiting(), (3, 4500));
    // Room for one: frame 3 goes late.
    assert_eq!(tx.release_late(2000), 1);
    pump(&mut tx, &mut rx, 200_000);
    drain(&mut rx, &mut got);
    assert_eq!(rx.late_owed(), 2);
    // The user stops; the rest follows `end`.
    tx.end();
    pump(&mut tx, &mut rx, 300_000);
    drain(&mut rx, &mut got);
    assert!(got.ended && !got.complete);
    assert!(!tx.finished());
    assert_eq!(tx.release_late(u64::MAX), 2);
    pump(&mut tx, &mut rx, 400_000);
    drain(&mut rx, &mut got);
    assert!(got.complete);
    assert!(rx.backfill_complete());
    assert_eq!(rx.late_owed(), 0);
    assert!(tx.finished());
    // Each late frame whole, with its own capture timestamps.
    for f in &got.late {
        let i = f.pts / 33_333;
        assert!((3..6).contains(&i));
        assert_eq!((f.dts, f.key), (f.pts, false));
        assert_eq!(f.data, data(i, 1500));
    }
    assert_eq!(got.late.len(), 3);
    assert_eq!(got.live.len(), 7);
    assert_eq!(tx.stats().late_kept, 3);
    // A message after completion is refused.
    let e = rx
        .handle_text(r#"{"type":"backfill","frames":3}"#, 500_000)
        .unwrap_err();
    assert_eq!(e.code, CloseCode::OutOfOrder);
}

#[test]
fn old_peers_keep_working() {
    // A new sender, an old server: the welcome grants nothing, nothing is kept late.
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    let mut tx = UploadSender::new().with_backfill(1 << 20);
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    assert!(!tx.backfill());
    assert!(!tx.keep_late(0, false, 0, 0, data(0, 10)));
    tx.push_frame(0, true, 0, 0, data(0, 10));
    tx.end();
    pump(&mut tx, &mut rx, 0);
    let mut got = Got::default();
    drain(&mut rx, &mut got);
    assert!(got.ended && !got.complete && got.live.len() == 1);
    assert!(tx.finished());
    assert_eq!(tx.stats().late_refused, 1);

    // An old sender never sends late frames; a late piece or a promise without the feature is
    // malformed.
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    rx.connected(0);
    let piece = late_piece(0, 0);
    assert_eq!(
        rx.handle_binary(&piece, 0).unwrap_err().code,
        CloseCode::Malformed
    );
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    rx.connected(0);
    assert_eq!(
        rx.handle_text(r#"{"type":"backfill","frames":1}"#, 0)
            .unwrap_err()
            .code,
        CloseCode::Malformed
    );
}

fn late_piece(seq: u32, total: u32) -> Vec<u8> {
    PieceHeader {
        track: 0,
        key: false,
        last: true,
        late: true,
        seq,
        pts: 0,
        dts: 0,
        offset: 0,
        total,
    }
    .encode(&vec![0u8; total as usize])
}

#[test]
fn the_receiver_bounds_what_it_accepts() {
    let new = || {
        let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
        rx.enable_backfill();
        rx.connected(0);
        rx
    };
    // More frames promised than the limit.
    let mut rx = new();
    let e = rx
        .handle_text(r#"{"type":"backfill","frames":11}"#, 0)
        .unwrap_err();
    assert_eq!(e.code, CloseCode::Flood);
    // A late frame beyond the promise.
    let mut rx = new();
    rx.handle_text(r#"{"type":"backfill","frames":1}"#, 0)
        .expect("promise");
    rx.handle_binary(&late_piece(0, 10), 0).expect("first");
    assert_eq!(
        rx.handle_binary(&late_piece(1, 10), 0).unwrap_err().code,
        CloseCode::OutOfOrder
    );
    // A promise below what arrived.
    assert_eq!(
        rx.handle_text(r#"{"type":"backfill","frames":0}"#, 0)
            .unwrap_err()
            .code,
        CloseCode::Malformed
    );
    // More late bytes than the limit (20,000): the third 900-byte piece of frames of 9,000.
    let mut rx = new();
    rx.handle_text(r#"{"type":"backfill","frames":3}"#, 0)
        .expect("promise");
    let mut tx_seq = 0;
    for _ in 0..2 {
        rx.handle_binary(&late_piece(tx_seq, 900), 0).expect("fits");
        tx_seq += 1;
    }
    let big = PieceHeader {
        track: 0,
        key: false,
        last: false,
        late: true,
        seq: tx_seq,
        pts: 0,
        dts: 0,
        offset: 0,
        total: 19_000,
    }
    .encode(&[0u8; 900]);
    assert_eq!(
        rx.handle_binary(&big, 0).unwrap_err().code,
        CloseCode::Flood
    );
    // After `end`, only late frames: a live frame is out of order.
    let mut rx = new();
    rx.handle_text(r#"{"type":"backfill","frames":1}"#, 0)
        .expect("promise");
    rx.handle_text(r#"{"type":"end","seq":0}"#, 0).expect("end");
    let live = PieceHeader {
        track: 0,
        key: true,
        last: true,
        late: false,
        seq: 0,
        pts: 0,
        dts: 0,
        offset: 0,
        total: 1,
    }
    .encode(&[0]);
    assert_eq!(
        rx.handle_binary(&live, 0).unwrap_err().code,
        CloseCode::OutOfOrder
    );
}

#[test]
fn a_resume_during_the_backfill_leaves_no_hole() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    rx.enable_backfill();
    let mut tx = UploadSender::new().with_backfill(1 << 20);
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    capture(&mut tx);
    tx.end();
    pump(&mut tx, &mut rx, 0);
    assert_eq!(tx.release_late(u64::MAX), 3);
    // The first late frame arrives, then the line drops (its answers are lost).
    while let Some(m) = tx.poll_transmit() {
        if let WireMessage::Binary(b) = m {
            rx.handle_binary(&b, 100_000).expect("ok");
            if PieceHeader::decode(&b).expect("piece").0.last {
                break;
            }
        }
    }
    let mut got = Got::default();
    drain(&mut rx, &mut got);
    assert_eq!((got.late.len(), rx.late_owed()), (1, 2));
    // Resume: the sender announces again, sends `end` again at its place, then the rest.
    rx.connected(1_000_000);
    tx.handle_server(&welcome(&rx));
    pump(&mut tx, &mut rx, 1_000_000);
    drain(&mut rx, &mut got);
    assert!(got.complete);
    assert_eq!(got.late.len(), 3);
    assert!(tx.finished());
}
