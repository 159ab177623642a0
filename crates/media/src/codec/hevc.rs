//! H.265/HEVC decoder configuration (ISO/IEC 14496-15 §8.3.3.1, the `hvcC` box body) and the
//! SPS fields we report (ITU-T H.265 §7.3.2.2.1). Our own reader: no maintained crate parses
//! the record and the SPS picture size with typed errors; the bit reading (Exp-Golomb, emulation
//! prevention bytes) is `h264-reader`'s, which H.265 shares.

use std::num::NonZeroUsize;

use bytes::Bytes;
use h264_reader::rbsp::{BitRead, BitReader, ByteReader};

use super::CodecError;

/// NAL unit types of the parameter sets (H.265 Table 7-1).
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;

/// An HEVCDecoderConfigurationRecord with what its first SPS says about the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct HevcConfig {
    /// The record as received (the body of an `hvcC` box).
    pub record: Bytes,
    /// Picture size after the SPS conformance window (what a player shows).
    pub width: u32,
    pub height: u32,
    /// `avgFrameRate` of the record (frames per 256 s) as frames per second, when not 0.
    pub frame_rate: Option<f64>,
    pub profile_space: u8,
    pub tier_flag: bool,
    pub profile_idc: u8,
    pub profile_compatibility_flags: u32,
    /// The 48 bits of general constraint indicator flags.
    pub constraint_indicator_flags: [u8; 6],
    pub level_idc: u8,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Bytes in each NAL length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// The parameter set NAL units of the record (VPS, SPS, PPS; other arrays left out).
    pub parameter_sets: Vec<Bytes>,
}

fn err(what: impl Into<String>) -> CodecError {
    CodecError::HevcRecord(what.into())
}

fn need(record: &[u8], pos: usize, n: usize, what: &str) -> Result<(), CodecError> {
    if record.len() < pos + n {
        return Err(err(format!(
            "{what} at byte {pos}: {n} bytes needed, {} present",
            record.len().saturating_sub(pos)
        )));
    }
    Ok(())
}

impl HevcConfig {
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        let r = &record[..];
        need(r, 0, 23, "header")?;
        if r[0] != 1 {
            return Err(err(format!("configurationVersion {} (expected 1)", r[0])));
        }
        let profile_space = r[1] >> 6;
        let tier_flag = r[1] & 0x20 != 0;
        let profile_idc = r[1] & 0x1f;
        let profile_compatibility_flags = u32::from_be_bytes([r[2], r[3], r[4], r[5]]);
        let mut constraint_indicator_flags = [0u8; 6];
        constraint_indicator_flags.copy_from_slice(&r[6..12]);
        let level_idc = r[12];
        let bit_depth_chroma = (r[18] & 0x07) + 8;
        let avg_frame_rate = u16::from_be_bytes([r[19], r[20]]);
        let nal_length_size = (r[21] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(err("NAL length size 3 is not allowed"));
        }
        let arrays = r[22];
        let mut pos = 23;
        let mut parameter_sets = Vec::new();
        let mut sps = None;
        for i in 0..arrays {
            need(r, pos, 3, &format!("array {i}"))?;
            let nal_type = r[pos] & 0x3f;
            let count = u16::from_be_bytes([r[pos + 1], r[pos + 2]]);
            pos += 3;
            for j in 0..count {
                need(r, pos, 2, &format!("array {i} NAL unit {j} length"))?;
                let len = usize::from(u16::from_be_bytes([r[pos], r[pos + 1]]));
                pos += 2;
                need(r, pos, len, &format!("array {i} NAL unit {j}"))?;
                let nal = record.slice(pos..pos + len);
                pos += len;
                if len < 2 {
                    return Err(err(format!("array {i} NAL unit {j} of {len} bytes")));
                }
                let header_type = (nal[0] >> 1) & 0x3f;
                if header_type != nal_type {
                    return Err(err(format!(
                        "array {i} of NAL type {nal_type} holds a NAL unit of type {header_type}"
                    )));
                }
                if matches!(nal_type, NAL_VPS | NAL_SPS | NAL_PPS) {
                    if nal_type == NAL_SPS && sps.is_none() {
                        sps = Some(nal.clone());
                    }
                    parameter_sets.push(nal);
                }
            }
        }
        let sps = sps.ok_or_else(|| err("no sequence parameter set"))?;
        let pic = SpsPicture::parse(&sps)?;
        if pic.width == 0 || pic.height == 0 {
            return Err(CodecError::HevcSps(format!(
                "picture size {}x{}",
                pic.width, pic.height
            )));
        }
        Ok(HevcConfig {
            width: pic.width,
            height: pic.height,
            frame_rate: (avg_frame_rate != 0).then(|| f64::from(avg_frame_rate) / 256.0),
            profile_space,
            tier_flag,
            profile_idc,
            profile_compatibility_flags,
            constraint_indicator_flags,
            level_idc,
            chroma_format_idc: pic.chroma_format_idc,
            bit_depth_luma: pic.bit_depth_luma,
            bit_depth_chroma,
            nal_length_size,
            parameter_sets,
            record,
        })
    }

    /// `hvc1.P.C.TL.CC` (ISO/IEC 14496-15 Annex E.3): profile space letter and profile, the
    /// compatibility flags bit-reversed in hex, tier and level, then the constraint bytes with
    /// trailing zero bytes left out.
    pub fn codec_string(&self) -> String {
        let space = match self.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            self.profile_compatibility_flags.reverse_bits(),
            if self.tier_flag { 'H' } else { 'L' },
            self.level_idc
        );
        let used = self
            .constraint_indicator_flags
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraint_indicator_flags[..used] {
            s.push_str(&format!(".{b:02X}"));
        }
        s
    }
}

/// The SPS fields up to the bit depths (H.265 §7.3.2.2.1).
struct SpsPicture {
    width: u32,
    height: u32,
    chroma_format_idc: u8,
    bit_depth_luma: u8,
}

impl SpsPicture {
    fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        let e = |x: h264_reader::rbsp::BitReaderError| CodecError::HevcSps(format!("{x:?}"));
        let two = NonZeroUsize::new(2).ok_or_else(|| CodecError::HevcSps("header".into()))?;
        let mut b = BitReader::new(ByteReader::skipping_bytes(nal, two));
        b.skip(4, "sps_video_parameter_set_id").map_err(e)?;
        let max_sub_layers_minus1: u8 = b.read::<3, u8>("sps_max_sub_layers_minus1").map_err(e)?;
        b.skip(1, "sps_temporal_id_nesting_flag").map_err(e)?;
        // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3: the general part is 96 bits
        // (space, tier, profile, 32 compatibility flags, 48 constraint flags, level).
        b.skip(96, "general profile_tier_level").map_err(e)?;
        let n = u32::from(max_sub_layers_minus1);
        let mut profile_present = [false; 8];
        let mut level_present = [false; 8];
        for i in 0..n as usize {
            profile_present[i] = b.read_bit("sub_layer_profile_present_flag").map_err(e)?;
            level_present[i] = b.read_bit("sub_layer_level_present_flag").map_err(e)?;
        }
        if n > 0 {
            b.skip(2 * (8 - n), "reserved_zero_2bits").map_err(e)?;
        }
        for i in 0..n as usize {
            if profile_present[i] {
                b.skip(88, "sub_layer profile").map_err(e)?;
            }
            if level_present[i] {
                b.skip(8, "sub_layer_level_idc").map_err(e)?;
            }
        }
        let sps_id = b.read_ue("sps_seq_parameter_set_id").map_err(e)?;
        if sps_id > 15 {
            return Err(CodecError::HevcSps(format!(
                "sps_seq_parameter_set_id {sps_id}"
            )));
        }
        let chroma_format_idc = b.read_ue("chroma_format_idc").map_err(e)?;
        if chroma_format_idc > 3 {
            return Err(CodecError::HevcSps(format!(
                "chroma_format_idc {chroma_format_idc}"
            )));
        }
        let separate_planes =
            chroma_format_idc == 3 && b.read_bit("separate_colour_plane_flag").map_err(e)?;
        let pic_w = b.read_ue("pic_width_in_luma_samples").map_err(e)?;
        let pic_h = b.read_ue("pic_height_in_luma_samples").map_err(e)?;
        if pic_w > 16888 || pic_h > 16888 {
            // Level 6.2's largest picture side is √(8·MaxLumaPs) = 16888 (H.265 Annex A.4.1).
            return Err(CodecError::HevcSps(format!(
                "picture size {pic_w}x{pic_h} is beyond any level"
            )));
        }
        let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
        if b.read_bit("conformance_window_flag").map_err(e)? {
            left = b.read_ue("conf_win_left_offset").map_err(e)?;
            right = b.read_ue("conf_win_right_offset").map_err(e)?;
            top = b.read_ue("conf_win_top_offset").map_err(e)?;
            bottom = b.read_ue("conf_win_bottom_offset").map_err(e)?;
        }
        let bit_depth_luma = b.read_ue("bit_depth_luma_minus8").map_err(e)?;
        if bit_depth_luma > 8 {
            return Err(CodecError::HevcSps(format!(
                "bit_depth_luma_minus8 {bit_depth_luma}"
            )));
        }
        // Table 6-1: SubWidthC, SubHeightC.
        let (sub_w, sub_h): (u32, u32) = match (chroma_format_idc, separate_planes) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let crop_w = u64::from(sub_w) * (u64::from(left) + u64::from(right));
        let crop_h = u64::from(sub_h) * (u64::from(top) + u64::from(bottom));
        let width = u64::from(pic_w).saturating_sub(crop_w);
        let height = u64::from(pic_h).saturating_sub(crop_h);
        Ok(SpsPicture {
            width: width as u32,
            height: height as u32,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma: bit_depth_luma as u8 + 8,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The hvcC of a 640x360 30 fps libx265 encode (Main, level 2.1), as ffmpeg 5.1 wrote it
    /// into an MP4, with its SEI array (x265's option string) left out.
    pub(crate) const HVCC_360P: &[u8] = &[
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0xf0, 0x00,
        0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01,
        0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x03, 0x00, 0x3f, 0x95, 0x94, 0x09, 0xa1, 0x00, 0x01, 0x00, 0x2b, 0x42, 0x01, 0x01,
        0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f,
        0xa0, 0x05, 0x02, 0x01, 0x71, 0xf2, 0xe5, 0x95, 0x95, 0x29, 0x30, 0xbc, 0x05, 0xa0, 0x20,
        0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0xc1, 0xa2, 0x00, 0x01, 0x00, 0x06,
        0x44, 0x01, 0xc0, 0x73, 0xc1, 0x89,
    ];

    /// A 1920x1080 (coded 1088) 25 fps Main 10 libx265 encode with two temporal sub-layers
    /// (`temporal-layers=1`), level 4: exercises the sub-layer part of profile_tier_level and
    /// the conformance window.
    const HVCC_1080P10: &[u8] = &[
        0x01, 0x02, 0x20, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0xf0, 0x00,
        0xfc, 0xfd, 0xfa, 0xfa, 0x00, 0x00, 0x13, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x1c, 0x40, 0x01,
        0x0c, 0x02, 0xff, 0xff, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x03, 0x00, 0x78, 0x00, 0x00, 0x95, 0x94, 0xac, 0xa0, 0x48, 0xa1, 0x00, 0x01, 0x00,
        0x2f, 0x42, 0x01, 0x02, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x03, 0x00, 0x78, 0x00, 0x00, 0xa0, 0x03, 0xc0, 0x80, 0x11, 0x07, 0xca, 0xd9, 0x65,
        0x65, 0x2b, 0x2a, 0x52, 0x61, 0x78, 0x0b, 0x40, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
        0x00, 0x06, 0x42, 0xa2, 0x00, 0x01, 0x00, 0x06, 0x44, 0x01, 0xc0, 0x73, 0xc1, 0x89,
    ];

    #[test]
    fn parses_x265_records() {
        let c = HevcConfig::parse(Bytes::from_static(HVCC_360P)).expect("parse");
        assert_eq!((c.width, c.height), (640, 360));
        assert_eq!((c.profile_idc, c.level_idc, c.tier_flag), (1, 63, false));
        assert_eq!((c.chroma_format_idc, c.bit_depth_luma), (1, 8));
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.frame_rate, None);
        assert_eq!(c.parameter_sets.len(), 3);
        assert_eq!(c.codec_string(), "hvc1.1.6.L63.90");

        let c = HevcConfig::parse(Bytes::from_static(HVCC_1080P10)).expect("parse");
        assert_eq!((c.width, c.height), (1920, 1080));
        assert_eq!((c.profile_idc, c.level_idc), (2, 120));
        assert_eq!((c.bit_depth_luma, c.bit_depth_chroma), (10, 10));
        assert_eq!(c.codec_string(), "hvc1.2.4.L120.90");
    }

    #[test]
    fn rejects_truncated_and_inconsistent_records() {
        for n in 0..HVCC_360P.len() {
            let r = HevcConfig::parse(Bytes::copy_from_slice(&HVCC_360P[..n]));
            assert!(r.is_err(), "prefix of {n} bytes parsed");
        }
        let mut bad = HVCC_360P.to_vec();
        bad[0] = 0;
        assert!(
            HevcConfig::parse(Bytes::from(bad))
                .unwrap_err()
                .to_string()
                .contains("configurationVersion 0")
        );
        // The SPS array (the second) declared as a PPS array.
        let mut bad = HVCC_360P.to_vec();
        bad[52] = 0xa2;
        let e = HevcConfig::parse(Bytes::from(bad)).unwrap_err().to_string();
        assert!(e.contains("holds a NAL unit of type 33"), "{e}");
        // No SPS at all: only the VPS array.
        let mut only_vps = HVCC_360P[..52].to_vec();
        only_vps[22] = 1;
        let e = HevcConfig::parse(Bytes::from(only_vps))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no sequence parameter set"), "{e}");
    }
}
