//! FLV files in tests: reading one into media events, writing tags as one.

use std::path::Path;

use bytes::Bytes;
use vshare_media::flv::{TagDemuxer, TagType, read_file};
use vshare_media::{Frame, MediaEvent};

/// An FLV file's media events with their tag times (ms), in file order, all `offset_ms` later
/// (tag times and frame times alike).
pub fn read_events(path: &Path, offset_ms: i64) -> Vec<(i64, MediaEvent)> {
    let data = Bytes::from(std::fs::read(path).expect("read flv"));
    let mut demux = TagDemuxer::new();
    let mut out = Vec::new();
    for tag in read_file(data).expect("parse flv") {
        let ts = i64::from(tag.timestamp_ms);
        let event = match tag.tag_type {
            TagType::Video => demux.video(ts, tag.body).expect("video tag"),
            TagType::Audio => demux.audio(ts, tag.body).expect("audio tag"),
            _ => None,
        };
        let event = match event {
            Some(MediaEvent::Frame(f)) => MediaEvent::Frame(Frame {
                pts: f.pts + offset_ms * 1000,
                dts: f.dts + offset_ms * 1000,
                ..f
            }),
            Some(other) => other,
            None => continue,
        };
        out.push((ts + offset_ms, event));
    }
    out
}

/// FLV tag types (Adobe FLV v10.1 §E.4.1).
pub const AUDIO_TAG: u8 = 8;
pub const VIDEO_TAG: u8 = 9;

/// Writes `(tag type, timestamp ms, body)` tags as an FLV file with audio and video
/// (Adobe FLV v10.1 §E.2, §E.3).
pub fn write_tags<B: AsRef<[u8]>>(path: &Path, tags: impl IntoIterator<Item = (u8, u32, B)>) {
    let mut out = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
    for (kind, ts, body) in tags {
        let body = body.as_ref();
        let size = body.len() as u32;
        out.push(kind);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(size + 11).to_be_bytes());
    }
    std::fs::write(path, out).expect("write flv");
}

/// An FLV file's tags as `(tag type, timestamp ms, body)`, in file order (header and
/// previous-tag sizes read loosely: a tool we trust wrote it).
pub fn read_tags(path: &Path) -> Vec<(u8, u32, Vec<u8>)> {
    let data = std::fs::read(path).expect("read flv");
    assert_eq!(&data[..3], b"FLV", "{path:?} is not an FLV file");
    let mut pos = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = data
            .get(pos + 11..pos + 11 + size)
            .expect("tag within the file");
        tags.push((h[0], ts, body.to_vec()));
        pos += 11 + size + 4;
    }
    tags
}
