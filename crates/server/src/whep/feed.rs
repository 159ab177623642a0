//! One live stream's WebRTC feed, in the video session's adapter: H.264 passed through; the
//! source's Opus passed through, or AAC transcoded to Opus once for all viewers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::{debug, info, warn};
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_transcode::AacToOpus;
use vshare_webrtc::{Feed, FeedNote, Sample};

use super::{Command, StreamEntry, Whep};

/// One live stream's samples for its WebRTC viewers, made in the video session's adapter: H.264
/// passed through; the source's own Opus passed through where it has one (the studio, WHIP),
/// else AAC transcoded to Opus once for all viewers (only while it has some).
pub struct StreamFeed {
    pub(super) whep: Arc<Whep>,
    pub(super) stream: Arc<str>,
    pub(super) entry: Arc<StreamEntry>,
    pub(super) feed: Feed,
    pub(super) aac: Option<vshare_media::AacConfig>,
    pub(super) opus: Option<AacToOpus>,
    pub(super) opus_failed: bool,
    /// The source's Opus is passed through (logged once).
    pub(super) own_opus: bool,
    pub(super) dropped: u64,
}

impl StreamFeed {
    /// A source event after the timestamp discipline.
    pub fn push(&mut self, event: &MediaEvent) {
        let now = Instant::now();
        match event {
            MediaEvent::Config(TrackConfig::Avc(_)) => self.offer_profile(),
            MediaEvent::Config(TrackConfig::Aac(c)) => {
                self.aac = Some(c.clone());
                self.opus = None;
                self.opus_failed = false;
            }
            _ => {}
        }
        let watched = self.entry.viewers.load(Ordering::Relaxed) > 0;
        match event {
            MediaEvent::Frame(f) if f.track == TrackKind::Audio => {
                if watched {
                    self.audio(f, now);
                } else {
                    // A fresh encoder for the next viewer: no stale samples in its delay line.
                    self.opus = None;
                }
            }
            MediaEvent::Frame(_) if !watched => {}
            _ => {
                if let Some(sample) = self.feed.push(event, now) {
                    self.send(sample);
                }
            }
        }
        self.notes();
    }

    /// The source's own Opus packet, on the stream's timeline (the AAC made from it is then not
    /// pushed here).
    pub fn push_opus(&mut self, pts: i64, data: &bytes::Bytes) {
        if !self.own_opus {
            self.own_opus = true;
            self.opus = None;
            info!(video = %self.stream, "WebRTC: the source's Opus passed through");
        }
        if self.entry.viewers.load(Ordering::Relaxed) > 0 {
            let sample = self.feed.opus(pts, data, Instant::now());
            self.send(sample);
        }
    }

    /// An event of the ladder's top rung (sent in the source's place once it has B-frames).
    pub fn push_rung(&mut self, event: &MediaEvent) {
        let watched = self.entry.viewers.load(Ordering::Relaxed) > 0;
        if matches!(event, MediaEvent::Frame(_)) && !watched {
            return;
        }
        if let Some(sample) = self.feed.push_rung(event, Instant::now()) {
            self.send(sample);
        }
        if matches!(event, MediaEvent::Config(_)) {
            self.offer_profile();
        }
        self.notes();
    }

    /// Answers offer the profile of the video sent.
    fn offer_profile(&self) {
        let id = vshare_webrtc::h264_profile_level_id(self.feed.avc());
        self.entry
            .profile_level_id
            .store(id as usize, Ordering::Relaxed);
    }

    fn notes(&mut self) {
        for note in self.feed.take_notes() {
            match note {
                FeedNote::VideoWithheld(why) => {
                    warn!(video = %self.stream, "WebRTC: {why}");
                    self.offer_profile();
                }
                FeedNote::VideoFromRung => {
                    info!(video = %self.stream, "WebRTC: video from the ladder's top rung")
                }
                FeedNote::Skipped(why) => debug!(video = %self.stream, "WebRTC: {why}"),
            }
        }
    }

    fn audio(&mut self, f: &vshare_media::Frame, now: Instant) {
        if self.opus.is_none() && !self.opus_failed {
            let Some(aac) = &self.aac else { return };
            match AacToOpus::new(aac, self.whep.config.opus_bitrate) {
                Ok(t) => self.opus = Some(t),
                Err(e) => {
                    self.opus_failed = true;
                    warn!(video = %self.stream, "WebRTC: no Opus audio: {e}");
                }
            }
        }
        let Some(opus) = self.opus.as_mut() else {
            return;
        };
        match opus.push(f.pts, &f.data) {
            Ok(packets) => {
                for p in packets {
                    let sample = self.feed.opus(p.pts, &p.data, now);
                    self.send(sample);
                }
            }
            Err(e) => debug!(video = %self.stream, "WebRTC: AAC to Opus: {e}"),
        }
    }

    fn send(&mut self, sample: Sample) {
        if self
            .whep
            .tx
            .try_send(Command::Sample(self.stream.clone(), sample))
            .is_err()
        {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                warn!(video = %self.stream, dropped = self.dropped, "WebRTC: samples dropped (the WebRTC task is behind)");
            }
        }
    }
}

impl Drop for StreamFeed {
    fn drop(&mut self) {
        self.whep
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&*self.stream);
        let _ = self
            .whep
            .tx
            .try_send(Command::StreamEnded(self.stream.clone()));
    }
}
