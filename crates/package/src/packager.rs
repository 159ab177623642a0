//! The LL-HLS packager: a state machine that turns [`MediaEvent`]s into CMAF parts and segments
//! and renders the live playlist. No I/O and no clock: the caller passes each event's arrival
//! time and serves the bytes and text it gets back.
//!
//! Timing rules (see docs/packaging.md):
//! - Every track shares one origin: the first frame's decode time minus [`ORIGIN_MARGIN_US`].
//!   A frame's decode time in the fMP4 is its input decode time minus the origin, in the track's
//!   timescale, so audio and video keep the alignment they had at ingest.
//! - One frame per track is held back until the next one arrives: video durations are the
//!   difference of decode times; audio advances by `samples_per_frame` and re-syncs to the
//!   frame timestamps when they drift apart by more than a quarter frame.
//! - A part closes before a lead-track sample (video if the stream has video, else audio) that
//!   would make it longer than the part target; a segment closes before a video keyframe once
//!   the segment target has elapsed.
//!
//! It stays one file of about 850 lines: every method reads and writes the same track, part and
//! segment state, and a frame's path (push, hold, cut a part, close a segment) reads best in
//! one place.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

use crate::PackageError;
use crate::fmp4::{self, FragmentSample, TrackFragment};
use crate::playlist::{self, ListedPart, ListedSegment, LiveView};

/// Distance between the stream origin and the first frame's decode time, µs. Leaves room for
/// the other track's first frame to start a little earlier than the first frame seen.
pub const ORIGIN_MARGIN_US: i64 = 1_000_000;
/// Largest access unit accepted, bytes.
pub const MAX_FRAME_SIZE: usize = 32 << 20;
/// Largest composition offset accepted, µs.
pub const MAX_COMPOSITION_OFFSET_US: i64 = 10_000_000;
/// A keyframe this close before the segment target still starts a new segment: timestamps
/// rounded to milliseconds put a 2 s keyframe at 1.999 s.
const SEGMENT_TOLERANCE_US: i64 = 5_000;
/// Samples of the non-lead track wait at most this long (by their own time span) for the lead
/// track; past it they go out in a part of their own (e.g. video configured but not sent).
const MAX_WAITING_US: i64 = 5_000_000;
/// A part closes before a sample that would take its media data past this many bytes.
const MAX_PART_BYTES: usize = 256 << 20;

/// Part and segment targets and the live window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagerConfig {
    /// Target duration of a part (EXT-X-PART-INF PART-TARGET), µs. Default 333 333.
    pub part_target_us: i64,
    /// Target duration of a segment, µs; segments close at the first video keyframe after it.
    /// Default 2 000 000.
    pub segment_target_us: i64,
    /// Complete segments listed in the live playlist. Default 12.
    pub window_segments: usize,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        PackagerConfig {
            part_target_us: 333_333,
            segment_target_us: 2_000_000,
            window_segments: 12,
        }
    }
}

/// What the packager produced for the caller to store or serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackagerOutput {
    /// A new init segment: `init.mp4` before the first part, and `init{msn}.mp4` after a codec
    /// configuration change, named after the first segment packaged under it (an EXT-X-MAP
    /// with this name precedes that segment). Older ones stay valid for the segments packaged
    /// under them.
    Init { bytes: Bytes, name: String },
    /// A part ("part{msn}.{index}.m4s"): one moof+mdat.
    Part {
        msn: u64,
        index: u32,
        /// Starts with a video keyframe (or is audio only).
        independent: bool,
        duration_us: i64,
        /// Earliest arrival time of the frames in the part (for latency).
        first_arrival_unix_us: i64,
        bytes: Bytes,
    },
    /// A complete segment ("seg{msn}.m4s"): its parts concatenated.
    Segment {
        msn: u64,
        duration_us: i64,
        program_date_time_unix_ms: i64,
        bytes: Bytes,
    },
}

const VIDEO: usize = 0;
const AUDIO: usize = 1;

fn index_of(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Video => VIDEO,
        TrackKind::Audio => AUDIO,
    }
}

/// µs → ticks of `timescale`, rounded to nearest.
fn to_ticks(us: i64, timescale: u32) -> i64 {
    let n = i128::from(us) * i128::from(timescale);
    (n + 500_000).div_euclid(1_000_000) as i64
}

/// Ticks of `timescale` → µs, rounded to nearest.
fn to_us(ticks: i64, timescale: u32) -> i64 {
    let t = i128::from(timescale.max(1));
    let n = i128::from(ticks) * 1_000_000;
    ((n + t / 2).div_euclid(t)) as i64
}

/// A frame held back until the next frame of its track tells its duration.
#[derive(Debug, Clone)]
struct Held {
    dts_us: i64,
    decode: i64,
    cts: i32,
    key: bool,
    data: Bytes,
    arrival: i64,
}

/// A sample with its duration known, on the way into a part.
#[derive(Debug, Clone)]
struct Ready {
    decode: i64,
    duration: u32,
    cts: Option<i32>,
    key: bool,
    data: Bytes,
    arrival: i64,
}

#[derive(Debug, Clone)]
struct TrackState {
    timescale: u32,
    /// AAC samples per access unit; `None` for video.
    samples_per_frame: Option<u32>,
    held: Option<Held>,
    last_duration: Option<u32>,
    default_duration: u32,
}

#[derive(Debug, Clone)]
struct OpenSegment {
    listed: ListedSegment,
    start_us: i64,
    parts: Vec<Bytes>,
}

/// The LL-HLS packager of one live stream. See the module docs for the timing rules.
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    video_config: Option<AvcConfig>,
    audio_config: Option<AacConfig>,
    /// The latest init segment built from the configurations.
    init: Option<Bytes>,
    /// The init segment must be (re-)announced before the next frame.
    init_pending: bool,
    origin_us: Option<i64>,
    tracks: [Option<TrackState>; 2],
    /// Samples of the part being built, per track.
    part: [Vec<Ready>; 2],
    /// Samples of the non-lead track waiting for the part that covers their time.
    waiting: [VecDeque<Ready>; 2],
    /// Decode time (lead timescale) of the first lead sample of the open part.
    part_start: Option<i64>,
    part_independent: bool,
    /// Duration of the previous lead sample, for predicting the next one's.
    previous_lead_duration: Option<u32>,
    open: Option<OpenSegment>,
    next_msn: u64,
    /// The complete segments the playlist lists (their bytes went out in the outputs: the
    /// live window and the recording keep them).
    stored: VecDeque<ListedSegment>,
    fragment_sequence: u32,
    wall_anchor_us: Option<i64>,
    target_duration_s: u64,
    discontinuity_next: bool,
    /// Whether an init segment was handed out yet (the first is init.mp4).
    init_emitted: bool,
    /// The name of the init segment frames are packaged under now.
    init_uri: std::sync::Arc<str>,
    finished: bool,
}

impl Packager {
    pub fn new(config: PackagerConfig) -> Self {
        let config = PackagerConfig {
            part_target_us: config.part_target_us.max(10_000),
            segment_target_us: config
                .segment_target_us
                .max(config.part_target_us)
                .max(10_000),
            window_segments: config.window_segments.max(1),
        };
        let target_duration_s = playlist::rounded_seconds(config.segment_target_us).max(1);
        Packager {
            config,
            video_config: None,
            audio_config: None,
            init: None,
            init_pending: false,
            origin_us: None,
            tracks: [None, None],
            part: [Vec::new(), Vec::new()],
            waiting: [VecDeque::new(), VecDeque::new()],
            part_start: None,
            part_independent: false,
            previous_lead_duration: None,
            open: None,
            next_msn: 0,
            stored: VecDeque::new(),
            fragment_sequence: 0,
            wall_anchor_us: None,
            target_duration_s,
            discontinuity_next: false,
            init_emitted: false,
            init_uri: "init.mp4".into(),
            finished: false,
        }
    }

    /// Sets the stream origin before the first frame, so that several packagers of one stream
    /// (its renditions) put the same input time at the same media time. Ignored once set.
    pub fn set_origin(&mut self, origin_us: i64) {
        self.origin_us.get_or_insert(origin_us);
    }

    /// The origin: input decode time that maps to media time zero, once known.
    pub fn origin_us(&self) -> Option<i64> {
        self.origin_us
    }

    pub fn config(&self) -> &PackagerConfig {
        &self.config
    }

    /// Feeds one event. `arrival_unix_us`: wall-clock time the event arrived at ingest (used for
    /// EXT-X-PROGRAM-DATE-TIME and latency). A refused event leaves the packager unchanged.
    pub fn push(
        &mut self,
        event: MediaEvent,
        arrival_unix_us: i64,
    ) -> Result<Vec<PackagerOutput>, PackageError> {
        if self.finished {
            return Err(PackageError::Config("the stream has finished".into()));
        }
        let mut out = Vec::new();
        match event {
            MediaEvent::Config(c) => self.push_config(c, &mut out)?,
            MediaEvent::Frame(f) => self.push_frame(f, arrival_unix_us, &mut out)?,
        }
        Ok(out)
    }

    /// Publisher stopped: flushes the last part and segment; the playlist gets EXT-X-ENDLIST.
    pub fn finish(&mut self) -> Vec<PackagerOutput> {
        let mut out = Vec::new();
        if !self.finished {
            self.flush(&mut out);
            self.finished = true;
        }
        out
    }

    /// The current init segment ("init.mp4").
    pub fn init_segment(&self) -> Option<Bytes> {
        self.init.clone()
    }

    /// The current LL-HLS playlist ("index.m3u8"); `None` until the first part exists.
    pub fn media_playlist(&self) -> Option<String> {
        let any_part =
            !self.stored.is_empty() || self.open.as_ref().is_some_and(|o| !o.parts.is_empty());
        if !any_part && !self.finished {
            return None;
        }
        let segments: Vec<ListedSegment> = self.stored.iter().cloned().collect();
        Some(playlist::render_live(&LiveView {
            part_target_us: self.config.part_target_us,
            target_duration_s: self.target_duration_s,
            segments: &segments,
            in_progress: self.open.as_ref().map(|o| &o.listed),
            next_msn: self.next_msn,
            finished: self.finished,
        }))
    }

    /// True once part (msn, index) — or segment msn when index is None — is listed in the
    /// playlist, or can no longer be (its segment completed with fewer parts): the condition a
    /// blocking playlist reload with `_HLS_msn`/`_HLS_part` waits for (RFC 8216bis §6.2.5.2).
    pub fn is_listed(&self, msn: u64, index: Option<u32>) -> bool {
        if msn < self.next_msn {
            return true;
        }
        match (index, &self.open) {
            (Some(i), Some(open)) => open.listed.msn == msn && (i as usize) < open.parts.len(),
            _ => false,
        }
    }

    /// The part the playlist's EXT-X-PRELOAD-HINT names: (msn, index) of the next part to be
    /// published. A blocking request for a part beyond the one after it can be answered with
    /// 400 at once (RFC 8216bis §6.2.5.2).
    pub fn next_part(&self) -> (u64, u32) {
        match &self.open {
            Some(o) => (o.listed.msn, o.parts.len() as u32),
            None => (self.next_msn, 0),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// RFC 6381 codec strings of the configured tracks, video first, comma-separated: the
    /// `CODECS` attribute of a multivariant playlist (RFC 8216bis §4.4.6.2).
    pub fn codecs(&self) -> Option<String> {
        let list: Vec<String> = [
            self.video_config.as_ref().map(|c| c.codec_string()),
            self.audio_config.as_ref().map(|c| c.codec_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!list.is_empty()).then(|| list.join(","))
    }

    /// EXT-X-TARGETDURATION of the live playlist, seconds.
    pub fn target_duration_s(&self) -> u64 {
        self.target_duration_s
    }

    fn push_config(
        &mut self,
        config: TrackConfig,
        out: &mut Vec<PackagerOutput>,
    ) -> Result<(), PackageError> {
        let (video, audio) = match &config {
            TrackConfig::Avc(c) => {
                if self.video_config.as_ref() == Some(c) {
                    return Ok(());
                }
                (Some(c), self.audio_config.as_ref())
            }
            TrackConfig::Aac(c) => {
                if self.audio_config.as_ref() == Some(c) {
                    return Ok(());
                }
                (self.video_config.as_ref(), Some(c))
            }
        };
        if let TrackConfig::Aac(c) = &config
            && (c.sample_rate == 0 || c.samples_per_frame == 0)
        {
            return Err(PackageError::Config(format!(
                "AAC sample rate {} / samples per frame {}",
                c.sample_rate, c.samples_per_frame
            )));
        }
        // Build it now so that a configuration we cannot describe is refused here.
        let init = fmp4::init_segment(video, audio)?;
        if self.tracks.iter().any(Option::is_some) {
            // Frames were packaged under the old configuration: close what is open.
            self.flush(out);
            self.discontinuity_next = true;
        }
        match config {
            TrackConfig::Avc(c) => self.video_config = Some(c),
            TrackConfig::Aac(c) => self.audio_config = Some(c),
        }
        self.init = Some(init);
        self.init_pending = true;
        self.tracks = [None, None];
        Ok(())
    }

    fn lead(&self) -> usize {
        if self.video_config.is_some() {
            VIDEO
        } else {
            AUDIO
        }
    }

    fn timescale(&self, k: usize) -> u32 {
        self.tracks[k]
            .as_ref()
            .map_or(fmp4::VIDEO_TIMESCALE, |t| t.timescale)
    }

    fn part_target_ticks(&self) -> i64 {
        to_ticks(self.config.part_target_us, self.timescale(self.lead()))
    }

    fn push_frame(
        &mut self,
        f: Frame,
        arrival: i64,
        out: &mut Vec<PackagerOutput>,
    ) -> Result<(), PackageError> {
        let k = index_of(f.track);
        let configured = match f.track {
            TrackKind::Video => self.video_config.is_some(),
            TrackKind::Audio => self.audio_config.is_some(),
        };
        if !configured {
            return Err(PackageError::FrameBeforeConfig {
                track: f.track,
                dts_us: f.dts,
            });
        }
        if f.data.is_empty() || f.data.len() > MAX_FRAME_SIZE {
            return Err(PackageError::FrameSize {
                track: f.track,
                dts_us: f.dts,
                size: f.data.len(),
                limit: MAX_FRAME_SIZE,
            });
        }
        let range = |what| PackageError::TimestampRange {
            track: f.track,
            dts_us: f.dts,
            what,
        };
        let cts_us = f
            .pts
            .checked_sub(f.dts)
            .ok_or_else(|| range("composition offset"))?;
        if cts_us.abs() > MAX_COMPOSITION_OFFSET_US {
            return Err(range("composition offset"));
        }
        let origin = match self.origin_us {
            Some(o) => o,
            None => f
                .dts
                .checked_sub(ORIGIN_MARGIN_US)
                .ok_or_else(|| range("decode time"))?,
        };
        let rel = f
            .dts
            .checked_sub(origin)
            .ok_or_else(|| range("decode time"))?;
        if rel < 0 {
            return Err(PackageError::BeforeOrigin {
                track: f.track,
                dts_us: f.dts,
                origin_us: origin,
            });
        }
        // 2^52 µs is ~143 years: far beyond any stream, and safe for the tick arithmetic.
        if rel > 1 << 52 {
            return Err(range("decode time"));
        }
        let state = match &self.tracks[k] {
            Some(s) => s.clone(),
            None => self.new_track_state(k),
        };
        let ideal = to_ticks(rel, state.timescale);
        let decode = match (&state.held, state.samples_per_frame) {
            (Some(h), Some(spf)) => {
                let expected = h.decode + i64::from(spf);
                if (ideal - expected).abs() <= i64::from(spf / 4) {
                    expected
                } else {
                    ideal
                }
            }
            _ => ideal,
        };
        let duration = match &state.held {
            Some(h) => {
                if f.dts <= h.dts_us || decode <= h.decode {
                    return Err(PackageError::NonIncreasingDts {
                        track: f.track,
                        dts_us: f.dts,
                        previous_us: h.dts_us,
                    });
                }
                Some(
                    u32::try_from(decode - h.decode)
                        .map_err(|_| range("gap to the previous frame"))?,
                )
            }
            None => None,
        };
        let cts = i32::try_from(to_ticks(rel + cts_us, state.timescale) - ideal)
            .map_err(|_| range("composition offset"))?;

        // Accepted: from here on the state changes.
        self.origin_us = Some(origin);
        if self.init_pending {
            self.init_pending = false;
            if let Some(init) = &self.init {
                // The first init is init.mp4; a later one is named after the segment that opens
                // next (the change closed the one before).
                let name = if self.init_emitted {
                    format!("init{}.mp4", self.next_msn)
                } else {
                    "init.mp4".to_string()
                };
                self.init_emitted = true;
                self.init_uri = name.as_str().into();
                out.push(PackagerOutput::Init {
                    bytes: init.clone(),
                    name,
                });
            }
        }
        let mut state = state;
        let held = state.held.replace(Held {
            dts_us: f.dts,
            decode,
            cts,
            key: f.key || k == AUDIO,
            data: f.data,
            arrival,
        });
        if let Some(d) = duration {
            state.last_duration = Some(d);
        }
        self.tracks[k] = Some(state);
        if let (Some(h), Some(d)) = (held, duration) {
            let ready = Ready {
                decode: h.decode,
                duration: d,
                cts: (k == VIDEO).then_some(h.cts),
                key: h.key,
                data: h.data,
                arrival: h.arrival,
            };
            self.on_ready(k, ready, Some((decode, k == AUDIO || f.key)), out);
        }
        Ok(())
    }

    fn new_track_state(&self, k: usize) -> TrackState {
        if k == VIDEO {
            let fps = self
                .video_config
                .as_ref()
                .and_then(|c| c.frame_rate)
                .unwrap_or(30.0);
            TrackState {
                timescale: fmp4::VIDEO_TIMESCALE,
                samples_per_frame: None,
                held: None,
                last_duration: None,
                default_duration: (f64::from(fmp4::VIDEO_TIMESCALE) / fps).round().max(1.0) as u32,
            }
        } else {
            let (rate, spf) = self
                .audio_config
                .as_ref()
                .map_or((48_000, 1024), |c| (c.sample_rate, c.samples_per_frame));
            TrackState {
                timescale: rate,
                samples_per_frame: Some(spf),
                held: None,
                last_duration: None,
                default_duration: spf,
            }
        }
    }

    /// A sample whose duration is known. `next`: decode time and sync flag of the frame after it.
    fn on_ready(
        &mut self,
        k: usize,
        s: Ready,
        next: Option<(i64, bool)>,
        out: &mut Vec<PackagerOutput>,
    ) {
        let lead = self.lead();
        if k != lead {
            let ts = self.timescale(k);
            self.waiting[k].push_back(s);
            if self.waiting_span_us(k) > MAX_WAITING_US {
                // The lead track went quiet (a camera switched off): publish the waiting samples
                // on their own, one part target at a time, so parts stay within PART-TARGET.
                while self.waiting_span_us(k) > MAX_WAITING_US / 2 {
                    let Some(front) = self.waiting[k].front() else {
                        break;
                    };
                    let start = to_us(front.decode, ts);
                    let boundary =
                        start + self.config.part_target_us - to_us(i64::from(front.duration), ts);
                    self.close_part(boundary.max(start + 1), out);
                    if self
                        .open
                        .as_ref()
                        .is_some_and(|o| o.listed.duration_us >= self.config.segment_target_us)
                    {
                        self.close_segment(out);
                    }
                }
            }
            return;
        }
        let ts = self.timescale(k);
        let target = self.part_target_ticks();
        let part_bytes: usize = self.part[k].iter().map(|p| p.data.len()).sum();
        if let Some(start) = self.part_start
            && (s.decode + i64::from(s.duration) - start > target
                || part_bytes + s.data.len() > MAX_PART_BYTES)
        {
            self.close_part(to_us(s.decode, ts), out);
        }
        if self.open.is_none() {
            self.open_segment(to_us(s.decode, ts), s.arrival);
        }
        if self.part_start.is_none() {
            self.part_start = Some(s.decode);
            self.part_independent = s.key;
        }
        // Predict the next sample's duration from the shorter of the last two: timestamps
        // rounded to milliseconds alternate (33, 34, 33 ms at 30 fps) and the longer one would
        // close parts a frame early. A longer sample than predicted closes the part before it.
        let duration = i64::from(
            self.previous_lead_duration
                .map_or(s.duration, |p| p.min(s.duration)),
        );
        self.previous_lead_duration = Some(s.duration);
        self.part[k].push(s);
        let Some((next_decode, next_sync)) = next else {
            return;
        };
        let next_us = to_us(next_decode, ts);
        let segment_start = self.open.as_ref().map_or(next_us, |o| o.start_us);
        if next_sync
            && next_us - segment_start >= self.config.segment_target_us - SEGMENT_TOLERANCE_US
        {
            self.close_part(next_us, out);
            self.close_segment(out);
        } else if let Some(start) = self.part_start
            && next_decode + duration - start > target
        {
            // The next sample, if as long as this one, would overrun the part target.
            self.close_part(next_us, out);
        }
    }

    /// Time span of the samples waiting on track `k`, µs.
    fn waiting_span_us(&self, k: usize) -> i64 {
        match (self.waiting[k].front(), self.waiting[k].back()) {
            (Some(a), Some(b)) => to_us(b.decode - a.decode, self.timescale(k)),
            _ => 0,
        }
    }

    fn open_segment(&mut self, start_us: i64, arrival: i64) {
        // Arrival times come from the caller's clock: saturating arithmetic keeps absurd values
        // from overflowing.
        let expected = self.wall_anchor_us.map(|a| a.saturating_add(start_us));
        let anchor = match expected {
            Some(e) if arrival.saturating_sub(e).saturating_abs() <= 1_000_000 => {
                e.saturating_sub(start_us)
            }
            _ => arrival.saturating_sub(start_us),
        };
        self.wall_anchor_us = Some(anchor);
        let discontinuity = std::mem::take(&mut self.discontinuity_next);
        self.open = Some(OpenSegment {
            listed: ListedSegment {
                msn: self.next_msn,
                duration_us: 0,
                program_date_time_unix_ms: anchor.saturating_add(start_us).div_euclid(1000),
                discontinuity,
                init_uri: self.init_uri.clone(),
                parts: Vec::new(),
            },
            start_us,
            parts: Vec::new(),
        });
    }

    /// Closes the open part; non-lead samples that start before `boundary_us` go into it.
    fn close_part(&mut self, boundary_us: i64, out: &mut Vec<PackagerOutput>) {
        let lead = self.lead();
        for k in [VIDEO, AUDIO] {
            if k == lead {
                continue;
            }
            let ts = self.timescale(k);
            while self.waiting[k]
                .front()
                .is_some_and(|s| to_us(s.decode, ts) < boundary_us)
            {
                if let Some(s) = self.waiting[k].pop_front() {
                    self.part[k].push(s);
                }
            }
        }
        self.part_start = None;
        if self.part.iter().all(Vec::is_empty) {
            return;
        }
        // The track that measures the part: the lead, or whichever track has samples.
        let measure = if self.part[lead].is_empty() {
            1 - lead
        } else {
            lead
        };
        let ts = self.timescale(measure);
        let span = |v: &[Ready]| match (v.first(), v.last()) {
            (Some(a), Some(b)) => b.decode + i64::from(b.duration) - a.decode,
            _ => 0,
        };
        let span_ticks = span(&self.part[measure]);
        let mut duration_us = to_us(span_ticks, ts);
        if measure == lead && span_ticks <= self.part_target_ticks() {
            // Within the target in ticks: sub-tick rounding must not make it exceed PART-TARGET.
            duration_us = duration_us.min(self.config.part_target_us);
        }
        let independent = if measure == VIDEO {
            self.part_independent
        } else {
            true
        };
        let first_arrival = self
            .part
            .iter()
            .flatten()
            .map(|s| s.arrival)
            .min()
            .unwrap_or(0);
        if self.open.is_none()
            && let Some(first) = self.part[measure].first()
        {
            self.open_segment(to_us(first.decode, ts), first.arrival);
        }
        let samples: [Vec<FragmentSample>; 2] = std::array::from_fn(|k| {
            self.part[k]
                .iter()
                .map(|s| FragmentSample {
                    duration: s.duration,
                    cts: s.cts,
                    sync: s.key,
                    data: s.data.clone(),
                })
                .collect()
        });
        let fragments: Vec<TrackFragment<'_>> = [VIDEO, AUDIO]
            .into_iter()
            .filter_map(|k| {
                let first = self.part[k].first()?;
                Some(TrackFragment {
                    track_id: if k == VIDEO {
                        fmp4::VIDEO_TRACK_ID
                    } else {
                        fmp4::AUDIO_TRACK_ID
                    },
                    base_decode_time: first.decode.max(0) as u64,
                    samples: &samples[k],
                })
            })
            .collect();
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1);
        // Sizes are bounded by MAX_FRAME_SIZE per sample and the part target, so the writer's
        // only failure (a fragment over 2 GiB) cannot happen; an empty part is dropped if it did.
        let bytes = fmp4::fragment(self.fragment_sequence, &fragments).unwrap_or_default();
        self.part = [Vec::new(), Vec::new()];
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let index = open.parts.len() as u32;
        open.parts.push(bytes.clone());
        open.listed.parts.push(ListedPart {
            duration_us,
            independent,
        });
        open.listed.duration_us += duration_us;
        out.push(PackagerOutput::Part {
            msn: open.listed.msn,
            index,
            independent,
            duration_us,
            first_arrival_unix_us: first_arrival,
            bytes,
        });
    }

    fn close_segment(&mut self, out: &mut Vec<PackagerOutput>) {
        let Some(open) = self.open.take() else { return };
        if open.parts.is_empty() {
            self.open = Some(open);
            return;
        }
        let mut bytes = BytesMut::with_capacity(open.parts.iter().map(Bytes::len).sum());
        for p in &open.parts {
            bytes.extend_from_slice(p);
        }
        let bytes = bytes.freeze();
        let listed = open.listed;
        self.target_duration_s = self
            .target_duration_s
            .max(playlist::rounded_seconds(listed.duration_us));
        out.push(PackagerOutput::Segment {
            msn: listed.msn,
            duration_us: listed.duration_us,
            program_date_time_unix_ms: listed.program_date_time_unix_ms,
            bytes,
        });
        self.next_msn = listed.msn + 1;
        self.stored.push_back(listed);
        while self.stored.len() > self.config.window_segments {
            self.stored.pop_front();
        }
    }

    /// Emits every held sample and closes the open part and segment.
    fn flush(&mut self, out: &mut Vec<PackagerOutput>) {
        let lead = self.lead();
        for k in [1 - lead, lead] {
            let Some(state) = self.tracks[k].as_mut() else {
                continue;
            };
            let Some(h) = state.held.take() else { continue };
            let duration = state
                .samples_per_frame
                .or(state.last_duration)
                .unwrap_or(state.default_duration);
            let ready = Ready {
                decode: h.decode,
                duration,
                cts: (k == VIDEO).then_some(h.cts),
                key: h.key,
                data: h.data,
                arrival: h.arrival,
            };
            self.on_ready(k, ready, None, out);
        }
        self.close_part(i64::MAX, out);
        self.close_segment(out);
    }
}
