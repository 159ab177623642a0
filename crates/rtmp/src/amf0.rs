//! AMF0 values (Adobe "Action Message Format -- AMF 0", December 2007), encode and decode.
//! Our own code: `rml_amf0` recurses without a depth limit (a few kilobytes of nested objects
//! overflow the stack) and ignores short reads, and RTMP commands are hostile input.

use bytes::{BufMut, BytesMut};

/// Deepest nesting of objects/arrays we decode; real RTMP commands use two levels.
pub const MAX_DEPTH: usize = 16;
/// Most values one message may decode to (an `onMetaData` with a keyframe index has a few
/// thousand); each costs ~32 bytes however few input bytes it took.
pub const MAX_VALUES: usize = 16_384;
/// Most elements reserved ahead from a strict array's count: the count is the peer's word, so
/// the vector grows only as elements actually decode.
const PREALLOC_MAX: usize = 64;

/// One AMF0 value (AMF0 spec §2.1 type markers).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// number-marker 0x00, an IEEE 754 double (§2.2).
    Number(f64),
    /// boolean-marker 0x01 (§2.3).
    Boolean(bool),
    /// string-marker 0x02 / long-string-marker 0x0C (§2.4, §2.14).
    String(String),
    /// object-marker 0x03: ordered properties (§2.5).
    Object(Vec<(String, Value)>),
    /// null-marker 0x05 (§2.7).
    Null,
    /// undefined-marker 0x06 (§2.8).
    Undefined,
    /// ecma-array-marker 0x08: an associative array (§2.10).
    EcmaArray(Vec<(String, Value)>),
    /// strict-array-marker 0x0A (§2.12).
    StrictArray(Vec<Value>),
    /// date-marker 0x0B: ms since the epoch; the time-zone field is ignored (§2.13).
    Date(f64),
}

impl Value {
    /// The property `name` of an object or ECMA array.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => {
                p.iter().find(|(k, _)| k == name).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Amf0Error {
    #[error("AMF0 at byte {offset}: {needed} more bytes needed for {what}")]
    Truncated {
        offset: usize,
        needed: usize,
        what: &'static str,
    },
    #[error("AMF0 at byte {offset}: unknown or unsupported type marker 0x{marker:02x}")]
    Marker { offset: usize, marker: u8 },
    #[error("AMF0 at byte {offset}: string is not UTF-8")]
    Utf8 { offset: usize },
    #[error("AMF0 at byte {offset}: nesting deeper than {MAX_DEPTH} levels")]
    TooDeep { offset: usize },
    #[error("AMF0 at byte {offset}: strict array claims {count} elements in {left} bytes")]
    ArrayCount {
        offset: usize,
        count: u32,
        left: usize,
    },
    #[error("AMF0 at byte {offset}: more than {MAX_VALUES} values in one message")]
    TooMany { offset: usize },
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Amf0Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(Amf0Error::Truncated {
                offset: self.pos,
                needed: n,
                what,
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Amf0Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Amf0Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Amf0Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, Amf0Error> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn string(&mut self, len: usize, what: &'static str) -> Result<String, Amf0Error> {
        let offset = self.pos;
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| Amf0Error::Utf8 { offset })
    }

    /// Object properties up to the object-end marker 0x00 0x00 0x09 (§2.5, §2.11).
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let len = usize::from(self.u16("property name length")?);
            if len == 0 {
                let offset = self.pos;
                let m = self.u8("object-end marker")?;
                if m != 0x09 {
                    return Err(Amf0Error::Marker { offset, marker: m });
                }
                return Ok(props);
            }
            let name = self.string(len, "property name")?;
            let value = self.value(depth + 1)?;
            props.push((name, value));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        let offset = self.pos;
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep { offset });
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooMany { offset });
        }
        let marker = self.u8("type marker")?;
        Ok(match marker {
            0x00 => Value::Number(self.f64("number")?),
            0x01 => Value::Boolean(self.u8("boolean")? != 0),
            0x02 => {
                let len = usize::from(self.u16("string length")?);
                Value::String(self.string(len, "string")?)
            }
            0x03 => Value::Object(self.properties(depth)?),
            0x05 => Value::Null,
            0x06 => Value::Undefined,
            0x08 => {
                let _count = self.u32("ECMA array count")?;
                Value::EcmaArray(self.properties(depth)?)
            }
            0x0a => {
                let count = self.u32("strict array count")?;
                let left = self.data.len() - self.pos;
                // Every element takes at least one byte: refuse counts the input cannot hold
                // before allocating anything.
                if count as usize > left {
                    return Err(Amf0Error::ArrayCount {
                        offset,
                        count,
                        left,
                    });
                }
                let mut items = Vec::with_capacity((count as usize).min(PREALLOC_MAX));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            0x0b => {
                let ms = self.f64("date")?;
                let _tz = self.u16("date time zone")?;
                Value::Date(ms)
            }
            0x0c => {
                let len = self.u32("long string length")? as usize;
                Value::String(self.string(len, "long string")?)
            }
            m => return Err(Amf0Error::Marker { offset, marker: m }),
        })
    }
}

/// Decodes every value in `data` (an RTMP command or data message body).
pub fn decode_all(data: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut r = Reader {
        data,
        pos: 0,
        values: 0,
    };
    let mut values = Vec::new();
    while r.pos < data.len() {
        values.push(r.value(0)?);
    }
    Ok(values)
}

fn put_name(out: &mut BytesMut, s: &str) {
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn put_properties(out: &mut BytesMut, props: &[(String, Value)]) {
    for (k, v) in props {
        put_name(out, k);
        encode(out, v);
    }
    out.put_slice(&[0, 0, 0x09]);
}

/// Appends the encoding of `value` to `out`.
pub fn encode(out: &mut BytesMut, value: &Value) {
    match value {
        Value::Number(n) => {
            out.put_u8(0x00);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(0x01);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.put_u8(0x02);
            put_name(out, s);
        }
        Value::String(s) => {
            out.put_u8(0x0c);
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        Value::Object(p) => {
            out.put_u8(0x03);
            put_properties(out, p);
        }
        Value::Null => out.put_u8(0x05),
        Value::Undefined => out.put_u8(0x06),
        Value::EcmaArray(p) => {
            out.put_u8(0x08);
            out.put_u32(p.len() as u32);
            put_properties(out, p);
        }
        Value::StrictArray(items) => {
            out.put_u8(0x0a);
            out.put_u32(items.len() as u32);
            for v in items {
                encode(out, v);
            }
        }
        Value::Date(ms) => {
            out.put_u8(0x0b);
            out.put_f64(*ms);
            out.put_u16(0);
        }
    }
}

/// Builds an object value from `(&str, Value)` pairs.
pub fn object<const N: usize>(props: [(&str, Value); N]) -> Value {
    Value::Object(props.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A string value.
pub fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_type() {
        let v = vec![
            Value::Number(1.5),
            Value::Boolean(true),
            string("connect"),
            object([("app", string("live")), ("n", Value::Number(3.0))]),
            Value::Null,
            Value::Undefined,
            Value::EcmaArray(vec![("width".into(), Value::Number(640.0))]),
            Value::StrictArray(vec![Value::Null, Value::Boolean(false)]),
            Value::Date(1e12),
            string("x".repeat(70_000)),
        ];
        let mut out = BytesMut::new();
        for x in &v {
            encode(&mut out, x);
        }
        assert_eq!(decode_all(&out).expect("decode"), v);
    }

    #[test]
    fn known_bytes_of_connect_name() {
        // string-marker, u16 length 7, "connect"; then number 1.0.
        let bytes = [
            2, 0, 7, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            decode_all(&bytes).expect("decode"),
            vec![string("connect"), Value::Number(1.0)]
        );
    }

    #[test]
    fn hostile_input_is_an_error() {
        // Deep nesting: object → property "a" → object → ...
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[3, 0, 1, b'a']);
        }
        assert!(matches!(decode_all(&deep), Err(Amf0Error::TooDeep { .. })));
        assert!(matches!(
            decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]),
            Err(Amf0Error::ArrayCount {
                offset: 0,
                count: u32::MAX,
                left: 0
            })
        ));
        assert_eq!(
            decode_all(&[2, 0, 5, b'a']),
            Err(Amf0Error::Truncated {
                offset: 3,
                needed: 5,
                what: "string"
            })
        );
        assert_eq!(
            decode_all(&[0x11]),
            Err(Amf0Error::Marker {
                offset: 0,
                marker: 0x11
            })
        );
        assert_eq!(
            decode_all(&[2, 0, 1, 0xff]),
            Err(Amf0Error::Utf8 { offset: 3 })
        );
        assert!(decode_all(&[3, 0, 0, 7]).is_err());
        // Nested strict arrays each claiming nearly all the bytes left: before, each level
        // reserved count × 32 bytes (tens of MB from 1 MB of input); now a short error.
        let mut nested = Vec::new();
        for i in 0..MAX_DEPTH as u32 {
            nested.push(0x0a);
            nested.extend_from_slice(&(999_995 - 5 * i).to_be_bytes());
        }
        nested.resize(1_000_000, 0x05);
        assert!(matches!(
            decode_all(&nested),
            Err(Amf0Error::TooMany { .. })
        ));
        // Many small values at the top level are bounded the same way.
        assert!(matches!(
            decode_all(&vec![0x05; MAX_VALUES + 1]),
            Err(Amf0Error::TooMany { offset }) if offset == MAX_VALUES
        ));
        assert_eq!(
            decode_all(&vec![0x05; MAX_VALUES]).map(|v| v.len()),
            Ok(MAX_VALUES)
        );
    }
}
