//! The two ends of a hand-off connection as state machines: bytes in through
//! [`Session::handle_input`], bytes out of [`Session::poll_transmit`], events from
//! [`Session::poll_event`]. Nonces come from the caller, so a test can replay a session.
//!
//! Handshake (the client is the video server, the server the live server):
//! `Hello(magic, version, client nonce)` →; ← `Challenge(version, server nonce, server proof)`;
//! `Proof(client proof)` →; ← `Accept` (or `Refuse(reason)`). Each proof is HMAC-SHA256 of the
//! shared secret over a label and both nonces, so each side proves it holds the secret without
//! sending it, and a proof from one connection is worthless on another. Every frame after the
//! handshake ends with a tag, HMAC-SHA256 under a key derived from the secret and both nonces
//! over the direction, a per-direction sequence number and the frame: altered, injected,
//! replayed or reordered frames are refused.

use std::collections::VecDeque;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::LiveMessage;
use crate::frame::{
    HandoffError, LEN_PREFIX, Limits, MAGIC, NONCE_LEN, PROOF_LEN, Reader, RefuseReason, TAG_LEN,
    VERSION, decode_message_body, encode_message_body, kind, message_kind,
};

type HmacSha256 = Hmac<Sha256>;

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is done: both sides proved the secret; messages may flow.
    Ready,
    /// A message from the video server (server side only).
    Message(LiveMessage),
    /// The peer answered a ping (its token).
    Pong(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client: hello sent, waiting for the challenge. Server: waiting for the hello.
    Hello,
    /// Client: proof sent, waiting for accept. Server: challenge sent, waiting for the proof.
    Proof,
    Ready,
    Failed,
}

/// One end of a hand-off connection. See the module docs.
pub struct Session {
    client: bool,
    secret: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    peer_nonce: [u8; NONCE_LEN],
    /// Key of the frame tags, derived at the handshake.
    key: Option<HmacSha256>,
    state: State,
    limits: Limits,
    input: Vec<u8>,
    /// Connection offset of `input[0]`.
    consumed: u64,
    output: Vec<u8>,
    send_seq: u64,
    recv_seq: u64,
    events: VecDeque<Event>,
}

const LABEL_SERVER: &[u8] = b"vshare-handoff/1 server proof";
const LABEL_CLIENT: &[u8] = b"vshare-handoff/1 client proof";
const LABEL_KEY: &[u8] = b"vshare-handoff/1 frame key";

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this never fails.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

impl Session {
    /// The video server's end: its hello is queued at once.
    pub fn client(secret: &[u8], nonce: [u8; NONCE_LEN], limits: Limits) -> Session {
        let mut s = Session::new(true, secret, nonce, limits);
        let mut body = Vec::with_capacity(38);
        body.extend_from_slice(&MAGIC);
        body.extend_from_slice(&VERSION.to_be_bytes());
        body.extend_from_slice(&nonce);
        s.put_frame(kind::HELLO, &body);
        s
    }

    /// The live server's end: it waits for a hello.
    pub fn server(secret: &[u8], nonce: [u8; NONCE_LEN], limits: Limits) -> Session {
        Session::new(false, secret, nonce, limits)
    }

    fn new(client: bool, secret: &[u8], nonce: [u8; NONCE_LEN], limits: Limits) -> Session {
        Session {
            client,
            secret: secret.to_vec(),
            nonce,
            peer_nonce: [0; NONCE_LEN],
            key: None,
            state: State::Hello,
            limits,
            input: Vec::new(),
            consumed: 0,
            output: Vec::new(),
            send_seq: 0,
            recv_seq: 0,
            events: VecDeque::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// The bytes to write to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues one message (client, after [`Event::Ready`]).
    pub fn send(&mut self, msg: &LiveMessage) -> Result<(), HandoffError> {
        if !self.client || self.state != State::Ready {
            return Err(HandoffError::NotReady);
        }
        let mut body = Vec::with_capacity(msg.weight() + 16);
        encode_message_body(msg, &self.limits, &mut body)?;
        let max = self.limits.max_frame_bytes as usize;
        if body.len() + 1 + TAG_LEN > max {
            return Err(HandoffError::TooLargeToSend {
                field: "frame",
                len: (body.len() + 1 + TAG_LEN) as u64,
                max: max as u64,
            });
        }
        self.put_tagged(message_kind(msg), &body);
        Ok(())
    }

    /// Queues a ping (either side, when ready); the peer answers with the same token.
    pub fn ping(&mut self, token: u64) -> Result<(), HandoffError> {
        if self.state != State::Ready {
            return Err(HandoffError::NotReady);
        }
        self.put_tagged(kind::PING, &token.to_be_bytes());
        Ok(())
    }

    /// The connection ended: an error when it ended inside a frame.
    pub fn finish(&self) -> Result<(), HandoffError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(HandoffError::EndedInFrame {
                buffered: self.input.len() as u64,
            })
        }
    }

    /// Takes bytes from the peer; every complete frame is handled. An error ends the session
    /// (a refusal may be queued for the peer first).
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), HandoffError> {
        if self.state == State::Failed {
            return Err(HandoffError::Closed);
        }
        self.input.extend_from_slice(bytes);
        let result = self.drain();
        if let Err(e) = &result {
            self.state = State::Failed;
            self.input.clear();
            if !self.client {
                let reason = match e {
                    HandoffError::WrongSecret { .. } => RefuseReason::WrongSecret,
                    HandoffError::Version { .. } => RefuseReason::Version,
                    _ => RefuseReason::Protocol,
                };
                self.put_frame(kind::REFUSE, &[reason.to_byte()]);
            }
        }
        result
    }

    fn drain(&mut self) -> Result<(), HandoffError> {
        let mut at = 0usize;
        let result = loop {
            let rest = &self.input[at..];
            if rest.len() < LEN_PREFIX {
                break Ok(());
            }
            let offset = self.consumed + at as u64;
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            if len > self.limits.max_frame_bytes || self.handshake_len_exceeded(len) {
                break Err(HandoffError::FrameTooLarge {
                    offset,
                    len: len.into(),
                    max: self.max_now(),
                });
            }
            if len == 0 {
                break Err(HandoffError::FrameTooShort { offset, len: 0 });
            }
            let total = LEN_PREFIX + len as usize;
            if rest.len() < total {
                break Ok(());
            }
            let frame = rest[LEN_PREFIX..total].to_vec();
            at += total;
            if let Err(e) = self.handle_frame(&frame, offset + LEN_PREFIX as u64) {
                break Err(e);
            }
        };
        self.input.drain(..at);
        self.consumed += at as u64;
        result
    }

    /// Before the handshake is done, frames are small: a stranger cannot make us buffer 16 MB.
    fn handshake_len_exceeded(&self, len: u32) -> bool {
        self.state != State::Ready && len > 256
    }

    fn max_now(&self) -> u32 {
        if self.state == State::Ready {
            self.limits.max_frame_bytes
        } else {
            256
        }
    }

    /// One frame (kind, body and tag) that starts at connection offset `offset`.
    fn handle_frame(&mut self, frame: &[u8], offset: u64) -> Result<(), HandoffError> {
        let Some((&k, body)) = frame.split_first() else {
            return Err(HandoffError::FrameTooShort { offset, len: 0 });
        };
        let body_at = offset + 1;
        if k == kind::REFUSE {
            let reason = Reader::new(body, body_at).u8("reason")?;
            return Err(HandoffError::Refused(RefuseReason::from_byte(reason)));
        }
        match (self.client, self.state) {
            (false, State::Hello) => {
                self.expect(k, kind::HELLO, offset, "before the hello")?;
                let mut r = Reader::new(body, body_at);
                let at = body_at;
                if r.array::<4>("magic")? != MAGIC {
                    return Err(HandoffError::BadMagic { offset: at });
                }
                let (at, version) = r.version()?;
                if version != VERSION {
                    return Err(HandoffError::Version {
                        offset: at,
                        version,
                    });
                }
                self.peer_nonce = r.array("nonce")?;
                r.end()?;
                let proof = self.proof(LABEL_SERVER);
                let mut out = Vec::with_capacity(2 + NONCE_LEN + PROOF_LEN);
                out.extend_from_slice(&VERSION.to_be_bytes());
                out.extend_from_slice(&self.nonce);
                out.extend_from_slice(&proof);
                self.put_frame(kind::CHALLENGE, &out);
                self.state = State::Proof;
            }
            (false, State::Proof) => {
                self.expect(k, kind::PROOF, offset, "after the challenge")?;
                let mut r = Reader::new(body, body_at);
                let proof: [u8; PROOF_LEN] = r.array("proof")?;
                r.end()?;
                self.verify(LABEL_CLIENT, &proof, body_at)?;
                self.put_frame(kind::ACCEPT, &[]);
                self.ready();
            }
            (true, State::Hello) => {
                self.expect(k, kind::CHALLENGE, offset, "after the hello")?;
                let mut r = Reader::new(body, body_at);
                let (at, version) = r.version()?;
                if version != VERSION {
                    return Err(HandoffError::Version {
                        offset: at,
                        version,
                    });
                }
                self.peer_nonce = r.array("nonce")?;
                let at = body_at + 2 + NONCE_LEN as u64;
                let proof: [u8; PROOF_LEN] = r.array("proof")?;
                r.end()?;
                self.verify(LABEL_SERVER, &proof, at)?;
                let mine = self.proof(LABEL_CLIENT);
                self.put_frame(kind::PROOF, &mine);
                self.state = State::Proof;
            }
            (true, State::Proof) => {
                self.expect(k, kind::ACCEPT, offset, "after the proof")?;
                Reader::new(body, body_at).end()?;
                self.ready();
            }
            (_, State::Ready) => self.handle_tagged(k, body, body_at)?,
            (_, State::Failed) => return Err(HandoffError::Closed),
        }
        Ok(())
    }

    fn expect(
        &self,
        k: u8,
        want: u8,
        offset: u64,
        state: &'static str,
    ) -> Result<(), HandoffError> {
        if k == want {
            Ok(())
        } else {
            Err(HandoffError::Unexpected {
                offset,
                kind: k,
                state,
            })
        }
    }

    fn ready(&mut self) {
        let (cn, sn) = self.nonces();
        let mut m = mac(&self.secret);
        m.update(LABEL_KEY);
        m.update(&cn);
        m.update(&sn);
        self.key = Some(mac(&m.finalize().into_bytes()));
        self.state = State::Ready;
        self.events.push_back(Event::Ready);
    }

    /// (client nonce, server nonce).
    fn nonces(&self) -> ([u8; NONCE_LEN], [u8; NONCE_LEN]) {
        if self.client {
            (self.nonce, self.peer_nonce)
        } else {
            (self.peer_nonce, self.nonce)
        }
    }

    fn proof_mac(&self, label: &[u8]) -> HmacSha256 {
        let (cn, sn) = self.nonces();
        let mut m = mac(&self.secret);
        m.update(label);
        m.update(&cn);
        m.update(&sn);
        m
    }

    fn proof(&self, label: &[u8]) -> [u8; PROOF_LEN] {
        self.proof_mac(label).finalize().into_bytes().into()
    }

    fn verify(&self, label: &[u8], proof: &[u8], offset: u64) -> Result<(), HandoffError> {
        // Constant time.
        self.proof_mac(label)
            .verify_slice(proof)
            .map_err(|_| HandoffError::WrongSecret { offset })
    }

    /// The tag of a frame: direction, sequence number, kind, body.
    fn tag(&self, from_client: bool, seq: u64, k: u8, body: &[u8]) -> HmacSha256 {
        let mut m = match &self.key {
            Some(key) => key.clone(),
            None => mac(&[]),
        };
        m.update(&[u8::from(from_client), k]);
        m.update(&seq.to_be_bytes());
        m.update(body);
        m
    }

    fn handle_tagged(&mut self, k: u8, rest: &[u8], body_at: u64) -> Result<(), HandoffError> {
        let Some(body_len) = rest.len().checked_sub(TAG_LEN) else {
            return Err(HandoffError::FrameTooShort {
                offset: body_at - 1,
                len: rest.len() as u64 + 1,
            });
        };
        let (body, tag) = rest.split_at(body_len);
        self.tag(!self.client, self.recv_seq, k, body)
            .verify_truncated_left(tag)
            .map_err(|_| HandoffError::BadTag {
                offset: body_at + body_len as u64,
            })?;
        self.recv_seq += 1;
        match k {
            kind::PING => {
                let mut r = Reader::new(body, body_at);
                let token = r.u64("token")?;
                r.end()?;
                self.put_tagged(kind::PONG, &token.to_be_bytes());
            }
            kind::PONG => {
                let mut r = Reader::new(body, body_at);
                let token = r.u64("token")?;
                r.end()?;
                self.events.push_back(Event::Pong(token));
            }
            _ if self.client => {
                return Err(HandoffError::Unexpected {
                    offset: body_at - 1,
                    kind: k,
                    state: "at a video server",
                });
            }
            _ => match decode_message_body(k, body, &self.limits, body_at)? {
                Some(msg) => self.events.push_back(Event::Message(msg)),
                None => {
                    return Err(HandoffError::UnknownKind {
                        offset: body_at - 1,
                        kind: k,
                    });
                }
            },
        }
        Ok(())
    }

    fn put_frame(&mut self, k: u8, body: &[u8]) {
        let len = (1 + body.len()) as u32;
        self.output.extend_from_slice(&len.to_be_bytes());
        self.output.push(k);
        self.output.extend_from_slice(body);
    }

    fn put_tagged(&mut self, k: u8, body: &[u8]) {
        let tag = self
            .tag(self.client, self.send_seq, k, body)
            .finalize()
            .into_bytes();
        self.send_seq += 1;
        let len = (1 + body.len() + TAG_LEN) as u32;
        self.output.reserve(LEN_PREFIX + len as usize);
        self.output.extend_from_slice(&len.to_be_bytes());
        self.output.push(k);
        self.output.extend_from_slice(body);
        self.output.extend_from_slice(&tag[..TAG_LEN]);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
