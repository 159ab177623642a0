#![no_main]
//! WBXML SI/SL and the XML reader: no panics; a decoded SI/SL encodes and decodes to itself.
use libfuzzer_sys::fuzz_target;
use vshare_wap::si::ServiceIndication;
use vshare_wap::sl::ServiceLoading;

fuzz_target!(|data: &[u8]| {
    let _ = vshare_wap::wbxml::decode(data);
    if let Ok(si) = ServiceIndication::from_wbxml(data)
        && let Ok(again) = si.to_wbxml()
    {
        assert_eq!(ServiceIndication::from_wbxml(&again).unwrap(), si);
    }
    if let Ok(sl) = ServiceLoading::from_wbxml(data)
        && let Ok(again) = sl.to_wbxml()
    {
        assert_eq!(ServiceLoading::from_wbxml(&again).unwrap(), sl);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vshare_wap::xml::from_xml(text);
    }
});
