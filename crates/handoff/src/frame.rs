//! Frames: `length u32 | kind u8 | body | tag` (the tag on authenticated frames only), and the
//! bodies of every kind, big-endian throughout (docs/live-handoff.md has the table).

use std::sync::Arc;

use bytes::Bytes;

use crate::LiveMessage;

/// The first bytes of a client's hello.
pub const MAGIC: [u8; 4] = *b"VSHO";
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// Bytes of each side's nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a handshake proof (HMAC-SHA256).
pub const PROOF_LEN: usize = 32;
/// Bytes of the tag that ends every frame after the handshake (HMAC-SHA256, truncated).
pub const TAG_LEN: usize = 16;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Frame kinds.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const CHALLENGE: u8 = 0x02;
    pub const PROOF: u8 = 0x03;
    pub const ACCEPT: u8 = 0x04;
    pub const REFUSE: u8 = 0x05;
    pub const INIT: u8 = 0x10;
    pub const PART: u8 = 0x11;
    pub const SEGMENT: u8 = 0x12;
    pub const STORED: u8 = 0x13;
    pub const END: u8 = 0x14;
    pub const MULTIVARIANT: u8 = 0x15;
    pub const STORED_SEGMENT: u8 = 0x16;
    pub const PING: u8 = 0x20;
    pub const PONG: u8 = 0x21;
}

/// What a decoder accepts; anything larger is an error, never an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, counted from the kind byte to the end of the tag.
    pub max_frame_bytes: u32,
    /// Longest stream name (`<video>` or `<video>/<rendition>`), bytes.
    pub max_stream_name: u16,
    /// Most parts a `StoredSegment` may list.
    pub max_parts_per_segment: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 << 20,
            max_stream_name: 128,
            max_parts_per_segment: 256,
        }
    }
}

/// Why the peer refused the connection (the `Refuse` frame's reason byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// 1: the client's version is not spoken here.
    Version,
    /// 2: the proof did not verify (a wrong shared secret).
    WrongSecret,
    /// 3: the frame broke the protocol or a limit.
    Protocol,
    /// Any other byte, from a newer peer.
    Other(u8),
}

impl RefuseReason {
    pub fn to_byte(self) -> u8 {
        match self {
            RefuseReason::Version => 1,
            RefuseReason::WrongSecret => 2,
            RefuseReason::Protocol => 3,
            RefuseReason::Other(b) => b,
        }
    }

    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => RefuseReason::Version,
            2 => RefuseReason::WrongSecret,
            3 => RefuseReason::Protocol,
            b => RefuseReason::Other(b),
        }
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefuseReason::Version => f.write_str("unsupported version"),
            RefuseReason::WrongSecret => f.write_str("wrong shared secret"),
            RefuseReason::Protocol => f.write_str("protocol error"),
            RefuseReason::Other(b) => write!(f, "reason {b}"),
        }
    }
}

/// Everything that can be wrong with the bytes of a hand-off connection. `offset` is where in
/// the connection's input (bytes received so far) the faulty thing starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("byte {offset}: frame of {len} bytes is over the limit of {max}")]
    FrameTooLarge { offset: u64, len: u64, max: u32 },
    #[error("byte {offset}: frame of {len} bytes is too short for its kind")]
    FrameTooShort { offset: u64, len: u64 },
    #[error("byte {offset}: unknown frame kind {kind:#04x}")]
    UnknownKind { offset: u64, kind: u8 },
    #[error("byte {offset}: frame kind {kind:#04x} not expected {state}")]
    Unexpected {
        offset: u64,
        kind: u8,
        state: &'static str,
    },
    #[error("byte {offset}: {field} runs past the end of its frame")]
    Truncated { offset: u64, field: &'static str },
    #[error("byte {offset}: {field} of {len} bytes is over the limit of {max}")]
    FieldTooLong {
        offset: u64,
        field: &'static str,
        len: u64,
        max: u64,
    },
    #[error("byte {offset}: {field} is not UTF-8")]
    NotUtf8 { offset: u64, field: &'static str },
    #[error("byte {offset}: {extra} bytes after the last field")]
    TrailingBytes { offset: u64, extra: u64 },
    #[error("byte {offset}: not a hand-off connection (bad magic)")]
    BadMagic { offset: u64 },
    #[error("byte {offset}: version {version} is not spoken here (1 is)")]
    Version { offset: u64, version: u16 },
    #[error("byte {offset}: the frame's tag does not verify (altered, replayed or reordered)")]
    BadTag { offset: u64 },
    #[error("byte {offset}: the peer's proof does not verify (wrong shared secret)")]
    WrongSecret { offset: u64 },
    #[error("the peer refused the connection: {0}")]
    Refused(RefuseReason),
    #[error("the connection ended inside a frame ({buffered} bytes of it received)")]
    EndedInFrame { buffered: u64 },
    #[error("not ready: the handshake is not finished, or this side cannot send that")]
    NotReady,
    #[error("{field} of {len} bytes cannot be sent (limit {max})")]
    TooLargeToSend {
        field: &'static str,
        len: u64,
        max: u64,
    },
    #[error("the session ended after an earlier error")]
    Closed,
}

/// Reads big-endian fields from a frame body, with errors naming the field and its offset.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Connection offset of `buf[0]`.
    base: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], HandoffError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(HandoffError::Truncated {
                offset: self.offset(),
                field,
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], HandoffError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, HandoffError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, HandoffError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, HandoffError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, HandoffError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn version(&mut self) -> Result<(u64, u16), HandoffError> {
        let at = self.offset();
        Ok((at, self.u16("version")?))
    }

    /// A UTF-8 string with a u16 length, at most `max` bytes.
    fn str16(&mut self, field: &'static str, max: u16) -> Result<String, HandoffError> {
        let at = self.offset();
        let len = self.u16(field)?;
        if len > max {
            return Err(HandoffError::FieldTooLong {
                offset: at,
                field,
                len: len.into(),
                max: max.into(),
            });
        }
        let at = self.offset();
        let b = self.take(len.into(), field)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| HandoffError::NotUtf8 { offset: at, field })
    }

    /// A UTF-8 text with a u32 length (bounded by the frame).
    fn text32(&mut self, field: &'static str) -> Result<Arc<str>, HandoffError> {
        let b = self.bytes32(field)?;
        let at = self.offset() - b.len() as u64;
        std::str::from_utf8(&b)
            .map(Arc::from)
            .map_err(|_| HandoffError::NotUtf8 { offset: at, field })
    }

    fn bytes32(&mut self, field: &'static str) -> Result<Bytes, HandoffError> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).map_err(|_| HandoffError::Truncated {
            offset: self.offset(),
            field,
        })?;
        Ok(Bytes::copy_from_slice(self.take(len, field)?))
    }

    pub(crate) fn end(&self) -> Result<(), HandoffError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(HandoffError::TrailingBytes {
                offset: self.offset(),
                extra: (self.buf.len() - self.pos) as u64,
            })
        }
    }
}

/// Appends a string with a u16 length; refuses one over `max`.
fn put_str16(
    out: &mut Vec<u8>,
    field: &'static str,
    s: &str,
    max: u16,
) -> Result<(), HandoffError> {
    let len =
        u16::try_from(s.len())
            .ok()
            .filter(|&l| l <= max)
            .ok_or(HandoffError::TooLargeToSend {
                field,
                len: s.len() as u64,
                max: max.into(),
            })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_bytes32(out: &mut Vec<u8>, field: &'static str, b: &[u8]) -> Result<(), HandoffError> {
    let len = u32::try_from(b.len()).map_err(|_| HandoffError::TooLargeToSend {
        field,
        len: b.len() as u64,
        max: u32::MAX.into(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// The kind byte of a message.
pub fn message_kind(msg: &LiveMessage) -> u8 {
    match msg {
        LiveMessage::Init { .. } => kind::INIT,
        LiveMessage::Part { .. } => kind::PART,
        LiveMessage::Segment { .. } => kind::SEGMENT,
        LiveMessage::Stored { .. } => kind::STORED,
        LiveMessage::End { .. } => kind::END,
        LiveMessage::Multivariant { .. } => kind::MULTIVARIANT,
        LiveMessage::StoredSegment { .. } => kind::STORED_SEGMENT,
    }
}

/// Appends the body of a message (no length, kind or tag) to `out`.
pub fn encode_message_body(
    msg: &LiveMessage,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<(), HandoffError> {
    let name_max = limits.max_stream_name;
    put_str16(out, "stream name", msg.stream(), name_max)?;
    match msg {
        LiveMessage::Init { name, init, .. } => {
            put_str16(out, "init name", name, name_max)?;
            put_bytes32(out, "init segment", init)?;
        }
        LiveMessage::Part {
            msn,
            index,
            bytes,
            playlist,
            ..
        } => {
            out.extend_from_slice(&msn.to_be_bytes());
            out.extend_from_slice(&index.to_be_bytes());
            put_bytes32(out, "playlist", playlist.as_bytes())?;
            put_bytes32(out, "part", bytes)?;
        }
        LiveMessage::Segment { msn, playlist, .. } => {
            out.extend_from_slice(&msn.to_be_bytes());
            put_bytes32(out, "playlist", playlist.as_bytes())?;
        }
        LiveMessage::Stored { msn, .. } => out.extend_from_slice(&msn.to_be_bytes()),
        LiveMessage::End { playlist, .. } | LiveMessage::Multivariant { playlist, .. } => {
            put_bytes32(out, "playlist", playlist.as_bytes())?;
        }
        LiveMessage::StoredSegment {
            msn,
            part_lengths,
            playlist,
            ..
        } => {
            out.extend_from_slice(&msn.to_be_bytes());
            put_bytes32(out, "playlist", playlist.as_bytes())?;
            let count = u16::try_from(part_lengths.len())
                .ok()
                .filter(|&c| c <= limits.max_parts_per_segment)
                .ok_or(HandoffError::TooLargeToSend {
                    field: "part count",
                    len: part_lengths.len() as u64,
                    max: limits.max_parts_per_segment.into(),
                })?;
            out.extend_from_slice(&count.to_be_bytes());
            for l in part_lengths {
                out.extend_from_slice(&l.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// Decodes the body of a message frame of kind `kind`; `base` is the body's offset in the
/// connection. None: `kind` is not a message kind.
pub fn decode_message_body(
    kind: u8,
    body: &[u8],
    limits: &Limits,
    base: u64,
) -> Result<Option<LiveMessage>, HandoffError> {
    if !(kind::INIT..=kind::STORED_SEGMENT).contains(&kind) {
        return Ok(None);
    }
    let mut r = Reader::new(body, base);
    let name_max = limits.max_stream_name;
    let stream = r.str16("stream name", name_max)?;
    let msg = match kind {
        kind::INIT => LiveMessage::Init {
            stream,
            name: r.str16("init name", name_max)?,
            init: r.bytes32("init segment")?,
        },
        kind::PART => LiveMessage::Part {
            stream,
            msn: r.u64("msn")?,
            index: r.u32("part index")?,
            playlist: r.text32("playlist")?,
            bytes: r.bytes32("part")?,
        },
        kind::SEGMENT => LiveMessage::Segment {
            stream,
            msn: r.u64("msn")?,
            playlist: r.text32("playlist")?,
        },
        kind::STORED => LiveMessage::Stored {
            stream,
            msn: r.u64("msn")?,
        },
        kind::END => LiveMessage::End {
            stream,
            playlist: r.text32("playlist")?,
        },
        kind::MULTIVARIANT => LiveMessage::Multivariant {
            stream,
            playlist: r.text32("playlist")?,
        },
        _ => {
            let msn = r.u64("msn")?;
            let playlist = r.text32("playlist")?;
            let at = r.offset();
            let count = r.u16("part count")?;
            if count > limits.max_parts_per_segment {
                return Err(HandoffError::FieldTooLong {
                    offset: at,
                    field: "part count",
                    len: count.into(),
                    max: limits.max_parts_per_segment.into(),
                });
            }
            let mut part_lengths = Vec::with_capacity(count.into());
            for _ in 0..count {
                part_lengths.push(r.u32("part length")?);
            }
            LiveMessage::StoredSegment {
                stream,
                msn,
                part_lengths,
                playlist,
            }
        }
    };
    r.end()?;
    Ok(Some(msg))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn every_variant() -> Vec<LiveMessage> {
        let s = || "abc123/720p".to_string();
        vec![
            LiveMessage::Init {
                stream: s(),
                name: "init.mp4".into(),
                init: Bytes::from_static(b"\0\0\0\x18ftypiso6"),
            },
            LiveMessage::Part {
                stream: s(),
                msn: u64::MAX - 1,
                index: 7,
                bytes: Bytes::from(vec![0xab; 1000]),
                playlist: Arc::from("#EXTM3U\n#EXT-X-PART:DURATION=0.333,URI=\"part3.7.m4s\"\n"),
            },
            LiveMessage::Segment {
                stream: s(),
                msn: 3,
                playlist: Arc::from("#EXTM3U\nseg3.m4s\n"),
            },
            LiveMessage::Stored {
                stream: s(),
                msn: 3,
            },
            LiveMessage::End {
                stream: s(),
                playlist: Arc::from("#EXT-X-ENDLIST\n"),
            },
            LiveMessage::Multivariant {
                stream: "abc123".into(),
                playlist: Arc::from("#EXTM3U\n720p/index.m3u8\n"),
            },
            LiveMessage::StoredSegment {
                stream: s(),
                msn: 2,
                part_lengths: vec![10, 20, 30],
                playlist: Arc::from("#EXTM3U\nseg2.m4s\n"),
            },
        ]
    }

    #[test]
    fn every_body_round_trips() {
        let limits = Limits::default();
        for msg in every_variant() {
            let mut body = Vec::new();
            encode_message_body(&msg, &limits, &mut body).unwrap();
            let back = decode_message_body(message_kind(&msg), &body, &limits, 0).unwrap();
            assert_eq!(back, Some(msg));
        }
    }

    #[test]
    fn every_truncation_is_an_error_with_its_offset() {
        let limits = Limits::default();
        for msg in every_variant() {
            let mut body = Vec::new();
            encode_message_body(&msg, &limits, &mut body).unwrap();
            for cut in 0..body.len() {
                let e = decode_message_body(message_kind(&msg), &body[..cut], &limits, 100)
                    .unwrap_err();
                match e {
                    HandoffError::Truncated { offset, .. } => {
                        assert!((100..=100 + cut as u64).contains(&offset), "{e}")
                    }
                    other => panic!("{other}"),
                }
            }
            let mut longer = body.clone();
            longer.push(0);
            assert_eq!(
                decode_message_body(message_kind(&msg), &longer, &limits, 0),
                Err(HandoffError::TrailingBytes {
                    offset: body.len() as u64,
                    extra: 1
                })
            );
        }
    }

    #[test]
    fn limits_and_bad_text_are_errors() {
        let limits = Limits {
            max_stream_name: 4,
            max_parts_per_segment: 2,
            ..Limits::default()
        };
        let long = LiveMessage::Stored {
            stream: "toolong".into(),
            msn: 1,
        };
        let mut body = Vec::new();
        assert!(matches!(
            encode_message_body(&long, &limits, &mut body),
            Err(HandoffError::TooLargeToSend { .. })
        ));
        encode_message_body(&long, &Limits::default(), &mut body).unwrap();
        assert_eq!(
            decode_message_body(kind::STORED, &body, &limits, 9),
            Err(HandoffError::FieldTooLong {
                offset: 9,
                field: "stream name",
                len: 7,
                max: 4
            })
        );
        let mut many = Vec::new();
        let seg = LiveMessage::StoredSegment {
            stream: "a".into(),
            msn: 0,
            part_lengths: vec![1, 2, 3],
            playlist: Arc::from(""),
        };
        encode_message_body(&seg, &Limits::default(), &mut many).unwrap();
        assert!(matches!(
            decode_message_body(kind::STORED_SEGMENT, &many, &limits, 0),
            Err(HandoffError::FieldTooLong {
                field: "part count",
                offset: 15,
                ..
            })
        ));
        // A stream name that is not UTF-8.
        let bad = [0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            decode_message_body(kind::STORED, &bad, &Limits::default(), 0),
            Err(HandoffError::NotUtf8 {
                offset: 2,
                field: "stream name"
            })
        );
        assert_eq!(
            decode_message_body(kind::PING, &bad, &Limits::default(), 0),
            Ok(None)
        );
    }
}
