//! The XML form (docs/messages.md §XML), read with quick-xml; the schema is ours.
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <vshare xmlns="urn:vshare:attributes" version="1"><video kind="vod" id="…" url="…" …/></vshare>
//! ```
//! One `video` element per record; zero or empty optional attributes are left out.

use quick_xml::events::{BytesStart, Event};

use super::{Form, FormError, decimal_to_milli, fps_to_milli, milli_to_decimal, parse_uint};
use crate::{AttributeRecord, Kind};

/// The namespace of the root element.
pub const XML_NAMESPACE: &str = "urn:vshare:attributes";
/// The schema version written in the root's `version` attribute.
pub const XML_VERSION: &str = "1";

const F: Form = Form::Xml;

fn attr(out: &mut String, name: &str, v: &str) -> Result<(), FormError> {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if !xml_char(c) => {
                return Err(FormError::Unencodable {
                    form: F,
                    field: "string",
                    reason: "contains a character XML 1.0 cannot carry",
                });
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

/// XML 1.0 `Char` production (§2.2), for the characters a string may hold.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Encodes records in the XML form.
pub fn encode_xml(records: &[AttributeRecord]) -> Result<String, FormError> {
    if records.is_empty() {
        return Err(FormError::Unencodable {
            form: F,
            field: "message",
            reason: "no records",
        });
    }
    let mut out = String::with_capacity(64 + 320 * records.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vshare xmlns=\"");
    out.push_str(XML_NAMESPACE);
    out.push_str("\" version=\"");
    out.push_str(XML_VERSION);
    out.push_str("\">");
    for r in records {
        for (name, v) in [("id", &r.video_id), ("url", &r.url), ("format", &r.format)] {
            if v.is_empty() {
                return Err(FormError::Unencodable {
                    form: F,
                    field: name,
                    reason: "is empty",
                });
            }
        }
        let fps = fps_to_milli(F, r.frame_rate)?;
        out.push_str("<video");
        attr(
            &mut out,
            "kind",
            if r.kind == Kind::Live { "live" } else { "vod" },
        )?;
        attr(&mut out, "id", &r.video_id)?;
        attr(&mut out, "url", &r.url)?;
        attr(&mut out, "format", &r.format)?;
        if !r.codecs.is_empty() {
            attr(&mut out, "codecs", &r.codecs)?;
        }
        let uints: [(&str, u64); 4] = [
            ("width", r.width.into()),
            ("height", r.height.into()),
            ("bitrate", r.bitrate),
            ("size", r.size),
        ];
        for (name, v) in &uints[..2] {
            if *v != 0 {
                attr(&mut out, name, &v.to_string())?;
            }
        }
        if fps != 0 {
            attr(&mut out, "frame-rate", &milli_to_decimal(fps))?;
        }
        for (name, v) in uints[2..].iter().copied().chain([
            ("duration-ms", r.duration_ms),
            ("audio-sample-rate", r.audio_sample_rate.into()),
            ("audio-channels", r.audio_channels.into()),
        ]) {
            if v != 0 {
                attr(&mut out, name, &v.to_string())?;
            }
        }
        if !r.title.is_empty() {
            attr(&mut out, "title", &r.title)?;
        }
        if !r.poster.is_empty() {
            attr(&mut out, "poster", &r.poster)?;
        }
        if r.dvr != 0 {
            attr(&mut out, "dvr", &r.dvr.to_string())?;
        }
        if r.frames_coming != 0 {
            attr(&mut out, "frames-coming", &r.frames_coming.to_string())?;
        }
        out.push_str("/>");
    }
    out.push_str("</vshare>\n");
    Ok(out)
}

const ATTRS: [&str; 17] = [
    "kind",
    "id",
    "url",
    "format",
    "codecs",
    "width",
    "height",
    "frame-rate",
    "bitrate",
    "size",
    "duration-ms",
    "audio-sample-rate",
    "audio-channels",
    "title",
    "poster",
    "dvr",
    "frames-coming",
];

/// Decodes a message in the XML form. DOCTYPEs, processing instructions, CDATA and text content
/// are refused; comments and white space between elements are allowed.
pub fn decode_xml(bytes: &[u8]) -> Result<Vec<AttributeRecord>, FormError> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut depth = 0u8; // 0 outside, 1 inside <vshare>, 2 inside <video>
    let mut seen_root = false;
    let mut records = Vec::new();
    loop {
        let at = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| FormError::Invalid {
            form: F,
            offset: reader.error_position() as usize,
            field: "document",
            reason: e.to_string(),
        })?;
        let unexpected = |expected: &'static str, found: String| FormError::Unexpected {
            form: F,
            offset: at,
            expected,
            found,
        };
        let name_of = |e: &BytesStart<'_>| String::from_utf8_lossy(e.name().as_ref()).into_owned();
        match ev {
            Event::Decl(_) if depth == 0 && !seen_root && at == 0 => {}
            Event::Comment(_) => {}
            Event::Start(ref e) | Event::Empty(ref e) if depth == 0 && !seen_root => {
                if e.name().as_ref() != b"vshare" {
                    return Err(unexpected("root element <vshare>", name_of(e)));
                }
                check_root(&reader, e, at)?;
                seen_root = true;
                depth = u8::from(matches!(ev, Event::Start(_)));
            }
            Event::Start(e) if depth == 1 => {
                if e.name().as_ref() != b"video" {
                    return Err(unexpected("element <video>", name_of(&e)));
                }
                records.push(parse_video(&reader, &e, at)?);
                depth = 2;
            }
            Event::Empty(e) if depth == 1 => {
                if e.name().as_ref() != b"video" {
                    return Err(unexpected("element <video>", name_of(&e)));
                }
                records.push(parse_video(&reader, &e, at)?);
            }
            Event::End(_) if depth == 2 => depth = 1,
            Event::End(_) if depth == 1 => depth = 0,
            Event::Eof if seen_root && depth == 0 => break,
            Event::Eof => {
                return Err(FormError::Truncated {
                    form: F,
                    offset: at,
                    what: "document",
                });
            }
            other => {
                return Err(unexpected(
                    match depth {
                        0 if seen_root => "end of document",
                        0 => "root element <vshare>",
                        1 => "element <video> or </vshare>",
                        _ => "</video>",
                    },
                    format!("{other:?}").chars().take(40).collect(),
                ));
            }
        }
    }
    if records.is_empty() {
        return Err(FormError::Missing {
            form: F,
            offset: bytes.len(),
            field: "video",
        });
    }
    Ok(records)
}

fn attributes<'a>(
    reader: &quick_xml::Reader<&[u8]>,
    e: &'a BytesStart<'a>,
    at: usize,
) -> Result<Vec<(String, String)>, FormError> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| FormError::Invalid {
            form: F,
            offset: at,
            field: "attribute",
            reason: err.to_string(),
        })?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .decode_and_unescape_value(reader.decoder())
            .map_err(|err| FormError::Invalid {
                form: F,
                offset: at,
                field: "attribute",
                reason: format!("{key}: {err}"),
            })?;
        if value.chars().any(|c| !xml_char(c)) {
            return Err(FormError::Invalid {
                form: F,
                offset: at,
                field: "attribute",
                reason: format!("{key}: contains a character XML 1.0 cannot carry"),
            });
        }
        out.push((key, value.into_owned()));
    }
    Ok(out)
}

fn check_root(
    reader: &quick_xml::Reader<&[u8]>,
    e: &BytesStart<'_>,
    at: usize,
) -> Result<(), FormError> {
    let mut ns = false;
    let mut version = false;
    for (k, v) in attributes(reader, e, at)? {
        match k.as_str() {
            "xmlns" if v == XML_NAMESPACE => ns = true,
            "version" if v == XML_VERSION => version = true,
            "xmlns" | "version" => {
                return Err(FormError::Unexpected {
                    form: F,
                    offset: at,
                    expected: if k == "xmlns" {
                        "xmlns=\"urn:vshare:attributes\""
                    } else {
                        "version=\"1\""
                    },
                    found: v,
                });
            }
            _ => {
                return Err(FormError::UnknownField {
                    form: F,
                    offset: at,
                    field: k,
                });
            }
        }
    }
    if !ns {
        return Err(FormError::Missing {
            form: F,
            offset: at,
            field: "xmlns",
        });
    }
    if !version {
        return Err(FormError::Missing {
            form: F,
            offset: at,
            field: "version",
        });
    }
    Ok(())
}

fn parse_video(
    reader: &quick_xml::Reader<&[u8]>,
    e: &BytesStart<'_>,
    at: usize,
) -> Result<AttributeRecord, FormError> {
    let mut r = AttributeRecord::blank(Kind::Live);
    let mut seen = [false; ATTRS.len()];
    for (key, value) in attributes(reader, e, at)? {
        let Some(idx) = ATTRS.iter().position(|k| *k == key) else {
            return Err(FormError::UnknownField {
                form: F,
                offset: at,
                field: key,
            });
        };
        let name = ATTRS[idx];
        if seen[idx] {
            return Err(FormError::Duplicate {
                form: F,
                offset: at,
                field: name,
            });
        }
        seen[idx] = true;
        let invalid = |reason: &str| FormError::Invalid {
            form: F,
            offset: at,
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
                Err(invalid(
                    "empty values are written by leaving the attribute out",
                ))
            } else {
                Ok(value.clone())
            }
        };
        match name {
            "kind" => {
                r.kind = match value.as_str() {
                    "live" => Kind::Live,
                    "vod" => Kind::Vod,
                    _ => return Err(invalid("expected live or vod")),
                }
            }
            "id" => r.video_id = string()?,
            "url" => r.url = string()?,
            "format" => r.format = string()?,
            "codecs" => r.codecs = string()?,
            "width" => r.width = uint(u32::MAX.into())? as u32,
            "height" => r.height = uint(u32::MAX.into())? as u32,
            "frame-rate" => {
                let m = decimal_to_milli(&value)
                    .filter(|&m| m != 0)
                    .ok_or_else(|| invalid("expected a decimal with at most 3 fraction digits"))?;
                r.frame_rate = m as f64 / 1000.0;
            }
            "bitrate" => r.bitrate = uint(u64::MAX)?,
            "size" => r.size = uint(u64::MAX)?,
            "duration-ms" => r.duration_ms = uint(u64::MAX)?,
            "audio-sample-rate" => r.audio_sample_rate = uint(u32::MAX.into())? as u32,
            "audio-channels" => r.audio_channels = uint(u8::MAX.into())? as u8,
            "title" => r.title = string()?,
            "poster" => r.poster = string()?,
            "dvr" => r.dvr = uint(u64::MAX)?,
            _ => r.frames_coming = uint(u64::MAX)?,
        }
    }
    for (i, name) in [(0, "kind"), (1, "id"), (2, "url"), (3, "format")] {
        if !seen[i] {
            return Err(FormError::Missing {
                form: F,
                offset: at,
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
    fn xml_matches_the_documented_example() {
        assert_eq!(
            encode_xml(&[live()]).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vshare xmlns=\"urn:vshare:attributes\" \
             version=\"1\"><video kind=\"live\" id=\"v7Kq2\" \
             url=\"http://127.0.0.1:8080/live/v7Kq2/index.m3u8\" format=\"ll-hls\"/></vshare>\n"
        );
    }

    #[test]
    fn pretty_printed_xml_with_comments_decodes() {
        let doc = r#"<?xml version="1.0"?>
<!-- shared by vshare -->
<vshare version="1" xmlns="urn:vshare:attributes">
  <video url="http://h/v.mp4" id="a" kind="vod" format="mp4" title="A &amp; B&#10;C">
  </video>
</vshare>
"#;
        let r = decode_xml(doc.as_bytes()).unwrap();
        assert_eq!(r[0].title, "A & B\nC");
        assert_eq!(r[0].kind, Kind::Vod);
        let back = decode_xml(encode_xml(&[vod()]).unwrap().as_bytes()).unwrap();
        assert_eq!(back, vec![vod()]);
    }

    #[test]
    fn bad_xml_is_refused() {
        let cases = [
            "",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"2\"><video/></vshare>",
            "<vshare version=\"1\"><video kind=\"vod\" id=\"a\" url=\"u\" format=\"f\"/></vshare>",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"1\"></vshare>",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"1\"><video kind=\"vod\" id=\"a\" url=\"u\"/></vshare>",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"1\"><video kind=\"vod\" id=\"a\" url=\"u\" format=\"f\" width=\"-1\"/></vshare>",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"1\"><video kind=\"vod\" id=\"a\" url=\"u\" format=\"f\" colour=\"red\"/></vshare>",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"1\"><video kind=\"vod\" id=\"a\" url=\"u\" format=\"f\"/>",
            "<vshare xmlns=\"urn:vshare:attributes\" version=\"1\"><video kind=\"vod\" id=\"a\" url=\"u\" format=\"f\">text</video></vshare>",
            "<!DOCTYPE x [<!ENTITY e \"x\">]><vshare xmlns=\"urn:vshare:attributes\" version=\"1\"/>",
            "<other/>",
        ];
        for c in cases {
            assert!(decode_xml(c.as_bytes()).is_err(), "{c}");
        }
    }
}
