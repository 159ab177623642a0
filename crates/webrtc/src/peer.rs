//! What a WHEP viewer and a WHIP publisher share: one str0m `Rtc` answering an offer as an
//! ICE-lite peer with one host candidate, its drained datagrams and its next deadline.
//!
//! Every mutation of the `Rtc` is followed by a full drain of its output (str0m's contract);
//! the drain keeps the connection state and hands the session the media events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::crypto::dtls::DtlsCert;
use str0m::media::Mid;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::viewer::OfferError;

/// The server's side of every session: the host candidate (the shared UDP socket at the
/// announced address) and one DTLS certificate, made at start. One certificate for all
/// sessions: an offer costs no key generation (a flood of offers costs no CPU for keys), and
/// the fingerprint only identifies the server, which the player knows anyway.
#[derive(Debug, Clone)]
pub struct Host {
    pub candidate: SocketAddr,
    pub certificate: DtlsCert,
}

impl Host {
    /// A host at `candidate` with a new self-signed certificate.
    pub fn new(candidate: SocketAddr) -> Result<Host, String> {
        let certificate = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or("the DTLS certificate could not be made")?;
        Ok(Host {
            candidate,
            certificate,
        })
    }
}

/// One WebRTC peer of the server.
pub struct Peer {
    pub(crate) rtc: Rtc,
    connected: bool,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    timeout: Instant,
    last_error: Option<String>,
}

/// A peer with its SDP answer and the mids the offer named: str0m reports the offer's
/// sections as `MediaAdded` only once polled past its readiness, so a session takes them from
/// here to answer self-contained.
pub(crate) struct Answered {
    pub peer: Peer,
    pub answer: String,
    pub mids: Vec<Mid>,
}

impl Peer {
    /// Answers `offer` with an ICE-lite `Rtc` built from `config` as `host`.
    pub(crate) fn answer(
        offer: &str,
        config: RtcConfig,
        host: &Host,
        now: Instant,
    ) -> Result<Answered, OfferError> {
        let parsed =
            SdpOffer::from_sdp_string(offer).map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut rtc = config
            .set_ice_lite(true)
            .set_dtls_cert(host.certificate.clone())
            .build(now);
        let candidate = Candidate::host(host.candidate, "udp")
            .map_err(|e| OfferError::Candidate(host.candidate, e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(parsed)
            .map_err(|e| OfferError::Negotiation(e.to_string()))?;
        let mids = offer
            .lines()
            .filter_map(|line| line.trim().strip_prefix("a=mid:"))
            .map(Mid::from)
            .collect();
        let peer = Peer {
            rtc,
            connected: false,
            transmits: VecDeque::new(),
            timeout: now,
            last_error: None,
        };
        Ok(Answered {
            peer,
            answer: answer.to_sdp_string(),
            mids,
        })
    }

    /// Whether a datagram from `source` is this peer's (ICE credentials or its address).
    pub fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) -> bool {
        match Receive::new(Protocol::Udp, source, local, data) {
            Ok(r) => self.rtc.accepts(&Input::Receive(now, r)),
            Err(_) => false,
        }
    }

    /// A datagram for this peer (see [`Self::accepts`]); returns the events it brought.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) -> Vec<Event> {
        if let Ok(r) = Receive::new(Protocol::Udp, source, local, data)
            && let Err(e) = self.rtc.handle_input(Input::Receive(now, r))
        {
            self.fail(e.to_string());
        }
        self.drain()
    }

    /// Time goes on (at [`Self::timeout`] or later); returns the events it brought.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Event> {
        if now >= self.timeout
            && let Err(e) = self.rtc.handle_input(Input::Timeout(now))
        {
            self.fail(e.to_string());
        }
        self.drain()
    }

    /// Drains the `Rtc` to its next timeout: datagrams queued, the connection state kept,
    /// the other events returned.
    pub(crate) fn drain(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while self.rtc.is_alive() {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    self.transmits
                        .push_back((t.destination, t.contents.to_vec()));
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                ))) => self.rtc.disconnect(),
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    self.fail(e.to_string());
                    break;
                }
            }
        }
        events
    }

    /// The next datagram to send: (destination, bytes).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// When the session's `tick` is due next.
    pub fn timeout(&self) -> Instant {
        self.timeout
    }

    /// False once the other side is gone (ICE disconnected, DTLS closed) or the session failed.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The last error str0m reported, taken.
    pub fn take_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// Ends the session (its WHEP or WHIP resource was deleted).
    pub fn close(&mut self) {
        self.rtc.disconnect();
    }

    /// An error to report without ending the session.
    pub(crate) fn note_error(&mut self, e: String) {
        self.last_error = Some(e);
    }

    fn fail(&mut self, e: String) {
        self.last_error = Some(e);
        self.rtc.disconnect();
    }
}
