#![no_main]
//! Attribute forms: no input panics; TLV and text decoders accept only canonical bytes
//! (re-encoding gives the input back); XML round-trips through the encoder.
use libfuzzer_sys::fuzz_target;
use vshare_attributes::forms::{
    Form, decode_text, decode_tlv, decode_xml, encode_text, encode_tlv, encode_xml,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = decode_tlv(data) {
        assert_eq!(encode_tlv(&records).unwrap(), data);
    }
    if let Ok(records) = decode_text(data) {
        assert_eq!(encode_text(&records).unwrap().as_bytes(), data);
    }
    if let Ok(records) = decode_xml(data) {
        let again = encode_xml(&records).unwrap();
        assert_eq!(decode_xml(again.as_bytes()).unwrap(), records);
    }
    let _ = Form::detect(data);
});
