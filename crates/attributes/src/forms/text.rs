//! The text form (docs/messages.md §Text): hand-written, the format is ours.
//!
//! Each record is two lines: the URL alone (so a plain phone shows it as a link), then
//! `VS1 k=vod;id=…;f=mp4;c=…;r=1280x720;fps=29.97;br=…;sz=…;d=…;ar=48000;ac=2;t=…;p=…`.
//! Keys appear in this order; zero or empty optional fields are left out. In values, `\`, `;`,
//! line feed and carriage return are written `\\`, `\;`, `\n`, `\r`. Lines end with `\n`.

use super::{Form, FormError, decimal_to_milli, fps_to_milli, milli_to_decimal, parse_uint};
use crate::{AttributeRecord, Kind};

const F: Form = Form::Text;
const PREFIX: &str = "VS1 ";

fn escape(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn field(out: &mut String, key: &str, v: &str) {
    out.push(';');
    out.push_str(key);
    out.push('=');
    escape(out, v);
}

/// Encodes records in the text form.
pub fn encode_text(records: &[AttributeRecord]) -> Result<String, FormError> {
    if records.is_empty() {
        return Err(FormError::Unencodable {
            form: F,
            field: "message",
            reason: "no records",
        });
    }
    let mut out = String::with_capacity(160 * records.len());
    for r in records {
        if r.url.is_empty() || r.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FormError::Unencodable {
                form: F,
                field: "url",
                reason: "is empty or contains white space or control characters",
            });
        }
        for (name, v) in [("video_id", &r.video_id), ("format", &r.format)] {
            if v.is_empty() {
                return Err(FormError::Unencodable {
                    form: F,
                    field: name,
                    reason: "is empty",
                });
            }
        }
        let fps = fps_to_milli(F, r.frame_rate)?;
        out.push_str(&r.url);
        out.push('\n');
        out.push_str(PREFIX);
        out.push_str(match r.kind {
            Kind::Live => "k=live",
            Kind::Vod => "k=vod",
        });
        field(&mut out, "id", &r.video_id);
        field(&mut out, "f", &r.format);
        if !r.codecs.is_empty() {
            field(&mut out, "c", &r.codecs);
        }
        if r.width != 0 || r.height != 0 {
            field(&mut out, "r", &format!("{}x{}", r.width, r.height));
        }
        if fps != 0 {
            field(&mut out, "fps", &milli_to_decimal(fps));
        }
        for (key, v) in [
            ("br", r.bitrate),
            ("sz", r.size),
            ("d", r.duration_ms),
            ("ar", r.audio_sample_rate.into()),
            ("ac", r.audio_channels.into()),
        ] {
            if v != 0 {
                field(&mut out, key, &v.to_string());
            }
        }
        if !r.title.is_empty() {
            field(&mut out, "t", &r.title);
        }
        if !r.poster.is_empty() {
            field(&mut out, "p", &r.poster);
        }
        if r.dvr != 0 {
            field(&mut out, "dvr", &r.dvr.to_string());
        }
        if r.frames_coming != 0 {
            field(&mut out, "fc", &r.frames_coming.to_string());
        }
        out.push('\n');
    }
    Ok(out)
}

const KEYS: [&str; 15] = [
    "k", "id", "f", "c", "r", "fps", "br", "sz", "d", "ar", "ac", "t", "p", "dvr", "fc",
];

/// Decodes a message in the text form.
pub fn decode_text(bytes: &[u8]) -> Result<Vec<AttributeRecord>, FormError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FormError::Invalid {
        form: F,
        offset: e.valid_up_to(),
        field: "message",
        reason: "not UTF-8".into(),
    })?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < text.len() {
        let rest = &text[pos..];
        let url_end = rest.find('\n').ok_or(FormError::Truncated {
            form: F,
            offset: pos + rest.len(),
            what: "URL line",
        })?;
        let url = &rest[..url_end];
        if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FormError::Invalid {
                form: F,
                offset: pos,
                field: "url",
                reason: "empty or contains white space".into(),
            });
        }
        let line_at = pos + url_end + 1;
        let line_rest = &text[line_at..];
        let line_end = line_rest.find('\n').ok_or(FormError::Truncated {
            form: F,
            offset: text.len(),
            what: "field line",
        })?;
        let line = &line_rest[..line_end];
        let mut r = parse_fields(line, line_at)?;
        r.url = url.to_string();
        records.push(r);
        pos = line_at + line_end + 1;
    }
    if records.is_empty() {
        return Err(FormError::Missing {
            form: F,
            offset: 0,
            field: "record",
        });
    }
    Ok(records)
}

fn parse_fields(line: &str, base: usize) -> Result<AttributeRecord, FormError> {
    let Some(body) = line.strip_prefix(PREFIX) else {
        return Err(FormError::Unexpected {
            form: F,
            offset: base,
            expected: "field line starting \"VS1 \"",
            found: format!("{:?}", line.chars().take(8).collect::<String>()),
        });
    };
    let mut r = AttributeRecord::blank(Kind::Live);
    let mut next_key = 0usize;
    let mut seen = [false; KEYS.len()];
    let mut at = base + PREFIX.len();
    let mut chars = body.char_indices().peekable();
    loop {
        // Key up to '='.
        let field_at = at;
        let mut key = String::new();
        let mut value = String::new();
        let mut found_eq = false;
        for (_, c) in chars.by_ref() {
            if c == '=' {
                found_eq = true;
                break;
            }
            key.push(c);
        }
        if !found_eq {
            return Err(FormError::Unexpected {
                form: F,
                offset: field_at,
                expected: "key=value",
                found: format!("{key:?}"),
            });
        }
        let value_at = field_at + key.len() + 1;
        let mut end = true;
        while let Some((i, c)) = chars.next() {
            match c {
                ';' => {
                    end = false;
                    at = base + PREFIX.len() + i + 1;
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, ';')) => value.push(';'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 'r')) => value.push('\r'),
                    _ => {
                        return Err(FormError::Invalid {
                            form: F,
                            offset: base + PREFIX.len() + i,
                            field: "escape",
                            reason: "a backslash must be followed by \\, ;, n or r".into(),
                        });
                    }
                },
                '\r' => {
                    return Err(FormError::Invalid {
                        form: F,
                        offset: base + PREFIX.len() + i,
                        field: "line",
                        reason: "carriage return must be written \\r".into(),
                    });
                }
                c => value.push(c),
            }
        }
        let Some(idx) = KEYS.iter().position(|k| *k == key) else {
            return Err(FormError::UnknownField {
                form: F,
                offset: field_at,
                field: key,
            });
        };
        let name = KEYS[idx];
        if idx < next_key || seen[idx] {
            return Err(FormError::Duplicate {
                form: F,
                offset: field_at,
                field: name,
            });
        }
        seen[idx] = true;
        next_key = idx + 1;
        let invalid = |reason: &str| FormError::Invalid {
            form: F,
            offset: value_at,
            field: name,
            reason: format!("{value:?}: {reason}"),
        };
        let uint = |max: u64| {
            parse_uint(&value)
                .filter(|&n| n != 0 && n <= max)
                .ok_or_else(|| invalid(&format!("expected a decimal 1..={max}")))
        };
        let string = || {
            if value.is_empty() {
                Err(invalid("empty values are written by leaving the field out"))
            } else {
                Ok(value.clone())
            }
        };
        match name {
            "k" => {
                r.kind = match value.as_str() {
                    "live" => Kind::Live,
                    "vod" => Kind::Vod,
                    _ => return Err(invalid("expected live or vod")),
                }
            }
            "id" => r.video_id = string()?,
            "f" => r.format = string()?,
            "c" => r.codecs = string()?,
            "r" => {
                let (w, h) = value
                    .split_once('x')
                    .and_then(|(w, h)| Some((parse_uint(w)?, parse_uint(h)?)))
                    .filter(|&(w, h)| w <= u32::MAX.into() && h <= u32::MAX.into() && (w | h) != 0)
                    .ok_or_else(|| invalid("expected WIDTHxHEIGHT"))?;
                r.width = w as u32;
                r.height = h as u32;
            }
            "fps" => {
                let m = decimal_to_milli(&value)
                    .filter(|&m| m != 0)
                    .ok_or_else(|| invalid("expected a decimal with at most 3 fraction digits"))?;
                r.frame_rate = m as f64 / 1000.0;
            }
            "br" => r.bitrate = uint(u64::MAX)?,
            "sz" => r.size = uint(u64::MAX)?,
            "d" => r.duration_ms = uint(u64::MAX)?,
            "ar" => r.audio_sample_rate = uint(u32::MAX.into())? as u32,
            "ac" => r.audio_channels = uint(u8::MAX.into())? as u8,
            "t" => r.title = string()?,
            "p" => r.poster = string()?,
            "dvr" => r.dvr = uint(u64::MAX)?,
            _ => r.frames_coming = uint(u64::MAX)?,
        }
        if end {
            break;
        }
    }
    for (i, name) in [(0, "k"), (1, "id"), (2, "f")] {
        if !seen[i] {
            return Err(FormError::Missing {
                form: F,
                offset: base,
                field: name,
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
    fn text_is_url_first_and_readable() {
        let t = encode_text(&[vod()]).unwrap();
        assert_eq!(
            t,
            "http://127.0.0.1:8080/vod/v7Kq2/video.mp4\n\
             VS1 k=vod;id=v7Kq2;f=mp4;c=avc1.64001F,mp4a.40.2;r=1280x720;fps=29.97;br=2500000;\
             sz=18874368;d=62040;ar=48000;ac=2;\
             t=Harbour\\; at dusk \\\\ \"quoted\" <tag> & 日落\\nline two\n"
        );
        assert_eq!(
            encode_text(&[live()]).unwrap(),
            "http://127.0.0.1:8080/live/v7Kq2/index.m3u8\nVS1 k=live;id=v7Kq2;f=ll-hls\n"
        );
    }

    #[test]
    fn bad_text_is_refused_with_offsets() {
        let ok = "http://h/x\nVS1 k=live;id=a;f=hls\n";
        assert!(decode_text(ok.as_bytes()).is_ok());
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("http://h/x", 10),
            ("http://h/x\nVS2 k=live;id=a;f=hls\n", 11),
            ("http://h/x\nVS1 k=live;id=a;f=hls;q=1\n", 33),
            ("http://h/x\nVS1 id=a;k=live;f=hls\n", 20),
            ("http://h/x\nVS1 k=live;id=a;f=hls;br=0\n", 36),
            ("http://h/x\nVS1 k=live;id=a;f=hls;br=012\n", 36),
            ("http://h/x\nVS1 k=live;id=a;f=hls;t=\\x\n", 35),
            ("http://h/x\nVS1 k=live;id=a\n", 11),
            ("http://h/x\nVS1 k=tv;id=a;f=hls\n", 17),
            ("http://h/x\nVS1 k=live;id=a;f=hls;fps=30.0\n", 37),
            ("http x\nVS1 k=live;id=a;f=hls\n", 0),
        ];
        for (input, offset) in cases {
            let e = decode_text(input.as_bytes()).unwrap_err();
            let got = match &e {
                FormError::Truncated { offset, .. }
                | FormError::Unexpected { offset, .. }
                | FormError::UnknownField { offset, .. }
                | FormError::Duplicate { offset, .. }
                | FormError::Missing { offset, .. }
                | FormError::Invalid { offset, .. } => *offset,
                FormError::Unencodable { .. } => usize::MAX,
            };
            assert_eq!(got, *offset, "{input:?}: {e}");
        }
    }
}
