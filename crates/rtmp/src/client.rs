//! The publishing client side of one RTMP connection, as FFmpeg and OBS drive it: handshake,
//! `connect`, `releaseStream`/`FCPublish`/`createStream`, `publish`, media, `FCUnpublish` +
//! `deleteStream`.

use std::collections::VecDeque;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

use crate::amf0::{self, Value};
use crate::chunk::ChunkDecoder;
use crate::message::{AckCounter, Message, Writer, metadata_body, user_control};
use crate::{RtmpError, wire_timestamp};

/// Chunk size we send with.
const OUR_CHUNK_SIZE: u32 = 4096;
/// Largest message we accept from a server (servers send small commands).
const MAX_SERVER_MESSAGE: usize = 1024 * 1024;

const TX_CONNECT: f64 = 1.0;
const TX_RELEASE: f64 = 2.0;
const TX_FCPUBLISH: f64 = 3.0;
const TX_CREATE_STREAM: f64 = 4.0;
const TX_PUBLISH: f64 = 5.0;

/// What happened on a client connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `onStatus NetStream.Publish.Start`: media may be sent now.
    Published,
    /// The server refused the connect, the stream or the publish.
    Rejected { code: String, description: String },
    /// Another `onStatus` (level, code, description).
    Status {
        level: String,
        code: String,
        description: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connecting,
    CreatingStream,
    PublishRequested,
    Published,
    Rejected,
    Finished,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Handshaking => "still handshaking",
            State::Connecting => "connecting",
            State::CreatingStream => "being created",
            State::PublishRequested => "waiting for the publish answer",
            State::Published => "published",
            State::Rejected => "rejected",
            State::Finished => "finished",
        }
    }
}

/// One publishing RTMP client connection.
pub struct ClientConnection {
    app: String,
    stream_key: String,
    tc_url: String,
    handshake: Option<Handshake>,
    decoder: Option<ChunkDecoder>,
    writer: Writer,
    events: VecDeque<ClientEvent>,
    ack: AckCounter,
    state: State,
    stream_id: u32,
    failed: Option<String>,
    bytes_sent_media: u64,
    /// The chunk size this client sends with (§5.4.1).
    chunk_size: u32,
}

impl ClientConnection {
    /// Starts a connection: the first transmit is the handshake's C0 and C1 (§5.2.5).
    pub fn new(app: &str, stream_key: &str, tc_url: &str) -> Self {
        let mut hs = Handshake::new(PeerType::Client);
        let mut writer = Writer::default();
        let failed = match hs.generate_outbound_p0_and_p1() {
            Ok(c0c1) => {
                writer.out.extend_from_slice(&c0c1);
                None
            }
            Err(e) => Some(format!("RTMP handshake: {e}")),
        };
        Self {
            app: app.to_string(),
            stream_key: stream_key.to_string(),
            tc_url: tc_url.to_string(),
            handshake: Some(hs),
            decoder: None,
            writer,
            events: VecDeque::new(),
            ack: AckCounter::default(),
            state: State::Handshaking,
            stream_id: 0,
            failed,
            bytes_sent_media: 0,
            chunk_size: OUR_CHUNK_SIZE,
        }
    }

    /// Sends with chunks of `size` bytes instead of 4096 (128, RTMP's default, is what ffmpeg
    /// and most encoders keep: many more chunk headers per frame). Clamped to 1..=2^31−1.
    pub fn with_chunk_size(mut self, size: u32) -> Self {
        self.chunk_size = size.clamp(1, 0x7fff_ffff);
        self
    }

    /// Feeds bytes read from the socket. An error is fatal.
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
        let leftover;
        let mut rest = bytes;
        if let Some(hs) = self.handshake.as_mut() {
            match hs
                .process_bytes(rest)
                .map_err(|e| RtmpError::Handshake(e.to_string()))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.writer.out.extend_from_slice(&response_bytes);
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.writer.out.extend_from_slice(&response_bytes);
                    self.handshake = None;
                    self.decoder = Some(ChunkDecoder::new(1 << 24, MAX_SERVER_MESSAGE, 3073));
                    leftover = remaining_bytes;
                    rest = &leftover;
                    self.start_connect();
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
            self.on_message(msg)?;
        }
        Ok(())
    }

    fn start_connect(&mut self) {
        if self.chunk_size != 128 {
            self.writer.set_chunk_size(self.chunk_size);
        }
        let obj = amf0::object([
            ("app", amf0::string(self.app.clone())),
            ("type", amf0::string("nonprivate")),
            ("flashVer", amf0::string("FMLE/3.0 (compatible; vshare)")),
            ("tcUrl", amf0::string(self.tc_url.clone())),
        ]);
        self.writer.command(0, "connect", TX_CONNECT, &[obj]);
        self.state = State::Connecting;
    }

    fn on_message(&mut self, msg: Message) -> Result<(), RtmpError> {
        match msg {
            Message::SetChunkSize(n) => {
                if let Some(d) = self.decoder.as_mut() {
                    d.set_chunk_size(n)?;
                }
            }
            Message::Abort { csid } => {
                if let Some(d) = self.decoder.as_mut() {
                    d.abort(csid);
                }
            }
            Message::WindowAckSize(n) => self.ack.set_window(n),
            Message::UserControl { event, data } if event == user_control::PING_REQUEST => {
                self.writer.user_control(user_control::PING_RESPONSE, &data);
            }
            Message::Command {
                name,
                transaction,
                args,
            } => self.on_command(&name, transaction, &args)?,
            _ => {}
        }
        Ok(())
    }

    fn status_of(args: &[Value]) -> (String, String, String) {
        let info = args.iter().find(|v| matches!(v, Value::Object(_)));
        let field = |k: &str| {
            info.and_then(|o| o.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (field("level"), field("code"), field("description"))
    }

    fn reject(&mut self, code: String, description: String) {
        self.state = State::Rejected;
        self.events
            .push_back(ClientEvent::Rejected { code, description });
    }

    fn on_command(
        &mut self,
        name: &str,
        transaction: f64,
        args: &[Value],
    ) -> Result<(), RtmpError> {
        match name {
            "_result" if transaction == TX_CONNECT && self.state == State::Connecting => {
                self.events.push_back(ClientEvent::Connected);
                let key = amf0::string(self.stream_key.clone());
                self.writer
                    .command(0, "releaseStream", TX_RELEASE, &[Value::Null, key.clone()]);
                self.writer
                    .command(0, "FCPublish", TX_FCPUBLISH, &[Value::Null, key]);
                self.writer
                    .command(0, "createStream", TX_CREATE_STREAM, &[Value::Null]);
                self.state = State::CreatingStream;
            }
            "_result" if transaction == TX_CREATE_STREAM && self.state == State::CreatingStream => {
                let id = args
                    .iter()
                    .filter_map(Value::as_number)
                    .next()
                    .filter(|n| *n >= 1.0 && *n <= f64::from(u32::MAX))
                    .ok_or_else(|| {
                        RtmpError::Protocol(format!(
                            "createStream result without a stream id: {args:?}"
                        ))
                    })?;
                self.stream_id = id as u32;
                let key = amf0::string(self.stream_key.clone());
                self.writer.command(
                    self.stream_id,
                    "publish",
                    TX_PUBLISH,
                    &[Value::Null, key, amf0::string("live")],
                );
                self.state = State::PublishRequested;
            }
            "_error"
                if transaction == TX_CONNECT
                    || transaction == TX_CREATE_STREAM
                    || transaction == TX_PUBLISH =>
            {
                let (_, code, description) = Self::status_of(args);
                self.reject(code, description);
            }
            "onStatus" => {
                let (level, code, description) = Self::status_of(args);
                if code == "NetStream.Publish.Start" && self.state == State::PublishRequested {
                    self.state = State::Published;
                    self.events.push_back(ClientEvent::Published);
                } else if level == "error" && self.state != State::Finished {
                    self.reject(code, description);
                } else {
                    self.events.push_back(ClientEvent::Status {
                        level,
                        code,
                        description,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_published(&self) -> Result<(), RtmpError> {
        if let Some(f) = &self.failed {
            return Err(RtmpError::Failed(f.clone()));
        }
        if self.state == State::Published {
            Ok(())
        } else {
            Err(RtmpError::NotPublishing(self.state.name()))
        }
    }

    /// Queues one FLV video tag body with decode time `timestamp_ms`.
    pub fn send_video(&mut self, timestamp_ms: i64, body: &[u8]) -> Result<(), RtmpError> {
        self.check_published()?;
        self.writer
            .media(true, self.stream_id, wire_timestamp(timestamp_ms), body);
        self.bytes_sent_media += body.len() as u64;
        Ok(())
    }

    /// Queues one FLV audio tag body.
    pub fn send_audio(&mut self, timestamp_ms: i64, body: &[u8]) -> Result<(), RtmpError> {
        self.check_published()?;
        self.writer
            .media(false, self.stream_id, wire_timestamp(timestamp_ms), body);
        self.bytes_sent_media += body.len() as u64;
        Ok(())
    }

    /// Queues `@setDataFrame onMetaData {props}` (width, height, framerate, videodatarate, ...).
    pub fn send_metadata(&mut self, props: &[(String, Value)]) -> Result<(), RtmpError> {
        self.check_published()?;
        self.writer.data(self.stream_id, &metadata_body(props));
        Ok(())
    }

    /// Ends the publish: `FCUnpublish` and `deleteStream`. Flush the transmit queue, then close.
    pub fn finish(&mut self) {
        if self.state == State::Published || self.state == State::PublishRequested {
            let key = amf0::string(self.stream_key.clone());
            self.writer
                .command(0, "FCUnpublish", 6.0, &[Value::Null, key]);
            self.writer.command(
                0,
                "deleteStream",
                7.0,
                &[Value::Null, Value::Number(f64::from(self.stream_id))],
            );
        }
        self.state = State::Finished;
    }

    pub fn is_published(&self) -> bool {
        self.state == State::Published
    }

    /// Total FLV tag body bytes queued so far.
    pub fn media_bytes_sent(&self) -> u64 {
        self.bytes_sent_media
    }

    /// Bytes to write to the socket, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.writer.take()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}

impl std::fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("app", &self.app)
            .field("state", &self.state)
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}
