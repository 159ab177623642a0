//! Arbitrary bytes as an init segment (first or later) and as media segments of the fast-start
//! MP4 builder: every input must end in `Ok` or a typed error, never a panic or a runaway
//! allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vshare_package::VodMp4Builder;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into an init segment and a media segment; the media
    // segment is also tried against a real init segment so the moof/mdat parser is reached.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(split) * rest.len()) / 255;
    let (init, segment) = rest.split_at(cut.min(rest.len()));
    if let Ok(mut vod) = VodMp4Builder::new(init) {
        let _ = vod.add_segment(segment);
        let _ = vod.add_segment(rest);
        let _ = vod.header();
        let _ = vod.payload_ranges();
        let _ = vod.duration_us();
    }
    if let Ok(mut vod) = VodMp4Builder::new(KNOWN_INIT) {
        if vod.add_segment(rest).is_ok() {
            let _ = vod.header();
            let _ = vod.total_size();
        }
        // The first part as a later init segment (a codec configuration change), the rest as
        // a segment read against it.
        if vod.add_init(init).is_ok() {
            let _ = vod.add_segment(segment);
            let _ = vod.header();
            let _ = vod.duration_us();
        }
    }
});

/// An init segment the packager wrote for an H.264 + AAC stream.
const KNOWN_INIT: &[u8] = include_bytes!("../../crates/package/tests/data/init_av.mp4");
