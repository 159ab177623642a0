//! The messages on the wire: JSON text messages for control, a 32-byte binary header for frame
//! pieces. Layout and meaning: `docs/upload-protocol.md`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The WebSocket subprotocol name.
pub const PROTOCOL: &str = "vshare-upload.1";
/// The protocol version in `hello`.
pub const VERSION: u32 = 1;
/// Size of a frame piece's header.
pub const HEADER_LEN: usize = 32;
/// Message type byte of a frame piece.
pub const MSG_FRAME_PIECE: u8 = 0x01;
/// The feature a sender asks for in `hello` and the server grants in `welcome`: frames dropped
/// from the live send are sent later, for the recording only.
pub const FEATURE_BACKFILL: &str = "backfill";
/// The feature a sender asks for when it can make a key frame on request: the server then
/// sends `keyframe` when a player needs one (a WebRTC player joining or recovering a loss).
pub const FEATURE_KEYFRAME: &str = "keyframe";
const FLAG_KEY: u8 = 0x01;
const FLAG_LAST: u8 = 0x02;
/// A late (backfill) frame: for the recording only, never the live stream.
const FLAG_LATE: u8 = 0x04;

/// A WebSocket message, as the adapter sends or receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    Text(String),
    Binary(Vec<u8>),
}

/// WebSocket close codes (RFC 6455 §7.4; 4000–4999 are ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    Normal,
    GoingAway,
    Malformed,
    Unauthorized,
    TooLarge,
    OutOfOrder,
    Flood,
    Busy,
    UnknownSession,
    Unsupported,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Malformed => 4000,
            CloseCode::Unauthorized => 4001,
            CloseCode::TooLarge => 4002,
            CloseCode::OutOfOrder => 4003,
            CloseCode::Flood => 4004,
            CloseCode::Busy => 4005,
            CloseCode::UnknownSession => 4006,
            CloseCode::Unsupported => 4007,
        }
    }
}

/// Why a connection is closed: the close code and a reason for the log and the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (close {})", code.code())]
pub struct ProtocolError {
    pub code: CloseCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: CloseCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }

    /// The `error` message sent before the close.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code.code(),
            message: self.message.clone(),
        }
    }
}

fn malformed(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(CloseCode::Malformed, message)
}

/// The header of a frame piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceHeader {
    pub track: u8,
    pub key: bool,
    pub last: bool,
    /// A late (backfill) frame; only with the `backfill` feature.
    pub late: bool,
    pub seq: u32,
    /// Capture-clock µs.
    pub pts: i64,
    pub dts: i64,
    pub offset: u32,
    pub total: u32,
}

impl PieceHeader {
    /// The whole message: header then payload.
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.push(MSG_FRAME_PIECE);
        out.push(self.track);
        out.push(
            (u8::from(self.key) * FLAG_KEY)
                | (u8::from(self.last) * FLAG_LAST)
                | (u8::from(self.late) * FLAG_LATE),
        );
        out.push(0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.pts.to_be_bytes());
        out.extend_from_slice(&self.dts.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.total.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Splits a binary message into its header and payload; checks the header's own fields
    /// (the receiver checks them against the stream).
    pub fn decode(msg: &[u8]) -> Result<(PieceHeader, &[u8]), ProtocolError> {
        if msg.len() < HEADER_LEN {
            return Err(malformed(format!(
                "binary message of {} bytes is shorter than the {HEADER_LEN}-byte header",
                msg.len()
            )));
        }
        if msg[0] != MSG_FRAME_PIECE {
            return Err(malformed(format!(
                "unknown binary message type 0x{:02x}",
                msg[0]
            )));
        }
        let flags = msg[2];
        if flags & !(FLAG_KEY | FLAG_LAST | FLAG_LATE) != 0 || msg[3] != 0 {
            return Err(malformed(format!(
                "reserved bits set (flags 0x{flags:02x}, reserved 0x{:02x})",
                msg[3]
            )));
        }
        let u32_at = |i: usize| u32::from_be_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        let i64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&msg[i..i + 8]);
            i64::from_be_bytes(b)
        };
        let header = PieceHeader {
            track: msg[1],
            key: flags & FLAG_KEY != 0,
            last: flags & FLAG_LAST != 0,
            late: flags & FLAG_LATE != 0,
            seq: u32_at(4),
            pts: i64_at(8),
            dts: i64_at(16),
            offset: u32_at(24),
            total: u32_at(28),
        };
        let payload = &msg[HEADER_LEN..];
        let end = u64::from(header.offset) + payload.len() as u64;
        if end > u64::from(header.total) {
            return Err(malformed(format!(
                "piece [{}, {end}) lies outside its {}-byte frame",
                header.offset, header.total
            )));
        }
        if header.last != (end == u64::from(header.total)) {
            return Err(malformed(format!(
                "piece ending at {end} of {} has the last-piece flag {}",
                header.total, header.last
            )));
        }
        Ok((header, payload))
    }
}

/// A track as declared in `hello` or changed by `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub track: u8,
    /// `video` or `audio`; may be left out in `config` (the track keeps its kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub codec: String,
    /// Base64 of the codec's configuration record (avcC, AudioSpecificConfig, OpusHead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
}

impl TrackInfo {
    /// The decoded description; an error when it is not base64.
    pub fn description_bytes(&self) -> Result<Option<Vec<u8>>, ProtocolError> {
        self.description
            .as_deref()
            .map(|d| {
                base64::engine::general_purpose::STANDARD
                    .decode(d)
                    .map_err(|e| malformed(format!("track {} description: {e}", self.track)))
            })
            .transpose()
    }

    /// Encodes a description for the wire.
    pub fn encode_description(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn is_video(&self) -> bool {
        self.kind.as_deref() == Some("video")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub session: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub token: String,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_kbps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kbps: Option<u32>,
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
    /// Protocol extensions the sender can use ([`FEATURE_BACKFILL`]); a server that knows
    /// none of them ignores the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl Hello {
    pub fn wants(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// What the server accepts of late frames, in `welcome` when it grants `backfill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillLimits {
    /// Late frames one session may promise in all.
    pub max_frames: u32,
    /// Late frame payload bytes one session may send in all.
    pub max_bytes: u64,
    /// How long after `end` the server waits for the late frames still owed, ms.
    pub wait_ms: u64,
}

/// Text messages from the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SenderMessage {
    Hello(Hello),
    Config {
        seq: u32,
        #[serde(flatten)]
        info: TrackInfo,
    },
    End {
        seq: u32,
    },
    /// `backfill` feature: the number of late frames the sender will have sent in all (those
    /// it kept when it dropped them from the live send). Sent whenever it grows, and again
    /// after a resume.
    Backfill {
        frames: u32,
    },
}

impl SenderMessage {
    pub fn parse(text: &str) -> Result<SenderMessage, ProtocolError> {
        serde_json::from_str(text).map_err(|e| malformed(format!("text message: {e}")))
    }

    pub fn to_text(&self) -> String {
        // A derived Serialize of plain data cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Messages from the server (all text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    Welcome {
        session: String,
        video_id: String,
        next_seq: u32,
        window_bytes: u64,
        max_piece_bytes: u32,
        resume_grace_ms: u64,
        #[serde(default)]
        watch_url: String,
        /// The features granted, of those the sender asked for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
        /// With `backfill` granted: what the server accepts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backfill: Option<BackfillLimits>,
    },
    Ack {
        seq: u32,
    },
    Feedback {
        receive_kbps: u32,
        queue_delay_ms: u32,
        suggested_kbps: u32,
    },
    Attributes {
        kind: String,
        record: serde_json::Value,
        #[serde(default)]
        text: String,
    },
    Error {
        code: u16,
        message: String,
    },
    /// `keyframe` feature: make the next video frame a key frame.
    Keyframe,
}

impl ServerMessage {
    pub fn parse(text: &str) -> Result<ServerMessage, ProtocolError> {
        serde_json::from_str(text).map_err(|e| malformed(format!("server message: {e}")))
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_header_layout_is_the_documented_one() {
        let h = PieceHeader {
            track: 1,
            key: true,
            last: true,
            late: false,
            seq: 0x0102_0304,
            pts: 0x1122_3344_5566_7788,
            dts: -2,
            offset: 5,
            total: 8,
        };
        let msg = h.encode(b"abc");
        assert_eq!(msg.len(), 35);
        assert_eq!(&msg[..4], &[0x01, 0x01, 0x03, 0x00]);
        assert_eq!(&msg[4..8], &[1, 2, 3, 4]);
        assert_eq!(
            &msg[8..16],
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(
            &msg[16..24],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(&msg[24..32], &[0, 0, 0, 5, 0, 0, 0, 8]);
        let (back, payload) = PieceHeader::decode(&msg).expect("decodes");
        assert_eq!(back, h);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn bad_headers_are_refused_with_4000() {
        let ok = PieceHeader {
            track: 0,
            key: false,
            last: false,
            late: false,
            seq: 0,
            pts: 0,
            dts: 0,
            offset: 0,
            total: 10,
        };
        let short = &ok.encode(b"")[..31];
        assert_eq!(
            PieceHeader::decode(short).unwrap_err().code,
            CloseCode::Malformed
        );
        let mut wrong_type = ok.encode(b"x");
        wrong_type[0] = 0x02;
        assert_eq!(
            PieceHeader::decode(&wrong_type).unwrap_err().code,
            CloseCode::Malformed
        );
        let mut reserved = ok.encode(b"x");
        reserved[2] |= 0x80;
        assert!(PieceHeader::decode(&reserved).is_err());
        // Past the end of its frame.
        let past = PieceHeader { offset: 8, ..ok }.encode(b"abc");
        assert!(PieceHeader::decode(&past).is_err());
        // Reaches the end without the last flag, and the last flag before the end.
        let unflagged = PieceHeader { offset: 7, ..ok }.encode(b"abc");
        assert!(PieceHeader::decode(&unflagged).is_err());
        let early = PieceHeader { last: true, ..ok }.encode(b"abc");
        assert!(PieceHeader::decode(&early).is_err());
    }

    #[test]
    fn text_messages_match_the_documented_json() {
        let hello = SenderMessage::parse(
            r#"{"type":"hello","version":1,"token":"sk1","title":"beach","start_kbps":1000,
                "tracks":[{"track":0,"kind":"video","codec":"avc1.42e01f","description":"AQI="},
                          {"track":1,"kind":"audio","codec":"opus","sample_rate":48000,"channels":1}]}"#,
        )
        .expect("hello parses");
        let SenderMessage::Hello(h) = hello else {
            panic!("not a hello")
        };
        assert_eq!(h.tracks.len(), 2);
        assert_eq!(
            h.tracks[0].description_bytes().expect("b64"),
            Some(vec![1, 2])
        );
        assert!(h.resume.is_none());
        let config = SenderMessage::parse(
            r#"{"type":"config","seq":120,"track":0,"codec":"avc1.42e015","description":"AQI="}"#,
        )
        .expect("config parses");
        assert!(matches!(config, SenderMessage::Config { seq: 120, .. }));
        assert_eq!(
            SenderMessage::parse(r#"{"type":"end","seq":7}"#).expect("end"),
            SenderMessage::End { seq: 7 }
        );
        for bad in [
            "not json",
            r#"{"type":"launch"}"#,
            r#"{"type":"end"}"#,
            r#"{"type":"hello","token":"x"}"#,
        ] {
            assert_eq!(
                SenderMessage::parse(bad).unwrap_err().code,
                CloseCode::Malformed,
                "{bad}"
            );
        }
        let ack = ServerMessage::Ack { seq: 9 }.to_text();
        assert_eq!(ack, r#"{"type":"ack","seq":9}"#);
        assert_eq!(
            ServerMessage::parse(&ack).expect("ack"),
            ServerMessage::Ack { seq: 9 }
        );
    }

    #[test]
    fn the_backfill_extension_is_documented_and_optional() {
        // Bit 2 of the flags marks a late frame.
        let late = PieceHeader {
            track: 0,
            key: false,
            last: true,
            late: true,
            seq: 3,
            pts: 40,
            dts: 40,
            offset: 0,
            total: 2,
        };
        let msg = late.encode(b"ab");
        assert_eq!(msg[2], 0x06);
        assert_eq!(PieceHeader::decode(&msg).expect("late").0, late);
        // A hello that asks for it; an old hello (no features) parses as before.
        let hello = SenderMessage::parse(
            r#"{"type":"hello","version":1,"token":"k","features":["backfill"],"tracks":[]}"#,
        )
        .expect("hello");
        let SenderMessage::Hello(h) = hello else {
            panic!("not a hello")
        };
        assert!(h.wants(FEATURE_BACKFILL));
        let SenderMessage::Hello(old) =
            SenderMessage::parse(r#"{"type":"hello","version":1,"token":"k"}"#).expect("old")
        else {
            panic!("not a hello")
        };
        assert!(!old.wants(FEATURE_BACKFILL));
        assert!(
            !SenderMessage::Hello(old.clone())
                .to_text()
                .contains("features")
        );
        assert_eq!(
            SenderMessage::parse(r#"{"type":"backfill","frames":12}"#).expect("backfill"),
            SenderMessage::Backfill { frames: 12 }
        );
        assert!(SenderMessage::parse(r#"{"type":"backfill"}"#).is_err());
        // A welcome without the fields (an old server) grants nothing.
        let w = ServerMessage::parse(
            r#"{"type":"welcome","session":"s","video_id":"v","next_seq":0,"window_bytes":1,
                "max_piece_bytes":1,"resume_grace_ms":1}"#,
        )
        .expect("welcome");
        let ServerMessage::Welcome {
            features, backfill, ..
        } = w
        else {
            panic!("not a welcome")
        };
        assert!(features.is_empty() && backfill.is_none());
    }

    #[test]
    fn a_keyframe_request_is_the_documented_message() {
        assert_eq!(ServerMessage::Keyframe.to_text(), r#"{"type":"keyframe"}"#);
        assert_eq!(
            ServerMessage::parse(r#"{"type":"keyframe"}"#).expect("keyframe"),
            ServerMessage::Keyframe
        );
        let SenderMessage::Hello(h) = SenderMessage::parse(
            r#"{"type":"hello","version":1,"token":"k","features":["keyframe","backfill"]}"#,
        )
        .expect("hello") else {
            panic!("not a hello")
        };
        assert!(h.wants(FEATURE_KEYFRAME) && h.wants(FEATURE_BACKFILL));
    }
}
