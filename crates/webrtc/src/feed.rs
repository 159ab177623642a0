//! A live stream's samples for its WebRTC viewers, made once per stream.
//!
//! RTP carries one timestamp per frame, its presentation time (RFC 6184 §5.1); there is no
//! decode time, so a source with B-frames (pts ≠ dts) cannot be passed through: its video is
//! withheld, and the ladder's top rung (our encoders make no B-frames) is sent in its place
//! when the stream has a ladder ([`Feed::push_rung`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vshare_media::{AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

/// What a sample carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// One H.264 access unit, Annex B.
    Video,
    /// One Opus packet.
    Audio,
}

/// One frame ready for [`crate::Viewer::write`].
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: SampleKind,
    /// An IDR access unit (with SPS and PPS in front).
    pub key: bool,
    /// RTP time in the track's clock (90 kHz video, 48 kHz Opus), from the stream's origin.
    pub rtp_time: u64,
    /// The sample's place on the wall clock, the same timeline for both tracks: str0m's sender
    /// reports map it to `rtp_time`, and players sync audio to video with them.
    pub wallclock: Instant,
    pub data: Arc<[u8]>,
}

/// Something the adapter should log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedNote {
    /// Video is withheld from WebRTC viewers: the source has B-frames.
    VideoWithheld(String),
    /// The ladder's top rung is sent in the source's place.
    VideoFromRung,
    /// A frame came before its configuration, or the configuration is unusable.
    Skipped(String),
}

/// One H.264 track's configuration, as Annex B parameter sets too.
#[derive(Debug, Default)]
struct Track {
    avc: Option<AvcConfig>,
    /// SPS and PPS in Annex B, put before each keyframe.
    parameter_sets: Vec<u8>,
}

impl Track {
    fn set_avc(&mut self, c: AvcConfig) {
        let (sps, pps) = c.parameter_sets();
        self.parameter_sets.clear();
        for nal in sps.iter().chain(pps.iter()) {
            self.parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
            self.parameter_sets.extend_from_slice(nal);
        }
        self.avc = Some(c);
    }

    /// An access unit in Annex B, with the parameter sets before a keyframe.
    fn annexb(&self, f: &Frame) -> Result<Vec<u8>, String> {
        let Some(avc) = &self.avc else {
            return Err("a video frame before its configuration".into());
        };
        let data = to_annexb(&f.data, usize::from(avc.nal_length_size))?;
        let mut out = Vec::with_capacity(data.len() + self.parameter_sets.len());
        if f.key {
            out.extend_from_slice(&self.parameter_sets);
        }
        out.extend_from_slice(&data);
        Ok(out)
    }
}

/// Turns one stream's source events into samples.
#[derive(Debug, Default)]
pub struct Feed {
    source: Track,
    /// The ladder's top rung: sent once the source is withheld.
    rung: Track,
    /// The source's first frame: its pts (µs) less a margin, and when it was pushed.
    origin: Option<(i64, Instant)>,
    /// Source video is withheld (B-frames seen).
    withheld: bool,
    /// A rung frame has been sent in the source's place.
    from_rung: bool,
    notes: Vec<FeedNote>,
}

/// Margin before the first frame's pts, so audio a little earlier than it keeps a positive time.
const ORIGIN_MARGIN_US: i64 = 1_000_000;

impl Feed {
    pub fn new() -> Self {
        Feed::default()
    }

    /// The AVC configuration of the video sent: the source's, or the rung's in its place.
    pub fn avc(&self) -> Option<&AvcConfig> {
        match self.withheld {
            false => self.source.avc.as_ref(),
            true => self.rung.avc.as_ref(),
        }
    }

    /// Whether video goes to viewers: the source's (no B-frames so far), or the rung's.
    pub fn video_passed(&self) -> bool {
        match self.withheld {
            false => self.source.avc.is_some(),
            true => self.rung.avc.is_some(),
        }
    }

    /// What happened since the last call.
    pub fn take_notes(&mut self) -> Vec<FeedNote> {
        std::mem::take(&mut self.notes)
    }

    /// A source event (after the timestamp discipline) at `now`. Audio frames are not taken
    /// here: the adapter transcodes them and hands the Opus packets to [`Self::opus`].
    pub fn push(&mut self, event: &MediaEvent, now: Instant) -> Option<Sample> {
        match event {
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                self.source.set_avc(c.clone());
                None
            }
            MediaEvent::Config(_) => None,
            MediaEvent::Frame(f) if f.track == TrackKind::Video => self.video(f, now),
            MediaEvent::Frame(_) => None,
        }
    }

    /// An event of the ladder's top rung (same timeline as the source): its video is sent once
    /// the source's is withheld, from the rung's next keyframe.
    pub fn push_rung(&mut self, event: &MediaEvent, now: Instant) -> Option<Sample> {
        match event {
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                self.rung.set_avc(c.clone());
                None
            }
            MediaEvent::Frame(f) if f.track == TrackKind::Video && self.withheld => {
                if f.pts != f.dts || (!self.from_rung && !f.key) {
                    return None;
                }
                let data = match self.rung.annexb(f) {
                    Ok(d) => d,
                    Err(e) => {
                        self.notes.push(FeedNote::Skipped(format!("rung: {e}")));
                        return None;
                    }
                };
                if !self.from_rung {
                    self.from_rung = true;
                    self.notes.push(FeedNote::VideoFromRung);
                }
                Some(self.sample(f, data, now))
            }
            _ => None,
        }
    }

    fn sample(&mut self, f: &Frame, data: Vec<u8>, now: Instant) -> Sample {
        let (since, wallclock) = self.place(f.pts, now);
        Sample {
            kind: SampleKind::Video,
            key: f.key,
            rtp_time: since * 9 / 100,
            wallclock,
            data: data.into(),
        }
    }

    fn origin(&mut self, pts: i64, now: Instant) -> (i64, Instant) {
        *self
            .origin
            .get_or_insert((pts.saturating_sub(ORIGIN_MARGIN_US), now))
    }

    /// Media time since the origin (µs, never negative) and its wall-clock instant.
    fn place(&mut self, pts: i64, now: Instant) -> (u64, Instant) {
        let (origin_pts, origin_at) = self.origin(pts, now);
        let since = pts.saturating_sub(origin_pts).max(0) as u64;
        let at = (origin_at + Duration::from_micros(since))
            .checked_sub(Duration::from_micros(ORIGIN_MARGIN_US as u64))
            .unwrap_or(origin_at);
        (since, at)
    }

    fn video(&mut self, f: &Frame, now: Instant) -> Option<Sample> {
        if self.withheld {
            return None;
        }
        if self.source.avc.is_some() && f.pts != f.dts {
            self.withheld = true;
            self.notes.push(FeedNote::VideoWithheld(format!(
                "the source has B-frames (pts {} ≠ dts {} µs); WebRTC viewers get the ladder's \
                 top rung where the stream has one, audio only otherwise",
                f.pts, f.dts
            )));
            return None;
        }
        match self.source.annexb(f) {
            Ok(data) => Some(self.sample(f, data, now)),
            Err(e) => {
                self.notes.push(FeedNote::Skipped(e));
                None
            }
        }
    }

    /// One Opus packet of the stream with its capture pts (µs).
    pub fn opus(&mut self, pts: i64, data: &Bytes, now: Instant) -> Sample {
        let (since, wallclock) = self.place(pts, now);
        Sample {
            kind: SampleKind::Audio,
            key: true,
            rtp_time: since * 48 / 1000,
            wallclock,
            data: Arc::from(&data[..]),
        }
    }
}

/// AVCC (NAL units with `len_size`-byte big-endian lengths, ISO/IEC 14496-15 §5.3.2) to Annex B
/// (start codes, H.264 Annex B), leaving out access unit delimiters and in-band parameter sets
/// (they come from the configuration, before each keyframe).
fn to_annexb(avcc: &[u8], len_size: usize) -> Result<Vec<u8>, String> {
    if !(1..=4).contains(&len_size) {
        return Err(format!("NAL length size {len_size} is not 1 to 4"));
    }
    let mut out = Vec::with_capacity(avcc.len() + 16);
    let mut i = 0;
    while i < avcc.len() {
        let Some(len_bytes) = avcc.get(i..i + len_size) else {
            return Err(format!("a NAL unit length cut short at byte {i}"));
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        i += len_size;
        let Some(nal) = avcc.get(i..i + len) else {
            return Err(format!(
                "a NAL unit of {len} bytes at byte {i} runs past the frame's {} bytes",
                avcc.len()
            ));
        };
        i += len;
        if nal.is_empty() || matches!(nal[0] & 0x1f, 7..=9) {
            continue;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    Ok(out)
}

/// The `profile-level-id` (RFC 6184 §8.1) to offer for a source: its profile at level 3.1, as
/// browsers offer it. Baseline sources become constrained baseline (42e01f): x264's baseline is
/// constrained (constraint_set1), and it is what every browser decodes.
pub fn h264_profile_level_id(avc: Option<&AvcConfig>) -> u32 {
    match avc.map(|c| c.profile_idc) {
        Some(77) => 0x4d001f,
        Some(100) => 0x64001f,
        _ => 0x42e01f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_to_annexb() {
        // An AUD, an SPS (dropped) and a slice.
        let avcc = [
            0, 0, 0, 2, 9, 0xf0, 0, 0, 0, 2, 0x67, 1, 0, 0, 0, 3, 0x65, 0xaa, 0xbb,
        ];
        assert_eq!(
            to_annexb(&avcc, 4).unwrap(),
            vec![0, 0, 0, 1, 0x65, 0xaa, 0xbb]
        );
        assert!(to_annexb(&[0, 0, 0, 9, 0x65], 4).is_err());
        assert!(to_annexb(&[0, 0], 4).is_err());
        assert!(to_annexb(&[], 5).is_err());
    }

    #[test]
    fn timestamps_share_one_timeline() {
        let mut feed = Feed::new();
        let t0 = Instant::now();
        let a = feed.opus(5_000_000, &Bytes::from_static(b"x"), t0);
        let b = feed.opus(5_020_000, &Bytes::from_static(b"y"), t0);
        assert_eq!(a.rtp_time, 48_000);
        assert_eq!(b.rtp_time - a.rtp_time, 960);
        assert_eq!(b.wallclock - a.wallclock, Duration::from_millis(20));
        // Before the origin: clamped to zero, never wrapping.
        assert_eq!(feed.opus(3_000_000, &Bytes::new(), t0).rtp_time, 0);
    }

    fn frame(pts: i64, dts: i64, key: bool) -> MediaEvent {
        let nal: &[u8] = if key { &[0x65, 0x88] } else { &[0x41, 0x9a] };
        let mut data = (nal.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(nal);
        MediaEvent::Frame(Frame {
            track: TrackKind::Video,
            pts,
            dts,
            key,
            data: Bytes::from(data),
        })
    }

    #[test]
    fn keyframes_carry_the_parameter_sets_and_b_frames_withhold_video() {
        let mut feed = Feed::new();
        let t0 = Instant::now();
        assert!(feed.push(&frame(0, 0, true), t0).is_none());
        assert!(matches!(feed.take_notes()[..], [FeedNote::Skipped(_)]));
        // x264's High profile record.
        feed.push(&vshare_testkit::media::video_config(), t0);
        assert_eq!(h264_profile_level_id(feed.avc()), 0x64001f);
        let key = feed
            .push(&frame(2_000_000, 2_000_000, true), t0)
            .expect("a sample");
        assert!(key.key);
        assert!(key.data.starts_with(&[0, 0, 0, 1, 0x67]));
        assert!(key.data.ends_with(&[0, 0, 0, 1, 0x65, 0x88]));
        let delta = feed
            .push(&frame(2_033_333, 2_033_333, false), t0)
            .expect("a sample");
        assert_eq!(&delta.data[..], &[0, 0, 0, 1, 0x41, 0x9a]);
        assert_eq!(delta.rtp_time - key.rtp_time, 2_999);
        assert!(feed.video_passed());
        // A B-frame stream (pts ahead of dts): video stops, said once.
        assert!(feed.push(&frame(2_133_333, 2_066_666, false), t0).is_none());
        assert!(matches!(
            feed.take_notes()[..],
            [FeedNote::VideoWithheld(_)]
        ));
        assert!(feed.push(&frame(2_100_000, 2_100_000, true), t0).is_none());
        assert!(!feed.video_passed());
        assert!(feed.take_notes().is_empty());

        // The ladder's top rung takes the source's place from its next keyframe, on the
        // same timeline.
        feed.push_rung(&vshare_testkit::media::video_config(), t0);
        assert!(feed.video_passed());
        assert!(
            feed.push_rung(&frame(2_166_666, 2_166_666, false), t0)
                .is_none()
        );
        let key = feed
            .push_rung(&frame(2_200_000, 2_200_000, true), t0)
            .expect("a rung keyframe");
        assert!(key.key && key.data.starts_with(&[0, 0, 0, 1, 0x67]));
        assert!(matches!(feed.take_notes()[..], [FeedNote::VideoFromRung]));
        let delta = feed
            .push_rung(&frame(2_233_333, 2_233_333, false), t0)
            .expect("a rung frame");
        assert_eq!(delta.rtp_time - key.rtp_time, 2_999);
    }

    #[test]
    fn the_rung_is_not_sent_while_the_source_is() {
        let mut feed = Feed::new();
        let t0 = Instant::now();
        feed.push(&vshare_testkit::media::video_config(), t0);
        feed.push_rung(&vshare_testkit::media::video_config(), t0);
        assert!(feed.push(&frame(0, 0, true), t0).is_some());
        assert!(feed.push_rung(&frame(0, 0, true), t0).is_none());
    }

    #[test]
    fn profile_level_ids() {
        assert_eq!(h264_profile_level_id(None), 0x42e01f);
    }
}
