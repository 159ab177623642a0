#![no_main]
//! SMPP PDUs and the session's input path: no panics; what decodes re-encodes and decodes the same.
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use vshare_smpp::{Config, Pdu, Session};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Pdu::decode(data)
        && let Ok(b) = p.encode()
    {
        assert_eq!(Pdu::decode(&b).unwrap(), p);
    }
    let now = Instant::now();
    for mut s in [
        Session::esme(Config::default()),
        Session::smsc(Config::default()),
    ] {
        let _ = s.handle_input(data, now);
        while s.poll_event().is_some() {}
        let _ = s.poll_transmit();
    }
});
