//! RTMP messages (Adobe RTMP spec 1.0 §5.4 protocol control, §6.2 user control, §7.1 command
//! and data messages): the typed form of a reassembled chunk-stream message, both directions.

use bytes::{Bytes, BytesMut};

use crate::RtmpError;
use crate::amf0::{self, Value};
use crate::chunk::{ChunkEncoder, RawMessage};

/// Message type ids (§5.4, §7.1).
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream ids we send on (any id works; these are the ones FFmpeg uses).
pub mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
}

/// User control event types (§6.2, and §7.1.7 of the 2012 spec for ping).
pub mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        csid: u32,
    },
    Acknowledgement(u32),
    UserControl {
        event: u16,
        data: Bytes,
    },
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: u8,
    },
    Audio(Bytes),
    Video(Bytes),
    /// AMF0 (or AMF3-wrapped AMF0) data message, e.g. `@setDataFrame onMetaData {...}`.
    Data(Vec<Value>),
    /// AMF0 command: name, transaction id, command object, further arguments (§7.1.1).
    Command {
        name: String,
        transaction: f64,
        args: Vec<Value>,
    },
    /// Types we do not act on (shared objects and the like).
    Other(u8),
}

fn u32_at(what: &'static str, p: &[u8]) -> Result<u32, RtmpError> {
    match p {
        [a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(RtmpError::Message {
            type_id: 0,
            what: format!("{what}: {} of 4 bytes", p.len()),
        }),
    }
}

impl Message {
    pub fn parse(raw: &RawMessage) -> Result<Message, RtmpError> {
        let p = &raw.payload;
        let t = raw.type_id;
        let tag = |e: RtmpError| match e {
            RtmpError::Message { what, .. } => RtmpError::Message { type_id: t, what },
            e => e,
        };
        let amf = |body: &[u8]| {
            amf0::decode_all(body).map_err(|source| RtmpError::Amf0 { type_id: t, source })
        };
        Ok(match t {
            type_id::SET_CHUNK_SIZE => {
                Message::SetChunkSize(u32_at("Set Chunk Size", p).map_err(tag)? & 0x7fff_ffff)
            }
            type_id::ABORT => Message::Abort {
                csid: u32_at("Abort", p).map_err(tag)?,
            },
            type_id::ACKNOWLEDGEMENT => {
                Message::Acknowledgement(u32_at("Acknowledgement", p).map_err(tag)?)
            }
            type_id::USER_CONTROL => {
                if p.len() < 2 {
                    return Err(RtmpError::Message {
                        type_id: t,
                        what: "user control event shorter than 2 bytes".into(),
                    });
                }
                Message::UserControl {
                    event: u16::from_be_bytes([p[0], p[1]]),
                    data: p.slice(2..),
                }
            }
            type_id::WINDOW_ACK_SIZE => {
                Message::WindowAckSize(u32_at("Window Acknowledgement Size", p).map_err(tag)?)
            }
            type_id::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: u32_at("Set Peer Bandwidth", p).map_err(tag)?,
                limit: p.get(4).copied().unwrap_or(2),
            },
            type_id::AUDIO => Message::Audio(p.clone()),
            type_id::VIDEO => Message::Video(p.clone()),
            type_id::DATA_AMF0 => Message::Data(amf(p)?),
            // AMF3 data/command messages whose body is AMF0 after one format byte (§7.1.1).
            type_id::DATA_AMF3 => Message::Data(amf(p.get(1..).unwrap_or_default())?),
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let body = if t == type_id::COMMAND_AMF3 {
                    p.get(1..).unwrap_or_default()
                } else {
                    &p[..]
                };
                let mut values = amf(body)?.into_iter();
                let name = match values.next() {
                    Some(Value::String(s)) => s,
                    other => {
                        return Err(RtmpError::Message {
                            type_id: t,
                            what: format!("command name must be a string, found {other:?}"),
                        });
                    }
                };
                let transaction = values.next().and_then(|v| v.as_number()).unwrap_or(0.0);
                Message::Command {
                    name,
                    transaction,
                    args: values.collect(),
                }
            }
            type_id::AGGREGATE => {
                return Err(RtmpError::Message {
                    type_id: t,
                    what: "aggregate messages are not supported".into(),
                });
            }
            other => Message::Other(other),
        })
    }
}

/// Writes our messages into chunks, remembering the chunk size we announced.
#[derive(Debug, Default)]
pub struct Writer {
    pub out: BytesMut,
    enc: ChunkEncoder,
}

impl Writer {
    pub fn set_chunk_size(&mut self, size: u32) {
        self.control(type_id::SET_CHUNK_SIZE, &size.to_be_bytes());
        self.enc.set_chunk_size(size);
    }

    pub fn control(&mut self, t: u8, payload: &[u8]) {
        self.enc
            .write(&mut self.out, csid::CONTROL, 0, t, 0, payload);
    }

    pub fn window_ack_size(&mut self, size: u32) {
        self.control(type_id::WINDOW_ACK_SIZE, &size.to_be_bytes());
    }

    pub fn acknowledgement(&mut self, sequence: u32) {
        self.control(type_id::ACKNOWLEDGEMENT, &sequence.to_be_bytes());
    }

    pub fn set_peer_bandwidth(&mut self, size: u32) {
        let mut p = size.to_be_bytes().to_vec();
        p.push(2); // dynamic
        self.control(type_id::SET_PEER_BANDWIDTH, &p);
    }

    pub fn user_control(&mut self, event: u16, data: &[u8]) {
        let mut p = event.to_be_bytes().to_vec();
        p.extend_from_slice(data);
        self.control(type_id::USER_CONTROL, &p);
    }

    pub fn command(&mut self, stream_id: u32, name: &str, transaction: f64, args: &[Value]) {
        let mut b = BytesMut::new();
        amf0::encode(&mut b, &Value::String(name.to_string()));
        amf0::encode(&mut b, &Value::Number(transaction));
        for a in args {
            amf0::encode(&mut b, a);
        }
        self.enc.write(
            &mut self.out,
            csid::COMMAND,
            0,
            type_id::COMMAND_AMF0,
            stream_id,
            &b,
        );
    }

    pub fn data(&mut self, stream_id: u32, values: &[Value]) {
        let mut b = BytesMut::new();
        for v in values {
            amf0::encode(&mut b, v);
        }
        self.enc.write(
            &mut self.out,
            csid::DATA,
            0,
            type_id::DATA_AMF0,
            stream_id,
            &b,
        );
    }

    pub fn media(&mut self, video: bool, stream_id: u32, timestamp: u32, body: &[u8]) {
        let (c, t) = if video {
            (csid::VIDEO, type_id::VIDEO)
        } else {
            (csid::AUDIO, type_id::AUDIO)
        };
        self.enc
            .write(&mut self.out, c, timestamp, t, stream_id, body);
    }

    /// onStatus on a message stream (§7.2.2): `{level, code, description}`.
    pub fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = amf0::object([
            ("level", amf0::string(level)),
            ("code", amf0::string(code)),
            ("description", amf0::string(description)),
        ]);
        self.command(stream_id, "onStatus", 0.0, &[Value::Null, info]);
    }

    pub fn take(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }
}

/// Counts received bytes and says when an Acknowledgement is due (§5.4.3).
#[derive(Debug, Default)]
pub struct AckCounter {
    window: Option<u32>,
    total: u64,
    since_ack: u64,
}

impl AckCounter {
    pub fn set_window(&mut self, size: u32) {
        self.window = (size > 0).then_some(size);
    }

    /// Adds `n` received bytes; returns the sequence number to acknowledge, if one is due.
    pub fn received(&mut self, n: usize) -> Option<u32> {
        self.total += n as u64;
        self.since_ack += n as u64;
        let w = u64::from(self.window?);
        if self.since_ack >= w {
            self.since_ack = 0;
            Some(self.total as u32)
        } else {
            None
        }
    }
}

/// Encodes the AMF0 data body for `@setDataFrame onMetaData {props}` as publishers send it.
pub fn metadata_body(props: &[(String, Value)]) -> Vec<Value> {
    vec![
        amf0::string("@setDataFrame"),
        amf0::string("onMetaData"),
        Value::EcmaArray(props.to_vec()),
    ]
}
