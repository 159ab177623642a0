//! The message forms of an attribute record: TLV, XML and text (see docs/messages.md).
//!
//! A *message* carries one or more [`AttributeRecord`]s (a live stream, or the VOD renditions of
//! one video). Each form has an encoder and a decoder side by side; every encoder produces the
//! one canonical byte string for a message, and every decoder accepts exactly what the encoders
//! produce (plus insignificant XML whitespace) and rejects anything else with a [`FormError`]
//! naming the form, the byte offset and the field.
//!
//! Frame rates travel in thousandths of a frame per second (29.97 and 30000/1001 both become
//! `29970`), so `decode(encode(r)) == r` holds for every record whose frame rate is a multiple of
//! 0.001; other rates come back rounded to the nearest thousandth.

pub mod compact;
mod text;
mod tlv;
mod xml;

pub use compact::{Compact, CompactError};
pub use text::{decode_text, encode_text};
pub use tlv::{TLV_MAGIC, TLV_VERSION, decode_tlv, encode_tlv};
pub use xml::{XML_NAMESPACE, XML_VERSION, decode_xml, encode_xml};

use crate::AttributeRecord;

/// Version of the text form, written as `VS1` at the start of each record's field line.
pub const TEXT_VERSION: u8 = 1;

/// One of the three message forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// Binary tag-length-value, for 8-bit data SMS to an application port.
    Tlv,
    /// Our XML schema, `urn:vshare:attributes`.
    Xml,
    /// Human-readable text, URL first, fields separated by `;`.
    Text,
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Form::Tlv => "TLV",
            Form::Xml => "XML",
            Form::Text => "text",
        })
    }
}

impl Form {
    /// Guesses the form of a message from its first bytes: the TLV magic, an XML `<`, or text.
    pub fn detect(bytes: &[u8]) -> Form {
        let trimmed = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(&[][..], |i| &bytes[i..]);
        if bytes.first() == Some(&TLV_MAGIC) && bytes.get(1) == Some(&TLV_VERSION) {
            Form::Tlv
        } else if trimmed.first() == Some(&b'<') {
            Form::Xml
        } else {
            Form::Text
        }
    }

    /// Encodes `records` in this form.
    pub fn encode(self, records: &[AttributeRecord]) -> Result<Vec<u8>, FormError> {
        match self {
            Form::Tlv => encode_tlv(records),
            Form::Xml => encode_xml(records).map(String::into_bytes),
            Form::Text => encode_text(records).map(String::into_bytes),
        }
    }

    /// Decodes a message in this form.
    pub fn decode(self, bytes: &[u8]) -> Result<Vec<AttributeRecord>, FormError> {
        match self {
            Form::Tlv => decode_tlv(bytes),
            Form::Xml => decode_xml(bytes),
            Form::Text => decode_text(bytes),
        }
    }
}

/// Decodes a message in whichever form [`Form::detect`] finds.
pub fn decode_any(bytes: &[u8]) -> Result<(Form, Vec<AttributeRecord>), FormError> {
    let form = Form::detect(bytes);
    form.decode(bytes).map(|r| (form, r))
}

/// Why a message did not decode, or a record could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("attribute {form} form, byte {offset}: message ends inside {what}")]
    Truncated {
        form: Form,
        offset: usize,
        what: &'static str,
    },
    #[error("attribute {form} form, byte {offset}: expected {expected}, found {found}")]
    Unexpected {
        form: Form,
        offset: usize,
        expected: &'static str,
        found: String,
    },
    #[error("attribute {form} form, byte {offset}: unknown field {field}")]
    UnknownField {
        form: Form,
        offset: usize,
        field: String,
    },
    #[error("attribute {form} form, byte {offset}: field {field} appears twice or out of order")]
    Duplicate {
        form: Form,
        offset: usize,
        field: &'static str,
    },
    #[error("attribute {form} form, byte {offset}: required field {field} missing")]
    Missing {
        form: Form,
        offset: usize,
        field: &'static str,
    },
    #[error("attribute {form} form, byte {offset}: invalid {field}: {reason}")]
    Invalid {
        form: Form,
        offset: usize,
        field: &'static str,
        reason: String,
    },
    #[error("attribute {form} form: cannot encode {field}: {reason}")]
    Unencodable {
        form: Form,
        field: &'static str,
        reason: &'static str,
    },
}

/// Frame rate in thousandths of a frame per second, checked for range.
pub(crate) fn fps_to_milli(form: Form, fps: f64) -> Result<u64, FormError> {
    if !fps.is_finite() || !(0.0..=1_000_000.0).contains(&fps) {
        return Err(FormError::Unencodable {
            form,
            field: "frame_rate",
            reason: "must be finite and within 0..=1000000",
        });
    }
    Ok((fps * 1000.0).round() as u64)
}

/// Writes thousandths as a decimal with no trailing zeros (`29970` → `29.97`, `30000` → `30`).
pub(crate) fn milli_to_decimal(milli: u64) -> String {
    let (int, frac) = (milli / 1000, milli % 1000);
    if frac == 0 {
        int.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{int}.{}", f.trim_end_matches('0'))
    }
}

/// Parses what [`milli_to_decimal`] writes, and only that.
pub(crate) fn decimal_to_milli(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    if s.contains('.') && (!digits(frac) || frac.len() > 3 || frac.ends_with('0')) {
        return None;
    }
    let int: u64 = int.parse().ok()?;
    let mut f = 0u64;
    for (i, b) in frac.bytes().enumerate() {
        f += u64::from(b - b'0') * [100, 10, 1][i];
    }
    let milli = int.checked_mul(1000)?.checked_add(f)?;
    (milli <= 1_000_000_000).then_some(milli)
}

/// Parses a canonical unsigned decimal (no sign, no leading zeros).
pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Kind;

    pub fn vod() -> AttributeRecord {
        AttributeRecord {
            kind: Kind::Vod,
            video_id: "v7Kq2".into(),
            url: "http://127.0.0.1:8080/vod/v7Kq2/video.mp4".into(),
            poster: String::new(),
            format: "mp4".into(),
            codecs: "avc1.64001F,mp4a.40.2".into(),
            width: 1280,
            height: 720,
            frame_rate: 29.97,
            bitrate: 2_500_000,
            size: 18_874_368,
            duration_ms: 62_040,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: 48_000,
            audio_channels: 2,
            title: "Harbour; at dusk \\ \"quoted\" <tag> & 日落\nline two".into(),
        }
    }

    pub fn live() -> AttributeRecord {
        AttributeRecord {
            kind: Kind::Live,
            video_id: "v7Kq2".into(),
            url: "http://127.0.0.1:8080/live/v7Kq2/index.m3u8".into(),
            poster: String::new(),
            format: "ll-hls".into(),
            codecs: String::new(),
            width: 0,
            height: 0,
            frame_rate: 0.0,
            bitrate: 0,
            size: 0,
            duration_ms: 0,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: 0,
            audio_channels: 0,
            title: String::new(),
        }
    }

    pub fn samples() -> Vec<Vec<AttributeRecord>> {
        let mut hls = vod();
        hls.format = "hls".into();
        hls.url = "http://127.0.0.1:8080/vod/v7Kq2/index.m3u8".into();
        hls.frame_rate = 30.0;
        hls.width = u32::MAX;
        hls.bitrate = u64::MAX;
        let mut pictured = vod();
        pictured.poster = POSTER.into();
        let mut live_pictured = live();
        live_pictured.poster = POSTER.into();
        let mut dvr = live();
        dvr.dvr = 7200;
        dvr.title = "with a DVR window".into();
        let mut coming = vod();
        coming.frames_coming = 45;
        vec![
            vec![vod()],
            vec![live()],
            vec![dvr],
            vec![coming],
            vec![vod(), hls],
            vec![live(), vod()],
            vec![live_pictured, pictured],
        ]
    }

    pub const POSTER: &str = "http://127.0.0.1:8080/vod/v7Kq2/poster.jpg";

    #[test]
    fn the_poster_travels_in_every_form() {
        let mut r = live();
        r.poster = POSTER.into();
        let tlv = Form::Tlv.encode(std::slice::from_ref(&r)).unwrap();
        let mut field = vec![0x0F, POSTER.len() as u8];
        field.extend_from_slice(POSTER.as_bytes());
        assert!(tlv.ends_with(&field), "TLV: tag 0x0F last");
        let xml = String::from_utf8(Form::Xml.encode(std::slice::from_ref(&r)).unwrap()).unwrap();
        assert!(xml.contains(&format!(" poster=\"{POSTER}\"/>")), "{xml}");
        let text = String::from_utf8(Form::Text.encode(std::slice::from_ref(&r)).unwrap()).unwrap();
        assert!(text.ends_with(&format!(";p={POSTER}\n")), "{text}");
        for form in [Form::Tlv, Form::Xml, Form::Text] {
            let back = form
                .decode(&form.encode(std::slice::from_ref(&r)).unwrap())
                .unwrap();
            assert_eq!(back[0].poster, POSTER, "{form}");
        }
        // The documented vectors (docs/messages.md).
        assert_eq!(tlv.len(), 111);
        assert_eq!(&tlv[2..4], &[0x30, 0x6B]);
        assert!(xml.contains(&format!("format=\"ll-hls\" poster=\"{POSTER}\"/>")));
        assert_eq!(
            text,
            format!(
                "http://127.0.0.1:8080/live/v7Kq2/index.m3u8\nVS1 k=live;id=v7Kq2;f=ll-hls;p={POSTER}\n"
            )
        );
        // JSON: absent when empty, so older readers see the same shape.
        let json = serde_json::to_string(&live()).unwrap();
        assert!(!json.contains("poster"));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(&format!("\"poster\":\"{POSTER}\"")));
    }

    #[test]
    fn every_form_round_trips_every_sample() {
        for form in [Form::Tlv, Form::Xml, Form::Text] {
            for records in samples() {
                let bytes = form.encode(&records).unwrap();
                assert_eq!(Form::detect(&bytes), form);
                let back = form.decode(&bytes).unwrap();
                assert_eq!(back, records, "{form}");
                assert_eq!(form.encode(&back).unwrap(), bytes, "{form} canonical");
                assert_eq!(decode_any(&bytes).unwrap(), (form, records.clone()));
            }
        }
    }

    #[test]
    fn frame_rates_round_to_thousandths() {
        let mut r = vod();
        r.frame_rate = 30000.0 / 1001.0;
        for form in [Form::Tlv, Form::Xml, Form::Text] {
            let back = form
                .decode(&form.encode(std::slice::from_ref(&r)).unwrap())
                .unwrap();
            assert_eq!(back[0].frame_rate, 29.97, "{form}");
        }
        r.frame_rate = f64::NAN;
        for form in [Form::Tlv, Form::Xml, Form::Text] {
            assert!(matches!(
                form.encode(std::slice::from_ref(&r)),
                Err(FormError::Unencodable {
                    field: "frame_rate",
                    ..
                })
            ));
        }
    }

    #[test]
    fn empty_messages_and_missing_required_fields_are_refused() {
        for form in [Form::Tlv, Form::Xml, Form::Text] {
            assert!(form.encode(&[]).is_err(), "{form}");
            let mut r = vod();
            r.url.clear();
            assert!(form.encode(&[r]).is_err(), "{form}");
        }
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(milli_to_decimal(29970), "29.97");
        assert_eq!(milli_to_decimal(30000), "30");
        assert_eq!(milli_to_decimal(5), "0.005");
        assert_eq!(decimal_to_milli("29.97"), Some(29970));
        assert_eq!(decimal_to_milli("0.005"), Some(5));
        for bad in [
            "29.970", "029", "", ".5", "1.", "1.2345", "-1", "1e3", "1.5x",
        ] {
            assert_eq!(decimal_to_milli(bad), None, "{bad}");
        }
    }

    #[test]
    fn server_json_records_encode() {
        // The shape the server's API returns (serde of AttributeRecord).
        let json = r#"{"kind":"live","video_id":"abc","url":"http://h/live/abc/index.m3u8",
            "format":"ll-hls","codecs":"avc1.42C01E,mp4a.40.2","width":640,"height":360,
            "frame_rate":25.0,"bitrate":800000,"size":1000,"duration_ms":4000,
            "audio_sample_rate":44100,"audio_channels":1,"title":"t"}"#;
        let r: AttributeRecord = serde_json::from_str(json).unwrap();
        for form in [Form::Tlv, Form::Xml, Form::Text] {
            let bytes = form.encode(std::slice::from_ref(&r)).unwrap();
            assert_eq!(form.decode(&bytes).unwrap(), vec![r.clone()]);
        }
    }
}
