//! One WHIP publisher (RFC 9725): a str0m `Rtc` that receives H.264 and Opus and turns them
//! into source events for the video server, as RTMP ingest and the upload protocol do.
//!
//! - Video: str0m depacketizes each access unit to Annex B; the SPS and PPS that browsers and
//!   OBS send in band before every keyframe become the AVC configuration (a new one whenever they
//!   change), the frames become AVCC. Nothing is passed on before the first keyframe, nor after a
//!   gap in the RTP sequence until the next one; both ask the publisher for a keyframe (PLI).
//! - Keyframes: WebRTC encoders send one at the start and then only when asked (Chromium,
//!   OBS, aiortc), but every live segment must start with one, at least the segment target
//!   after the last (the packager cuts there): the session asks when the next frame will be
//!   past the target by half a frame (the timestamp discipline may move a frame that much), and
//!   the encoder's answer, that frame or a later one, is not early.
//! - Audio: Opus packets with their times; the adapter converts them to AAC for the recording.
//! - Times: each track's RTP clock, anchored at the arrival of its first frame on one timeline
//!   for the session (µs from the first media of either track), so the two tracks line up
//!   within the difference of their first packets' delays.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid};
use str0m::{Event, RtcConfig};
use vshare_media::{AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind, annexb};

use crate::peer::{Answered, Host, Peer};
use crate::viewer::OfferError;

/// A keyframe this close before the segment target still begins a segment (as the packager
/// counts), µs.
const SEGMENT_TOLERANCE_US: i64 = 5_000;

/// Keyframe requests to the publisher at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// What the publisher's session hands on.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// The AVC configuration, or an AVCC video frame with its times in µs.
    Media(MediaEvent),
    /// One Opus packet and its presentation time, µs.
    Opus { pts: i64, data: Bytes },
}

/// Counters of one publisher.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    pub video_frames: u64,
    pub audio_packets: u64,
    /// Video frames not passed on: before the first keyframe, or after a gap until the next.
    pub discarded: u64,
    /// PLIs sent to the publisher.
    pub keyframe_requests: u64,
}

/// One track's RTP clock on the session's timeline.
#[derive(Debug, Clone, Copy)]
struct TrackClock {
    rtp0: u64,
    us0: i64,
    rate: u64,
}

impl TrackClock {
    /// Saturating: a publisher's RTP times are its own to choose, wild jumps included (the
    /// timestamp discipline repairs what comes out).
    fn pts(&self, t: MediaTime) -> i64 {
        let ticks = (t.numer() as i64).wrapping_sub(self.rtp0 as i64);
        let us = ticks.saturating_mul(1_000_000) / self.rate.max(1) as i64;
        self.us0.saturating_add(us)
    }
}

/// One WHIP session.
pub struct Ingest {
    peer: Peer,
    video: Option<Mid>,
    audio: Option<Mid>,
    events: VecDeque<IngestEvent>,
    stats: IngestStats,
    /// The arrival of the first media of either track: time zero.
    epoch: Option<Instant>,
    video_clock: Option<TrackClock>,
    audio_clock: Option<TrackClock>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The AVC record last handed on.
    record: Option<Vec<u8>>,
    waiting_for_key: bool,
    last_keyframe_request: Option<Instant>,
    /// The longest run of frames without a keyframe wanted (the live segment target), µs.
    keyframe_interval_us: i64,
    /// The keyframe that began the packager's current segment, µs.
    segment_start: Option<i64>,
    last_pts: Option<i64>,
}

impl Ingest {
    /// Answers a publisher's offer (H.264 video, Opus audio optional); returns the session
    /// and the SDP answer. `keyframe_interval`: the longest stretch without a keyframe (the
    /// live segment target).
    pub fn answer(
        offer: &str,
        host: &Host,
        keyframe_interval: Duration,
        now: Instant,
    ) -> Result<(Ingest, String), OfferError> {
        let rtc_config = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false);
        let Answered { peer, answer, mids } = Peer::answer(offer, rtc_config, host, now)?;
        let mut ingest = Ingest {
            peer,
            video: None,
            audio: None,
            events: VecDeque::new(),
            stats: IngestStats::default(),
            epoch: None,
            video_clock: None,
            audio_clock: None,
            sps: None,
            pps: None,
            record: None,
            waiting_for_key: true,
            last_keyframe_request: None,
            keyframe_interval_us: keyframe_interval.as_micros() as i64,
            segment_start: None,
            last_pts: None,
        };
        for mid in mids {
            ingest.add_media(mid);
        }
        ingest.drain();
        if ingest.video.is_none() {
            return Err(OfferError::NoVideoToReceive);
        }
        Ok((ingest, answer))
    }

    /// The session's `Rtc`, its datagrams and deadline.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn peer_mut(&mut self) -> &mut Peer {
        &mut self.peer
    }

    /// A datagram for this session (see [`Peer::accepts`]).
    pub fn receive(&mut self, now: Instant, source: SocketAddr, local: SocketAddr, data: &[u8]) {
        let events = self.peer.receive(now, source, local, data);
        self.handle(events);
    }

    /// Time goes on: call at [`Peer::timeout`] (or later).
    pub fn tick(&mut self, now: Instant) {
        let events = self.peer.tick(now);
        self.handle(events);
    }

    /// Asks the publisher for a keyframe (a player joined or lost one), at most every 500 ms.
    pub fn request_keyframe(&mut self, now: Instant) {
        if self
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some(mid) = self.video else { return };
        let Some(mut writer) = self.peer.rtc.writer(mid) else {
            return;
        };
        if !writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            return;
        }
        if writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .is_ok()
        {
            self.stats.keyframe_requests += 1;
            self.last_keyframe_request = Some(now);
        }
        self.drain();
    }

    /// Video is no longer whole downstream (an event was lost): wait for the next keyframe.
    pub fn resync(&mut self, now: Instant) {
        self.waiting_for_key = true;
        // The configuration may have been among what was lost: send it again with the keyframe.
        self.record = None;
        self.request_keyframe(now);
    }

    /// The next event for the video server.
    pub fn poll_event(&mut self) -> Option<IngestEvent> {
        self.events.pop_front()
    }

    /// Whether the offer sent audio.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    fn drain(&mut self) {
        let events = self.peer.drain();
        self.handle(events);
    }

    /// Takes the first video section that sends H.264 and the first audio one that sends Opus.
    fn add_media(&mut self, mid: Mid) {
        let Some(media) = self.peer.rtc.media(mid) else {
            return;
        };
        if !matches!(media.direction(), Direction::RecvOnly | Direction::SendRecv) {
            return;
        }
        let kind = media.kind();
        let want = match kind {
            MediaKind::Video => Codec::H264,
            MediaKind::Audio => Codec::Opus,
        };
        let negotiated = self
            .peer
            .rtc
            .writer(mid)
            .is_some_and(|w| w.payload_params().any(|p| p.spec().codec == want));
        if !negotiated {
            return;
        }
        match kind {
            MediaKind::Video if self.video.is_none() => self.video = Some(mid),
            MediaKind::Audio if self.audio.is_none() => self.audio = Some(mid),
            _ => {}
        }
    }

    fn handle(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::MediaAdded(m) => self.add_media(m.mid),
                Event::MediaData(d) if Some(d.mid) == self.video => self.video_data(d),
                Event::MediaData(d) if Some(d.mid) == self.audio => self.audio_data(d),
                _ => {}
            }
        }
    }

    fn clock(&mut self, video: bool, d: &MediaData) -> TrackClock {
        let epoch = *self.epoch.get_or_insert(d.network_time);
        let slot = match video {
            true => &mut self.video_clock,
            false => &mut self.audio_clock,
        };
        *slot.get_or_insert_with(|| TrackClock {
            rtp0: d.time.numer(),
            us0: d.network_time.saturating_duration_since(epoch).as_micros() as i64,
            rate: u64::from(d.time.denom()),
        })
    }

    fn video_data(&mut self, d: MediaData) {
        let now = d.network_time;
        let nals = annexb::split(&d.data);
        let key = nals.iter().any(|n| annexb::nal_type(n) == 5);
        if !d.contiguous && !key {
            self.waiting_for_key = true;
        }
        for nal in &nals {
            match annexb::nal_type(nal) {
                7 => self.sps = Some(nal.to_vec()),
                8 => self.pps = Some(nal.to_vec()),
                _ => {}
            }
        }
        if self.waiting_for_key && !key {
            self.stats.discarded += 1;
            self.request_keyframe(now);
            return;
        }
        if key && !self.configure() {
            // A keyframe without parameter sets yet: nothing can decode it.
            self.stats.discarded += 1;
            self.waiting_for_key = true;
            self.request_keyframe(now);
            return;
        }
        self.waiting_for_key = false;
        let data = annexb::to_avcc(&d.data);
        if data.is_empty() {
            return;
        }
        let pts = self.clock(true, &d).pts(d.time);
        // The frame interval, to see where the next frame falls.
        let step = self
            .last_pts
            .map_or(0, |p| pts.saturating_sub(p).clamp(0, 200_000));
        self.last_pts = Some(pts);
        // Where the packager's segment began: the first keyframe at least the target after the
        // last one that began a segment (a keyframe a player asked for in between does not).
        let interval = self.keyframe_interval_us;
        match self.segment_start {
            Some(start) if key && pts.saturating_sub(start) >= interval - SEGMENT_TOLERANCE_US => {
                self.segment_start = Some(pts)
            }
            None if key => self.segment_start = Some(pts),
            // The next frame past the target by half a frame at least: the server's timestamp
            // discipline may move it by up to that much towards the grid.
            Some(start)
                if !key
                    && pts.saturating_add(step / 2)
                        >= start.saturating_add(interval + SEGMENT_TOLERANCE_US) =>
            {
                self.request_keyframe(now)
            }
            _ => {}
        }
        self.stats.video_frames += 1;
        self.events
            .push_back(IngestEvent::Media(MediaEvent::Frame(Frame {
                track: TrackKind::Video,
                pts,
                dts: pts,
                key,
                data: Bytes::from(data),
            })));
    }

    /// Hands on the AVC configuration when the parameter sets are new; false if there are none.
    fn configure(&mut self) -> bool {
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return false;
        };
        let mut stream = vec![0, 0, 0, 1];
        stream.extend_from_slice(sps);
        stream.extend_from_slice(&[0, 0, 0, 1]);
        stream.extend_from_slice(pps);
        let Some(record) = annexb::decoder_configuration_record(&stream) else {
            return false;
        };
        if self.record.as_ref() == Some(&record) {
            return true;
        }
        match AvcConfig::parse(Bytes::from(record.clone())) {
            Ok(c) => {
                self.record = Some(record);
                self.events
                    .push_back(IngestEvent::Media(MediaEvent::Config(TrackConfig::Avc(c))));
                true
            }
            Err(e) => {
                self.peer
                    .note_error(format!("the publisher's SPS/PPS: {e}"));
                false
            }
        }
    }

    fn audio_data(&mut self, d: MediaData) {
        let pts = self.clock(false, &d).pts(d.time);
        self.stats.audio_packets += 1;
        self.events.push_back(IngestEvent::Opus {
            pts,
            data: Bytes::copy_from_slice(&d.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::change::SdpAnswer;
    use str0m::media::{Frequency, MediaTime};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Input, Output, Rtc};

    type Offered = (Rtc, str0m::change::SdpPendingOffer, String, Mid, Mid);

    fn publisher_offer(now: Instant, addr: SocketAddr) -> Offered {
        let mut publisher = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        publisher.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut change = publisher.sdp_api();
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        (publisher, pending, offer.to_sdp_string(), video, audio)
    }

    const SERVER: &str = "127.0.0.1:40000";
    const INTERVAL: Duration = Duration::from_secs(2);

    fn host() -> Host {
        Host::new(SERVER.parse().unwrap()).expect("a certificate")
    }

    #[test]
    fn answers_a_sendonly_offer_and_refuses_one_without_video() {
        let now = Instant::now();
        let (_p, _pending, offer, _, _) = publisher_offer(now, "127.0.0.1:50000".parse().unwrap());
        let (ingest, answer) = Ingest::answer(&offer, &host(), INTERVAL, now).expect("an answer");
        assert!(answer.contains("H264/90000"), "{answer}");
        assert!(answer.contains("opus/48000/2"), "{answer}");
        assert!(answer.contains("a=recvonly"), "{answer}");
        assert!(ingest.has_audio());

        let mut audio_only = Rtc::new(now);
        let mut change = audio_only.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _pending) = change.apply().expect("an offer");
        assert!(matches!(
            Ingest::answer(&offer.to_sdp_string(), &host(), INTERVAL, now),
            Err(OfferError::NoVideoToReceive)
        ));
        assert!(matches!(
            Ingest::answer("v=0 nonsense", &host(), INTERVAL, now),
            Err(OfferError::Sdp(_))
        ));
    }

    /// A str0m publisher and the ingest connected in memory: a delta frame before any keyframe
    /// is discarded (and a keyframe asked for); the keyframe brings the AVC configuration; the
    /// frames' times follow their RTP times; Opus comes out as Opus; as the keyframe interval
    /// runs out without one, another is asked for.
    #[test]
    fn a_publisher_s_frames_become_source_events() {
        let mut now = Instant::now();
        let publisher_addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let server: SocketAddr = SERVER.parse().unwrap();
        let (mut publisher, pending, offer, v, a) = publisher_offer(now, publisher_addr);
        let (mut ingest, answer) =
            Ingest::answer(&offer, &host(), INTERVAL, now).expect("an answer");
        publisher
            .sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer).expect("parses"),
            )
            .expect("accepted");
        let mut plis = 0;
        // x264's parameter sets of a 64×64 baseline stream.
        let sps = [
            0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x26, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04,
            0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x48, 0x99, 0x20,
        ];
        let pps = [0x68, 0xcb, 0x83, 0xcb, 0x20];
        let keyframe = || {
            let mut d = vec![0, 0, 0, 1];
            d.extend_from_slice(&sps);
            d.extend_from_slice(&[0, 0, 0, 1]);
            d.extend_from_slice(&pps);
            d.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 1, 2, 3]);
            d
        };
        // 2.3 s at 30 fps: past the 2 s keyframe interval.
        const FRAMES: u64 = 70;
        let mut written = 0u64;
        let mut events = Vec::new();
        for step in 0..(FRAMES as usize * 3 + 100) {
            now += Duration::from_millis(10);
            let _ = publisher.handle_input(Input::Timeout(now));
            loop {
                match publisher.poll_output().expect("publisher output") {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        assert!(ingest.peer().accepts(now, t.source, server, &t.contents));
                        ingest.receive(now, t.source, server, &t.contents);
                    }
                    Output::Event(Event::KeyframeRequest(_)) => plis += 1,
                    Output::Event(_) => {}
                }
            }
            ingest.tick(now);
            while let Some((to, data)) = ingest.peer_mut().poll_transmit() {
                assert_eq!(to, publisher_addr);
                let r = Receive::new(Protocol::Udp, server, publisher_addr, &data).unwrap();
                let _ = publisher.handle_input(Input::Receive(now, r));
            }
            while let Some(e) = ingest.poll_event() {
                events.push(e);
            }
            if ingest.peer().is_connected() && written < FRAMES && step % 3 == 0 {
                // Delta, keyframe, delta at 30 fps; one Opus packet each step.
                let data = if written == 1 {
                    keyframe()
                } else {
                    vec![0, 0, 0, 1, 0x41, 0x9a, 4, 5, 6]
                };
                let w = publisher.writer(v).expect("video writer");
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::H264)
                    .map(|p| p.pt())
                    .expect("h264 pt");
                w.write(
                    pt,
                    now,
                    MediaTime::new(1000 + 3000 * written, Frequency::NINETY_KHZ),
                    data,
                )
                .expect("video write");
                let w = publisher.writer(a).expect("audio writer");
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
                    .expect("opus pt");
                w.write(
                    pt,
                    now,
                    MediaTime::new(500 + 960 * written, Frequency::FORTY_EIGHT_KHZ),
                    vec![0xfc, 1, 2],
                )
                .expect("audio write");
                written += 1;
            }
        }
        assert!(ingest.peer().is_connected());
        let stats = ingest.stats();
        assert_eq!(stats.discarded, 1, "{stats:?}");
        assert_eq!(stats.video_frames, FRAMES - 1, "{stats:?}");
        // One for the first frame, one as the interval ran out (the publisher sent no more).
        assert!(
            stats.keyframe_requests >= 2 && plis >= 2,
            "{stats:?} {plis}"
        );
        let video: Vec<&MediaEvent> = events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::Media(m) => Some(m),
                _ => None,
            })
            .collect();
        assert!(
            matches!(video[0], MediaEvent::Config(TrackConfig::Avc(_))),
            "{video:?}"
        );
        let frames: Vec<&Frame> = video
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len() as u64, FRAMES - 1);
        assert!(frames[0].key && !frames[1].key);
        // AVCC, parameter sets left out: the IDR slice alone.
        assert_eq!(&frames[0].data[..], &[0, 0, 0, 5, 0x65, 0x88, 1, 2, 3]);
        // 3000 ticks of 90 kHz apart: 33,333 µs.
        assert_eq!(frames[1].pts - frames[0].pts, 33_333);
        let opus: Vec<(i64, &Bytes)> = events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::Opus { pts, data } => Some((*pts, data)),
                _ => None,
            })
            .collect();
        assert_eq!(opus.len() as u64, FRAMES);
        assert_eq!(&opus[0].1[..], &[0xfc, 1, 2]);
        assert_eq!(opus[1].0 - opus[0].0, 20_000);
    }
}
