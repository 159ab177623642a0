//! FLV tags (Adobe FLV spec v10.1, Annex E): the audio/video tag bodies that RTMP carries, and
//! FLV files. Our own code: the format is a few fixed headers, and it must turn hostile bytes
//! into typed errors, which no maintained crate does for both directions.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

/// Largest tag body we accept: a 4K keyframe fits many times over.
pub const MAX_TAG_SIZE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("FLV {what}: empty tag body")]
    Empty { what: &'static str },
    #[error("FLV video tag: codec id {0} is not supported (only AVC, id 7)")]
    UnsupportedVideoCodec(u8),
    #[error("FLV audio tag: sound format {0} is not supported (only AAC, format 10)")]
    UnsupportedAudioCodec(u8),
    #[error("FLV {what}: {needed} bytes needed, {have} present")]
    Truncated {
        what: &'static str,
        needed: usize,
        have: usize,
    },
    #[error("FLV video tag: unknown AVC packet type {0}")]
    AvcPacketType(u8),
    #[error("FLV video frame at {ts_ms} ms arrived before the AVC sequence header")]
    VideoBeforeConfig { ts_ms: i64 },
    #[error("FLV audio frame at {ts_ms} ms arrived before the AAC sequence header")]
    AudioBeforeConfig { ts_ms: i64 },
    #[error("FLV video tag: malformed NAL unit length at byte {offset}")]
    NalLength { offset: usize },
    #[error("{0}")]
    Codec(#[from] crate::CodecError),
    #[error("FLV file: bad signature {0:02x?}")]
    Signature([u8; 3]),
    #[error("FLV tag of {0} bytes is larger than the {MAX_TAG_SIZE}-byte limit")]
    TooLarge(usize),
}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVCDecoderConfigurationRecord.
    SequenceHeader(Bytes),
    /// One access unit in AVCC form.
    Frame {
        key: bool,
        cts_ms: i32,
        data: Bytes,
    },
    EndOfSequence,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AudioSpecificConfig.
    SequenceHeader(Bytes),
    Frame(Bytes),
}

fn need(what: &'static str, body: &[u8], n: usize) -> Result<(), FlvError> {
    if body.len() < n {
        return Err(FlvError::Truncated {
            what,
            needed: n,
            have: body.len(),
        });
    }
    Ok(())
}

/// Parses a video tag body (FLV spec E.4.3.1).
pub fn parse_video(body: Bytes) -> Result<VideoTag, FlvError> {
    let what = "video tag";
    let first = *body.first().ok_or(FlvError::Empty { what })?;
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != 7 {
        return Err(FlvError::UnsupportedVideoCodec(codec));
    }
    need(what, &body, 5)?;
    let packet_type = body[1];
    // SI24 composition time offset.
    let raw = u32::from_be_bytes([0, body[2], body[3], body[4]]);
    let cts_ms = ((raw << 8) as i32) >> 8;
    let payload = body.slice(5..);
    match packet_type {
        0 => Ok(VideoTag::SequenceHeader(payload)),
        1 => Ok(VideoTag::Frame {
            key: frame_type == 1,
            cts_ms,
            data: payload,
        }),
        2 => Ok(VideoTag::EndOfSequence),
        t => Err(FlvError::AvcPacketType(t)),
    }
}

/// Parses an audio tag body (FLV spec E.4.2.1).
pub fn parse_audio(body: Bytes) -> Result<AudioTag, FlvError> {
    let what = "audio tag";
    let first = *body.first().ok_or(FlvError::Empty { what })?;
    let format = first >> 4;
    if format != 10 {
        return Err(FlvError::UnsupportedAudioCodec(format));
    }
    need(what, &body, 2)?;
    let payload = body.slice(2..);
    Ok(match body[1] {
        0 => AudioTag::SequenceHeader(payload),
        _ => AudioTag::Frame(payload),
    })
}

/// Checks that AVCC data is a whole number of length-prefixed NAL units.
fn check_avcc(data: &[u8], length_size: u8) -> Result<(), FlvError> {
    let n = usize::from(length_size);
    let mut pos = 0;
    while pos < data.len() {
        if pos + n > data.len() {
            return Err(FlvError::NalLength { offset: pos });
        }
        let len = data[pos..pos + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        pos += n;
        if len == 0 || pos + len > data.len() {
            return Err(FlvError::NalLength { offset: pos - n });
        }
        pos += len;
    }
    Ok(())
}

/// Rewrites AVCC with 1- or 2-byte lengths into 4-byte lengths, the form every frame carries.
fn to_four_byte_lengths(data: Bytes, length_size: u8) -> Bytes {
    if length_size == 4 {
        return data;
    }
    let n = usize::from(length_size);
    let mut out = BytesMut::with_capacity(data.len() + data.len() / 8);
    let mut pos = 0;
    while pos + n <= data.len() {
        let len = data[pos..pos + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        pos += n;
        let end = (pos + len).min(data.len());
        out.put_u32(len as u32);
        out.put_slice(&data[pos..end]);
        pos = end;
    }
    out.freeze()
}

/// Turns a publisher's audio and video tags into [`MediaEvent`]s: keeps the codec
/// configurations, converts millisecond timestamps to µs, and validates frame framing.
#[derive(Debug, Default)]
pub struct TagDemuxer {
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
}

impl TagDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn video_config(&self) -> Option<&AvcConfig> {
        self.avc.as_ref()
    }

    pub fn audio_config(&self) -> Option<&AacConfig> {
        self.aac.as_ref()
    }

    /// A video tag body at `ts_ms` (the tag's decode timestamp, already extended past 32 bits).
    pub fn video(&mut self, ts_ms: i64, body: Bytes) -> Result<Option<MediaEvent>, FlvError> {
        if body.len() > MAX_TAG_SIZE {
            return Err(FlvError::TooLarge(body.len()));
        }
        match parse_video(body)? {
            VideoTag::SequenceHeader(record) => {
                let config = AvcConfig::parse(record)?;
                if self.avc.as_ref() == Some(&config) {
                    return Ok(None);
                }
                self.avc = Some(config.clone());
                Ok(Some(MediaEvent::Config(TrackConfig::Avc(config))))
            }
            VideoTag::Frame { key, cts_ms, data } => {
                let avc = self
                    .avc
                    .as_ref()
                    .ok_or(FlvError::VideoBeforeConfig { ts_ms })?;
                check_avcc(&data, avc.nal_length_size)?;
                let data = to_four_byte_lengths(data, avc.nal_length_size);
                let dts = ts_ms * 1000;
                Ok(Some(MediaEvent::Frame(Frame {
                    track: TrackKind::Video,
                    pts: dts + i64::from(cts_ms) * 1000,
                    dts,
                    key,
                    data,
                })))
            }
            VideoTag::EndOfSequence => Ok(None),
        }
    }

    /// An audio tag body at `ts_ms`.
    pub fn audio(&mut self, ts_ms: i64, body: Bytes) -> Result<Option<MediaEvent>, FlvError> {
        if body.len() > MAX_TAG_SIZE {
            return Err(FlvError::TooLarge(body.len()));
        }
        match parse_audio(body)? {
            AudioTag::SequenceHeader(asc) => {
                let config = AacConfig::parse(asc)?;
                if self.aac.as_ref() == Some(&config) {
                    return Ok(None);
                }
                self.aac = Some(config.clone());
                Ok(Some(MediaEvent::Config(TrackConfig::Aac(config))))
            }
            AudioTag::Frame(data) => {
                if self.aac.is_none() {
                    return Err(FlvError::AudioBeforeConfig { ts_ms });
                }
                if data.is_empty() {
                    return Ok(None);
                }
                let t = ts_ms * 1000;
                Ok(Some(MediaEvent::Frame(Frame {
                    track: TrackKind::Audio,
                    pts: t,
                    dts: t,
                    key: true,
                    data,
                })))
            }
        }
    }
}

/// Encodes the video tag body for an AVC sequence header.
pub fn video_sequence_header(record: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + record.len());
    b.put_slice(&[0x17, 0, 0, 0, 0]);
    b.put_slice(record);
    b.freeze()
}

/// Encodes the video tag body for one AVCC access unit.
pub fn video_frame(key: bool, cts_ms: i32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + data.len());
    b.put_u8(if key { 0x17 } else { 0x27 });
    b.put_u8(1);
    let cts = (cts_ms as u32) & 0x00ff_ffff;
    b.put_slice(&cts.to_be_bytes()[1..]);
    b.put_slice(data);
    b.freeze()
}

/// Encodes the audio tag body for an AAC sequence header (AAC, 44 kHz, 16-bit, stereo flags as
/// the spec requires for AAC regardless of the real parameters).
pub fn audio_sequence_header(asc: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + asc.len());
    b.put_slice(&[0xaf, 0]);
    b.put_slice(asc);
    b.freeze()
}

/// Encodes the audio tag body for one raw AAC frame.
pub fn audio_frame(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + data.len());
    b.put_slice(&[0xaf, 1]);
    b.put_slice(data);
    b.freeze()
}

/// Kind of an FLV file tag (FLV spec E.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagType {
    Audio,
    Video,
    Script,
    Other(u8),
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    pub tag_type: TagType,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

/// Reads tags from a complete FLV file held in memory.
pub fn read_file(data: Bytes) -> Result<Vec<FileTag>, FlvError> {
    need("file header", &data, 9)?;
    if &data[..3] != b"FLV" {
        return Err(FlvError::Signature([data[0], data[1], data[2]]));
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len.max(9) + 4; // header, PreviousTagSize0
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = pos + 11;
        if start + size > data.len() {
            return Err(FlvError::Truncated {
                what: "file tag",
                needed: start + size,
                have: data.len(),
            });
        }
        let tag_type = match h[0] & 0x1f {
            8 => TagType::Audio,
            9 => TagType::Video,
            18 => TagType::Script,
            t => TagType::Other(t),
        };
        tags.push(FileTag {
            tag_type,
            timestamp_ms: ts,
            body: data.slice(start..start + size),
        });
        pos = start + size + 4;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_frame_round_trip_with_negative_cts() {
        let data = [0, 0, 0, 2, 0x65, 0x88];
        let body = video_frame(true, -40, &data);
        assert_eq!(
            parse_video(body).expect("parse"),
            VideoTag::Frame {
                key: true,
                cts_ms: -40,
                data: Bytes::copy_from_slice(&data)
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            &[][..],
            &[0x17],
            &[0x17, 1, 0],
            &[0x12, 0, 0, 0, 0],
            &[0xaf],
        ] {
            assert!(
                parse_video(Bytes::copy_from_slice(body)).is_err()
                    || parse_audio(Bytes::copy_from_slice(body)).is_err()
            );
        }
        let mut d = TagDemuxer::new();
        let e = d
            .video(0, video_frame(true, 0, &[0, 0, 0, 1, 0x65]))
            .unwrap_err();
        assert_eq!(e, FlvError::VideoBeforeConfig { ts_ms: 0 });
        let e = d.audio(5, audio_frame(&[1, 2])).unwrap_err();
        assert_eq!(e, FlvError::AudioBeforeConfig { ts_ms: 5 });
    }

    #[test]
    fn unsupported_codecs_are_named() {
        let e = parse_video(Bytes::from_static(&[0x12, 0, 0, 0, 0])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "FLV video tag: codec id 2 is not supported (only AVC, id 7)"
        );
        let e = parse_audio(Bytes::from_static(&[0x2f, 0])).unwrap_err();
        assert!(e.to_string().contains("sound format 2"));
    }

    #[test]
    fn avcc_lengths_are_checked() {
        assert!(check_avcc(&[0, 0, 0, 1, 5], 4).is_ok());
        assert_eq!(
            check_avcc(&[0, 0, 0, 9, 5], 4),
            Err(FlvError::NalLength { offset: 0 })
        );
        assert_eq!(
            check_avcc(&[0, 1, 5, 0], 2),
            Err(FlvError::NalLength { offset: 3 })
        );
        assert_eq!(
            &to_four_byte_lengths(Bytes::from_static(&[0, 1, 5]), 2)[..],
            &[0, 0, 0, 1, 5]
        );
    }
}
