//! The WSP connectionless push PDU (WAP-230 §8.2.4.1, §8.2.1): TID, PDU type, header length,
//! content type (§8.4.2.24) and headers (§8.4.2), then the body.

use crate::uintvar::{self, UintvarError};
use crate::{Layer, WapError};

/// PDU type Push (WAP-230 Table 34).
pub const PUSH: u8 = 0x06;
/// PDU type ConfirmedPush.
pub const CONFIRMED_PUSH: u8 = 0x07;
/// Well-known content type `application/vnd.wap.sic` (WAP-230 Table 40).
pub const CT_SIC: u8 = 0x2E;
/// Well-known content type `application/vnd.wap.slc`.
pub const CT_SLC: u8 = 0x30;
/// Header field X-Wap-Application-Id (WAP-230 Table 39).
pub const X_WAP_APPLICATION_ID: u8 = 0x2F;
/// Push application id `x-wap-application:wml.ua` (OMNA Push Application ID registry).
pub const APP_WML_UA: u32 = 0x02;

/// Names of the content types vshare meets.
pub fn content_type_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x2D => "text/vnd.wap.si",
        0x2E => "application/vnd.wap.sic",
        0x2F => "text/vnd.wap.sl",
        0x30 => "application/vnd.wap.slc",
        0x3E => "application/vnd.wap.mms-message",
        _ => return None,
    })
}

/// The media type of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    /// A well-known type by its code (Table 40).
    WellKnown(u8),
    /// A type by name.
    Text(String),
}

/// A header field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderName {
    WellKnown(u8),
    Text(String),
}

/// One header; the value is kept as encoded (short-integer, text, or length-prefixed octets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: Vec<u8>,
}

/// X-Wap-Application-Id values (WAP-230 §8.4.2.54).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationId {
    WellKnown(u32),
    Uri(String),
}

/// A connectionless push PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPdu {
    /// Transaction id (WAP-230 §8.2.1).
    pub tid: u8,
    pub pdu_type: u8,
    pub content_type: ContentType,
    /// Parameters of a general-form content type, as encoded.
    pub content_type_params: Vec<u8>,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

pub(crate) fn put_uintvar(out: &mut Vec<u8>, mut v: u32) {
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

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, at: usize, reason: impl Into<String>) -> WapError {
        WapError::Invalid {
            layer: Layer::Wsp,
            offset: self.base + at,
            reason: reason.into(),
        }
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WapError> {
        let v = *self.b.get(self.pos).ok_or(WapError::Truncated {
            layer: Layer::Wsp,
            offset: self.base + self.pos,
            what,
        })?;
        self.pos += 1;
        Ok(v)
    }
    fn uintvar(&mut self, what: &'static str) -> Result<u32, WapError> {
        let at = self.pos;
        let (v, n) = uintvar::read(&self.b[at..]).map_err(|e| match e {
            UintvarError::Truncated => WapError::Truncated {
                layer: Layer::Wsp,
                offset: self.base + self.b.len(),
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
                layer: Layer::Wsp,
                offset: self.base + self.pos,
                what,
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// A NUL-terminated text string (the NUL not included).
    fn text(&mut self, what: &'static str) -> Result<&'a [u8], WapError> {
        let rest = &self.b[self.pos..];
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or(WapError::Truncated {
                layer: Layer::Wsp,
                offset: self.base + self.b.len(),
                what,
            })?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
    /// Value-length (§8.4.2.2): 0..=30, or 31 then a uintvar.
    fn value_length(&mut self, first: u8, what: &'static str) -> Result<usize, WapError> {
        Ok(if first == 31 {
            self.uintvar(what)? as usize
        } else {
            usize::from(first)
        })
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

fn utf8(r: &Reader<'_>, b: &[u8], at: usize) -> Result<String, WapError> {
    String::from_utf8(b.to_vec()).map_err(|_| r.err(at, "text is not UTF-8"))
}

impl PushPdu {
    /// A push of an SI (WBXML) to the browser: content type `application/vnd.wap.sic`,
    /// X-Wap-Application-Id `x-wap-application:wml.ua`.
    pub fn service_indication(tid: u8, wbxml: Vec<u8>) -> PushPdu {
        Self::to_browser(tid, CT_SIC, wbxml)
    }

    /// A push of an SL (WBXML) to the browser: content type `application/vnd.wap.slc`.
    pub fn service_loading(tid: u8, wbxml: Vec<u8>) -> PushPdu {
        Self::to_browser(tid, CT_SLC, wbxml)
    }

    fn to_browser(tid: u8, ct: u8, body: Vec<u8>) -> PushPdu {
        PushPdu {
            tid,
            pdu_type: PUSH,
            content_type: ContentType::WellKnown(ct),
            content_type_params: Vec::new(),
            headers: vec![Header {
                name: HeaderName::WellKnown(X_WAP_APPLICATION_ID),
                value: vec![0x80 | APP_WML_UA as u8],
            }],
            body,
        }
    }

    /// The push application this PDU is for.
    pub fn application_id(&self) -> Option<ApplicationId> {
        let h = self
            .headers
            .iter()
            .find(|h| h.name == HeaderName::WellKnown(X_WAP_APPLICATION_ID))?;
        let v = &h.value;
        match *v.first()? {
            b if b >= 0x80 => Some(ApplicationId::WellKnown(u32::from(b & 0x7F))),
            n @ 1..=4 if v.len() == usize::from(n) + 1 => Some(ApplicationId::WellKnown(
                v[1..].iter().fold(0u32, |a, &b| a << 8 | u32::from(b)),
            )),
            b if b >= 32 => Some(ApplicationId::Uri(
                String::from_utf8_lossy(v.strip_suffix(&[0]).unwrap_or(v)).into(),
            )),
            _ => None,
        }
    }

    /// The content type's name, if it is one this crate knows or a text type.
    pub fn content_type_name(&self) -> Option<String> {
        match &self.content_type {
            ContentType::WellKnown(c) => content_type_name(*c).map(str::to_string),
            ContentType::Text(t) => Some(t.clone()),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        let mut media = Vec::new();
        match &self.content_type {
            ContentType::WellKnown(c) => media.push(0x80 | c),
            ContentType::Text(t) => {
                media.extend_from_slice(t.as_bytes());
                media.push(0);
            }
        }
        if self.content_type_params.is_empty() {
            headers.extend_from_slice(&media);
        } else {
            let len = media.len() + self.content_type_params.len();
            if len <= 30 {
                headers.push(len as u8);
            } else {
                headers.push(31);
                put_uintvar(&mut headers, len as u32);
            }
            headers.extend_from_slice(&media);
            headers.extend_from_slice(&self.content_type_params);
        }
        for h in &self.headers {
            match &h.name {
                HeaderName::WellKnown(c) => headers.push(0x80 | c),
                HeaderName::Text(t) => {
                    headers.extend_from_slice(t.as_bytes());
                    headers.push(0);
                }
            }
            headers.extend_from_slice(&h.value);
        }
        let mut out = vec![self.tid, self.pdu_type];
        put_uintvar(&mut out, headers.len() as u32);
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<PushPdu, WapError> {
        let mut r = Reader {
            b: bytes,
            pos: 0,
            base: 0,
        };
        let tid = r.u8("TID")?;
        let pdu_type = r.u8("PDU type")?;
        if pdu_type != PUSH && pdu_type != CONFIRMED_PUSH {
            return Err(r.err(
                1,
                format!("PDU type 0x{pdu_type:02X} is not Push (0x06) or ConfirmedPush (0x07)"),
            ));
        }
        let len_at = r.pos;
        let len = r.uintvar("header length")? as usize;
        if len == 0 {
            return Err(r.err(len_at, "header length 0 leaves no content type"));
        }
        let base = r.pos;
        let block = r.take(len, "headers")?;
        let body = bytes[r.pos..].to_vec();
        let mut h = Reader {
            b: block,
            pos: 0,
            base,
        };
        // Content type.
        let at = h.pos;
        let first = h.u8("content type")?;
        let (content_type, content_type_params) = match first {
            0x80..=0xFF => (ContentType::WellKnown(first & 0x7F), Vec::new()),
            0..=31 => {
                let n = h.value_length(first, "content type length")?;
                let v = h.take(n, "content type")?;
                let mut g = Reader {
                    b: v,
                    pos: 0,
                    base: base + h.pos - n,
                };
                let m = g.u8("media type")?;
                let ct = match m {
                    0x80..=0xFF => ContentType::WellKnown(m & 0x7F),
                    1..=30 => {
                        // Integer-value (long form) media code.
                        let c = g.take(usize::from(m), "media code")?;
                        let code = c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b));
                        ContentType::WellKnown(
                            u8::try_from(code)
                                .ok()
                                .filter(|c| *c < 0x80)
                                .ok_or_else(|| {
                                    g.err(0, format!("media code {code} is not a well-known type"))
                                })?,
                        )
                    }
                    32..=127 => {
                        g.pos -= 1;
                        let t = g.text("media type")?;
                        ContentType::Text(utf8(&g, t, 0)?)
                    }
                    _ => {
                        return Err(g.err(
                            0,
                            format!("media type starts with 0x{m:02X}, not a token character"),
                        ));
                    }
                };
                (ct, v[g.pos..].to_vec())
            }
            _ => {
                h.pos -= 1;
                let t = h.text("content type")?;
                (ContentType::Text(utf8(&h, t, at)?), Vec::new())
            }
        };
        // Headers.
        let mut headers = Vec::new();
        while !h.done() {
            let at = h.pos;
            let n = h.u8("header name")?;
            let name = match n {
                0x80..=0xFF => HeaderName::WellKnown(n & 0x7F),
                0x7F | 0x01..=0x1F => {
                    return Err(h.err(at, "header code page shifts are not supported"));
                }
                0 => return Err(h.err(at, "empty header name")),
                _ => {
                    h.pos -= 1;
                    let t = h.text("header name")?;
                    HeaderName::Text(utf8(&h, t, at)?)
                }
            };
            let vat = h.pos;
            let v = h.u8("header value")?;
            let value_end = match (v, &name) {
                (_, HeaderName::Text(_)) | (32..=127, _) => {
                    h.pos -= 1;
                    h.text("header value")?;
                    h.pos
                }
                (0x80..=0xFF, _) => h.pos,
                (0..=31, _) => {
                    let n = h.value_length(v, "header value length")?;
                    h.take(n, "header value")?;
                    h.pos
                }
            };
            headers.push(Header {
                name,
                value: block[vat..value_end].to_vec(),
            });
        }
        Ok(PushPdu {
            tid,
            pdu_type,
            content_type,
            content_type_params,
            headers,
            body,
        })
    }
}
