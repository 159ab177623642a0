//! A live stream's samples for its WebRTC viewers, made once per stream.
//!
//! RTP carries one timestamp per frame, its presentation time (RFC 6184 §5.1); there is no
//! decode time, so a source with B-frames (pts ≠ dts) cannot be passed through and its video is
//! withheld (a transcoded rung without B-frames is the follow-up).

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
    /// A frame came before its configuration, or the configuration is unusable.
    Skipped(String),
}

/// Turns one stream's source events into samples.
#[derive(Debug, Default)]
pub struct Feed {
    avc: Option<AvcConfig>,
    /// SPS and PPS in Annex B, put before each keyframe.
    parameter_sets: Vec<u8>,
    /// The source's first frame: its pts (µs) less a margin, and when it was pushed.
    origin: Option<(i64, Instant)>,
    /// Video is withheld (B-frames seen).
    withheld: bool,
    notes: Vec<FeedNote>,
}

/// Margin before the first frame's pts, so audio a little earlier than it keeps a positive time.
const ORIGIN_MARGIN_US: i64 = 1_000_000;

impl Feed {
    pub fn new() -> Self {
        Feed::default()
    }

    /// The source's AVC configuration, once it came.
    pub fn avc(&self) -> Option<&AvcConfig> {
        self.avc.as_ref()
    }

    /// Whether video goes to viewers (the source has no B-frames so far).
    pub fn video_passed(&self) -> bool {
        self.avc.is_some() && !self.withheld
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
                self.set_avc(c.clone());
                None
            }
            MediaEvent::Config(_) => None,
            MediaEvent::Frame(f) if f.track == TrackKind::Video => self.video(f, now),
            MediaEvent::Frame(_) => None,
        }
    }

    fn set_avc(&mut self, c: AvcConfig) {
        let (sps, pps) = c.parameter_sets();
        self.parameter_sets.clear();
        for nal in sps.iter().chain(pps.iter()) {
            self.parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
            self.parameter_sets.extend_from_slice(nal);
        }
        self.avc = Some(c);
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
        let Some(avc) = &self.avc else {
            self.notes.push(FeedNote::Skipped(
                "a video frame before its configuration".into(),
            ));
            return None;
        };
        if self.withheld {
            return None;
        }
        if f.pts != f.dts {
            self.withheld = true;
            self.notes.push(FeedNote::VideoWithheld(format!(
                "the source has B-frames (pts {} ≠ dts {} µs); WebRTC viewers get audio only",
                f.pts, f.dts
            )));
            return None;
        }
        let data = match to_annexb(&f.data, usize::from(avc.nal_length_size)) {
            Ok(d) => d,
            Err(e) => {
                self.notes.push(FeedNote::Skipped(e));
                return None;
            }
        };
        let mut out = Vec::with_capacity(data.len() + self.parameter_sets.len());
        if f.key {
            out.extend_from_slice(&self.parameter_sets);
        }
        out.extend_from_slice(&data);
        let (since, wallclock) = self.place(f.pts, now);
        Some(Sample {
            kind: SampleKind::Video,
            key: f.key,
            rtp_time: since * 9 / 100,
            wallclock,
            data: out.into(),
        })
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
    }

    #[test]
    fn profile_level_ids() {
        assert_eq!(h264_profile_level_id(None), 0x42e01f);
    }
}
