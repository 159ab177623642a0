//! The RTMP chunk stream (Adobe RTMP spec 1.0, §5.3): splitting messages into chunks and
//! reassembling them. Our own code: `rml_rtmp`'s deserializer keeps one partial message for all
//! chunk streams (interleaved chunks corrupt each other), has no message-size limit, and its
//! length arithmetic underflows on hostile headers.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::RtmpError;

/// Chunk size every peer starts with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Most chunk streams one peer may use at once; encoders use fewer than ten.
pub const MAX_CHUNK_STREAMS: usize = 64;

/// One reassembled message (§5.3.1.2 message header fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub csid: u32,
    /// Timestamp as carried on the wire: 32 bits, wraps after ~49.7 days.
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    /// The last timestamp field (absolute for type 0, delta otherwise), reused by type 3.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last header carried an extended timestamp; type 3 chunks then repeat it.
    extended: bool,
    /// Whether a type 0 header was ever seen (types 1–3 inherit from it).
    started: bool,
    partial: Option<BytesMut>,
}

/// Reassembles messages from the peer's chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    max_chunk_size: u32,
    max_message_size: usize,
    /// Largest message of any type but audio and video (commands, data, control).
    max_control_size: usize,
    streams: HashMap<u32, ChunkStream>,
    buffer: BytesMut,
    /// Stream offset of `buffer[0]`, for error messages.
    offset: u64,
    partial_bytes: usize,
}

impl ChunkDecoder {
    /// `offset` is the connection byte offset of the first chunk (after the handshake).
    pub fn new(max_chunk_size: u32, max_message_size: usize, offset: u64) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_chunk_size,
            max_message_size,
            max_control_size: max_message_size,
            streams: HashMap::new(),
            buffer: BytesMut::new(),
            offset,
            partial_bytes: 0,
        }
    }

    /// Sets the largest audio/video message and the largest message of any other type.
    pub fn set_limits(&mut self, max_message_size: usize, max_control_size: usize) {
        self.max_message_size = max_message_size;
        self.max_control_size = max_control_size.min(max_message_size);
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes consumed so far, counted from the start of the connection.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Applies the peer's Set Chunk Size (§5.4.1): 1 to 2^31−1, and at most our limit.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        if size == 0 || size > self.max_chunk_size {
            return Err(RtmpError::Protocol(format!(
                "Set Chunk Size {size} is outside 1..={} allowed",
                self.max_chunk_size
            )));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Abort Message (§5.4.2): drop the partial message of a chunk stream.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid)
            && let Some(p) = s.partial.take()
        {
            self.partial_bytes -= p.len();
        }
    }

    fn err(&self, what: String) -> RtmpError {
        RtmpError::Chunk {
            offset: self.offset,
            what,
        }
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, RtmpError> {
        loop {
            match self.next_chunk()? {
                Step::NeedMore => return Ok(None),
                Step::Partial => continue,
                Step::Message(m) => return Ok(Some(m)),
            }
        }
    }

    fn next_chunk(&mut self) -> Result<Step, RtmpError> {
        let b = &self.buffer[..];
        let Some(&first) = b.first() else {
            return Ok(Step::NeedMore);
        };
        let fmt = first >> 6;
        // Basic header (§5.3.1.1): 1, 2 or 3 bytes.
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(x) => (u32::from(*x) + 64, 2),
                None => return Ok(Step::NeedMore),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(x), Some(y)) => (u32::from(*y) * 256 + u32::from(*x) + 64, 3),
                _ => return Ok(Step::NeedMore),
            },
            n => (u32::from(n), 1),
        };
        if !self.streams.contains_key(&csid) {
            if fmt != 0 {
                return Err(self.err(format!(
                    "chunk stream {csid} starts with a type {fmt} header; the first must be type 0"
                )));
            }
            if self.streams.len() >= MAX_CHUNK_STREAMS {
                return Err(self.err(format!(
                    "more than {MAX_CHUNK_STREAMS} chunk streams in use"
                )));
            }
        }
        let header_len = [11usize, 7, 3, 0][usize::from(fmt)];
        if b.len() < pos + header_len {
            return Ok(Step::NeedMore);
        }
        let h = &b[pos..pos + header_len];
        pos += header_len;
        let u24 = |i: usize| u32::from_be_bytes([0, h[i], h[i + 1], h[i + 2]]);

        let prev = self.streams.get(&csid);
        let in_progress = prev.is_some_and(|s| s.partial.is_some());
        if in_progress && fmt != 3 {
            return Err(self.err(format!(
                "chunk stream {csid}: type {fmt} header while a message is still incomplete"
            )));
        }
        let (ts_field, length, type_id, stream_id) = match (fmt, prev) {
            (0, _) => (
                u24(0),
                u24(3),
                h[6],
                u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
            ),
            (1, Some(p)) => (u24(0), u24(3), h[6], p.stream_id),
            (2, Some(p)) => (u24(0), p.length, p.type_id, p.stream_id),
            (_, Some(p)) => (p.delta, p.length, p.type_id, p.stream_id),
            (_, None) => return Err(self.err(format!("chunk stream {csid} has no type 0 header"))),
        };
        let extended = if fmt == 3 {
            prev.is_some_and(|p| p.extended)
        } else {
            ts_field == 0xff_ffff
        };
        let mut field = ts_field;
        if extended {
            if b.len() < pos + 4 {
                return Ok(Step::NeedMore);
            }
            let e = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
            pos += 4;
            if fmt != 3 {
                field = e;
            }
        }
        // Audio 8, video 9 (§7.1.4, §7.1.5): only media may be large.
        let limit = if matches!(type_id, 8 | 9) {
            self.max_message_size
        } else {
            self.max_control_size
        };
        if length as usize > limit {
            return Err(RtmpError::MessageTooLarge {
                offset: self.offset,
                csid,
                length: length as usize,
                limit,
            });
        }
        let have = prev.and_then(|p| p.partial.as_ref()).map_or(0, |p| p.len());
        let remaining = (length as usize).saturating_sub(have);
        let take = remaining.min(self.chunk_size as usize);
        if b.len() < pos + take {
            return Ok(Step::NeedMore);
        }
        // The whole chunk is here: commit.
        let prev_ts = prev.map_or(0, |p| p.timestamp);
        let timestamp = match fmt {
            0 => field,
            3 if in_progress => prev_ts,
            _ => prev_ts.wrapping_add(field),
        };
        let chunk_offset = self.offset;
        self.buffer.advance(pos);
        let data = self.buffer.split_to(take);
        self.offset += (pos + take) as u64;
        let s = self.streams.entry(csid).or_default();
        s.timestamp = timestamp;
        if fmt != 3 {
            s.delta = field;
            s.extended = extended;
        }
        s.length = length;
        s.type_id = type_id;
        s.stream_id = stream_id;
        s.started = true;
        let mut partial = s.partial.take().unwrap_or_default();
        self.partial_bytes -= partial.len();
        if partial.is_empty() && data.len() == length as usize {
            return Ok(Step::Message(RawMessage {
                csid,
                timestamp,
                type_id,
                stream_id,
                payload: data.freeze(),
            }));
        }
        partial.extend_from_slice(&data);
        if partial.len() == length as usize {
            return Ok(Step::Message(RawMessage {
                csid,
                timestamp,
                type_id,
                stream_id,
                payload: partial.freeze(),
            }));
        }
        self.partial_bytes += partial.len();
        s.partial = Some(partial);
        // Interleaved partial messages on many chunk streams: bound the total held.
        if self.partial_bytes > 2 * self.max_message_size {
            return Err(RtmpError::Chunk {
                offset: chunk_offset,
                what: format!(
                    "{} bytes of incomplete messages held across chunk streams",
                    self.partial_bytes
                ),
            });
        }
        Ok(Step::Partial)
    }
}

enum Step {
    NeedMore,
    Partial,
    Message(RawMessage),
}

/// Splits our messages into chunks. Every message starts with a type 0 header and continues
/// with type 3 headers: 11 bytes more per message than the tightest packing, and nothing for a
/// peer to get wrong.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkEncoder {
    /// Chunk size used for following messages (after our Set Chunk Size was queued).
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.max(1);
    }

    fn basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
        match csid {
            2..=63 => out.put_u8((fmt << 6) | csid as u8),
            64..=319 => {
                out.put_u8(fmt << 6);
                out.put_u8((csid - 64) as u8);
            }
            _ => {
                let c = csid.clamp(320, 65599) - 64;
                out.put_u8((fmt << 6) | 1);
                out.put_u8((c & 0xff) as u8);
                out.put_u8((c >> 8) as u8);
            }
        }
    }

    /// Appends the chunks of one message to `out`.
    pub fn write(
        &self,
        out: &mut BytesMut,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        let extended = timestamp >= 0xff_ffff;
        let n = payload.len().min(0xff_ffff);
        let cs = self.chunk_size as usize;
        out.reserve(n + 18 + n / cs * 8);
        Self::basic_header(out, 0, csid);
        let ts_field = if extended { 0xff_ffff } else { timestamp };
        out.put_slice(&ts_field.to_be_bytes()[1..]);
        out.put_slice(&(n as u32).to_be_bytes()[1..]);
        out.put_u8(type_id);
        out.put_u32_le(stream_id);
        if extended {
            out.put_u32(timestamp);
        }
        let mut rest = &payload[..n];
        let first = rest.len().min(cs);
        out.put_slice(&rest[..first]);
        rest = &rest[first..];
        while !rest.is_empty() {
            Self::basic_header(out, 3, csid);
            if extended {
                out.put_u32(timestamp);
            }
            let k = rest.len().min(cs);
            out.put_slice(&rest[..k]);
            rest = &rest[k..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut ChunkDecoder) -> Vec<RawMessage> {
        let mut v = Vec::new();
        while let Some(m) = dec.next_message().expect("decode") {
            v.push(m);
        }
        v
    }

    #[test]
    fn round_trip_small_chunks_and_extended_timestamps() {
        let mut enc = ChunkEncoder::default();
        enc.set_chunk_size(100);
        let mut out = BytesMut::new();
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        enc.write(&mut out, 6, 40, 9, 1, &big);
        enc.write(&mut out, 4, 0x0100_0000, 8, 1, &big[..250]);
        enc.write(&mut out, 300, 7, 20, 0, &[]);
        let mut dec = ChunkDecoder::new(1 << 16, 1 << 20, 0);
        dec.set_chunk_size(100).expect("size");
        // Byte by byte: every split point must work.
        let mut got = Vec::new();
        for b in out.iter() {
            dec.push(&[*b]);
            got.extend(decode_all(&mut dec));
        }
        assert_eq!(got.len(), 3);
        assert_eq!(
            (
                got[0].csid,
                got[0].timestamp,
                got[0].type_id,
                got[0].stream_id
            ),
            (6, 40, 9, 1)
        );
        assert_eq!(&got[0].payload[..], &big[..]);
        assert_eq!(got[1].timestamp, 0x0100_0000);
        assert_eq!(&got[1].payload[..], &big[..250]);
        assert_eq!((got[2].csid, got[2].payload.len()), (300, 0));
        assert_eq!(dec.offset(), out.len() as u64);
    }

    #[test]
    fn interleaved_chunk_streams_and_header_compression() {
        // Hand-made per §5.3.1.2: csid 4 message of 200 bytes split at 128, interleaved with a
        // whole message on csid 6, then a type 2 (delta) and a type 3 (repeat delta) message.
        let mut b = vec![0x04, 0, 0, 10, 0, 0, 200, 8, 1, 0, 0, 0];
        b.extend([0xaa; 128]);
        b.extend([0x06, 0, 0, 20, 0, 0, 3, 9, 1, 0, 0, 0, 1, 2, 3]);
        b.push(0xc4);
        b.extend([0xbb; 72]);
        b.extend([0x84, 0, 0, 5]); // type 2: delta 5, same length 200
        b.extend([0xcc; 128]);
        b.push(0xc4);
        b.extend([0xcc; 72]);
        b.push(0xc4); // type 3, new message: delta 5 again
        b.extend([0xdd; 128]);
        b.push(0xc4);
        b.extend([0xdd; 72]);
        let mut dec = ChunkDecoder::new(1 << 16, 1 << 20, 0);
        dec.push(&b);
        let got = decode_all(&mut dec);
        let summary: Vec<_> = got
            .iter()
            .map(|m| (m.csid, m.timestamp, m.payload.len()))
            .collect();
        assert_eq!(
            summary,
            vec![(6, 20, 3), (4, 10, 200), (4, 15, 200), (4, 20, 200)]
        );
        assert_eq!(&got[1].payload[128..], &[0xbb; 72][..]);
    }

    #[test]
    fn hostile_headers_are_errors() {
        let mut dec = ChunkDecoder::new(1 << 16, 1000, 0);
        dec.push(&[0x44, 0, 0, 0, 0, 0, 5, 9]);
        assert!(matches!(
            dec.next_message(),
            Err(RtmpError::Chunk { offset: 0, .. })
        ));

        let mut dec = ChunkDecoder::new(1 << 16, 1000, 3073);
        dec.push(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0]);
        let e = dec.next_message().unwrap_err();
        assert!(matches!(
            e,
            RtmpError::MessageTooLarge {
                offset: 3073,
                length: 0xff_ffff,
                ..
            }
        ));

        let mut dec = ChunkDecoder::new(4096, 1000, 0);
        assert!(dec.set_chunk_size(0).is_err());
        assert!(dec.set_chunk_size(1 << 30).is_err());

        // A type 1 header in the middle of a message on the same chunk stream.
        let mut dec = ChunkDecoder::new(4096, 1000, 0);
        let mut b = vec![0x04, 0, 0, 0, 0, 1, 0, 8, 1, 0, 0, 0];
        b.extend([0; 128]);
        b.extend([0x44, 0, 0, 1, 0, 0, 5, 8]);
        dec.push(&b);
        assert!(dec.next_message().is_err());
    }

    #[test]
    fn commands_have_their_own_limit() {
        // A 2000-byte command (type 20) over a 1000-byte control limit fails at its header;
        // a 2000-byte video message (type 9) passes.
        let header = |type_id: u8| vec![0x03, 0, 0, 0, 0, 0x07, 0xd0, type_id, 0, 0, 0, 0];
        let mut dec = ChunkDecoder::new(4096, 1 << 20, 0);
        dec.set_limits(1 << 20, 1000);
        dec.push(&header(20));
        assert!(matches!(
            dec.next_message(),
            Err(RtmpError::MessageTooLarge {
                length: 2000,
                limit: 1000,
                ..
            })
        ));
        let mut dec = ChunkDecoder::new(4096, 1 << 20, 0);
        dec.set_limits(1 << 20, 1000);
        dec.set_chunk_size(4096).expect("chunk size");
        let mut b = header(9);
        b.extend([0; 2000]);
        dec.push(&b);
        assert_eq!(
            dec.next_message().expect("video").map(|m| m.payload.len()),
            Some(2000)
        );
    }

    #[test]
    fn many_partial_messages_are_bounded() {
        let mut dec = ChunkDecoder::new(4096, 1000, 0);
        let mut b = Vec::new();
        for csid in 3..30u8 {
            b.extend([csid, 0, 0, 0, 0, 0x03, 0xe8, 8, 1, 0, 0, 0]);
            b.extend([0; 128]);
        }
        dec.push(&b);
        let e = dec.next_message().unwrap_err();
        assert!(e.to_string().contains("incomplete messages"), "{e}");
    }
}
