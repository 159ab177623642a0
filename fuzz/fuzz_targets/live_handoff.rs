//! The live hand-off on arbitrary bytes: a live server's session before the handshake and one
//! after it, and the message body decoder (the first byte as the frame kind; behind a frame's
//! tag this is what a peer with the secret reaches). Errors are fine; a panic is not, and
//! every message that decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vshare_handoff::frame::{decode_message_body, encode_message_body};
use vshare_handoff::{Limits, Session};

const SECRET: &[u8] = b"fuzzing secret, sixteen bytes at least";

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame_bytes: 4096,
        max_stream_name: 32,
        max_parts_per_segment: 8,
    };
    let mut fresh = Session::server(SECRET, [1; 32], limits);
    let _ = fresh.handle_input(data);
    let _ = fresh.finish();

    if let Some((&kind, body)) = data.split_first()
        && let Ok(Some(msg)) = decode_message_body(kind, body, &limits, 1)
    {
        let mut again = Vec::new();
        encode_message_body(&msg, &limits, &mut again).expect("a decoded message encodes");
        assert_eq!(again, body);
    }

    let mut client = Session::client(SECRET, [2; 32], limits);
    let mut server = Session::server(SECRET, [3; 32], limits);
    for _ in 0..2 {
        while let Some(b) = client.poll_transmit() {
            server.handle_input(&b).expect("handshake");
        }
        while let Some(b) = server.poll_transmit() {
            client.handle_input(&b).expect("handshake");
        }
    }
    let _ = server.handle_input(data);
    while server.poll_event().is_some() {}
});
