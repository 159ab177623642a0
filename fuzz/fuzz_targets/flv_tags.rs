#![no_main]
//! FLV tag bodies and files, as a hostile publisher would send them: legacy AVC/AAC tags and
//! Enhanced RTMP HEVC tags (a first byte with bit 7 set takes the enhanced path, through the
//! `hvcC` and SPS parsers).
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
        if i % 2 == 0 {
            let _ = demuxer.video_tag(i as i64, body.clone());
            let _ = flv::parse_video(body.clone());
            let _ = flv::parse_ex_video(body);
        } else {
            let _ = demuxer.audio(i as i64, body);
        }
    }
    // The same bytes as the record of an HEVC sequence start, so the record and SPS parsers see
    // them whole (a 0xff inside a record would otherwise split it).
    let _ = demuxer.video_tag(0, flv::ex_video_sequence_start(data));
});
