#![no_main]
//! SMS TPDUs both ways, with and without a service centre address: no panics, and whatever
//! decodes encodes again and decodes to the same value.
use libfuzzer_sys::fuzz_target;
use vshare_sms::{Direction, Tpdu, UserDataHeader};

fuzz_target!(|data: &[u8]| {
    for dir in [Direction::MobileOriginated, Direction::MobileTerminated] {
        if let Ok(t) = Tpdu::decode(data, dir)
            && let Ok(again) = t.encode()
        {
            assert_eq!(Tpdu::decode(&again, dir).unwrap(), t);
        }
        let _ = Tpdu::decode_with_sca(data, dir);
    }
    let _ = UserDataHeader::decode(data, 0);
});
