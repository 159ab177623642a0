//! The sender and receiver cores against each other and against hand-made bad input: window,
//! acknowledgements, resume, feedback, and every close code a receiver can give.

use bytes::Bytes;
use vshare_upload::{
    CloseCode, PieceHeader, ReceiverEvent, ReceiverLimits, ServerMessage, TrackInfo,
    UploadReceiver, UploadSender, WireMessage,
};

fn tracks() -> Vec<TrackInfo> {
    vec![
        TrackInfo {
            track: 0,
            kind: Some("video".into()),
            codec: "avc1.42e01f".into(),
            description: Some(TrackInfo::encode_description(&[1, 0x42, 0, 0x1f])),
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
    ]
}

fn limits() -> ReceiverLimits {
    ReceiverLimits {
        window_bytes: 100_000,
        max_piece_bytes: 1000,
        ..ReceiverLimits::default()
    }
}

fn welcome(rx: &UploadReceiver) -> ServerMessage {
    ServerMessage::Welcome {
        session: "s1".into(),
        video_id: "v1".into(),
        next_seq: rx.next_seq(),
        window_bytes: 100_000,
        max_piece_bytes: 1000,
        resume_grace_ms: 10_000,
        watch_url: String::new(),
        features: Vec::new(),
        backfill: None,
    }
}

/// A frame whose bytes say which frame it is.
fn frame_data(i: u32, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|j| (i as usize * 7 + j) as u8)
            .collect::<Vec<_>>(),
    )
}

/// Moves every message the sender will send (window permitting) into the receiver, and the
/// receiver's answers back. Returns how many messages went each way.
fn pump(tx: &mut UploadSender, rx: &mut UploadReceiver, now: i64) -> (usize, usize) {
    let mut up = 0;
    let mut down = 0;
    loop {
        let mut moved = false;
        while let Some(m) = tx.poll_transmit() {
            up += 1;
            moved = true;
            match m {
                WireMessage::Binary(b) => rx.handle_binary(&b, now).expect("receiver accepts"),
                WireMessage::Text(t) => rx.handle_text(&t, now).expect("receiver accepts"),
            }
        }
        while let Some(m) = rx.poll_transmit(now) {
            down += 1;
            moved = true;
            tx.handle_server(&m);
        }
        if !moved {
            return (up, down);
        }
    }
}

fn frames(rx: &mut UploadReceiver) -> Vec<u32> {
    let mut seqs = Vec::new();
    while let Some(e) = rx.poll_event() {
        if let ReceiverEvent::Frame(f) = e {
            seqs.push(f.seq);
        }
    }
    seqs
}

#[test]
fn frames_arrive_whole_in_order_and_are_acknowledged() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    let mut tx = UploadSender::new();
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    // A 2,500-byte key frame goes in three pieces; audio frames in one.
    let big = frame_data(0, 2500);
    tx.push_frame(0, true, 0, 0, big.clone());
    tx.push_frame(1, true, 0, 0, frame_data(1, 100));
    let first = tx.poll_transmit().expect("a piece");
    let WireMessage::Binary(b) = &first else {
        panic!("frames are binary")
    };
    let (h, payload) = PieceHeader::decode(b).expect("header");
    assert_eq!(
        (h.seq, h.offset, h.total, h.last, payload.len()),
        (0, 0, 2500, false, 1000)
    );
    rx.handle_binary(b, 0).expect("piece 1");
    pump(&mut tx, &mut rx, 0);
    let mut got = Vec::new();
    while let Some(ReceiverEvent::Frame(f)) = rx.poll_event() {
        got.push(f);
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data, big);
    assert!(got[0].key);
    // The acknowledgement waits for the ack interval, then covers both.
    assert_eq!(tx.backlog_bytes(), 2600);
    assert_eq!(rx.poll_transmit(50_000), None);
    let ack = rx.poll_transmit(100_000).expect("ack due");
    assert_eq!(ack, ServerMessage::Ack { seq: 2 });
    tx.handle_server(&ack);
    assert_eq!(tx.backlog_bytes(), 0);
    assert_eq!(tx.in_flight_bytes(), 0);
}

#[test]
fn the_sender_stops_at_the_window_and_goes_on_when_acknowledged() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    let mut tx = UploadSender::new();
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    for i in 0..300 {
        tx.push_frame(
            0,
            i == 0,
            i64::from(i) * 33_000,
            i64::from(i) * 33_000,
            frame_data(i, 1000),
        );
    }
    let mut sent = 0;
    while let Some(WireMessage::Binary(b)) = tx.poll_transmit() {
        rx.handle_binary(&b, 0).expect("within the window");
        sent += 1;
    }
    assert_eq!(sent, 100, "100 × 1,000 bytes fill the 100,000-byte window");
    assert_eq!(tx.in_flight_bytes(), 100_000);
    let ack = rx.poll_transmit(100_000).expect("ack");
    tx.handle_server(&ack);
    assert_eq!(tx.in_flight_bytes(), 0);
    pump(&mut tx, &mut rx, 200_000);
    let (_, _) = pump(&mut tx, &mut rx, 300_000);
    let mut now = 300_000;
    while tx.backlog_bytes() > 0 {
        now += 100_000;
        pump(&mut tx, &mut rx, now);
    }
    assert_eq!(frames(&mut rx), (0..300).collect::<Vec<_>>());
}

#[test]
fn a_receiver_closes_a_sender_that_ignores_the_window() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    rx.connected(0);
    let mut err = None;
    for i in 0..101u32 {
        let h = PieceHeader {
            late: false,
            track: 0,
            key: true,
            last: true,
            seq: i,
            pts: 0,
            dts: 0,
            offset: 0,
            total: 1000,
        };
        if let Err(e) = rx.handle_binary(&h.encode(&[0; 1000]), 0) {
            err = Some((i, e));
            break;
        }
    }
    let (at, e) = err.expect("closed");
    assert_eq!(at, 100);
    assert_eq!(e.code, CloseCode::Flood);
    assert_eq!(e.code.code(), 4004);
}

#[test]
fn resume_sends_again_from_the_first_unreceived_frame_and_leaves_no_hole() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    let mut tx = UploadSender::new();
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    for i in 0..10 {
        tx.push_frame(
            0,
            i % 5 == 0,
            i64::from(i),
            i64::from(i),
            frame_data(i, 1500),
        );
    }
    // Frames 0–5 arrive and 0–3 are acknowledged; frame 6's first piece arrives, then the line drops.
    let mut delivered = 0;
    while delivered < 13 {
        let Some(WireMessage::Binary(b)) = tx.poll_transmit() else {
            panic!("pieces")
        };
        rx.handle_binary(&b, 0).expect("ok");
        delivered += 1;
        if delivered == 8 {
            let ack = rx.poll_transmit(100_000).expect("ack");
            assert_eq!(ack, ServerMessage::Ack { seq: 4 });
            tx.handle_server(&ack);
        }
    }
    // Lost in the drop: whatever the sender wrote next.
    let _ = tx.poll_transmit();
    assert_eq!(frames(&mut rx), (0..6).collect::<Vec<_>>());
    assert_eq!(rx.next_seq(), 6);
    // Reconnect: the server says where to start; frame 6 goes again whole, then the rest.
    rx.connected(1_000_000);
    let hello = tx.hello("key", "", vec![], 500, 2000);
    let WireMessage::Text(hello) = hello else {
        panic!("text")
    };
    assert!(hello.contains(r#""resume":{"session":"s1"}"#), "{hello}");
    tx.handle_server(&welcome(&rx));
    // Frames 4 and 5 arrived but were never acknowledged: they are not sent again.
    let first = tx.poll_transmit().expect("piece");
    let WireMessage::Binary(b) = &first else {
        panic!("binary")
    };
    let (h, _) = PieceHeader::decode(b).expect("header");
    assert_eq!((h.seq, h.offset), (6, 0));
    rx.handle_binary(b, 1_000_000).expect("ok");
    tx.end();
    pump(&mut tx, &mut rx, 1_100_000);
    let mut seqs = Vec::new();
    let mut ended = false;
    while let Some(e) = rx.poll_event() {
        match e {
            ReceiverEvent::Frame(f) => {
                assert_eq!(f.data, frame_data(f.seq, 1500), "frame {} intact", f.seq);
                seqs.push(f.seq);
            }
            ReceiverEvent::End => ended = true,
            ReceiverEvent::Config(_) => {}
            ReceiverEvent::LateFrame(_) | ReceiverEvent::BackfillComplete => {
                panic!("no backfill was asked for")
            }
        }
    }
    assert_eq!(seqs, (6..10).collect::<Vec<_>>());
    assert!(ended);
    assert!(tx.finished());
    assert!(tx.stats().resent_frames >= 1);
}

#[test]
fn frames_sent_again_below_next_seq_are_skipped() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    rx.connected(0);
    let piece = |seq: u32, offset: u32, last: bool| {
        PieceHeader {
            late: false,
            track: 0,
            key: false,
            last,
            seq,
            pts: 0,
            dts: 0,
            offset,
            total: 2000,
        }
        .encode(&[0; 1000])
    };
    rx.handle_binary(&piece(0, 0, false), 0).expect("ok");
    rx.handle_binary(&piece(0, 1000, true), 0).expect("ok");
    // The same frame again (a sender that resumed from an older point): ignored whole.
    rx.handle_binary(&piece(0, 0, false), 0).expect("skipped");
    rx.handle_binary(&piece(0, 1000, true), 0).expect("skipped");
    rx.handle_binary(&piece(1, 0, false), 0).expect("ok");
    rx.handle_binary(&piece(1, 1000, true), 0).expect("ok");
    assert_eq!(frames(&mut rx), vec![0, 1]);
}

#[test]
fn feedback_reports_rate_and_delay_every_half_second() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    let mut tx = UploadSender::new();
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    let first = rx.poll_transmit(0).expect("first feedback at once");
    assert!(
        matches!(
            first,
            ServerMessage::Feedback {
                suggested_kbps: 540,
                ..
            }
        ),
        "{first:?}"
    );
    // One second of 30 fps frames of 2,000 bytes (480 kbit/s) arriving on time, then frames
    // that each arrive 50 ms later than the one before: a growing queue.
    for i in 0..30u32 {
        let now = i64::from(i) * 33_333;
        tx.push_frame(0, i == 0, now, now, frame_data(i, 2000));
        pump(&mut tx, &mut rx, now);
    }
    let mut feedback = Vec::new();
    for i in 30..45u32 {
        let dts = i64::from(i) * 33_333;
        let now = dts + i64::from(i - 29) * 50_000;
        tx.push_frame(0, false, dts, dts, frame_data(i, 2000));
        while let Some(m) = tx.poll_transmit() {
            let WireMessage::Binary(b) = m else { continue };
            rx.handle_binary(&b, now).expect("ok");
        }
        while let Some(m) = rx.poll_transmit(now) {
            if let ServerMessage::Feedback { .. } = m {
                feedback.push(m.clone());
            }
            tx.handle_server(&m);
        }
    }
    let Some(ServerMessage::Feedback {
        queue_delay_ms,
        suggested_kbps,
        receive_kbps,
    }) = feedback.last()
    else {
        panic!("feedback came: {feedback:?}")
    };
    assert!(*queue_delay_ms >= 400, "queue delay {queue_delay_ms}");
    assert!(*receive_kbps > 200, "receive {receive_kbps}");
    assert_eq!(
        *suggested_kbps,
        (0.6 * f64::from(*receive_kbps)).round() as u32
    );
}

#[test]
fn bad_messages_get_their_close_codes() {
    let fresh = || {
        let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
        rx.connected(0);
        rx
    };
    let piece = |seq: u32, track: u8, dts: i64, offset: u32, total: u32, len: usize| {
        PieceHeader {
            late: false,
            track,
            key: true,
            last: offset as usize + len == total as usize,
            seq,
            pts: dts,
            dts,
            offset,
            total,
        }
        .encode(&vec![0; len])
    };
    let code = |r: Result<(), vshare_upload::ProtocolError>| r.expect_err("refused").code.code();
    // Malformed: short, unknown type, undeclared track, bad JSON, a second hello.
    assert_eq!(code(fresh().handle_binary(&[1, 0, 0], 0)), 4000);
    assert_eq!(
        code(fresh().handle_binary(&piece(0, 9, 0, 0, 10, 10), 0)),
        4000
    );
    assert_eq!(code(fresh().handle_text("{", 0)), 4000);
    assert_eq!(
        code(fresh().handle_text(r#"{"type":"hello","version":1,"token":"x"}"#, 0)),
        4000
    );
    // Too large: a frame over the limit, a piece over the limit.
    assert_eq!(
        code(fresh().handle_binary(&piece(0, 0, 0, 0, 9 << 20, 10), 0)),
        4002
    );
    assert_eq!(
        code(fresh().handle_binary(&piece(0, 0, 0, 0, 2000, 1500), 0)),
        4002
    );
    // Out of order: a skipped number, a piece of another frame mid-frame,
    // a frame starting mid-way, an end that does not count what was sent.
    assert_eq!(
        code(fresh().handle_binary(&piece(1, 0, 0, 0, 10, 10), 0)),
        4003
    );
    // A dts going back is no protocol error (an encoder restart): the frame goes on, for the
    // session's timestamp repair.
    let mut rx = fresh();
    rx.handle_binary(&piece(0, 0, 1000, 0, 10, 10), 0)
        .expect("ok");
    rx.handle_binary(&piece(1, 0, 999, 0, 10, 10), 0)
        .expect("a dts going back is accepted");
    let mut rx = fresh();
    rx.handle_binary(&piece(0, 0, 0, 0, 20, 10), 0).expect("ok");
    assert_eq!(code(rx.handle_binary(&piece(1, 1, 0, 0, 10, 10), 0)), 4003);
    assert_eq!(
        code(fresh().handle_binary(&piece(0, 0, 0, 10, 20, 10), 0)),
        4003
    );
    assert_eq!(
        code(fresh().handle_text(r#"{"type":"end","seq":5}"#, 0)),
        4003
    );
    // Audio dts is checked per track: audio may lag video.
    let mut rx = fresh();
    rx.handle_binary(&piece(0, 0, 1000, 0, 10, 10), 0)
        .expect("ok");
    rx.handle_binary(&piece(1, 1, 500, 0, 10, 10), 0)
        .expect("audio on its own clock line");
    // Flood: more than the per-second message limit.
    let mut rx = UploadReceiver::new(
        ReceiverLimits {
            max_messages_per_second: 50,
            ..limits()
        },
        tracks(),
        500,
        2000,
    );
    rx.connected(0);
    let mut result = Ok(());
    for i in 0..60u32 {
        result = rx.handle_binary(&piece(i, 1, i64::from(i), 0, 10, 10), 1000);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(code(result), 4004);
    // Tracks: none, a duplicate kind, an unknown kind.
    assert_eq!(
        UploadReceiver::check_tracks(&[])
            .expect_err("none")
            .code
            .code(),
        4007
    );
    let mut two_videos = tracks();
    two_videos[1].kind = Some("video".into());
    assert_eq!(
        UploadReceiver::check_tracks(&two_videos)
            .expect_err("dup")
            .code
            .code(),
        4007
    );
    let mut odd = tracks();
    odd[1].kind = Some("subtitles".into());
    assert_eq!(
        UploadReceiver::check_tracks(&odd)
            .expect_err("kind")
            .code
            .code(),
        4007
    );
    assert!(UploadReceiver::check_tracks(&tracks()).is_ok());
}

#[test]
fn a_config_is_sequenced_and_acknowledged_at_once() {
    let mut rx = UploadReceiver::new(limits(), tracks(), 500, 2000);
    let mut tx = UploadSender::new();
    rx.connected(0);
    tx.handle_server(&welcome(&rx));
    tx.push_frame(0, true, 0, 0, frame_data(0, 10));
    let mut small = tracks()[0].clone();
    small.kind = None;
    small.codec = "avc1.42e015".into();
    tx.push_config(small);
    tx.push_frame(0, true, 33_000, 33_000, frame_data(2, 10));
    while let Some(m) = tx.poll_transmit() {
        match m {
            WireMessage::Binary(b) => rx.handle_binary(&b, 0).expect("ok"),
            WireMessage::Text(t) => rx.handle_text(&t, 0).expect("ok"),
        }
    }
    assert_eq!(rx.poll_transmit(1), Some(ServerMessage::Ack { seq: 3 }));
    let events: Vec<_> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert_eq!(events.len(), 3);
    let ReceiverEvent::Config(c) = &events[1] else {
        panic!("config second: {events:?}")
    };
    assert_eq!(c.codec, "avc1.42e015");
    assert_eq!(
        c.kind.as_deref(),
        Some("video"),
        "a config keeps its track's kind"
    );
}
