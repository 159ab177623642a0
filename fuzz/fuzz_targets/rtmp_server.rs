//! Hostile bytes into a server connection: first a valid client handshake (so the fuzzer
//! reaches the chunk stream, AMF0 and session layers), then the input in pieces whose sizes
//! come from the input itself. Errors are fine; panics, hangs and unbounded memory are not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vshare_rtmp::{ClientConnection, ServerConnection, ServerEvent, ServerLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ServerLimits {
        max_message_size: 1 << 20,
        max_chunk_size: 1 << 16,
        ..ServerLimits::default()
    };
    // Raw: the handshake layer itself.
    let mut raw = ServerConnection::new(limits);
    let _ = raw.handle_input(data);

    // After a real handshake with our client.
    let mut client = ClientConnection::new("live", "k", "rtmp://h/live");
    let mut server = ServerConnection::new(limits);
    for _ in 0..3 {
        while let Some(b) = client.poll_transmit() {
            let _ = server.handle_input(&b);
        }
        while let Some(b) = server.poll_transmit() {
            let _ = client.handle_input(&b);
        }
    }
    let (split, body) = match data.split_first() {
        Some((s, b)) => (usize::from(*s) + 1, b),
        None => return,
    };
    for piece in body.chunks(split) {
        if server.handle_input(piece).is_err() {
            break;
        }
        while let Some(ev) = server.poll_event() {
            if let ServerEvent::PublishRequested { request_id, .. } = ev {
                let _ = server.accept_publish(request_id);
            }
        }
        while server.poll_transmit().is_some() {}
    }
});
