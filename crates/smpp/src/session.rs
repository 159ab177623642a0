//! The SMPP session (§2.2–2.9) as a state machine for either end. The caller moves bytes and
//! time; the session keeps sequence numbers, the window of outstanding requests, binds,
//! enquire_link keep-alives, response timeouts and backoff after throttling (0x58) or a full
//! queue (0x14).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::pdu::{Bind, BindResp, Body, Pdu, PduError, Sm};
use crate::status;

/// Which bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    /// May send submit_sm (ESME) / receive them (SMSC).
    pub fn transmits(self) -> bool {
        matches!(self, BindKind::Transmitter | BindKind::Transceiver)
    }
    /// May receive deliver_sm.
    pub fn receives(self) -> bool {
        matches!(self, BindKind::Receiver | BindKind::Transceiver)
    }
}

/// Session state (§2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Binding,
    Bound(BindKind),
    Unbinding,
    Closed,
}

/// Tunables; the defaults suit a local SMSC.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most requests (submit_sm or deliver_sm) outstanding at once.
    pub window: usize,
    /// How long to wait for a response.
    pub response_timeout: Duration,
    /// Send enquire_link after this much silence.
    pub enquire_link_interval: Duration,
    /// First backoff after 0x58 / 0x14; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Give a message up after this many throttling answers.
    pub max_retries: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            window: 10,
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_retries: 8,
        }
    }
}

/// What happened, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ESME: the bind was accepted.
    Bound { kind: BindKind, system_id: String },
    /// ESME: the bind was refused.
    BindFailed { status: u32 },
    /// ESME: a submit_sm was accepted; SMSC: a deliver_sm was acknowledged.
    Submitted { tag: u64, message_id: String },
    /// A request was refused for good (or throttled more than `max_retries` times).
    Failed { tag: u64, status: u32 },
    /// A request was throttled and will be sent again at `retry_at`.
    Throttled {
        tag: u64,
        status: u32,
        retry_at: Instant,
    },
    /// No response within `response_timeout`; the request may or may not have arrived.
    TimedOut { tag: u64 },
    /// ESME: a deliver_sm arrived (already acknowledged).
    Deliver { sm: Sm },
    /// SMSC: an ESME asks to bind; answer with [`Session::accept_bind`] or [`Session::reject_bind`].
    BindRequest {
        sequence: u32,
        kind: BindKind,
        bind: Bind,
    },
    /// SMSC: a submit_sm arrived; answer with [`Session::respond_submit`].
    Submit { sequence: u32, sm: Sm },
    /// The peer unbound, or answered our unbind.
    Unbound,
    /// The peer stopped answering enquire_link.
    LinkDead,
    /// A PDU did not decode; a generic_nack went back.
    BadPdu { error: PduError },
}

/// A session-ending error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("SMPP framing lost: {0}")]
    Framing(PduError),
    #[error("SMPP session is closed")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Esme,
    Smsc,
}

#[derive(Debug)]
enum Request {
    Message { tag: u64, sm: Box<Sm>, retries: u32 },
    Bind,
    EnquireLink,
    Unbind,
}

#[derive(Debug)]
struct Outstanding {
    sent: Instant,
    request: Request,
}

/// A message with the caller's tag.
pub type Tagged = (u64, Sm);

/// One SMPP session over one connection.
#[derive(Debug)]
pub struct Session {
    role: Role,
    config: Config,
    state: State,
    bind_kind: Option<BindKind>,
    next_sequence: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
    events: VecDeque<Event>,
    queue: VecDeque<(u64, Sm, u32)>,
    outstanding: HashMap<u32, Outstanding>,
    in_window: usize,
    backoff: Duration,
    backoff_until: Option<Instant>,
    last_heard: Option<Instant>,
    enquire_outstanding: bool,
}

impl Session {
    fn new(role: Role, config: Config) -> Session {
        Session {
            role,
            backoff: config.backoff_initial,
            config,
            state: State::Open,
            bind_kind: None,
            next_sequence: 1,
            rx: Vec::with_capacity(4096),
            tx: Vec::with_capacity(4096),
            events: VecDeque::new(),
            queue: VecDeque::new(),
            outstanding: HashMap::new(),
            in_window: 0,
            backoff_until: None,
            last_heard: None,
            enquire_outstanding: false,
        }
    }

    /// The client end.
    pub fn esme(config: Config) -> Session {
        Session::new(Role::Esme, config)
    }

    /// The server end.
    pub fn smsc(config: Config) -> Session {
        Session::new(Role::Smsc, config)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Requests sent and not yet answered (messages only).
    pub fn in_flight(&self) -> usize {
        self.in_window
    }

    /// Messages waiting for room in the window (or for a backoff to end).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn sequence(&mut self) -> u32 {
        let s = self.next_sequence;
        self.next_sequence = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
        s
    }

    fn send(&mut self, pdu: &Pdu) {
        // Our own PDUs are built from checked fields; a failure here is a caller bug
        // (an over-long field), reported as a failed request rather than a panic.
        if let Err(e) = pdu.encode_into(&mut self.tx) {
            self.events.push_back(Event::BadPdu { error: e });
        }
    }

    fn request(&mut self, body: Body, request: Request, now: Instant) -> u32 {
        let seq = self.sequence();
        let mut out = Vec::new();
        match Pdu::new(seq, body).encode_into(&mut out) {
            Ok(()) => {
                self.tx.extend_from_slice(&out);
                if matches!(request, Request::Message { .. }) {
                    self.in_window += 1;
                }
                self.outstanding
                    .insert(seq, Outstanding { sent: now, request });
            }
            Err(_) => {
                if let Request::Message { tag, .. } = request {
                    self.events.push_back(Event::Failed {
                        tag,
                        status: status::INVALID_MSG_LENGTH,
                    });
                }
            }
        }
        seq
    }

    /// ESME: asks to bind.
    pub fn bind(
        &mut self,
        kind: BindKind,
        system_id: &str,
        password: &str,
        address_range: &str,
        now: Instant,
    ) {
        let b = Bind {
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            interface_version: 0x34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: address_range.into(),
        };
        let body = match kind {
            BindKind::Transmitter => Body::BindTransmitter(b),
            BindKind::Receiver => Body::BindReceiver(b),
            BindKind::Transceiver => Body::BindTransceiver(b),
        };
        self.bind_kind = Some(kind);
        self.state = State::Binding;
        self.last_heard.get_or_insert(now);
        self.request(body, Request::Bind, now);
    }

    /// ESME: queues a submit_sm; SMSC: queues a deliver_sm. `tag` comes back in the event.
    pub fn submit(&mut self, tag: u64, sm: Sm, now: Instant) {
        self.queue.push_back((tag, sm, 0));
        self.flush(now);
    }

    /// Asks to unbind (§4.2).
    pub fn unbind(&mut self, now: Instant) {
        if matches!(self.state, State::Bound(_)) {
            self.state = State::Unbinding;
            self.request(Body::Unbind, Request::Unbind, now);
        }
    }

    /// SMSC: accepts a bind request.
    pub fn accept_bind(&mut self, sequence: u32, system_id: &str) {
        let Some(kind) = self.bind_kind else { return };
        let r = BindResp {
            system_id: system_id.into(),
            sc_interface_version: Some(0x34),
        };
        let body = match kind {
            BindKind::Transmitter => Body::BindTransmitterResp(r),
            BindKind::Receiver => Body::BindReceiverResp(r),
            BindKind::Transceiver => Body::BindTransceiverResp(r),
        };
        self.send(&Pdu {
            status: 0,
            sequence,
            body,
        });
        self.state = State::Bound(kind);
    }

    /// SMSC: refuses a bind request (e.g. [`status::INVALID_PASSWORD`]).
    pub fn reject_bind(&mut self, sequence: u32, status: u32) {
        let body = match self.bind_kind {
            Some(BindKind::Receiver) => Body::BindReceiverResp(BindResp::default()),
            Some(BindKind::Transceiver) => Body::BindTransceiverResp(BindResp::default()),
            _ => Body::BindTransmitterResp(BindResp::default()),
        };
        self.send(&Pdu {
            status,
            sequence,
            body,
        });
        self.state = State::Open;
        self.bind_kind = None;
    }

    /// SMSC: answers a submit_sm.
    pub fn respond_submit(&mut self, sequence: u32, status: u32, message_id: &str) {
        let id = if status == 0 { message_id } else { "" };
        self.send(&Pdu {
            status,
            sequence,
            body: Body::SubmitSmResp(id.into()),
        });
    }

    /// Sends what fits in the window.
    fn flush(&mut self, now: Instant) {
        let may_send = match (self.role, self.state) {
            (Role::Esme, State::Bound(k)) => k.transmits(),
            (Role::Smsc, State::Bound(k)) => k.receives(),
            _ => false,
        };
        if !may_send || self.backoff_until.is_some_and(|t| now < t) {
            return;
        }
        self.backoff_until = None;
        while self.in_window < self.config.window {
            let Some((tag, sm, retries)) = self.queue.pop_front() else {
                break;
            };
            let body = match self.role {
                Role::Esme => Body::SubmitSm(sm.clone()),
                Role::Smsc => Body::DeliverSm(sm.clone()),
            };
            self.request(
                body,
                Request::Message {
                    tag,
                    sm: Box::new(sm),
                    retries,
                },
                now,
            );
        }
    }

    /// Bytes to write to the connection (everything pending, batched).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.tx.is_empty() {
            None
        } else {
            Some(std::mem::replace(&mut self.tx, Vec::with_capacity(4096)))
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes read from the connection. A framing error ends the session.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        self.rx.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(len) = Pdu::frame_len(&self.rx[start..]).map_err(|e| {
            self.state = State::Closed;
            SessionError::Framing(e)
        })? {
            if self.rx.len() - start < len {
                break;
            }
            let frame = self.rx[start..start + len].to_vec();
            start += len;
            self.last_heard = Some(now);
            match Pdu::decode(&frame) {
                Ok(pdu) => self.on_pdu(pdu, now),
                Err(error) => {
                    let sequence = frame
                        .get(12..16)
                        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
                    self.send(&Pdu {
                        status: status::INVALID_COMMAND_LENGTH,
                        sequence,
                        body: Body::GenericNack,
                    });
                    self.events.push_back(Event::BadPdu { error });
                }
            }
        }
        self.rx.drain(..start);
        self.flush(now);
        Ok(())
    }

    fn on_pdu(&mut self, pdu: Pdu, now: Instant) {
        let seq = pdu.sequence;
        let command_id = pdu.command_id();
        match pdu.body {
            Body::EnquireLink => self.send(&Pdu::new(seq, Body::EnquireLinkResp)),
            Body::Unbind => {
                self.send(&Pdu::new(seq, Body::UnbindResp));
                self.state = State::Closed;
                self.events.push_back(Event::Unbound);
            }
            Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b)
                if self.role == Role::Smsc =>
            {
                let kind = match command_id {
                    crate::pdu::id::BIND_RECEIVER => BindKind::Receiver,
                    crate::pdu::id::BIND_TRANSMITTER => BindKind::Transmitter,
                    _ => BindKind::Transceiver,
                };
                if self.state != State::Open {
                    let body = match kind {
                        BindKind::Receiver => Body::BindReceiverResp(BindResp::default()),
                        BindKind::Transmitter => Body::BindTransmitterResp(BindResp::default()),
                        BindKind::Transceiver => Body::BindTransceiverResp(BindResp::default()),
                    };
                    self.send(&Pdu {
                        status: status::ALREADY_BOUND,
                        sequence: seq,
                        body,
                    });
                    return;
                }
                self.bind_kind = Some(kind);
                self.state = State::Binding;
                self.events.push_back(Event::BindRequest {
                    sequence: seq,
                    kind,
                    bind: b,
                });
            }
            Body::SubmitSm(sm) if self.role == Role::Smsc => {
                if matches!(self.state, State::Bound(k) if k.transmits()) {
                    self.events.push_back(Event::Submit { sequence: seq, sm });
                } else {
                    self.send(&Pdu {
                        status: status::INVALID_BIND_STATUS,
                        sequence: seq,
                        body: Body::SubmitSmResp(String::new()),
                    });
                }
            }
            Body::DeliverSm(sm) if self.role == Role::Esme => {
                if matches!(self.state, State::Bound(k) if k.receives()) {
                    self.send(&Pdu::new(seq, Body::DeliverSmResp(String::new())));
                    self.events.push_back(Event::Deliver { sm });
                } else {
                    self.send(&Pdu {
                        status: status::INVALID_BIND_STATUS,
                        sequence: seq,
                        body: Body::DeliverSmResp(String::new()),
                    });
                }
            }
            Body::BindTransmitterResp(r)
            | Body::BindReceiverResp(r)
            | Body::BindTransceiverResp(r) => {
                self.outstanding.remove(&seq);
                if pdu.status == 0 {
                    let kind = self.bind_kind.unwrap_or(BindKind::Transceiver);
                    self.state = State::Bound(kind);
                    self.events.push_back(Event::Bound {
                        kind,
                        system_id: r.system_id,
                    });
                } else {
                    self.state = State::Open;
                    self.events
                        .push_back(Event::BindFailed { status: pdu.status });
                }
            }
            Body::SubmitSmResp(id) | Body::DeliverSmResp(id) => {
                self.on_message_resp(seq, pdu.status, id, now)
            }
            Body::GenericNack => {
                if self.outstanding.contains_key(&seq) {
                    self.on_message_resp(
                        seq,
                        if pdu.status == 0 {
                            status::SYSTEM_ERROR
                        } else {
                            pdu.status
                        },
                        String::new(),
                        now,
                    );
                }
            }
            Body::EnquireLinkResp => {
                self.outstanding.remove(&seq);
                self.enquire_outstanding = false;
            }
            Body::UnbindResp => {
                self.outstanding.remove(&seq);
                self.state = State::Closed;
                self.events.push_back(Event::Unbound);
            }
            other => {
                // A request we do not serve: generic_nack (§4.3); responses we did not ask for
                // are dropped.
                let _ = other;
                if command_id & 0x8000_0000 == 0 {
                    self.send(&Pdu {
                        status: status::INVALID_COMMAND_ID,
                        sequence: seq,
                        body: Body::GenericNack,
                    });
                }
            }
        }
    }

    fn on_message_resp(&mut self, seq: u32, st: u32, message_id: String, now: Instant) {
        let Some(o) = self.outstanding.remove(&seq) else {
            return;
        };
        match o.request {
            Request::Message { tag, sm, retries } => {
                self.in_window -= 1;
                if st == status::OK {
                    self.backoff = self.config.backoff_initial;
                    self.events.push_back(Event::Submitted { tag, message_id });
                } else if (st == status::THROTTLED || st == status::MSG_QUEUE_FULL)
                    && retries < self.config.max_retries
                {
                    let retry_at = now + self.backoff;
                    self.backoff_until = Some(retry_at);
                    self.backoff = (self.backoff * 2).min(self.config.backoff_max);
                    self.queue.push_front((tag, *sm, retries + 1));
                    self.events.push_back(Event::Throttled {
                        tag,
                        status: st,
                        retry_at,
                    });
                } else {
                    self.events.push_back(Event::Failed { tag, status: st });
                }
            }
            Request::Bind => {
                self.state = State::Open;
                self.events.push_back(Event::BindFailed { status: st });
            }
            Request::EnquireLink | Request::Unbind => {}
        }
    }

    /// When [`Session::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let responses = self
            .outstanding
            .values()
            .map(|o| o.sent + self.config.response_timeout)
            .min();
        let keepalive = match self.state {
            State::Bound(_) if !self.enquire_outstanding => self
                .last_heard
                .map(|t| t + self.config.enquire_link_interval),
            _ => None,
        };
        let backoff = if self.queue.is_empty() {
            None
        } else {
            self.backoff_until
        };
        [responses, keepalive, backoff].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.config.response_timeout;
        let expired: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, o)| now >= o.sent + timeout)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            let Some(o) = self.outstanding.remove(&seq) else {
                continue;
            };
            match o.request {
                Request::Message { tag, .. } => {
                    self.in_window -= 1;
                    self.events.push_back(Event::TimedOut { tag });
                }
                Request::EnquireLink => {
                    self.enquire_outstanding = false;
                    self.state = State::Closed;
                    self.events.push_back(Event::LinkDead);
                }
                Request::Bind => {
                    self.state = State::Closed;
                    self.events.push_back(Event::BindFailed {
                        status: status::SYSTEM_ERROR,
                    });
                }
                Request::Unbind => {
                    self.state = State::Closed;
                    self.events.push_back(Event::Unbound);
                }
            }
        }
        if let (State::Bound(_), Some(heard)) = (self.state, self.last_heard)
            && !self.enquire_outstanding
            && now >= heard + self.config.enquire_link_interval
        {
            self.enquire_outstanding = true;
            self.request(Body::EnquireLink, Request::EnquireLink, now);
        }
        self.flush(now);
    }

    /// Messages that were queued or sent without an answer, for a new session to carry (after
    /// a reconnect). Those that were in flight may have arrived: the caller decides.
    pub fn take_unanswered(&mut self) -> (Vec<Tagged>, Vec<Tagged>) {
        let queued = self.queue.drain(..).map(|(t, s, _)| (t, s)).collect();
        let mut in_flight: Vec<(u32, u64, Sm)> = self
            .outstanding
            .drain()
            .filter_map(|(seq, o)| match o.request {
                Request::Message { tag, sm, .. } => Some((seq, tag, *sm)),
                _ => None,
            })
            .collect();
        in_flight.sort_by_key(|(seq, _, _)| *seq);
        self.in_window = 0;
        (
            queued,
            in_flight.into_iter().map(|(_, t, s)| (t, s)).collect(),
        )
    }
}
