//! H.264 decoder configuration (ISO/IEC 14496-15 §5.3.3.1) and the SPS fields we report.

use bytes::Bytes;
use h264_reader::avcc::AvcDecoderConfigurationRecord;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use super::CodecError;

/// An AVCDecoderConfigurationRecord with what its first SPS says about the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// The record as received (the body of an `avcC` box).
    pub record: Bytes,
    pub width: u32,
    pub height: u32,
    /// Frames per second from the SPS VUI timing info (H.264 Annex E.2.1), when present.
    pub frame_rate: Option<f64>,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Bytes in each NAL length prefix (1, 2 or 4).
    pub nal_length_size: u8,
}

impl AvcConfig {
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        let avcc = AvcDecoderConfigurationRecord::try_from(&record[..])
            .map_err(|e| CodecError::AvcRecord(format!("{e:?}")))?;
        let sps_bytes = avcc
            .sequence_parameter_sets()
            .next()
            .ok_or_else(|| CodecError::AvcRecord("no sequence parameter set".into()))?
            .map_err(|e| CodecError::AvcRecord(format!("{e:?}")))?;
        if sps_bytes.is_empty() {
            // h264-reader's RefNal panics on an empty NAL unit.
            return Err(CodecError::AvcRecord("empty sequence parameter set".into()));
        }
        let nal = RefNal::new(sps_bytes, &[], true);
        let sps = SeqParameterSet::from_bits(nal.rbsp_bits())
            .map_err(|e| CodecError::Sps(format!("{e:?}")))?;
        let (width, height) = sps
            .pixel_dimensions()
            .map_err(|e| CodecError::Sps(format!("{e:?}")))?;
        if width == 0 || height == 0 {
            return Err(CodecError::Sps(format!("picture size {width}x{height}")));
        }
        let frame_rate = sps
            .fps()
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0);
        let nal_length_size = avcc.length_size_minus_one() + 1;
        if nal_length_size == 3 {
            return Err(CodecError::AvcRecord(
                "NAL length size 3 is not allowed".into(),
            ));
        }
        Ok(AvcConfig {
            width,
            height,
            frame_rate,
            profile_idc: sps.profile_idc.into(),
            constraint_flags: sps.constraint_flags.into(),
            level_idc: sps.level_idc,
            nal_length_size,
            record,
        })
    }

    /// The SPS and PPS NAL units of the record, for muxers that want them out of band.
    pub fn parameter_sets(&self) -> (Vec<Bytes>, Vec<Bytes>) {
        let Ok(avcc) = AvcDecoderConfigurationRecord::try_from(&self.record[..]) else {
            return (Vec::new(), Vec::new());
        };
        let to_bytes = |s: &[u8]| self.record.slice_ref(s);
        let sps = avcc
            .sequence_parameter_sets()
            .filter_map(Result::ok)
            .map(to_bytes)
            .collect();
        let pps = avcc
            .picture_parameter_sets()
            .filter_map(Result::ok)
            .map(to_bytes)
            .collect();
        (sps, pps)
    }

    /// `avc1.PPCCLL` (RFC 6381 §3.3).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The avcC of a 1280x720 30 fps x264 encode (High profile, level 3.1), as ffmpeg 5.1 wrote it.
    pub(crate) const AVCC_720P30: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    #[test]
    fn parses_x264_720p30_record() {
        let c = AvcConfig::parse(Bytes::from_static(AVCC_720P30)).expect("parse");
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.frame_rate, Some(30.0));
        assert_eq!(c.codec_string(), "avc1.64001F");
        assert_eq!(c.nal_length_size, 4);
        let (sps, pps) = c.parameter_sets();
        assert_eq!((sps.len(), pps.len()), (1, 1));
    }

    #[test]
    fn empty_sps_is_an_error_not_a_panic() {
        // A record (found by fuzzing) with one SPS of length 0 (bytes 6-7).
        let r = [
            0x01, 0x00, 0x00, 0x1e, 0x08, 0x81, 0x00, 0x00, 0x07, 0x00, 0x0b, 0xe7, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x4b, 0x4b, 0x4b, 0x4b, 0x81, 0x00,
        ];
        assert!(AvcConfig::parse(Bytes::copy_from_slice(&r)).is_err());
    }

    #[test]
    fn rejects_truncated_record() {
        // The last 4 bytes are the optional High-profile extension (chroma format, bit depths).
        for n in 0..AVCC_720P30.len() - 4 {
            let r = AvcConfig::parse(Bytes::copy_from_slice(&AVCC_720P30[..n]));
            assert!(r.is_err(), "prefix of {n} bytes parsed");
        }
    }
}
