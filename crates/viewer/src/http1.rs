//! One HTTP/1.1 response read from a byte stream, sans-IO, for the viewer load generator.
//! httparse reads the head; the body is framed here (Content-Length, chunked, or until the
//! connection closes). Own code because a pooled general-purpose client spent more CPU per
//! request than the server the generator measures (`bench/viewers.sh`).

use bytes::{Buf, Bytes, BytesMut};

/// Response heads longer than this are refused.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 32;

/// What the reader has made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Give it more bytes (or tell it the connection closed).
    NeedMore,
    /// The status line and headers are in.
    Head {
        status: u16,
        /// The connection can carry the next request.
        keep_alive: bool,
    },
    /// Some body bytes.
    Data(Bytes),
    /// The body is complete.
    Done,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Http1Error {
    #[error("response head: {0}")]
    Head(String),
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("bad chunk size line")]
    Chunk,
    #[error("connection closed {0}")]
    Closed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Bytes of body left.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Bytes of the current chunk left, then its CRLF.
    Chunk(u64),
    ChunkEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    /// Until the connection closes.
    UntilClose,
    Done,
}

/// Reads one response; `head_request` when it answers a HEAD (no body whatever it says).
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    head_request: bool,
}

impl ResponseReader {
    pub fn new(head_request: bool) -> Self {
        ResponseReader {
            state: State::Head,
            head_request,
        }
    }

    /// Takes what it can from `buf` (received bytes; what is left belongs to a later response).
    pub fn advance(&mut self, buf: &mut BytesMut) -> Result<Progress, Http1Error> {
        loop {
            match self.state {
                State::Head => return self.head(buf),
                State::Length(0) => {
                    self.state = State::Done;
                    return Ok(Progress::Done);
                }
                State::Chunk(0) => self.state = State::ChunkEnd,
                // Not zero: the two arms above took that.
                State::Length(left) | State::Chunk(left) => {
                    if buf.is_empty() {
                        return Ok(Progress::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    self.state = match self.state {
                        State::Length(_) => State::Length(left - n as u64),
                        _ if left == n as u64 => State::ChunkEnd,
                        _ => State::Chunk(left - n as u64),
                    };
                    return Ok(Progress::Data(data));
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Progress::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Http1Error::Chunk);
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Progress::NeedMore);
                    };
                    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let digits = std::str::from_utf8(digits).map_err(|_| Http1Error::Chunk)?;
                    let size =
                        u64::from_str_radix(digits.trim(), 16).map_err(|_| Http1Error::Chunk)?;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Chunk(size)
                    };
                }
                State::Trailer => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Progress::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                        return Ok(Progress::Done);
                    }
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Progress::NeedMore);
                    }
                    return Ok(Progress::Data(buf.split().freeze()));
                }
                State::Done => return Ok(Progress::Done),
            }
        }
    }

    /// The connection closed: the end of a body read until close, an error otherwise.
    pub fn closed(&mut self) -> Result<Progress, Http1Error> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(Progress::Done)
            }
            State::Head => Err(Http1Error::Closed("before the response head")),
            _ => Err(Http1Error::Closed("in the middle of the body")),
        }
    }

    fn head(&mut self, buf: &mut BytesMut) -> Result<Progress, Http1Error> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(Http1Error::HeadTooLong);
            }
            Ok(httparse::Status::Partial) => return Ok(Progress::NeedMore),
            Err(e) => return Err(Http1Error::Head(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        let mut keep_alive = resp.version == Some(1);
        let mut length = None;
        let mut chunked = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| Http1Error::Head("bad Content-Length".into()))?;
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h.value.eq_ignore_ascii_case(b"chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            }
        }
        buf.advance(len);
        let bodiless = self.head_request || status == 204 || status == 304 || status < 200;
        self.state = if bodiless {
            State::Length(0)
        } else if chunked {
            State::ChunkSize
        } else if let Some(n) = length {
            State::Length(n)
        } else {
            keep_alive = false;
            State::UntilClose
        };
        Ok(Progress::Head { status, keep_alive })
    }
}

/// A CRLF-ended line taken off `buf` (without the CRLF), `None` until it is all there.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, Http1Error> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            let line = buf.split_to(i).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > 1024 => Err(Http1Error::Chunk),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; returns (status, body, the bytes left over).
    fn read_all(wire: &[u8], step: usize, close_at_end: bool) -> (u16, Vec<u8>, Vec<u8>) {
        let mut r = ResponseReader::new(false);
        let mut buf = BytesMut::new();
        let (mut status, mut body) = (0, Vec::new());
        let mut fed = 0;
        loop {
            match r.advance(&mut buf).expect("valid response") {
                Progress::NeedMore if fed < wire.len() => {
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
                Progress::NeedMore => {
                    assert!(close_at_end, "wanted more after the whole response");
                    assert_eq!(r.closed(), Ok(Progress::Done));
                    return (status, body, buf.to_vec());
                }
                Progress::Head { status: s, .. } => status = s,
                Progress::Data(d) => body.extend_from_slice(&d),
                Progress::Done => {
                    buf.extend_from_slice(&wire[fed..]);
                    return (status, body, buf.to_vec());
                }
            }
        }
    }

    #[test]
    fn content_length_bodies_in_any_pieces_leave_the_next_response() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 404";
        for step in [1, 2, 7, 100] {
            let (status, body, rest) = read_all(wire, step, false);
            assert_eq!(
                (status, &body[..], &rest[..]),
                (200, &b"hello"[..], &b"HTTP/1.1 404"[..])
            );
        }
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            4;x=y\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\nNEXT";
        for step in [1, 3, 1000] {
            let (status, body, rest) = read_all(wire, step, false);
            assert_eq!(status, 200);
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn a_body_without_length_runs_to_the_close_and_ends_keep_alive() {
        let mut r = ResponseReader::new(false);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\nabc"[..]);
        assert_eq!(
            r.advance(&mut buf),
            Ok(Progress::Head {
                status: 200,
                keep_alive: false
            })
        );
        assert_eq!(r.advance(&mut buf), Ok(Progress::Data(Bytes::from("abc"))));
        assert_eq!(r.advance(&mut buf), Ok(Progress::NeedMore));
        assert_eq!(r.closed(), Ok(Progress::Done));
        let (status, body, _) = read_all(b"HTTP/1.0 200 OK\r\n\r\nxyz", 2, true);
        assert_eq!((status, &body[..]), (200, &b"xyz"[..]));
    }

    #[test]
    fn bodiless_answers_and_connection_headers() {
        let mut r = ResponseReader::new(true);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n"[..]);
        assert!(matches!(r.advance(&mut buf), Ok(Progress::Head { .. })));
        assert_eq!(r.advance(&mut buf), Ok(Progress::Done));
        let mut r = ResponseReader::new(false);
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"[..]);
        assert_eq!(
            r.advance(&mut buf),
            Ok(Progress::Head {
                status: 304,
                keep_alive: false
            })
        );
        assert_eq!(r.advance(&mut buf), Ok(Progress::Done));
    }

    #[test]
    fn broken_responses_are_errors_not_hangs() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            let mut r = ResponseReader::new(false);
            let mut buf = BytesMut::from(wire);
            let mut result = Ok(Progress::NeedMore);
            for _ in 0..10 {
                result = r.advance(&mut buf);
                if !matches!(result, Ok(Progress::Head { .. } | Progress::Data(_))) {
                    break;
                }
            }
            assert!(
                result.is_err(),
                "{:?}: {result:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut r = ResponseReader::new(false);
        let mut buf = BytesMut::from(&vec![b'a'; MAX_HEAD + 1][..]);
        assert!(r.advance(&mut buf).is_err());
        let mut r = ResponseReader::new(false);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab"[..]);
        while let Ok(Progress::Head { .. } | Progress::Data(_)) = r.advance(&mut buf) {}
        assert_eq!(
            r.closed(),
            Err(Http1Error::Closed("in the middle of the body"))
        );
    }
}
