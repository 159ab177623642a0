//! WBXML (WAP-192) for the SI and SL vocabularies: header, string table, tag and attribute
//! code pages, inline strings, string-table references, entities and OPAQUE data.

use crate::date::WapDate;
use crate::uintvar::{self, UintvarError};
use crate::{Layer, WapError};

/// An element of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    /// Attributes in document order; OPAQUE dates come back as `YYYY-MM-DDThh:mm:ssZ`.
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
}

/// Content of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn new(name: &str) -> Element {
        Element {
            name: name.into(),
            attributes: Vec::new(),
            children: Vec::new(),
        }
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Concatenated text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// The token tables of one document type (WAP-192 §5.8).
#[derive(Debug)]
pub struct Vocabulary {
    /// Well-known public identifier (WAP-192 §7.2.1).
    pub public_id: u32,
    /// Formal public identifier, written in the XML DOCTYPE.
    pub fpi: &'static str,
    /// The DTD's system identifier.
    pub dtd: &'static str,
    /// Tag tokens, code page 0.
    pub tags: &'static [(u8, &'static str)],
    /// Attribute-start tokens: (token, attribute, value prefix).
    pub attr_starts: &'static [(u8, &'static str, &'static str)],
    /// Attribute-value tokens (≥ 0x80).
    pub attr_values: &'static [(u8, &'static str)],
    /// Attributes whose values are dates carried as OPAQUE.
    pub date_attrs: &'static [&'static str],
}

/// WAP-167 §8.3: the SI token tables.
pub static SI: Vocabulary = Vocabulary {
    public_id: 0x05,
    fpi: "-//WAPFORUM//DTD SI 1.0//EN",
    dtd: "http://www.wapforum.org/DTD/si.dtd",
    tags: &[
        (0x05, "si"),
        (0x06, "indication"),
        (0x07, "info"),
        (0x08, "item"),
    ],
    attr_starts: &[
        (0x05, "action", "signal-none"),
        (0x06, "action", "signal-low"),
        (0x07, "action", "signal-medium"),
        (0x08, "action", "signal-high"),
        (0x09, "action", "delete"),
        (0x0A, "created", ""),
        (0x0B, "href", ""),
        (0x0C, "href", "http://"),
        (0x0D, "href", "http://www."),
        (0x0E, "href", "https://"),
        (0x0F, "href", "https://www."),
        (0x10, "si-expires", ""),
        (0x11, "si-id", ""),
        (0x12, "class", ""),
    ],
    attr_values: &[
        (0x85, ".com/"),
        (0x86, ".edu/"),
        (0x87, ".net/"),
        (0x88, ".org/"),
    ],
    date_attrs: &["created", "si-expires"],
};

/// WAP-168 §9.3: the SL token tables.
pub static SL: Vocabulary = Vocabulary {
    public_id: 0x06,
    fpi: "-//WAPFORUM//DTD SL 1.0//EN",
    dtd: "http://www.wapforum.org/DTD/sl.dtd",
    tags: &[(0x05, "sl")],
    attr_starts: &[
        (0x05, "action", "execute-low"),
        (0x06, "action", "execute-high"),
        (0x07, "action", "cache"),
        (0x08, "href", ""),
        (0x09, "href", "http://"),
        (0x0A, "href", "http://www."),
        (0x0B, "href", "https://"),
        (0x0C, "href", "https://www."),
    ],
    attr_values: &[
        (0x85, ".com/"),
        (0x86, ".edu/"),
        (0x87, ".net/"),
        (0x88, ".org/"),
    ],
    date_attrs: &[],
};

/// The vocabularies this crate knows.
pub static VOCABULARIES: [&Vocabulary; 2] = [&SI, &SL];

// Global tokens, WAP-192 §7.1.
const SWITCH_PAGE: u8 = 0x00;
const END: u8 = 0x01;
const ENTITY: u8 = 0x02;
const STR_I: u8 = 0x03;
const STR_T: u8 = 0x83;
const OPAQUE: u8 = 0xC3;
/// Written as WBXML 1.2 (WAP-192 §5.4), the version of the SI/SL examples and the widest
/// handset support; SI and SL need nothing from 1.3.
pub const VERSION: u8 = 0x02;
/// IANA MIBenum of UTF-8.
const UTF8: u32 = 106;

fn put_mb(out: &mut Vec<u8>, mut v: u32) {
    let mut tmp = [0u8; 5];
    let mut i = 4;
    tmp[i] = (v & 0x7F) as u8;
    v >>= 7;
    while v > 0 {
        i -= 1;
        tmp[i] = 0x80 | (v & 0x7F) as u8;
        v >>= 7;
    }
    out.extend_from_slice(&tmp[i..]);
}

fn put_str_i(out: &mut Vec<u8>, s: &str) -> Result<(), WapError> {
    if s.contains('\0') {
        return Err(WapError::Unencodable {
            layer: Layer::Wbxml,
            reason: "string contains NUL".into(),
        });
    }
    out.push(STR_I);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

/// Writes an attribute value, using value tokens for `.com/` and friends.
fn put_attr_value(out: &mut Vec<u8>, mut v: &str, vocab: &Vocabulary) -> Result<(), WapError> {
    while !v.is_empty() {
        let hit = vocab
            .attr_values
            .iter()
            .filter_map(|&(t, s)| v.find(s).map(|i| (i, t, s)))
            .min_by_key(|&(i, _, _)| i);
        match hit {
            Some((i, t, s)) => {
                if i > 0 {
                    put_str_i(out, &v[..i])?;
                }
                out.push(t);
                v = &v[i + s.len()..];
            }
            None => {
                put_str_i(out, v)?;
                v = "";
            }
        }
    }
    Ok(())
}

/// Encodes a document in WBXML 1.2, UTF-8, with an empty string table.
pub fn encode(root: &Element, vocab: &Vocabulary) -> Result<Vec<u8>, WapError> {
    let mut out = vec![VERSION];
    put_mb(&mut out, vocab.public_id);
    put_mb(&mut out, UTF8);
    out.push(0); // string table length
    encode_element(&mut out, root, vocab)?;
    Ok(out)
}

fn encode_element(out: &mut Vec<u8>, e: &Element, vocab: &Vocabulary) -> Result<(), WapError> {
    let tag = vocab
        .tags
        .iter()
        .find(|(_, n)| *n == e.name)
        .map(|(t, _)| *t)
        .ok_or_else(|| WapError::Unencodable {
            layer: Layer::Wbxml,
            reason: format!("no token for element <{}>", e.name),
        })?;
    let has_attrs = !e.attributes.is_empty();
    let has_content = !e.children.is_empty();
    out.push(tag | if has_attrs { 0x80 } else { 0 } | if has_content { 0x40 } else { 0 });
    if has_attrs {
        for (name, value) in &e.attributes {
            if vocab.date_attrs.contains(&name.as_str()) {
                let start = vocab
                    .attr_starts
                    .iter()
                    .find(|(_, n, _)| n == name)
                    .map(|s| s.0)
                    .ok_or_else(|| WapError::Unencodable {
                        layer: Layer::Wbxml,
                        reason: format!("no token for attribute {name}"),
                    })?;
                let d = WapDate::parse(value).ok_or_else(|| WapError::Unencodable {
                    layer: Layer::Wbxml,
                    reason: format!("{name}={value:?} is not YYYY-MM-DDThh:mm:ssZ"),
                })?;
                out.push(start);
                let o = d.to_opaque();
                out.push(OPAQUE);
                put_mb(out, o.len() as u32);
                out.extend_from_slice(&o);
                continue;
            }
            // The longest matching (attribute, value prefix) start token.
            let (start, prefix) = vocab
                .attr_starts
                .iter()
                .filter(|(_, n, p)| n == name && value.starts_with(p))
                .max_by_key(|(_, _, p)| p.len())
                .map(|&(t, _, p)| (t, p))
                .ok_or_else(|| WapError::Unencodable {
                    layer: Layer::Wbxml,
                    reason: format!("no token for attribute {name}={value:?}"),
                })?;
            out.push(start);
            put_attr_value(out, &value[prefix.len()..], vocab)?;
        }
        out.push(END);
    }
    if has_content {
        for c in &e.children {
            match c {
                Node::Element(child) => encode_element(out, child, vocab)?,
                Node::Text(t) => put_str_i(out, t)?,
            }
        }
        out.push(END);
    }
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    strtbl: &'a [u8],
    latin1: bool,
}

impl<'a> Reader<'a> {
    fn err(&self, offset: usize, reason: impl Into<String>) -> WapError {
        WapError::Invalid {
            layer: Layer::Wbxml,
            offset,
            reason: reason.into(),
        }
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WapError> {
        let v = *self.b.get(self.pos).ok_or(WapError::Truncated {
            layer: Layer::Wbxml,
            offset: self.pos,
            what,
        })?;
        self.pos += 1;
        Ok(v)
    }
    fn peek(&self, what: &'static str) -> Result<u8, WapError> {
        self.b.get(self.pos).copied().ok_or(WapError::Truncated {
            layer: Layer::Wbxml,
            offset: self.pos,
            what,
        })
    }
    fn mb(&mut self, what: &'static str) -> Result<u32, WapError> {
        let at = self.pos;
        let (v, n) = uintvar::read(&self.b[at..]).map_err(|e| match e {
            UintvarError::Truncated => WapError::Truncated {
                layer: Layer::Wbxml,
                offset: self.b.len(),
                what,
            },
            UintvarError::TooLarge => self.err(at, format!("{what} exceeds 32 bits")),
            UintvarError::TooLong => self.err(at, format!("{what} is longer than 5 octets")),
        })?;
        self.pos += n;
        Ok(v)
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WapError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(WapError::Truncated {
                layer: Layer::Wbxml,
                offset: self.pos,
                what,
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn string(&self, bytes: &[u8], at: usize) -> Result<String, WapError> {
        if self.latin1 {
            return Ok(bytes.iter().map(|&b| char::from(b)).collect());
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.err(at + e.utf8_error().valid_up_to(), "string is not UTF-8"))
    }
    fn str_i(&mut self) -> Result<String, WapError> {
        let at = self.pos;
        let rest = &self.b[self.pos..];
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or(WapError::Truncated {
                layer: Layer::Wbxml,
                offset: self.b.len(),
                what: "inline string",
            })?;
        self.pos += end + 1;
        self.string(&rest[..end], at)
    }
    fn str_t(&mut self) -> Result<String, WapError> {
        let at = self.pos;
        let idx = self.mb("string table index")? as usize;
        let s = self
            .strtbl
            .get(idx..)
            .ok_or_else(|| self.err(at, format!("index {idx} is outside the string table")))?;
        let end = s
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| self.err(at, "string table entry lacks its NUL"))?;
        self.string(&s[..end], at)
    }
    /// STR_I, STR_T or ENTITY as text; `None` if the next token is none of them.
    fn text_token(&mut self) -> Result<Option<String>, WapError> {
        let at = self.pos;
        match self.peek("token")? {
            STR_I => {
                self.pos += 1;
                self.str_i().map(Some)
            }
            STR_T => {
                self.pos += 1;
                self.str_t().map(Some)
            }
            ENTITY => {
                self.pos += 1;
                let c = self.mb("entity")?;
                let c = char::from_u32(c)
                    .ok_or_else(|| self.err(at, format!("entity {c} is not a character")))?;
                Ok(Some(c.to_string()))
            }
            _ => Ok(None),
        }
    }
    fn switch_page(&mut self) -> Result<(), WapError> {
        while self.peek("token")? == SWITCH_PAGE {
            let at = self.pos;
            self.pos += 1;
            let page = self.u8("code page")?;
            if page != 0 {
                return Err(self.err(at, format!("code page {page} is not defined for SI/SL")));
            }
        }
        Ok(())
    }
}

/// Decodes a WBXML SI or SL document (any WBXML version 1.0–1.3, UTF-8, US-ASCII or
/// ISO-8859-1, public id well-known or from the string table).
pub fn decode(bytes: &[u8]) -> Result<(&'static Vocabulary, Element), WapError> {
    let mut r = Reader {
        b: bytes,
        pos: 0,
        strtbl: &[],
        latin1: false,
    };
    let version = r.u8("version")?;
    if version > 0x03 {
        return Err(r.err(
            0,
            format!("version 0x{version:02X} is newer than WBXML 1.3"),
        ));
    }
    let pid_at = r.pos;
    let mut public_id = r.mb("public id")?;
    let literal_pid = if public_id == 0 {
        Some(r.mb("public id index")? as usize)
    } else {
        None
    };
    let cs_at = r.pos;
    let charset = if version == 0 { UTF8 } else { r.mb("charset")? };
    match charset {
        106 | 3 | 0 => {}
        4 => r.latin1 = true,
        other => {
            return Err(r.err(
                cs_at,
                format!("charset MIBenum {other} is not UTF-8, US-ASCII or ISO-8859-1"),
            ));
        }
    }
    let len = r.mb("string table length")? as usize;
    r.strtbl = r.take(len, "string table")?;
    if let Some(idx) = literal_pid {
        let entry = r
            .strtbl
            .get(idx..)
            .and_then(|s| s.iter().position(|&c| c == 0).map(|e| &s[..e]))
            .ok_or_else(|| r.err(pid_at, "public id index is outside the string table"))?;
        public_id = VOCABULARIES
            .iter()
            .find(|v| v.fpi.as_bytes() == entry)
            .map(|v| v.public_id)
            .ok_or_else(|| {
                r.err(
                    pid_at,
                    format!(
                        "public id {:?} is not SI or SL",
                        String::from_utf8_lossy(entry)
                    ),
                )
            })?;
    }
    let vocab = VOCABULARIES
        .iter()
        .copied()
        .find(|v| v.public_id == public_id)
        .ok_or_else(|| {
            r.err(
                pid_at,
                format!("public id 0x{public_id:02X} is not SI (0x05) or SL (0x06)"),
            )
        })?;
    r.switch_page()?;
    let root = decode_element(&mut r, vocab, 0)?;
    if r.pos != bytes.len() {
        return Err(r.err(r.pos, "bytes after the root element"));
    }
    Ok((vocab, root))
}

fn decode_element(
    r: &mut Reader<'_>,
    vocab: &Vocabulary,
    depth: usize,
) -> Result<Element, WapError> {
    if depth > 16 {
        return Err(r.err(r.pos, "elements nested deeper than 16"));
    }
    let at = r.pos;
    let t = r.u8("tag")?;
    let name = vocab
        .tags
        .iter()
        .find(|(k, _)| *k == t & 0x3F)
        .map(|(_, n)| *n)
        .ok_or_else(|| {
            r.err(
                at,
                format!(
                    "tag token 0x{:02X} is not in the {} table",
                    t & 0x3F,
                    vocab.fpi
                ),
            )
        })?;
    let mut e = Element::new(name);
    if t & 0x80 != 0 {
        loop {
            r.switch_page()?;
            let at = r.pos;
            let a = r.u8("attribute")?;
            if a == END {
                break;
            }
            let &(_, attr, prefix) = vocab
                .attr_starts
                .iter()
                .find(|(k, _, _)| *k == a)
                .ok_or_else(|| {
                    r.err(
                        at,
                        format!("attribute-start token 0x{a:02X} is not in the table"),
                    )
                })?;
            let mut value = prefix.to_string();
            loop {
                r.switch_page()?;
                let vat = r.pos;
                let next = r.peek("attribute value")?;
                if let Some(s) = r.text_token()? {
                    value.push_str(&s);
                } else if next == OPAQUE {
                    r.pos += 1;
                    let n = r.mb("opaque length")? as usize;
                    let data = r.take(n, "opaque data")?;
                    if !vocab.date_attrs.contains(&attr) {
                        return Err(r.err(
                            vat,
                            format!("OPAQUE in attribute {attr}, which is not a date"),
                        ));
                    }
                    let d = WapDate::from_opaque(data)
                        .ok_or_else(|| r.err(vat, format!("OPAQUE {data:02X?} is not a date")))?;
                    value.push_str(&d.to_string());
                } else if next >= 0x80 {
                    let &(_, s) = vocab
                        .attr_values
                        .iter()
                        .find(|(k, _)| *k == next)
                        .ok_or_else(|| {
                            r.err(
                                vat,
                                format!("attribute-value token 0x{next:02X} is not in the table"),
                            )
                        })?;
                    r.pos += 1;
                    value.push_str(s);
                } else {
                    break;
                }
            }
            e.attributes.push((attr.to_string(), value));
        }
    }
    if t & 0x40 != 0 {
        loop {
            r.switch_page()?;
            let at = r.pos;
            if r.peek("content")? == END {
                r.pos += 1;
                break;
            }
            if let Some(s) = r.text_token()? {
                match e.children.last_mut() {
                    Some(Node::Text(prev)) => prev.push_str(&s),
                    _ => e.children.push(Node::Text(s)),
                }
            } else if r.peek("content")? == OPAQUE {
                return Err(r.err(at, "OPAQUE content is not allowed in SI/SL"));
            } else {
                e.children
                    .push(Node::Element(decode_element(r, vocab, depth + 1)?));
            }
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_integers() {
        let mut out = Vec::new();
        put_mb(&mut out, 0xA0);
        assert_eq!(out, [0x81, 0x20]);
        out.clear();
        put_mb(&mut out, 0x60);
        assert_eq!(out, [0x60]);
    }
}
