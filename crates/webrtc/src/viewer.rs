//! One WHEP viewer: a str0m `Rtc` that sends the stream's samples and nothing else; its
//! datagrams wait in [`Peer::poll_transmit`] for the adapter's socket.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::{Event, RtcConfig};

use crate::feed::{Sample, SampleKind};
use crate::peer::{Answered, Host, Peer};

/// Payload types we offer: H.264 with its RTX, Opus (the numbers browsers use).
const PT_H264: u8 = 102;
const PT_H264_RTX: u8 = 103;

/// Why an offer got no answer.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is not valid SDP: {0}")]
    Sdp(String),
    #[error("the offer could not be answered: {0}")]
    Negotiation(String),
    #[error("the offer receives neither H.264 video nor Opus audio")]
    NothingToSend,
    #[error("the offer sends no H.264 video")]
    NoVideoToReceive,
    #[error("the host candidate {0} is not usable: {1}")]
    Candidate(SocketAddr, String),
}

/// Counters of one viewer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ViewerStats {
    pub video_sent: u64,
    pub audio_sent: u64,
    /// Video frames not sent while waiting for the first keyframe.
    pub waited: u64,
    /// PLI/FIR from the player (answered by the source's next keyframe, for now).
    pub keyframe_requests: u64,
    /// Samples str0m refused (logged by the adapter at the first).
    pub write_errors: u64,
}

/// One WHEP session.
pub struct Viewer {
    peer: Peer,
    video: Option<(Mid, str0m::media::Pt)>,
    audio: Option<(Mid, str0m::media::Pt)>,
    /// Video is sent from the first keyframe after the join.
    started: bool,
    stats: ViewerStats,
    /// The player asked for a keyframe since the adapter last looked.
    keyframe_wanted: bool,
}

impl Viewer {
    /// Answers an SDP offer as `host`, offering H.264 at `h264_profile_level_id` (see
    /// [`crate::h264_profile_level_id`]); returns the viewer and the SDP answer.
    pub fn answer(
        offer: &str,
        host: &Host,
        h264_profile_level_id: u32,
        now: Instant,
    ) -> Result<(Viewer, String), OfferError> {
        let mut rtc_config = RtcConfig::new().clear_codecs().enable_opus(true, false);
        rtc_config.codec_config().add_h264(
            PT_H264.into(),
            Some(PT_H264_RTX.into()),
            true,
            h264_profile_level_id,
        );
        let Answered { peer, answer, mids } = Peer::answer(offer, rtc_config, host, now)?;
        let mut viewer = Viewer {
            peer,
            video: None,
            audio: None,
            started: false,
            stats: ViewerStats::default(),
            keyframe_wanted: false,
        };
        for mid in mids {
            viewer.add_media(mid);
        }
        viewer.drain();
        if viewer.video.is_none() && viewer.audio.is_none() {
            return Err(OfferError::NothingToSend);
        }
        Ok((viewer, answer))
    }

    /// The session's `Rtc`, its datagrams and deadline.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn peer_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }

    /// A datagram for this viewer (see [`Peer::accepts`]).
    pub fn receive(&mut self, now: Instant, source: SocketAddr, local: SocketAddr, data: &[u8]) {
        let events = self.peer.receive(now, source, local, data);
        self.handle(events);
    }

    /// Time goes on: call at [`Peer::timeout`] (or later).
    pub fn tick(&mut self, now: Instant) {
        let events = self.peer.tick(now);
        self.handle(events);
    }

    /// Sends one sample of the stream: video from the first keyframe on, audio once connected.
    pub fn write(&mut self, sample: &Sample, now: Instant) {
        if !self.peer.is_connected() {
            return;
        }
        let target = match sample.kind {
            SampleKind::Video => {
                if !self.started && !sample.key {
                    self.stats.waited += 1;
                    return;
                }
                self.started = true;
                self.video
            }
            SampleKind::Audio => self.audio,
        };
        let Some((mid, pt)) = target else { return };
        let (rate, counter) = match sample.kind {
            SampleKind::Video => (Frequency::NINETY_KHZ, &mut self.stats.video_sent),
            SampleKind::Audio => (Frequency::FORTY_EIGHT_KHZ, &mut self.stats.audio_sent),
        };
        let Some(writer) = self.peer.rtc.writer(mid) else {
            return;
        };
        let time = MediaTime::new(sample.rtp_time, rate);
        match writer.write(pt, sample.wallclock.min(now), time, sample.data.clone()) {
            Ok(()) => *counter += 1,
            Err(e) => {
                self.stats.write_errors += 1;
                self.peer.note_error(e.to_string());
            }
        }
        self.drain();
    }

    pub fn stats(&self) -> ViewerStats {
        self.stats
    }

    /// Whether the player has asked for a keyframe (PLI or FIR) since the last call, or is
    /// waiting for its first one: the adapter asks the source where it can.
    pub fn take_keyframe_request(&mut self) -> bool {
        let wanted = self.keyframe_wanted || (self.peer.is_connected() && !self.started);
        self.keyframe_wanted = false;
        wanted
    }

    fn drain(&mut self) {
        let events = self.peer.drain();
        self.handle(events);
    }

    /// Takes the first video and the first audio section that we send on, with the payload
    /// type the player accepted for H.264 or Opus.
    fn add_media(&mut self, mid: Mid) {
        let Some(media) = self.peer.rtc.media(mid) else {
            return;
        };
        if !matches!(media.direction(), Direction::SendOnly | Direction::SendRecv) {
            return;
        }
        let kind = media.kind();
        let want = match kind {
            MediaKind::Video => Codec::H264,
            MediaKind::Audio => Codec::Opus,
        };
        let pt = self.peer.rtc.writer(mid).and_then(|w| {
            w.payload_params()
                .find(|p| p.spec().codec == want)
                .map(|p| p.pt())
        });
        let Some(pt) = pt else { return };
        match kind {
            MediaKind::Video if self.video.is_none() => self.video = Some((mid, pt)),
            MediaKind::Audio if self.audio.is_none() => self.audio = Some((mid, pt)),
            _ => {}
        }
    }

    fn handle(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::MediaAdded(m) => self.add_media(m.mid),
                Event::KeyframeRequest(_) => {
                    self.stats.keyframe_requests += 1;
                    self.keyframe_wanted = true;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Input, Output, Rtc};

    fn player_offer(now: Instant) -> (Rtc, String) {
        let mut player = Rtc::new(now);
        let mut change = player.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, _pending) = change.apply().expect("an offer");
        (player, offer.to_sdp_string())
    }

    const PROFILE: u32 = 0x42e01f;

    fn host() -> Host {
        Host::new("127.0.0.1:40000".parse().unwrap()).expect("a certificate")
    }

    #[test]
    fn answers_a_recvonly_offer_with_h264_and_opus() {
        let now = Instant::now();
        let (_player, offer) = player_offer(now);
        let (viewer, answer) = Viewer::answer(&offer, &host(), PROFILE, now).expect("an answer");
        assert!(answer.contains("H264/90000"), "{answer}");
        assert!(answer.contains("packetization-mode=1"), "{answer}");
        assert!(answer.contains("opus/48000/2"), "{answer}");
        assert!(answer.contains("a=sendonly"), "{answer}");
        assert!(answer.contains("127.0.0.1 40000 typ host"), "{answer}");
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(viewer.video.is_some() && viewer.audio.is_some());
    }

    /// A str0m player and a viewer connected in memory, time simulated: video starts at a
    /// keyframe, and what the player receives is what was written.
    #[test]
    fn a_player_gets_video_from_the_first_keyframe() {
        use str0m::change::SdpAnswer;
        let mut now = Instant::now();
        let player_addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let mut player = Rtc::new(now);
        player.add_local_candidate(Candidate::host(player_addr, "udp").unwrap());
        let mut change = player.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        let host = host();
        let (mut viewer, answer) =
            Viewer::answer(&offer.to_sdp_string(), &host, PROFILE, now).expect("an answer");
        let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        player
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("accepted");

        let sample = |key: bool, rtp_time: u64, at: Instant| Sample {
            kind: SampleKind::Video,
            key,
            rtp_time,
            wallclock: at,
            data: if key {
                vec![
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65,
                    1, 2, 3,
                ]
            } else {
                vec![0, 0, 0, 1, 0x41, 4, 5, 6]
            }
            .into(),
        };
        let mut received = Vec::new();
        let mut written = 0;
        for step in 0..400 {
            now += std::time::Duration::from_millis(10);
            // Player → viewer, and the player's events.
            let _ = player.handle_input(Input::Timeout(now));
            loop {
                match player.poll_output().expect("player output") {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        assert!(
                            viewer
                                .peer()
                                .accepts(now, t.source, host.candidate, &t.contents)
                        );
                        viewer.receive(now, t.source, host.candidate, &t.contents);
                    }
                    Output::Event(Event::MediaData(d)) => received.push(d.data.clone()),
                    Output::Event(_) => {}
                }
            }
            viewer.tick(now);
            // Viewer → player.
            while let Some((to, data)) = viewer.peer_mut().poll_transmit() {
                assert_eq!(to, player_addr);
                let r = Receive::new(Protocol::Udp, host.candidate, player_addr, &data).unwrap();
                let _ = player.handle_input(Input::Receive(now, r));
            }
            if viewer.peer().is_connected() && written < 3 && step % 3 == 0 {
                // A delta frame first (not sent: no keyframe yet), then a keyframe and a delta.
                let key = written == 1;
                viewer.write(&sample(key, 3000 * written, now), now);
                written += 1;
            }
            if received.len() >= 2 {
                break;
            }
        }
        assert!(viewer.peer().is_connected(), "ICE and DTLS came up");
        let stats = viewer.stats();
        assert_eq!(stats.waited, 1, "{stats:?}");
        assert_eq!(stats.video_sent, 2, "{stats:?}");
        assert_eq!(
            received.len(),
            2,
            "the player got the keyframe and the delta frame"
        );
        // The keyframe arrives with its parameter sets (STAP-A unpacked to Annex B).
        assert!(
            received[0].windows(2).any(|w| w == [1, 0x67]),
            "{:?}",
            received[0]
        );
        assert!(received[0].ends_with(&[0x65, 1, 2, 3]), "{:?}", received[0]);
        assert!(received[1].ends_with(&[0x41, 4, 5, 6]), "{:?}", received[1]);
    }

    #[test]
    fn refuses_what_is_not_an_offer() {
        let now = Instant::now();
        assert!(matches!(
            Viewer::answer("hello", &host(), PROFILE, now),
            Err(OfferError::Sdp(_))
        ));
        assert!(Viewer::answer("", &host(), PROFILE, now).is_err());
    }
}
