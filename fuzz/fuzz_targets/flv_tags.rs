#![no_main]
//! FLV tag bodies and files, as a hostile publisher would send them.
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vshare_media::flv;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let _ = flv::read_file(bytes.clone());
    let mut demuxer = flv::TagDemuxer::new();
    // Split the input into tags at every 0xff byte so one run exercises a sequence of tags.
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let body = Bytes::copy_from_slice(chunk);
        let _ = if i % 2 == 0 { demuxer.video(i as i64, body) } else { demuxer.audio(i as i64, body) };
    }
});
