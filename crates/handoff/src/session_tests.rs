use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::frame::HandoffError;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn pump(a: &mut Session, b: &mut Session) -> Result<(), HandoffError> {
    while let Some(bytes) = a.poll_transmit() {
        b.handle_input(&bytes)?;
    }
    Ok(())
}

fn connected() -> (Session, Session) {
    let mut c = Session::client(SECRET, [7; 32], Limits::default());
    let mut s = Session::server(SECRET, [9; 32], Limits::default());
    for _ in 0..2 {
        pump(&mut c, &mut s).unwrap();
        pump(&mut s, &mut c).unwrap();
    }
    assert_eq!(c.poll_event(), Some(Event::Ready));
    assert_eq!(s.poll_event(), Some(Event::Ready));
    (c, s)
}

fn every_variant() -> Vec<LiveMessage> {
    crate::frame::tests::every_variant()
}

#[test]
fn every_variant_crosses_the_wire() {
    let (mut c, mut s) = connected();
    for msg in every_variant() {
        c.send(&msg).unwrap();
    }
    // Byte by byte: frames split anywhere reassemble.
    let bytes = c.poll_transmit().unwrap();
    for b in &bytes {
        s.handle_input(std::slice::from_ref(b)).unwrap();
    }
    s.finish().unwrap();
    for msg in every_variant() {
        assert_eq!(s.poll_event(), Some(Event::Message(msg)));
    }
    assert_eq!(s.poll_event(), None);
}

#[test]
fn pings_are_answered() {
    let (mut c, mut s) = connected();
    c.ping(42).unwrap();
    pump(&mut c, &mut s).unwrap();
    pump(&mut s, &mut c).unwrap();
    assert_eq!(c.poll_event(), Some(Event::Pong(42)));
    s.ping(5).unwrap();
    pump(&mut s, &mut c).unwrap();
    pump(&mut c, &mut s).unwrap();
    assert_eq!(s.poll_event(), Some(Event::Pong(5)));
}

#[test]
fn a_wrong_secret_is_refused_both_ways() {
    // The live server has another secret: the video server sees a wrong proof at once.
    let mut c = Session::client(SECRET, [1; 32], Limits::default());
    let mut s = Session::server(b"another secret entirely", [2; 32], Limits::default());
    pump(&mut c, &mut s).unwrap();
    let e = pump(&mut s, &mut c).unwrap_err();
    assert!(matches!(e, HandoffError::WrongSecret { offset: 39 }), "{e}");
    assert!(c.send(&every_variant()[0]).is_err());

    // A client that does not know the secret but answers anything: the server refuses and
    // says why, and nothing it sends afterwards is taken.
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    let mut hello = Vec::new();
    hello.extend_from_slice(&39u32.to_be_bytes());
    hello.push(0x01);
    hello.extend_from_slice(b"VSHO");
    hello.extend_from_slice(&1u16.to_be_bytes());
    hello.extend_from_slice(&[3; 32]);
    s.handle_input(&hello).unwrap();
    let _challenge = s.poll_transmit().unwrap();
    let mut proof = Vec::new();
    proof.extend_from_slice(&33u32.to_be_bytes());
    proof.push(0x03);
    proof.extend_from_slice(&[0; 32]);
    let e = s.handle_input(&proof).unwrap_err();
    assert_eq!(e, HandoffError::WrongSecret { offset: 48 });
    assert_eq!(s.poll_transmit().unwrap(), [0, 0, 0, 2, 0x05, 2]);
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.handle_input(&[0]), Err(HandoffError::Closed));

    // The refusal reaches a client as a typed error.
    let mut c = Session::client(SECRET, [1; 32], Limits::default());
    let _ = c.poll_transmit();
    assert_eq!(
        c.handle_input(&[0, 0, 0, 2, 0x05, 2]),
        Err(HandoffError::Refused(RefuseReason::WrongSecret))
    );
}

#[test]
fn altered_replayed_and_reordered_frames_are_refused() {
    let (mut c, mut s) = connected();
    let msg = every_variant().remove(3);
    c.send(&msg).unwrap();
    let first = c.poll_transmit().unwrap();
    c.send(&msg).unwrap();
    let second = c.poll_transmit().unwrap();
    // A flipped bit in the body.
    let mut s2 = Session::server(SECRET, [9; 32], Limits::default());
    let mut c2 = Session::client(SECRET, [7; 32], Limits::default());
    for _ in 0..2 {
        pump(&mut c2, &mut s2).unwrap();
        pump(&mut s2, &mut c2).unwrap();
    }
    let mut altered = first.clone();
    altered[10] ^= 1;
    assert!(matches!(
        s2.handle_input(&altered),
        Err(HandoffError::BadTag { .. })
    ));
    // The second frame first (reordered), then the first twice (replayed).
    let mut s3 = Session::server(SECRET, [9; 32], Limits::default());
    let mut c3 = Session::client(SECRET, [7; 32], Limits::default());
    for _ in 0..2 {
        pump(&mut c3, &mut s3).unwrap();
        pump(&mut s3, &mut c3).unwrap();
    }
    assert!(matches!(
        s3.handle_input(&second),
        Err(HandoffError::BadTag { .. })
    ));
    s.handle_input(&first).unwrap();
    assert!(matches!(
        s.handle_input(&first),
        Err(HandoffError::BadTag { .. })
    ));
}

#[test]
fn oversized_truncated_and_garbage_input_are_errors() {
    // Before the handshake a frame may not be large.
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    assert_eq!(
        s.handle_input(&[0, 0, 4, 0]),
        Err(HandoffError::FrameTooLarge {
            offset: 0,
            len: 1024,
            max: 256
        })
    );
    // After it, not over the limit.
    let mut s = Session::server(
        SECRET,
        [9; 32],
        Limits {
            max_frame_bytes: 500,
            ..Limits::default()
        },
    );
    let big = LiveMessage::Part {
        stream: "s".into(),
        msn: 0,
        index: 0,
        bytes: Bytes::from(vec![0; 600]),
        playlist: Arc::from(""),
    };
    let mut c = Session::client(SECRET, [7; 32], Limits::default());
    for _ in 0..2 {
        pump(&mut c, &mut s).unwrap();
        pump(&mut s, &mut c).unwrap();
    }
    c.send(&big).unwrap();
    let bytes = c.poll_transmit().unwrap();
    let hs = 4 + 39 + 4 + 33; // hello and proof, what the server read before
    assert_eq!(
        s.handle_input(&bytes),
        Err(HandoffError::FrameTooLarge {
            offset: hs,
            len: bytes.len() as u64 - 4,
            max: 500
        })
    );
    // And a sender does not make one the limit forbids.
    let mut small = Session::client(
        SECRET,
        [7; 32],
        Limits {
            max_frame_bytes: 500,
            ..Limits::default()
        },
    );
    let mut peer = Session::server(SECRET, [9; 32], Limits::default());
    for _ in 0..2 {
        pump(&mut small, &mut peer).unwrap();
        pump(&mut peer, &mut small).unwrap();
    }
    assert!(matches!(
        small.send(&big),
        Err(HandoffError::TooLargeToSend { .. })
    ));

    // A connection that ends inside a frame.
    let (mut c, mut s) = connected();
    c.send(&every_variant()[1]).unwrap();
    let bytes = c.poll_transmit().unwrap();
    s.handle_input(&bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(
        s.finish(),
        Err(HandoffError::EndedInFrame {
            buffered: bytes.len() as u64 - 1
        })
    );

    // Not a hand-off connection at all.
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    let e = s.handle_input(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert!(
        matches!(e, HandoffError::FrameTooLarge { offset: 0, .. }),
        "{e}"
    );
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    assert_eq!(
        s.handle_input(&[0, 0, 0, 5, 0x01, b'H', b'T', b'T', b'P']),
        Err(HandoffError::BadMagic { offset: 5 })
    );
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    assert_eq!(
        s.handle_input(&[0, 0, 0, 1, 0x11]),
        Err(HandoffError::Unexpected {
            offset: 4,
            kind: 0x11,
            state: "before the hello"
        })
    );
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    let mut v2 = vec![0, 0, 0, 39, 0x01];
    v2.extend_from_slice(b"VSHO");
    v2.extend_from_slice(&2u16.to_be_bytes());
    v2.extend_from_slice(&[0; 32]);
    assert_eq!(
        s.handle_input(&v2),
        Err(HandoffError::Version {
            offset: 9,
            version: 2
        })
    );
    assert_eq!(s.poll_transmit().unwrap(), [0, 0, 0, 2, 0x05, 1]);
    // A zero-length frame.
    let mut s = Session::server(SECRET, [2; 32], Limits::default());
    assert_eq!(
        s.handle_input(&[0, 0, 0, 0]),
        Err(HandoffError::FrameTooShort { offset: 0, len: 0 })
    );
}

#[test]
fn garbage_never_panics() {
    // A small deterministic generator: every input is an error or fine, never a panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..2000 {
        let mut buf = Vec::new();
        for _ in 0..(round % 97) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        // Sometimes a plausible length prefix in front.
        if round % 3 == 0 {
            let len = (buf.len() as u32).to_be_bytes();
            buf.splice(0..0, len);
        }
        let mut s = Session::server(SECRET, [2; 32], Limits::default());
        let _ = s.handle_input(&buf);
        let _ = s.finish();
        let (_, mut s) = connected();
        let _ = s.handle_input(&buf);
        let mut c = Session::client(SECRET, [1; 32], Limits::default());
        let _ = c.handle_input(&buf);
    }
}
