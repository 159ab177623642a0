//! The server side of one RTMP connection: handshake, connect, createStream, publish, media.

use std::collections::VecDeque;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

use crate::amf0::{self, Value};
use crate::chunk::ChunkDecoder;
use crate::message::{AckCounter, Message, Writer, user_control};
use crate::{RtmpError, ServerLimits, TimestampExtender};

/// Chunk size we send with (FFmpeg and OBS use 4096 too).
const OUR_CHUNK_SIZE: u32 = 4096;
/// Window Acknowledgement Size and peer bandwidth we announce (§5.4.4, §5.4.5).
const WINDOW: u32 = 5_000_000;
/// Most message streams one connection may create.
const MAX_STREAMS: usize = 8;

/// What the server application must act on, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The peer connected to an application (`connect`, §7.2.1.1); always accepted — authorisation
    /// happens at publish, by stream key.
    Connected { app: String, tc_url: Option<String> },
    /// The peer wants to publish (`publish`, §7.2.2.6). Answer with
    /// [`ServerConnection::accept_publish`] or [`ServerConnection::reject_publish`].
    PublishRequested {
        request_id: u32,
        app: String,
        stream_key: String,
    },
    /// `@setDataFrame onMetaData` properties (width, height, framerate, encoder, ...).
    Metadata(Vec<(String, Value)>),
    /// One FLV video tag body; `timestamp_ms` is the decode time, extended past the 32-bit wrap.
    Video { timestamp_ms: i64, body: Bytes },
    /// One FLV audio tag body.
    Audio { timestamp_ms: i64, body: Bytes },
    /// The publisher stopped (`FCUnpublish`, `deleteStream` or `closeStream`). Raised once.
    PublishFinished,
    /// The peer asked to play; we answered `NetStream.Play.StreamNotFound` (vshare serves HLS,
    /// not RTMP playback). The adapter should flush and close.
    PlayRejected { app: String, stream_key: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublishState {
    Pending,
    Publishing,
    Rejected,
    Finished,
}

#[derive(Debug)]
struct Publish {
    request_id: u32,
    stream_id: u32,
    stream_key: String,
    state: PublishState,
}

/// One server-side RTMP connection. See the crate docs for the run loop.
pub struct ServerConnection {
    limits: ServerLimits,
    handshake: Option<Handshake>,
    handshake_bytes: u64,
    decoder: Option<ChunkDecoder>,
    writer: Writer,
    events: VecDeque<ServerEvent>,
    ack: AckCounter,
    app: Option<String>,
    streams: Vec<u32>,
    next_stream_id: u32,
    publish: Option<Publish>,
    next_request_id: u32,
    timestamps: TimestampExtender,
    failed: Option<String>,
}

impl ServerConnection {
    pub fn new(limits: ServerLimits) -> Self {
        Self {
            limits,
            handshake: Some(Handshake::new(PeerType::Server)),
            handshake_bytes: 0,
            decoder: None,
            writer: Writer::default(),
            events: VecDeque::new(),
            ack: AckCounter::default(),
            app: None,
            streams: Vec::new(),
            next_stream_id: 1,
            publish: None,
            next_request_id: 1,
            timestamps: TimestampExtender::default(),
            failed: None,
        }
    }

    /// Feeds bytes read from the socket. An error is fatal: close the connection.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if let Some(f) = &self.failed {
            return Err(RtmpError::Failed(f.clone()));
        }
        let r = self.input(bytes);
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if let Some(seq) = self.ack.received(bytes.len()) {
            self.writer.acknowledgement(seq);
        }
        let mut rest = bytes;
        let leftover;
        if let Some(hs) = self.handshake.as_mut() {
            // The handshake is 1 + 1536 + 1536 bytes from the client (§5.2.5).
            let before = self.handshake_bytes;
            match hs.process_bytes(rest).map_err(|e| {
                RtmpError::Handshake(format!(
                    "{e} (within the first {} bytes)",
                    before + rest.len() as u64
                ))
            })? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.handshake_bytes += rest.len() as u64;
                    self.writer.out.extend_from_slice(&response_bytes);
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.writer.out.extend_from_slice(&response_bytes);
                    self.handshake = None;
                    let mut decoder = ChunkDecoder::new(
                        self.limits.max_chunk_size,
                        self.limits.max_message_size,
                        3073,
                    );
                    // Until a publish is accepted the peer is anonymous: small messages only.
                    let small = self.limits.max_command_size;
                    decoder.set_limits(small, small);
                    self.decoder = Some(decoder);
                    leftover = remaining_bytes;
                    rest = &leftover;
                }
            }
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(RtmpError::Protocol(
                "no chunk decoder after the handshake".into(),
            ));
        };
        decoder.push(rest);
        while let Some(raw) = self
            .decoder
            .as_mut()
            .map(ChunkDecoder::next_message)
            .transpose()?
            .flatten()
        {
            let msg = Message::parse(&raw)?;
            self.on_message(raw.stream_id, raw.timestamp, msg)?;
        }
        Ok(())
    }

    fn decoder(&mut self) -> Result<&mut ChunkDecoder, RtmpError> {
        self.decoder
            .as_mut()
            .ok_or_else(|| RtmpError::Protocol("message before the handshake completed".into()))
    }

    fn on_message(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        msg: Message,
    ) -> Result<(), RtmpError> {
        match msg {
            Message::SetChunkSize(n) => self.decoder()?.set_chunk_size(n)?,
            Message::Abort { csid } => self.decoder()?.abort(csid),
            Message::WindowAckSize(n) => self.ack.set_window(n),
            Message::UserControl { event, data } => {
                if event == user_control::PING_REQUEST {
                    self.writer.user_control(user_control::PING_RESPONSE, &data);
                }
            }
            Message::Audio(body) | Message::Video(body) if body.is_empty() => {}
            Message::Video(body) => {
                if self.media_allowed(stream_id, "video")? {
                    let timestamp_ms = self.timestamps.extend(timestamp);
                    self.events
                        .push_back(ServerEvent::Video { timestamp_ms, body });
                }
            }
            Message::Audio(body) => {
                if self.media_allowed(stream_id, "audio")? {
                    let timestamp_ms = self.timestamps.extend(timestamp);
                    self.events
                        .push_back(ServerEvent::Audio { timestamp_ms, body });
                }
            }
            Message::Data(values) => self.on_data(stream_id, values),
            Message::Command {
                name,
                transaction,
                args,
            } => self.on_command(stream_id, &name, transaction, args)?,
            Message::Acknowledgement(_) | Message::SetPeerBandwidth { .. } | Message::Other(_) => {}
        }
        Ok(())
    }

    /// Media is passed on only on the stream being published; while the publish request is
    /// pending it is dropped; anywhere else it is a protocol error.
    fn media_allowed(&self, stream_id: u32, what: &str) -> Result<bool, RtmpError> {
        match &self.publish {
            Some(p) if p.stream_id == stream_id => match p.state {
                PublishState::Publishing => Ok(true),
                PublishState::Pending | PublishState::Finished => Ok(false),
                PublishState::Rejected => Err(RtmpError::Protocol(format!(
                    "{what} on message stream {stream_id} after its publish was rejected"
                ))),
            },
            _ => Err(RtmpError::Protocol(format!(
                "{what} message on message stream {stream_id}, which is not publishing"
            ))),
        }
    }

    fn on_data(&mut self, stream_id: u32, values: Vec<Value>) {
        let publishing = self
            .publish
            .as_ref()
            .is_some_and(|p| p.stream_id == stream_id && p.state == PublishState::Publishing);
        if !publishing {
            return;
        }
        let mut it = values.into_iter().peekable();
        if it.peek().and_then(Value::as_str) == Some("@setDataFrame") {
            it.next();
        }
        if it.next().as_ref().and_then(Value::as_str) != Some("onMetaData") {
            return;
        }
        if let Some(Value::Object(p) | Value::EcmaArray(p)) = it.next() {
            self.events.push_back(ServerEvent::Metadata(p));
        }
    }

    fn on_command(
        &mut self,
        stream_id: u32,
        name: &str,
        transaction: f64,
        args: Vec<Value>,
    ) -> Result<(), RtmpError> {
        let string_arg = |i: usize| args.get(i).and_then(Value::as_str).map(str::to_string);
        if name == "connect" {
            if self.app.is_some() {
                return Err(RtmpError::Protocol(
                    "second connect on one connection".into(),
                ));
            }
            let obj = args.first();
            let app = obj
                .and_then(|o| o.get("app"))
                .and_then(Value::as_str)
                .ok_or_else(|| RtmpError::Protocol("connect without an app name".into()))?
                .trim_end_matches('/')
                .to_string();
            let tc_url = obj
                .and_then(|o| o.get("tcUrl"))
                .and_then(Value::as_str)
                .map(str::to_string);
            self.writer.window_ack_size(WINDOW);
            self.writer.set_peer_bandwidth(WINDOW);
            self.writer.set_chunk_size(OUR_CHUNK_SIZE);
            let props = amf0::object([
                ("fmsVer", amf0::string("FMS/3,0,1,123")),
                ("capabilities", Value::Number(31.0)),
            ]);
            let info = amf0::object([
                ("level", amf0::string("status")),
                ("code", amf0::string("NetConnection.Connect.Success")),
                ("description", amf0::string("Connection succeeded.")),
                ("objectEncoding", Value::Number(0.0)),
            ]);
            self.writer
                .command(0, "_result", transaction, &[props, info]);
            self.app = Some(app.clone());
            self.events
                .push_back(ServerEvent::Connected { app, tc_url });
            return Ok(());
        }
        let Some(app) = self.app.clone() else {
            return Err(RtmpError::Protocol(format!(
                "command {name:?} before connect"
            )));
        };
        match name {
            "releaseStream" | "FCPublish" if transaction != 0.0 => {
                self.writer
                    .command(0, "_result", transaction, &[Value::Null, Value::Undefined]);
            }
            "createStream" => {
                if self.streams.len() >= MAX_STREAMS {
                    return Err(RtmpError::Protocol(format!(
                        "more than {MAX_STREAMS} message streams created"
                    )));
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.streams.push(id);
                self.writer.command(
                    0,
                    "_result",
                    transaction,
                    &[Value::Null, Value::Number(f64::from(id))],
                );
            }
            "publish" => {
                if !self.streams.contains(&stream_id) {
                    return Err(RtmpError::Protocol(format!(
                        "publish on message stream {stream_id}, which createStream did not create"
                    )));
                }
                if self.publish.is_some() {
                    return Err(RtmpError::Protocol(
                        "a second publish on one connection".into(),
                    ));
                }
                let stream_key = string_arg(1)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| RtmpError::Protocol("publish without a stream name".into()))?;
                let request_id = self.next_request_id;
                self.next_request_id += 1;
                self.publish = Some(Publish {
                    request_id,
                    stream_id,
                    stream_key: stream_key.clone(),
                    state: PublishState::Pending,
                });
                self.events.push_back(ServerEvent::PublishRequested {
                    request_id,
                    app,
                    stream_key,
                });
            }
            "play" => {
                let stream_key = string_arg(1).unwrap_or_default();
                self.writer.on_status(
                    stream_id,
                    "error",
                    "NetStream.Play.StreamNotFound",
                    "This server does not play RTMP; watch the stream over HLS.",
                );
                self.events
                    .push_back(ServerEvent::PlayRejected { app, stream_key });
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                if let Some(p) = self.publish.as_mut()
                    && p.state == PublishState::Publishing
                {
                    p.state = PublishState::Finished;
                    self.events.push_back(ServerEvent::PublishFinished);
                }
                if name == "deleteStream"
                    && let Some(id) = args.get(1).and_then(Value::as_number)
                {
                    self.streams.retain(|s| f64::from(*s) != id);
                }
            }
            // getStreamLength, _checkbw, receiveAudio, ...: nothing to do for a publisher.
            _ => {}
        }
        Ok(())
    }

    fn pending(&mut self, request_id: u32) -> Result<&mut Publish, RtmpError> {
        match self.publish.as_mut() {
            Some(p) if p.request_id == request_id && p.state == PublishState::Pending => Ok(p),
            _ => Err(RtmpError::UnknownRequest(request_id)),
        }
    }

    /// Accepts a publish request: StreamBegin and `onStatus NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, request_id: u32) -> Result<(), RtmpError> {
        let p = self.pending(request_id)?;
        p.state = PublishState::Publishing;
        let (id, key) = (p.stream_id, p.stream_key.clone());
        let (media, control) = (self.limits.max_message_size, self.limits.max_command_size);
        if let Some(d) = self.decoder.as_mut() {
            d.set_limits(media, control);
        }
        self.writer
            .user_control(user_control::STREAM_BEGIN, &id.to_be_bytes());
        self.writer.on_status(
            id,
            "status",
            "NetStream.Publish.Start",
            &format!("{key} is now published."),
        );
        Ok(())
    }

    /// Rejects a publish request with `onStatus` level `error` and `code` (for example
    /// `NetStream.Publish.BadName`). The adapter should flush the transmit queue and close.
    pub fn reject_publish(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), RtmpError> {
        let p = self.pending(request_id)?;
        p.state = PublishState::Rejected;
        let id = p.stream_id;
        self.writer.on_status(id, "error", code, description);
        Ok(())
    }

    /// Bytes to write to the socket, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.writer.take()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The application name of the `connect`, once connected.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// Whether the handshake is done and messages flow.
    pub fn is_handshake_done(&self) -> bool {
        self.handshake.is_none()
    }
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("app", &self.app)
            .field("publish", &self.publish)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
