#![no_main]
//! WSP connectionless push PDUs: no panics; what decodes re-encodes to a PDU that decodes the same.
use libfuzzer_sys::fuzz_target;
use vshare_wap::wsp::PushPdu;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PushPdu::decode(data) {
        let _ = p.application_id();
        assert_eq!(PushPdu::decode(&p.encode()).unwrap(), p);
    }
});
