//! The binary TLV form (docs/messages.md §TLV): hand-written because the tag table is ours.
//!
//! ```text
//! message := 'V' 0x01 record+
//! record  := 0x30 length field*          fields in ascending tag order
//! field   := tag length value            length: 0..=0x7F in one byte, else 0x81 b / 0x82 b b
//! ```
//! Integers are big-endian and minimal (no leading zero byte); zero integers and empty strings
//! are left out. Strings are UTF-8.

use super::{Form, FormError, fps_to_milli};
use crate::{AttributeRecord, Kind};

/// First byte of every TLV message (`'V'`).
pub const TLV_MAGIC: u8 = 0x56;
/// Version of the tag table this module writes and reads.
pub const TLV_VERSION: u8 = 0x01;
const RECORD: u8 = 0x30;

const F: Form = Form::Tlv;

/// The tag table, version 1. Tags must appear in this order.
mod tag {
    pub const KIND: u8 = 0x01;
    pub const VIDEO_ID: u8 = 0x02;
    pub const URL: u8 = 0x03;
    pub const FORMAT: u8 = 0x04;
    pub const CODECS: u8 = 0x05;
    pub const WIDTH: u8 = 0x06;
    pub const HEIGHT: u8 = 0x07;
    pub const FRAME_RATE: u8 = 0x08;
    pub const BITRATE: u8 = 0x09;
    pub const SIZE: u8 = 0x0A;
    pub const DURATION_MS: u8 = 0x0B;
    pub const AUDIO_SAMPLE_RATE: u8 = 0x0C;
    pub const AUDIO_CHANNELS: u8 = 0x0D;
    pub const TITLE: u8 = 0x0E;
    pub const POSTER: u8 = 0x0F;
    pub const DVR: u8 = 0x10;
    pub const FRAMES_COMING: u8 = 0x11;
}

fn tag_name(t: u8) -> &'static str {
    [
        "kind",
        "video_id",
        "url",
        "format",
        "codecs",
        "width",
        "height",
        "frame_rate",
        "bitrate",
        "size",
        "duration_ms",
        "audio_sample_rate",
        "audio_channels",
        "title",
        "poster",
        "dvr",
        "frames_coming",
    ]
    .get(usize::from(t).wrapping_sub(1))
    .copied()
    .unwrap_or("unknown")
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), FormError> {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => {
            return Err(FormError::Unencodable {
                form: F,
                field: "record",
                reason: "longer than 65535 bytes",
            });
        }
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, t: u8, value: &[u8]) -> Result<(), FormError> {
    out.push(t);
    put_len(out, value.len())?;
    out.extend_from_slice(value);
    Ok(())
}

fn put_uint(out: &mut Vec<u8>, t: u8, v: u64) -> Result<(), FormError> {
    if v == 0 {
        return Ok(());
    }
    let be = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    put(out, t, &be[skip..])
}

fn put_str(out: &mut Vec<u8>, t: u8, v: &str, required: bool) -> Result<(), FormError> {
    if v.is_empty() {
        if required {
            return Err(FormError::Unencodable {
                form: F,
                field: tag_name(t),
                reason: "is empty",
            });
        }
        return Ok(());
    }
    put(out, t, v.as_bytes())
}

/// Encodes records as a TLV message.
pub fn encode_tlv(records: &[AttributeRecord]) -> Result<Vec<u8>, FormError> {
    if records.is_empty() {
        return Err(FormError::Unencodable {
            form: F,
            field: "message",
            reason: "no records",
        });
    }
    let mut out = vec![TLV_MAGIC, TLV_VERSION];
    for r in records {
        let mut body = Vec::with_capacity(128);
        let kind = match r.kind {
            Kind::Live => 1,
            Kind::Vod => 2,
        };
        put(&mut body, tag::KIND, &[kind])?;
        put_str(&mut body, tag::VIDEO_ID, &r.video_id, true)?;
        put_str(&mut body, tag::URL, &r.url, true)?;
        put_str(&mut body, tag::FORMAT, &r.format, true)?;
        put_str(&mut body, tag::CODECS, &r.codecs, false)?;
        put_uint(&mut body, tag::WIDTH, r.width.into())?;
        put_uint(&mut body, tag::HEIGHT, r.height.into())?;
        put_uint(&mut body, tag::FRAME_RATE, fps_to_milli(F, r.frame_rate)?)?;
        put_uint(&mut body, tag::BITRATE, r.bitrate)?;
        put_uint(&mut body, tag::SIZE, r.size)?;
        put_uint(&mut body, tag::DURATION_MS, r.duration_ms)?;
        put_uint(
            &mut body,
            tag::AUDIO_SAMPLE_RATE,
            r.audio_sample_rate.into(),
        )?;
        put_uint(&mut body, tag::AUDIO_CHANNELS, r.audio_channels.into())?;
        put_str(&mut body, tag::TITLE, &r.title, false)?;
        put_str(&mut body, tag::POSTER, &r.poster, false)?;
        put_uint(&mut body, tag::DVR, r.dvr)?;
        put_uint(&mut body, tag::FRAMES_COMING, r.frames_coming)?;
        put(&mut out, RECORD, &body)?;
    }
    Ok(out)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }
    fn byte(&mut self, what: &'static str) -> Result<u8, FormError> {
        let b = *self.bytes.get(self.pos).ok_or(FormError::Truncated {
            form: F,
            offset: self.offset(),
            what,
        })?;
        self.pos += 1;
        Ok(b)
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(FormError::Truncated {
                form: F,
                offset: self.offset(),
                what,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn len(&mut self, what: &'static str) -> Result<usize, FormError> {
        let at = self.offset();
        let first = self.byte(what)?;
        let bad = |reason: &str| FormError::Invalid {
            form: F,
            offset: at,
            field: what,
            reason: format!("length {reason}"),
        };
        match first {
            0..=0x7F => Ok(first.into()),
            0x81 => {
                let b = self.byte(what)?;
                if b < 0x80 {
                    return Err(bad("not in its shortest form"));
                }
                Ok(b.into())
            }
            0x82 => {
                let hi = self.byte(what)?;
                let lo = self.byte(what)?;
                if hi == 0 {
                    return Err(bad("not in its shortest form"));
                }
                Ok(usize::from(hi) << 8 | usize::from(lo))
            }
            other => Err(bad(&format!("prefix 0x{other:02X} not 0x81 or 0x82"))),
        }
    }
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// Decodes a TLV message.
pub fn decode_tlv(bytes: &[u8]) -> Result<Vec<AttributeRecord>, FormError> {
    let mut c = Cursor {
        bytes,
        pos: 0,
        base: 0,
    };
    let magic = c.byte("magic")?;
    if magic != TLV_MAGIC {
        return Err(FormError::Unexpected {
            form: F,
            offset: 0,
            expected: "magic 0x56 ('V')",
            found: format!("0x{magic:02X}"),
        });
    }
    let version = c.byte("version")?;
    if version != TLV_VERSION {
        return Err(FormError::Unexpected {
            form: F,
            offset: 1,
            expected: "version 0x01",
            found: format!("0x{version:02X}"),
        });
    }
    let mut records = Vec::new();
    while !c.done() {
        let at = c.offset();
        let t = c.byte("record tag")?;
        if t != RECORD {
            return Err(FormError::Unexpected {
                form: F,
                offset: at,
                expected: "record tag 0x30",
                found: format!("0x{t:02X}"),
            });
        }
        let len = c.len("record")?;
        let body_at = c.offset();
        let body = c.take(len, "record")?;
        records.push(decode_record(body, body_at)?);
    }
    if records.is_empty() {
        return Err(FormError::Missing {
            form: F,
            offset: 2,
            field: "record",
        });
    }
    Ok(records)
}

fn decode_record(body: &[u8], base: usize) -> Result<AttributeRecord, FormError> {
    let mut c = Cursor {
        bytes: body,
        pos: 0,
        base,
    };
    let mut r = AttributeRecord::blank(Kind::Live);
    let mut last = 0u8;
    while !c.done() {
        let at = c.offset();
        let t = c.byte("field tag")?;
        if !(tag::KIND..=tag::FRAMES_COMING).contains(&t) {
            return Err(FormError::UnknownField {
                form: F,
                offset: at,
                field: format!("0x{t:02X}"),
            });
        }
        let name = tag_name(t);
        if t <= last {
            return Err(FormError::Duplicate {
                form: F,
                offset: at,
                field: name,
            });
        }
        last = t;
        let len = c.len(name)?;
        let value_at = c.offset();
        let v = c.take(len, name)?;
        let invalid = |reason: String| FormError::Invalid {
            form: F,
            offset: value_at,
            field: name,
            reason,
        };
        let string = || -> Result<String, FormError> {
            if v.is_empty() {
                return Err(invalid(
                    "empty string is written by leaving the field out".into(),
                ));
            }
            String::from_utf8(v.to_vec()).map_err(|e| FormError::Invalid {
                form: F,
                offset: value_at + e.utf8_error().valid_up_to(),
                field: name,
                reason: "not UTF-8".into(),
            })
        };
        let uint = |max: u64| -> Result<u64, FormError> {
            if v.is_empty() || v.len() > 8 || v[0] == 0 {
                return Err(invalid(format!(
                    "integer of {} bytes is not 1..=8 bytes with a non-zero first byte",
                    v.len()
                )));
            }
            let n = v.iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
            if n > max {
                return Err(invalid(format!("{n} exceeds {max}")));
            }
            Ok(n)
        };
        match t {
            tag::KIND => {
                r.kind = match v {
                    [1] => Kind::Live,
                    [2] => Kind::Vod,
                    _ => {
                        return Err(invalid(format!(
                            "{v:02X?} is not [01] (live) or [02] (vod)"
                        )));
                    }
                }
            }
            tag::VIDEO_ID => r.video_id = string()?,
            tag::URL => r.url = string()?,
            tag::FORMAT => r.format = string()?,
            tag::CODECS => r.codecs = string()?,
            tag::WIDTH => r.width = uint(u32::MAX.into())? as u32,
            tag::HEIGHT => r.height = uint(u32::MAX.into())? as u32,
            tag::FRAME_RATE => r.frame_rate = uint(1_000_000_000)? as f64 / 1000.0,
            tag::BITRATE => r.bitrate = uint(u64::MAX)?,
            tag::SIZE => r.size = uint(u64::MAX)?,
            tag::DURATION_MS => r.duration_ms = uint(u64::MAX)?,
            tag::AUDIO_SAMPLE_RATE => r.audio_sample_rate = uint(u32::MAX.into())? as u32,
            tag::AUDIO_CHANNELS => r.audio_channels = uint(u8::MAX.into())? as u8,
            tag::TITLE => r.title = string()?,
            tag::POSTER => r.poster = string()?,
            tag::DVR => r.dvr = uint(u64::MAX)?,
            _ => r.frames_coming = uint(u64::MAX)?,
        }
    }
    let end = base + body.len();
    for (t, present) in [
        (tag::KIND, !body.is_empty() && body[0] == tag::KIND),
        (tag::VIDEO_ID, !r.video_id.is_empty()),
        (tag::URL, !r.url.is_empty()),
        (tag::FORMAT, !r.format.is_empty()),
    ] {
        if !present {
            return Err(FormError::Missing {
                form: F,
                offset: end,
                field: tag_name(t),
            });
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::tests::{live, vod};

    #[test]
    fn live_record_has_the_documented_bytes() {
        // The example in docs/messages.md.
        let bytes = encode_tlv(&[live()]).unwrap();
        let mut want = vec![0x56, 0x01, 0x30, 0x3F, 0x01, 0x01, 0x01, 0x02, 0x05];
        want.extend_from_slice(b"v7Kq2");
        want.extend_from_slice(&[0x03, 0x2B]);
        want.extend_from_slice(b"http://127.0.0.1:8080/live/v7Kq2/index.m3u8");
        want.extend_from_slice(&[0x04, 0x06]);
        want.extend_from_slice(b"ll-hls");
        assert_eq!(bytes, want);
    }

    #[test]
    fn the_dvr_window_is_tag_0x10_after_the_title() {
        let mut r = live();
        r.title = "t".into();
        r.dvr = 7200;
        let bytes = encode_tlv(&[r.clone()]).unwrap();
        assert!(bytes.ends_with(&[tag::TITLE, 0x01, b't', 0x10, 0x02, 0x1C, 0x20]));
        assert_eq!(decode_tlv(&bytes).unwrap(), vec![r]);
    }

    #[test]
    fn frames_still_coming_are_tag_0x11_last() {
        let mut r = vod();
        r.poster = String::new();
        r.frames_coming = 45;
        let bytes = encode_tlv(&[r.clone()]).unwrap();
        assert!(bytes.ends_with(&[0x11, 0x01, 45]), "{bytes:02X?}");
        assert_eq!(decode_tlv(&bytes).unwrap(), vec![r]);
    }

    #[test]
    fn long_records_use_two_byte_lengths() {
        let mut r = vod();
        r.title = "x".repeat(300);
        let bytes = encode_tlv(&[r.clone()]).unwrap();
        assert_eq!(bytes[3], 0x82);
        assert_eq!(decode_tlv(&bytes).unwrap(), vec![r]);
    }

    #[test]
    fn errors_name_the_offset_and_field() {
        let good = encode_tlv(&[vod()]).unwrap();
        assert!(matches!(
            decode_tlv(&[]),
            Err(FormError::Truncated { offset: 0, .. })
        ));
        assert!(matches!(
            decode_tlv(&[0x56, 0x02]),
            Err(FormError::Unexpected { offset: 1, .. })
        ));
        assert!(matches!(
            decode_tlv(&[0x56, 0x01]),
            Err(FormError::Missing {
                field: "record",
                ..
            })
        ));
        // Cut anywhere inside: truncated, never a panic.
        for n in 3..good.len() {
            assert!(decode_tlv(&good[..n]).is_err(), "cut at {n}");
        }
        // Unknown tag 0x12 in place of the title tag.
        let mut bad = good.clone();
        let title_at = bad.iter().rposition(|&b| b == tag::TITLE).unwrap();
        bad[title_at] = 0x12;
        assert_eq!(
            decode_tlv(&bad),
            Err(FormError::UnknownField {
                form: Form::Tlv,
                offset: title_at,
                field: "0x12".into()
            })
        );
        // Kind 3.
        let mut bad = good.clone();
        let kind_at = if good[3] == 0x81 { 7 } else { 6 };
        bad[kind_at] = 3;
        assert!(
            matches!(decode_tlv(&bad), Err(FormError::Invalid { offset, field: "kind", .. }) if offset == kind_at)
        );
        // Fields swapped out of order: kind after video_id.
        let bad = [0x56, 0x01, 0x30, 0x06, 0x02, 0x01, b'a', 0x01, 0x01, 0x01];
        assert!(matches!(
            decode_tlv(&bad),
            Err(FormError::Duplicate {
                offset: 7,
                field: "kind",
                ..
            })
        ));
        // Non-minimal integer.
        let bad = [0x56, 0x01, 0x30, 0x04, 0x06, 0x02, 0x00, 0x05];
        assert!(matches!(
            decode_tlv(&bad),
            Err(FormError::Invalid { field: "width", .. })
        ));
        // Missing url.
        let bad = [0x56, 0x01, 0x30, 0x06, 0x01, 0x01, 0x01, 0x02, 0x01, b'a'];
        assert!(matches!(
            decode_tlv(&bad),
            Err(FormError::Missing { field: "url", .. })
        ));
    }
}
