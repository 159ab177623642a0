//! RTMP (Adobe RTMP specification 1.0, 2012) as sans-IO state machines: the server side that
//! publishers (FFmpeg, OBS, phone encoder apps) talk to, and the client side that `vshare
//! publish` and `vshare bench` use.
//!
//! Nothing here touches a socket or a clock. The run loop of an adapter is:
//!
//! ```no_run
//! # use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};
//! # fn read_socket(_: &mut [u8]) -> usize { 0 }
//! # fn write_socket(_: &[u8]) {}
//! let mut conn = ServerConnection::new(ServerLimits::default());
//! let mut buf = vec![0u8; 64 * 1024];
//! loop {
//!     let n = read_socket(&mut buf);
//!     if n == 0 { break; }
//!     if let Err(e) = conn.handle_input(&buf[..n]) {
//!         eprintln!("closing: {e}");
//!         break;
//!     }
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             ServerEvent::PublishRequested { request_id, stream_key, .. } => {
//!                 if stream_key == "secret" {
//!                     conn.accept_publish(request_id).unwrap();
//!                 } else {
//!                     conn.reject_publish(request_id, "NetStream.Publish.BadName", "unknown key").unwrap();
//!                 }
//!             }
//!             ServerEvent::Video { timestamp_ms, body } => { /* FLV video tag body */ }
//!             _ => {}
//!         }
//!     }
//!     while let Some(bytes) = conn.poll_transmit() {
//!         write_socket(&bytes);
//!     }
//! }
//! ```
//!
//! Layers: the handshake (§5.2) comes from `rml_rtmp` (its digest handshake is what Flash-era
//! encoders expect); the chunk stream ([`chunk`]), AMF0 ([`amf0`]), messages ([`message`]) and
//! the two session state machines are ours, because `rml_rtmp`'s are not safe on hostile input
//! (see each module's first line) and its server session rejects with `_error` instead of the
//! `onStatus` error that encoders report to their users.
//!
//! Time: media timestamps are the publisher's, in milliseconds, carried as 32 bits on the wire
//! and extended here to `i64` across the wrap (every ~49.7 days). Outgoing protocol messages
//! carry timestamp 0; the state machines never read a clock.

pub mod amf0;
pub mod chunk;
mod client;
pub mod message;
mod server;

pub use client::{ClientConnection, ClientEvent};
pub use server::{ServerConnection, ServerEvent};

/// Size limits a server imposes on its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest message (one FLV tag body, one command) accepted, bytes. RTMP's length field
    /// allows 16 MiB − 1.
    pub max_message_size: usize,
    /// Largest Set Chunk Size accepted from the peer, bytes (the spec allows 2^31 − 1).
    pub max_chunk_size: u32,
    /// Largest message of any type but audio and video (commands, metadata, control), and of
    /// any type at all until a publish is accepted: what an unauthenticated peer can make us
    /// hold and decode.
    pub max_command_size: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_message_size: 8 * 1024 * 1024,
            max_chunk_size: 1024 * 1024,
            max_command_size: 64 * 1024,
        }
    }
}

/// Why a connection failed. Every variant names its layer; all are fatal for the connection.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RtmpError {
    #[error("RTMP handshake: {0}")]
    Handshake(String),
    #[error("RTMP chunk stream at byte {offset}: {what}")]
    Chunk { offset: u64, what: String },
    #[error(
        "RTMP chunk stream at byte {offset}: message of {length} bytes on chunk stream {csid} is larger than the {limit}-byte limit"
    )]
    MessageTooLarge {
        offset: u64,
        csid: u32,
        length: usize,
        limit: usize,
    },
    #[error("RTMP message type {type_id}: {what}")]
    Message { type_id: u8, what: String },
    #[error("RTMP message type {type_id}: {source}")]
    Amf0 {
        type_id: u8,
        source: amf0::Amf0Error,
    },
    #[error("RTMP session: {0}")]
    Protocol(String),
    #[error("RTMP session: no pending publish request with id {0}")]
    UnknownRequest(u32),
    #[error("RTMP session: cannot send media, the stream is {0}")]
    NotPublishing(&'static str),
    #[error("RTMP session: the connection already failed: {0}")]
    Failed(String),
}

/// Extends 32-bit RTMP timestamps to `i64` milliseconds: each new timestamp is taken as the
/// nearest value to the previous one (a step of up to ±2^31 ms), so wraps continue upwards.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimestampExtender {
    last: Option<(u32, i64)>,
}

impl TimestampExtender {
    pub fn extend(&mut self, ts: u32) -> i64 {
        let v = match self.last {
            None => i64::from(ts),
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
        };
        self.last = Some((ts, v));
        v
    }
}

/// The 32-bit wire form of a millisecond timestamp (modulo 2^32).
pub fn wire_timestamp(ms: i64) -> u32 {
    ms.rem_euclid(1 << 32) as u32
}

/// `rtmp://host[:port]/app[/stream_key]`, as encoders take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream_key: Option<String>,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{url:?} is not an rtmp:// URL"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("bad port {p:?} in {url:?}"))?,
            ),
            _ => (authority, 1935),
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        let path = path.trim_end_matches('/');
        let (app, key) = match path.split_once('/') {
            Some((a, k)) => (a, Some(k.to_string())),
            None => (path, None),
        };
        if app.is_empty() {
            return Err(format!(
                "no application name in {url:?} (expected rtmp://host/live/KEY)"
            ));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            app: app.to_string(),
            stream_key: key,
        })
    }

    /// The `tcUrl` of the connect command: the URL without the stream key.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_extend_across_the_wrap() {
        let mut x = TimestampExtender::default();
        assert_eq!(x.extend(u32::MAX - 10), i64::from(u32::MAX) - 10);
        assert_eq!(x.extend(5), (1i64 << 32) + 5);
        assert_eq!(x.extend(3), (1i64 << 32) + 3);
        assert_eq!(wire_timestamp((1i64 << 32) + 5), 5);
        assert_eq!(wire_timestamp(-1), u32::MAX);
    }

    #[test]
    fn urls() {
        let u = RtmpUrl::parse("rtmp://example.org/live/abc").expect("url");
        assert_eq!(
            (u.port, u.app.as_str(), u.stream_key.as_deref()),
            (1935, "live", Some("abc"))
        );
        assert_eq!(u.tc_url(), "rtmp://example.org:1935/live");
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1936/live").expect("url");
        assert_eq!(
            (u.host.as_str(), u.port, u.stream_key),
            ("127.0.0.1", 1936, None)
        );
        assert!(RtmpUrl::parse("http://x/live").is_err());
        assert!(RtmpUrl::parse("rtmp://x:99999/live").is_err());
        assert!(RtmpUrl::parse("rtmp://x/").is_err());
    }
}
