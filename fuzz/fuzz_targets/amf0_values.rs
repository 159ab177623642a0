//! Hostile bytes into the AMF0 decoder, the first parser an unauthenticated RTMP peer reaches.
//! Errors are fine; panics, hangs and allocations sized by a length field are not (the long
//! mode runs with a malloc limit). What decodes must encode and decode to the same values.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vshare_rtmp::amf0::{decode_all, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(values) = decode_all(data) else { return };
    let mut out = BytesMut::new();
    for v in &values {
        encode(&mut out, v);
    }
    let again = decode_all(&out).expect("our own encoding decodes");
    // NaN is not equal to itself; compare the encodings instead of the values.
    let mut out2 = BytesMut::new();
    for v in &again {
        encode(&mut out2, v);
    }
    assert_eq!(out, out2, "AMF0 round trip changed the values");
});
