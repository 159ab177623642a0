//! FLV tags (Adobe FLV spec v10.1, Annex E): the audio/video tag bodies that RTMP carries, and
//! FLV files; and the HEVC video tags of Enhanced RTMP (veovera enhanced-rtmp v1, "Defining
//! Additional Video Codecs"). Our own code: the format is a few fixed headers, and it must turn
//! hostile bytes into typed errors, which no maintained crate does for both directions.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    AacConfig, AvcConfig, Frame, HevcConfig, HevcEvent, MediaEvent, TrackConfig, TrackKind,
};

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
    #[error(transparent)]
    Codec(#[from] crate::CodecError),
    #[error("FLV file: bad signature {0:02x?}")]
    Signature([u8; 3]),
    #[error("FLV tag of {0} bytes is larger than the {MAX_TAG_SIZE}-byte limit")]
    TooLarge(usize),
    #[error(
        "FLV enhanced video tag: codec '{}' is not supported (only HEVC, 'hvc1')",
        fourcc_text(.0)
    )]
    UnsupportedFourCc([u8; 4]),
    #[error(
        "FLV enhanced video tag: packet type {0} is not supported (0-4 are: sequence start, coded frames, sequence end, coded frames without composition time, metadata)"
    )]
    ExPacketType(u8),
    #[error("FLV enhanced video tag: frame type {0} is reserved")]
    ExFrameType(u8),
    #[error("FLV video frame at {ts_ms} ms arrived before the HEVC sequence start")]
    HevcBeforeConfig { ts_ms: i64 },
    #[error(
        "FLV video tag: HEVC (Enhanced RTMP 'hvc1') needs converting; read it with TagDemuxer::video_tag"
    )]
    NeedsConversion,
    #[error("FLV video tag: an Enhanced RTMP (FourCC) tag where a legacy one was expected")]
    EnhancedTag,
    #[error("FLV video tag: a legacy tag where an Enhanced RTMP (FourCC) one was expected")]
    LegacyTag,
}

/// A FourCC for messages: its letters when printable, else hex.
fn fourcc_text(f: &[u8; 4]) -> String {
    if f.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        f.iter().map(|b| char::from(*b)).collect()
    } else {
        format!("0x{:08x}", u32::from_be_bytes(*f))
    }
}

/// The FourCC of HEVC in Enhanced RTMP, the only one vshare takes (`av01`, `vp09` are refused).
pub const FOURCC_HEVC: [u8; 4] = *b"hvc1";

/// Enhanced RTMP PacketType values (the low 4 bits of the first byte when bit 7 is set).
pub mod ex_packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
}

/// A parsed Enhanced RTMP video tag body whose FourCC is `hvc1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExVideoTag {
    /// PacketTypeSequenceStart: an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1).
    SequenceStart(Bytes),
    /// PacketTypeCodedFrames (with an SI24 composition time offset, ms) or PacketTypeCodedFramesX
    /// (offset 0): one access unit of length-prefixed NAL units.
    CodedFrames { key: bool, cts_ms: i32, data: Bytes },
    /// PacketTypeSequenceEnd.
    SequenceEnd,
    /// PacketTypeMetadata: AMF-encoded `["colorInfo", Object]` (HDR hints); not interpreted.
    Metadata(Bytes),
    /// FrameType 5: a video info/command frame, which carries no picture.
    Command,
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

/// Whether a video tag body is an Enhanced RTMP one (IsExHeader, bit 7 of the first byte).
pub fn is_enhanced_video(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b & 0x80 != 0)
}

/// Parses a legacy video tag body (FLV spec E.4.3.1). An enhanced one is
/// [`FlvError::EnhancedTag`]: see [`parse_ex_video`].
pub fn parse_video(body: Bytes) -> Result<VideoTag, FlvError> {
    let what = "video tag";
    let first = *body.first().ok_or(FlvError::Empty { what })?;
    if first & 0x80 != 0 {
        return Err(FlvError::EnhancedTag);
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if codec != 7 {
        return Err(FlvError::UnsupportedVideoCodec(codec));
    }
    need(what, &body, 5)?;
    let packet_type = body[1];
    let cts_ms = si24(&body[2..5]);
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

fn si24(b: &[u8]) -> i32 {
    let raw = u32::from_be_bytes([0, b[0], b[1], b[2]]);
    ((raw << 8) as i32) >> 8
}

/// Parses an Enhanced RTMP video tag body (enhanced-rtmp v1, ExVideoTagHeader and
/// ExVideoTagBody): bit 7 IsExHeader, bits 4-6 FrameType, bits 0-3 PacketType, then a UI32
/// FourCC. Only `hvc1` is taken; other codecs are [`FlvError::UnsupportedFourCc`].
pub fn parse_ex_video(body: Bytes) -> Result<ExVideoTag, FlvError> {
    let what = "enhanced video tag";
    let first = *body.first().ok_or(FlvError::Empty { what })?;
    if first & 0x80 == 0 {
        return Err(FlvError::LegacyTag);
    }
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0f;
    need(what, &body, 5)?;
    let fourcc = [body[1], body[2], body[3], body[4]];
    if fourcc != FOURCC_HEVC {
        return Err(FlvError::UnsupportedFourCc(fourcc));
    }
    if packet_type == ex_packet::METADATA {
        // FrameType is to be ignored for metadata.
        return Ok(ExVideoTag::Metadata(body.slice(5..)));
    }
    match frame_type {
        1..=4 => {}
        5 => return Ok(ExVideoTag::Command),
        t => return Err(FlvError::ExFrameType(t)),
    }
    let key = frame_type == 1;
    match packet_type {
        ex_packet::SEQUENCE_START => Ok(ExVideoTag::SequenceStart(body.slice(5..))),
        ex_packet::CODED_FRAMES => {
            need(what, &body, 8)?;
            Ok(ExVideoTag::CodedFrames {
                key,
                cts_ms: si24(&body[5..8]),
                data: body.slice(8..),
            })
        }
        ex_packet::CODED_FRAMES_X => Ok(ExVideoTag::CodedFrames {
            key,
            cts_ms: 0,
            data: body.slice(5..),
        }),
        ex_packet::SEQUENCE_END => Ok(ExVideoTag::SequenceEnd),
        t => Err(FlvError::ExPacketType(t)),
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

/// What a video tag becomes: an ordinary event, or HEVC that the server converts first.
#[derive(Debug, Clone)]
pub enum DemuxedVideo {
    Media(MediaEvent),
    Hevc(HevcEvent),
}

/// Turns a publisher's audio and video tags into [`MediaEvent`]s (and HEVC video into
/// [`HevcEvent`]s, with [`TagDemuxer::video_tag`]): keeps the codec configurations, converts
/// millisecond timestamps to µs, and validates frame framing.
#[derive(Debug, Default)]
pub struct TagDemuxer {
    avc: Option<AvcConfig>,
    hevc: Option<HevcConfig>,
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

    pub fn hevc_config(&self) -> Option<&HevcConfig> {
        self.hevc.as_ref()
    }

    /// A video tag body at `ts_ms`, legacy (AVC) or Enhanced RTMP (HEVC).
    pub fn video_tag(&mut self, ts_ms: i64, body: Bytes) -> Result<Option<DemuxedVideo>, FlvError> {
        if !is_enhanced_video(&body) {
            return Ok(self.video(ts_ms, body)?.map(DemuxedVideo::Media));
        }
        if body.len() > MAX_TAG_SIZE {
            return Err(FlvError::TooLarge(body.len()));
        }
        match parse_ex_video(body)? {
            ExVideoTag::SequenceStart(record) => {
                let config = HevcConfig::parse(record)?;
                if self.hevc.as_ref() == Some(&config) {
                    return Ok(None);
                }
                self.hevc = Some(config.clone());
                Ok(Some(DemuxedVideo::Hevc(HevcEvent::Config(config))))
            }
            ExVideoTag::CodedFrames { key, cts_ms, data } => {
                let hevc = self
                    .hevc
                    .as_ref()
                    .ok_or(FlvError::HevcBeforeConfig { ts_ms })?;
                check_avcc(&data, hevc.nal_length_size)?;
                let data = to_four_byte_lengths(data, hevc.nal_length_size);
                let dts = ts_ms * 1000;
                Ok(Some(DemuxedVideo::Hevc(HevcEvent::Frame(Frame {
                    track: TrackKind::Video,
                    pts: dts + i64::from(cts_ms) * 1000,
                    dts,
                    key,
                    data,
                }))))
            }
            ExVideoTag::SequenceEnd | ExVideoTag::Metadata(_) | ExVideoTag::Command => Ok(None),
        }
    }

    /// A legacy video tag body at `ts_ms` (the tag's decode timestamp, already extended past 32
    /// bits). HEVC is [`FlvError::NeedsConversion`] here: use [`Self::video_tag`].
    pub fn video(&mut self, ts_ms: i64, body: Bytes) -> Result<Option<MediaEvent>, FlvError> {
        if body.len() > MAX_TAG_SIZE {
            return Err(FlvError::TooLarge(body.len()));
        }
        if is_enhanced_video(&body) {
            parse_ex_video(body)?;
            return Err(FlvError::NeedsConversion);
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

/// Encodes the Enhanced RTMP video tag body that starts an HEVC sequence (a key frame's
/// PacketTypeSequenceStart with the `hvcC` record).
pub fn ex_video_sequence_start(record: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + record.len());
    b.put_u8(0x80 | (1 << 4) | ex_packet::SEQUENCE_START);
    b.put_slice(&FOURCC_HEVC);
    b.put_slice(record);
    b.freeze()
}

/// Encodes the Enhanced RTMP video tag body for one HEVC access unit (length-prefixed NAL
/// units): PacketTypeCodedFrames with its SI24 composition time offset, or PacketTypeCodedFramesX
/// when the offset is 0.
pub fn ex_video_frame(key: bool, cts_ms: i32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    let frame_type: u8 = if key { 1 } else { 2 };
    let packet_type = if cts_ms == 0 {
        ex_packet::CODED_FRAMES_X
    } else {
        ex_packet::CODED_FRAMES
    };
    b.put_u8(0x80 | (frame_type << 4) | packet_type);
    b.put_slice(&FOURCC_HEVC);
    if cts_ms != 0 {
        let cts = (cts_ms as u32) & 0x00ff_ffff;
        b.put_slice(&cts.to_be_bytes()[1..]);
    }
    b.put_slice(data);
    b.freeze()
}

/// Encodes the Enhanced RTMP video tag body that ends an HEVC sequence.
pub fn ex_video_sequence_end() -> Bytes {
    let mut b = BytesMut::with_capacity(5);
    b.put_u8(0x80 | (1 << 4) | ex_packet::SEQUENCE_END);
    b.put_slice(&FOURCC_HEVC);
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

    use crate::codec::hevc::tests::HVCC_360P;

    /// Hand-made Enhanced RTMP tags, byte by byte as enhanced-rtmp v1 lays them out.
    #[test]
    fn enhanced_hevc_tags_of_every_packet_type() {
        // 0x90: IsExHeader, FrameType 1 (key), PacketType 0 (SequenceStart); FourCC 'hvc1'.
        let mut start = vec![0x90, b'h', b'v', b'c', b'1'];
        start.extend_from_slice(HVCC_360P);
        assert_eq!(
            parse_ex_video(Bytes::from(start.clone())).expect("start"),
            ExVideoTag::SequenceStart(Bytes::from_static(HVCC_360P))
        );
        assert_eq!(&ex_video_sequence_start(HVCC_360P)[..], &start[..]);
        // 0x91: key, CodedFrames, SI24 composition time -2 (0xfffffe), one 2-byte NAL unit.
        let coded = [
            0x91, b'h', b'v', b'c', b'1', 0xff, 0xff, 0xfe, 0, 0, 0, 2, 0x26, 0x01,
        ];
        assert_eq!(
            parse_ex_video(Bytes::copy_from_slice(&coded)).expect("coded"),
            ExVideoTag::CodedFrames {
                key: true,
                cts_ms: -2,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x26, 0x01]),
            }
        );
        assert_eq!(&ex_video_frame(true, -2, &coded[8..])[..], &coded[..]);
        // 0xa3: inter frame, CodedFramesX: no composition time on the wire (0).
        let coded_x = [0xa3, b'h', b'v', b'c', b'1', 0, 0, 0, 2, 0x02, 0x01];
        assert_eq!(
            parse_ex_video(Bytes::copy_from_slice(&coded_x)).expect("coded x"),
            ExVideoTag::CodedFrames {
                key: false,
                cts_ms: 0,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x02, 0x01]),
            }
        );
        assert_eq!(&ex_video_frame(false, 0, &coded_x[5..])[..], &coded_x[..]);
        // 0x92: SequenceEnd.
        let end = [0x92, b'h', b'v', b'c', b'1'];
        assert_eq!(
            parse_ex_video(Bytes::copy_from_slice(&end)).expect("end"),
            ExVideoTag::SequenceEnd
        );
        assert_eq!(&ex_video_sequence_end()[..], &end[..]);
        // 0x84: Metadata (FrameType ignored, even 0): AMF0 string "colorInfo" then undefined.
        let mut meta = vec![0x84, b'h', b'v', b'c', b'1', 0x02, 0, 9];
        meta.extend_from_slice(b"colorInfo");
        meta.push(0x06);
        assert_eq!(
            parse_ex_video(Bytes::from(meta.clone())).expect("metadata"),
            ExVideoTag::Metadata(Bytes::from(meta[5..].to_vec()))
        );
        // 0xd1: FrameType 5, a command frame (UI8 0 = start of seek): no picture.
        let command = [0xd1, b'h', b'v', b'c', b'1', 0];
        assert_eq!(
            parse_ex_video(Bytes::copy_from_slice(&command)).expect("command"),
            ExVideoTag::Command
        );
    }

    #[test]
    fn enhanced_tags_that_are_refused() {
        // Truncated: no FourCC, half a FourCC, a CodedFrames without its composition time.
        for body in [
            &[0x90][..],
            &[0x91, b'h', b'v'],
            &[0x91, b'h', b'v', b'c', b'1', 0x00, 0x01],
        ] {
            let e = parse_ex_video(Bytes::copy_from_slice(body)).unwrap_err();
            assert!(matches!(e, FlvError::Truncated { .. }), "{body:?}: {e}");
        }
        // Other codecs, as Enhanced RTMP names them, are refused by name.
        for (fourcc, name) in [(b"av01", "av01"), (b"vp09", "vp09")] {
            let mut body = vec![0x90];
            body.extend_from_slice(fourcc);
            body.extend_from_slice(&[1, 2, 3]);
            let e = parse_ex_video(Bytes::from(body.clone())).unwrap_err();
            assert_eq!(e, FlvError::UnsupportedFourCc(*fourcc));
            assert_eq!(
                e.to_string(),
                format!(
                    "FLV enhanced video tag: codec '{name}' is not supported (only HEVC, 'hvc1')"
                )
            );
            let mut d = TagDemuxer::new();
            assert_eq!(
                d.video_tag(0, Bytes::from(body)).unwrap_err(),
                FlvError::UnsupportedFourCc(*fourcc)
            );
        }
        let e = parse_ex_video(Bytes::from_static(&[0x90, 0, 0xff, 1, 2])).unwrap_err();
        assert!(e.to_string().contains("codec '0x00ff0102'"), "{e}");
        // Packet types 5 (MPEG-2 TS start, AV1 only), 6 (multitrack), 7 (ModEx) and reserved.
        for t in [5u8, 6, 7, 15] {
            let e = parse_ex_video(Bytes::copy_from_slice(&[0x90 | t, b'h', b'v', b'c', b'1']))
                .unwrap_err();
            assert_eq!(e, FlvError::ExPacketType(t));
        }
        // Reserved frame types 0, 6, 7.
        for ft in [0u8, 6, 7] {
            let e = parse_ex_video(Bytes::copy_from_slice(&[
                0x80 | (ft << 4) | 1,
                b'h',
                b'v',
                b'c',
                b'1',
                0,
                0,
                0,
            ]))
            .unwrap_err();
            assert_eq!(e, FlvError::ExFrameType(ft));
        }
        // The legacy parser names the mix-up instead of reading a codec id from PacketType.
        assert_eq!(
            parse_video(ex_video_sequence_end()).unwrap_err(),
            FlvError::EnhancedTag
        );
        assert_eq!(
            parse_ex_video(video_frame(true, 0, &[0, 0, 0, 1, 5])).unwrap_err(),
            FlvError::LegacyTag
        );
    }

    #[test]
    fn demuxer_yields_hevc_configuration_and_frames() {
        let mut d = TagDemuxer::new();
        let e = d
            .video_tag(0, ex_video_frame(true, 0, &[0, 0, 0, 2, 0x26, 1]))
            .unwrap_err();
        assert_eq!(e, FlvError::HevcBeforeConfig { ts_ms: 0 });
        let Some(DemuxedVideo::Hevc(HevcEvent::Config(c))) = d
            .video_tag(0, ex_video_sequence_start(HVCC_360P))
            .expect("start")
        else {
            panic!("no HEVC configuration");
        };
        assert_eq!((c.width, c.height), (640, 360));
        // The same record again changes nothing.
        assert!(
            d.video_tag(33, ex_video_sequence_start(HVCC_360P))
                .expect("repeat")
                .is_none()
        );
        let Some(DemuxedVideo::Hevc(HevcEvent::Frame(f))) = d
            .video_tag(40, ex_video_frame(true, 33, &[0, 0, 0, 2, 0x26, 1]))
            .expect("frame")
        else {
            panic!("no HEVC frame");
        };
        assert_eq!((f.dts, f.pts, f.key), (40_000, 73_000, true));
        assert_eq!(&f.data[..], &[0, 0, 0, 2, 0x26, 1]);
        // A NAL length running past the tag is refused.
        assert_eq!(
            d.video_tag(80, ex_video_frame(false, 0, &[0, 0, 0, 9, 2, 1]))
                .unwrap_err(),
            FlvError::NalLength { offset: 0 }
        );
        // A corrupt record is a codec error, not a panic.
        let e = d
            .video_tag(0, ex_video_sequence_start(&HVCC_360P[..40]))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("HEVCDecoderConfigurationRecord:"),
            "{e}"
        );
        // Metadata, command frames and the sequence end give nothing.
        assert!(
            d.video_tag(90, ex_video_sequence_end())
                .expect("end")
                .is_none()
        );
        // Legacy AVC still comes out as a MediaEvent, and video() refuses HEVC by name.
        assert!(matches!(
            d.video_tag(0, video_frame(true, 0, &[0, 0, 0, 1, 5])),
            Err(FlvError::VideoBeforeConfig { .. })
        ));
        assert_eq!(
            d.video(0, ex_video_frame(true, 0, &[0, 0, 0, 2, 0x26, 1]))
                .unwrap_err(),
            FlvError::NeedsConversion
        );
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
