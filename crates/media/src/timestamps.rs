//! The timestamp discipline at ingest: one sans-IO normaliser between every demuxer (RTMP,
//! Enhanced RTMP after the HEVC conversion, the upload protocol after Opus → AAC) and the video
//! server session. Events and their arrival times in, the same events with repaired timestamps
//! out, and a record of every repair. The rules are in docs/timestamps.md; in short:
//!
//! - **Start.** The first video frames are held (up to [`LEARN_FRAMES`], or [`MAX_HOLD_US`] of
//!   media; audio goes on meanwhile) to learn the frame grid and to rebuild decode times that a
//!   B-frame encoder clamped to one value: a run of equal DTS at the start is rebuilt one frame
//!   apart, counting back from the first distinct DTS.
//! - **Video frame grid.** The nominal rate is the SPS timing when it names a standard rate,
//!   else the standard rate that the decode times fit. Each frame takes the grid slot nearest to
//!   its decode time, or the next free one when that is taken, while that is within one and a
//!   half frames of its time; composition offsets within a quarter frame of whole frames become
//!   whole frames. A source that fits no standard rate keeps its times (variable frame rate),
//!   made strictly increasing.
//! - **Audio.** AAC frames are contiguous: a frame within half a frame of where the previous one
//!   ends is placed there; a later one starts after a gap; one that overlaps more than half a
//!   frame is dropped.
//! - **Jumps.** A step of more than [`JUMP_US`] (a reconnect, an encoder restart, a clock jump)
//!   is closed, so the track goes on where it would have been; the other track closes the same
//!   jump by the same shift, keeping the A/V alignment. A forward gap is kept when the other track
//!   went on through it (frames really missing) or the wall clock moved as much (a pause).
//!
//! The output guarantees, per track: strictly increasing DTS and pts ≥ dts; across tracks, the
//! A/V offset the source sent (a video frame lands at most 1.5 frames after, or half a frame
//! before, its own time; a closed jump shifts both tracks alike).

use std::collections::VecDeque;

use crate::{Frame, MediaEvent, TrackConfig, TrackKind};

/// A step larger than this (µs) in either direction is a jump, not jitter.
pub const JUMP_US: i64 = 1_000_000;
/// Video frames held at the start to learn the grid and rebuild clamped decode times.
pub const LEARN_FRAMES: usize = 12;
/// The start hold ends when the held events span this much media time (µs), whatever came.
pub const MAX_HOLD_US: i64 = 1_000_000;
const TIME_LIMIT_US: i64 = 1 << 52;
/// Input times kept to check that the grid still fits (about 8 s at 30 fps).
const RECENT_TIMES: usize = 256;
/// Frames between two checks of the grid against the recent input times.
const REFIT_EVERY: u64 = 128;
/// A grid fits when the decode times' RMS distance to it is at most this fraction of a frame.
const FIT_RMS: f64 = 0.18;

/// Standard frame rates a grid may have, as (numerator, denominator), lowest first.
const RATES: &[(i64, i64)] = &[
    (10, 1),
    (12, 1),
    (15, 1),
    (20, 1),
    (24_000, 1001),
    (24, 1),
    (25, 1),
    (30_000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60_000, 1001),
    (60, 1),
];

/// What the normaliser repaired, for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepairKind {
    /// Decode times clamped to one value at the start, rebuilt from the frame order.
    ClampedStart,
    /// A video frame whose DTS was equal to or before the previous one's, or too close to it
    /// for the grid: it took the next free slot.
    NonIncreasingDts,
    /// pts < dts: the presentation time was raised to the decode time.
    PtsBeforeDts,
    /// A video frame more than a millisecond off its grid slot (capture-clock jitter).
    Jitter,
    /// A jump of more than [`JUMP_US`] forward was closed.
    JumpForward,
    /// A jump back in time was closed.
    JumpBackward,
    /// An AAC frame that overlapped the previous one by more than half a frame was dropped.
    AudioOverlapDropped,
    /// Audio resumed after a gap of more than half a frame.
    AudioGap,
    /// The frame grid changed (learned, refined, or given up for variable frame rate).
    GridChanged,
}

impl RepairKind {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            RepairKind::ClampedStart => "clamped_start",
            RepairKind::NonIncreasingDts => "non_increasing_dts",
            RepairKind::PtsBeforeDts => "pts_before_dts",
            RepairKind::Jitter => "jitter",
            RepairKind::JumpForward => "jump_forward",
            RepairKind::JumpBackward => "jump_backward",
            RepairKind::AudioOverlapDropped => "audio_overlap_dropped",
            RepairKind::AudioGap => "audio_gap",
            RepairKind::GridChanged => "grid_changed",
        }
    }
}

/// One repair: which track, what, the input decode time (µs) and how far it moved (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    pub track: TrackKind,
    pub kind: RepairKind,
    pub input_dts_us: i64,
    pub shift_us: i64,
}

/// A frame rate as a fraction, frames per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub num: i64,
    pub den: i64,
}

impl Rate {
    /// µs from slot 0 to slot `k`, rounded to the nearest µs.
    fn span(self, k: i64) -> i64 {
        let n = i128::from(k) * 1_000_000 * i128::from(self.den);
        let d = i128::from(self.num);
        ((2 * n + d).div_euclid(2 * d)) as i64
    }

    fn period_us(self) -> f64 {
        1e6 * self.den as f64 / self.num as f64
    }

    pub fn fps(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The standard rate within 0.1 % of `fps`.
    pub fn standard(fps: f64) -> Option<Rate> {
        RATES
            .iter()
            .map(|&(num, den)| Rate { num, den })
            .find(|r| (r.fps() - fps).abs() <= r.fps() * 0.001)
    }
}

/// RMS distance (in frames) of `times` to the best-placed grid of `rate`.
fn grid_rms(times: &[i64], rate: Rate) -> f64 {
    let p = rate.period_us();
    let base = times[0];
    let phases: Vec<f64> = times
        .iter()
        .map(|&t| ((t - base) as f64 / p).rem_euclid(1.0) * std::f64::consts::TAU)
        .collect();
    let (s, c) = phases
        .iter()
        .fold((0.0, 0.0), |(s, c), a| (s + a.sin(), c + a.cos()));
    let mean = s.atan2(c);
    let sq: f64 = phases
        .iter()
        .map(|a| {
            let d = (a - mean + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
                - std::f64::consts::PI;
            (d / std::f64::consts::TAU).powi(2)
        })
        .sum();
    (sq / phases.len() as f64).sqrt()
}

/// The standard rate whose grid the decode times fit best; near-ties go to a whole-number rate,
/// then to the lowest (a 15 fps source also fits the 30 and 60 grids). None: variable rate.
/// Times must be in decode order and fewer than two steps says nothing.
pub fn fit_rate(times: &[i64]) -> Option<Rate> {
    if times.len() < 3 {
        return None;
    }
    // Most steps must be at least half a frame: a grid finer than the frames is no grid.
    let scored: Vec<(Rate, f64)> = RATES
        .iter()
        .map(|&(num, den)| Rate { num, den })
        .filter(|r| {
            let half = r.period_us() / 2.0;
            let close = times
                .windows(2)
                .filter(|w| ((w[1] - w[0]) as f64) < half)
                .count();
            close * 8 <= times.len()
        })
        .map(|r| (r, grid_rms(times, r)))
        .filter(|(_, rms)| *rms <= FIT_RMS)
        .collect();
    let best = scored
        .iter()
        .map(|(_, rms)| *rms)
        .fold(f64::INFINITY, f64::min);
    let tied = |rms: f64| rms <= best + 0.01 + best * 0.2;
    scored
        .iter()
        .filter(|(r, rms)| tied(*rms) && r.den == 1)
        .chain(scored.iter().filter(|(_, rms)| tied(*rms)))
        .map(|(r, _)| *r)
        .next()
}

#[derive(Debug, Clone, Copy)]
struct Grid {
    rate: Rate,
    /// Output time of slot 0, µs.
    anchor: i64,
    /// Slot of the last output frame.
    slot: i64,
}

impl Grid {
    fn at(&self, k: i64) -> i64 {
        self.anchor + self.rate.span(k)
    }
}

#[derive(Debug, Default)]
struct Track {
    /// Added to input times: the sum of the jumps closed so far.
    offset: i64,
    /// Last output decode time.
    last_out: Option<i64>,
    last_arrival: i64,
    /// Output step of the last frame, µs (what the next frame is expected after).
    last_step: i64,
    /// Video: the grid, when the source fits one.
    grid: Option<Grid>,
    recent: VecDeque<i64>,
    since_fit: u64,
    /// Audio: µs per AAC frame as a fraction (samples × 10⁶ / rate), anchor and frame count.
    audio_frame: Option<Rate>,
    audio_anchor: i64,
    audio_count: i64,
}

/// A shift one track applied at a jump, for the other track to match.
#[derive(Debug, Clone, Copy)]
struct JumpShift {
    from: TrackKind,
    /// Input step that was closed, µs.
    step: i64,
    shift: i64,
    /// Arrival time of the frame that closed it: the other track must show its jump soon.
    arrival: i64,
}

/// How long (arrival time, µs) a closed jump waits for the other track to show the same jump.
const JUMP_MATCH_US: i64 = 2_000_000;

/// The normaliser of one stream. See the module docs for the rules.
#[derive(Debug)]
pub struct TimestampNormalizer {
    video: Track,
    audio: Track,
    declared: Option<Rate>,
    /// Video frames held at the start, with arrival times.
    held: Vec<(MediaEvent, i64)>,
    holding: bool,
    pending_shift: Option<JumpShift>,
    repairs: Vec<Repair>,
}

impl Default for TimestampNormalizer {
    fn default() -> Self {
        Self::new()
    }
}

impl TimestampNormalizer {
    pub fn new() -> Self {
        TimestampNormalizer {
            video: Track::default(),
            audio: Track::default(),
            declared: None,
            held: Vec::new(),
            holding: true,
            pending_shift: None,
            repairs: Vec::new(),
        }
    }

    /// Feeds one event and its arrival time (µs); returns the events ready to go on, in order.
    pub fn push(&mut self, mut event: MediaEvent, arrival_us: i64) -> Vec<(MediaEvent, i64)> {
        let mut out = Vec::new();
        if let MediaEvent::Frame(f) = &mut event {
            // Past ±2^52 µs (143 years) no stream goes; the bound keeps the arithmetic safe.
            f.dts = f.dts.clamp(-TIME_LIMIT_US, TIME_LIMIT_US);
            f.pts = f.pts.clamp(-TIME_LIMIT_US, TIME_LIMIT_US);
        }
        if self.holding {
            match &event {
                MediaEvent::Frame(f) if f.track == TrackKind::Video => {
                    self.held.push((event, arrival_us));
                    if self.hold_is_over(None) {
                        self.release(&mut out);
                    }
                    return out;
                }
                MediaEvent::Frame(f) => {
                    // Audio goes on; it ends the hold when video stalls behind it.
                    if self.hold_is_over(Some(f.dts)) {
                        self.release(&mut out);
                    }
                }
                MediaEvent::Config(TrackConfig::Avc(c)) => {
                    // A new configuration goes after the frames made under the old one.
                    if !self.held.is_empty() {
                        self.release(&mut out);
                    } else {
                        self.declared = c.frame_rate.and_then(Rate::standard);
                    }
                }
                MediaEvent::Config(TrackConfig::Aac(_)) => {}
            }
        }
        self.process(event, arrival_us, &mut out);
        out
    }

    /// The stream ended: releases whatever is still held.
    pub fn finish(&mut self) -> Vec<(MediaEvent, i64)> {
        let mut out = Vec::new();
        if self.holding {
            self.release(&mut out);
        }
        out
    }

    /// The repairs made since the last call.
    pub fn take_repairs(&mut self) -> Vec<Repair> {
        std::mem::take(&mut self.repairs)
    }

    /// What the discipline adds to the audio's input times now (the jumps it closed), µs: a
    /// packet of the same audio in another form (the source's Opus beside its AAC) goes where
    /// its AAC goes, within half a frame (the contiguity repair).
    pub fn audio_offset(&self) -> i64 {
        self.audio.offset
    }

    /// The video frame rate of the grid in use, if any.
    pub fn video_rate(&self) -> Option<Rate> {
        self.video.grid.map(|g| g.rate)
    }

    /// Whether the start hold of video frames is over: enough frames to learn from, or more
    /// than [`MAX_HOLD_US`] of media held, or audio (at `audio_dts`) that far past the first.
    fn hold_is_over(&self, audio_dts: Option<i64>) -> bool {
        let times = || {
            self.held
                .iter()
                .filter_map(|(e, _)| frame_of(e))
                .map(|f| f.dts)
        };
        if self.held.len() >= LEARN_FRAMES {
            return true;
        }
        let (Some(lo), Some(hi)) = (times().min(), times().max().max(audio_dts)) else {
            return false;
        };
        hi.saturating_sub(lo) > MAX_HOLD_US
    }

    /// Ends the start hold: rebuilds clamped decode times, learns the grid, lets it all go.
    fn release(&mut self, out: &mut Vec<(MediaEvent, i64)>) {
        self.holding = false;
        let mut held = std::mem::take(&mut self.held);
        let video_times = |held: &[(MediaEvent, i64)]| -> Vec<i64> {
            held.iter()
                .filter_map(|(e, _)| frame_of(e))
                .filter(|f| f.track == TrackKind::Video)
                .map(|f| f.dts)
                .collect()
        };
        // The rate from the times after a clamped run (those say nothing), then the run rebuilt.
        let before = video_times(&held);
        let clamped = before
            .iter()
            .take_while(|&&t| Some(&t) == before.first())
            .count();
        let skip = if clamped >= 2 { clamped } else { 0 };
        let rate = self.declared.or_else(|| fit_rate(&before[skip..]));
        self.rebuild_clamped_start(&mut held, rate);
        let times = video_times(&held);
        if let Some(rate) = rate {
            // Anchored on the first frame's time; the first frame takes slot 0.
            self.video.grid = times.first().map(|&t| Grid {
                rate,
                anchor: t,
                slot: -1,
            });
        }
        for (e, a) in held {
            self.process(e, a, out);
        }
    }

    /// A run of equal video DTS at the start was clamped by the encoder (true times below the
    /// clamp): each frame of it is rebuilt one frame period before the next, counting back from
    /// the first distinct DTS. The period is the stream's rate, else the median later step.
    fn rebuild_clamped_start(&mut self, held: &mut [(MediaEvent, i64)], rate: Option<Rate>) {
        let idx: Vec<usize> = held
            .iter()
            .enumerate()
            .filter(|(_, (e, _))| frame_of(e).is_some_and(|f| f.track == TrackKind::Video))
            .map(|(i, _)| i)
            .collect();
        let dts = |held: &[(MediaEvent, i64)], i: usize| frame_of(&held[i].0).map_or(0, |f| f.dts);
        let Some(&first) = idx.first() else { return };
        let d0 = dts(held, first);
        let run = idx.iter().take_while(|&&i| dts(held, i) == d0).count();
        let Some(&next) = idx.get(run) else { return };
        let d_next = dts(held, next);
        if run < 2 || d_next <= d0 || d_next - d0 > JUMP_US {
            return;
        }
        let mut steps: Vec<i64> = idx[run..]
            .windows(2)
            .map(|w| dts(held, w[1]) - dts(held, w[0]))
            .filter(|s| *s > 0)
            .collect();
        steps.sort_unstable();
        let period = match (rate, steps.get(steps.len() / 2)) {
            (Some(r), _) => r.span(1),
            (None, Some(&s)) => s,
            (None, None) => d_next - d0,
        };
        for (n, &i) in idx[..run].iter().enumerate() {
            let rebuilt = (d_next - (run - n) as i64 * period).min(d0);
            if let MediaEvent::Frame(f) = &mut held[i].0 {
                f.dts = rebuilt;
                if rebuilt != d0 {
                    self.repairs.push(Repair {
                        track: TrackKind::Video,
                        kind: RepairKind::ClampedStart,
                        input_dts_us: d0,
                        shift_us: rebuilt - d0,
                    });
                }
            }
        }
    }

    fn process(&mut self, event: MediaEvent, arrival: i64, out: &mut Vec<(MediaEvent, i64)>) {
        match event {
            MediaEvent::Config(c) => {
                match &c {
                    TrackConfig::Avc(v) => {
                        let declared = v.frame_rate.and_then(Rate::standard);
                        if declared.is_some() && declared != self.declared {
                            self.declared = declared;
                            self.regrid(declared);
                        }
                    }
                    TrackConfig::Aac(a) => {
                        let frame = (a.sample_rate > 0 && a.samples_per_frame > 0).then(|| Rate {
                            num: i64::from(a.sample_rate),
                            den: i64::from(a.samples_per_frame),
                        });
                        if frame != self.audio.audio_frame {
                            self.audio.audio_frame = frame;
                            // The next frame starts a new run of contiguous frames.
                            if let Some(last) = self.audio.last_out {
                                self.audio.audio_anchor = last;
                                self.audio.audio_count = 0;
                            }
                        }
                    }
                }
                out.push((MediaEvent::Config(c), arrival));
            }
            MediaEvent::Frame(f) => {
                let frame = match f.track {
                    TrackKind::Video => self.video_frame(f, arrival),
                    TrackKind::Audio => self.audio_frame(f, arrival),
                };
                if let Some(f) = frame {
                    out.push((MediaEvent::Frame(f), arrival));
                }
            }
        }
    }

    /// Starts a new grid at the last output frame (continuity kept), or none.
    fn regrid(&mut self, rate: Option<Rate>) {
        let v = &mut self.video;
        v.grid = match (rate, v.last_out) {
            (Some(rate), Some(last)) => Some(Grid {
                rate,
                anchor: last,
                slot: 0,
            }),
            (Some(rate), None) => v.grid.map(|g| Grid { rate, ..g }),
            (None, _) => None,
        };
    }

    fn repair(&mut self, track: TrackKind, kind: RepairKind, input: i64, shift: i64) {
        self.repairs.push(Repair {
            track,
            kind,
            input_dts_us: input,
            shift_us: shift,
        });
    }

    /// Closes a jump of this track's input, or keeps a real gap; returns the input decode time
    /// with the track's offset.
    fn close_jumps(&mut self, track: TrackKind, dts: i64, arrival: i64) -> i64 {
        let (me, other) = match track {
            TrackKind::Video => (&self.video, &self.audio),
            TrackKind::Audio => (&self.audio, &self.video),
        };
        let t = dts.saturating_add(me.offset);
        let Some(last_out) = me.last_out else {
            return t;
        };
        let expected = last_out + me.last_step.max(1);
        let step = t - expected;
        if step.abs() <= JUMP_US {
            return t;
        }
        if step > 0 {
            let covered = other
                .last_out
                .is_some_and(|o| o >= t - JUMP_US && o > last_out);
            let paused = arrival - me.last_arrival >= step - JUMP_US / 2;
            if covered || paused {
                return t;
            }
        }
        // The other track may have closed this same jump already: take its shift.
        let shift = match self.pending_shift {
            Some(s)
                if s.from != track
                    && (s.step - step).abs() <= JUMP_US / 2
                    && arrival - s.arrival <= JUMP_MATCH_US =>
            {
                self.pending_shift = None;
                s.shift
            }
            _ => {
                let shift = expected - t;
                self.pending_shift = Some(JumpShift {
                    from: track,
                    step,
                    shift,
                    arrival,
                });
                shift
            }
        };
        let kind = if step > 0 {
            RepairKind::JumpForward
        } else {
            RepairKind::JumpBackward
        };
        self.repair(track, kind, dts, shift);
        let me = match track {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        me.offset += shift;
        t + shift
    }

    fn video_frame(&mut self, mut f: Frame, arrival: i64) -> Option<Frame> {
        let input = f.dts;
        let cts_in = f.pts.saturating_sub(f.dts);
        let t = self.close_jumps(TrackKind::Video, f.dts, arrival);
        let cts = if cts_in < 0 {
            self.repair(TrackKind::Video, RepairKind::PtsBeforeDts, input, -cts_in);
            0
        } else {
            cts_in
        };
        self.note_recent(t);
        let v = &self.video;
        let (dts, pts) = match (v.grid, v.last_out) {
            (Some(mut g), last) => {
                let p = g.rate.period_us();
                let k0 = ((t - g.anchor) as f64 / p).round() as i64;
                let k = k0.max(g.slot + 1);
                let lead = g.at(k) - t;
                let (dts, slot) = if (lead as f64) <= 1.5 * p + 0.5 {
                    (g.at(k), k)
                } else {
                    // More frames than the grid has slots (a source faster than its rate): half a
                    // frame on, and a new grid there.
                    let d = last.map_or(t, |l| l + g.rate.span(1) / 2).max(t);
                    g.anchor = d;
                    (d, 0)
                };
                if k > k0 {
                    self.repair(
                        TrackKind::Video,
                        RepairKind::NonIncreasingDts,
                        input,
                        dts - t,
                    );
                } else if (dts - t).abs() > 1_000 {
                    self.repair(TrackKind::Video, RepairKind::Jitter, input, dts - t);
                }
                g.slot = slot;
                // Composition offsets close to whole frames become whole frames.
                let m = (cts as f64 / p).round() as i64;
                let pts = if ((cts - g.rate.span(m)) as f64).abs() <= p / 4.0 {
                    g.anchor + g.rate.span(slot + m)
                } else {
                    dts + cts
                };
                self.video.grid = Some(g);
                (dts, pts)
            }
            (None, Some(last)) if t <= last => {
                let d = last + 1_000;
                self.repair(TrackKind::Video, RepairKind::NonIncreasingDts, input, d - t);
                (d, d + cts)
            }
            (None, _) => (t, t + cts),
        };
        let v = &mut self.video;
        v.last_step = v.last_out.map_or(0, |l| dts - l);
        if let Some(g) = v.grid {
            v.last_step = g.rate.span(1);
        }
        v.last_out = Some(dts);
        v.last_arrival = arrival;
        self.maybe_refit(input);
        f.dts = dts;
        f.pts = pts.max(dts);
        Some(f)
    }

    fn note_recent(&mut self, t: i64) {
        let v = &mut self.video;
        if v.recent.len() == RECENT_TIMES {
            v.recent.pop_front();
        }
        v.recent.push_back(t);
        v.since_fit += 1;
    }

    /// Every so often, checks the grid against the recent input times: a source that changed
    /// its rate, a 29.97 source taken for 30 at the start, or one that became variable.
    fn maybe_refit(&mut self, input: i64) {
        let v = &mut self.video;
        if v.since_fit < REFIT_EVERY || v.recent.len() < REFIT_EVERY as usize {
            return;
        }
        v.since_fit = 0;
        let times: Vec<i64> = v.recent.iter().copied().collect();
        let current = v.grid.map(|g| g.rate);
        let fitted = fit_rate(&times);
        if fitted == current {
            return;
        }
        // Keep a declared or current grid that still fits about as well.
        if let (Some(c), Some(f)) = (current, fitted)
            && grid_rms(&times, c) <= grid_rms(&times, f) * 2.0 + 0.01
        {
            return;
        }
        if fitted.is_none() && current.is_some_and(|c| grid_rms(&times, c) <= FIT_RMS) {
            return;
        }
        self.regrid(fitted);
        self.repair(TrackKind::Video, RepairKind::GridChanged, input, 0);
    }

    fn audio_frame(&mut self, mut f: Frame, arrival: i64) -> Option<Frame> {
        let input = f.dts;
        let t = self.close_jumps(TrackKind::Audio, f.dts, arrival);
        let a = &self.audio;
        let Some(frame) = a.audio_frame else {
            // No configuration to know a frame's length: strictly increasing only.
            let out = a.last_out.map_or(t, |l| t.max(l + 1));
            let a = &mut self.audio;
            a.last_step = out - a.last_out.unwrap_or(out);
            a.last_out = Some(out);
            a.last_arrival = arrival;
            f.dts = out;
            f.pts = out;
            return Some(f);
        };
        let half = frame.span(1) / 2;
        let out = match a.last_out {
            None => {
                let a = &mut self.audio;
                a.audio_anchor = t;
                a.audio_count = 0;
                t
            }
            Some(_) => {
                let expected = a.audio_anchor + frame.span(a.audio_count + 1);
                let err = t - expected;
                if err.abs() <= half {
                    self.audio.audio_count += 1;
                    expected
                } else if err > 0 {
                    self.repair(TrackKind::Audio, RepairKind::AudioGap, input, 0);
                    let a = &mut self.audio;
                    a.audio_anchor = t;
                    a.audio_count = 0;
                    t
                } else {
                    self.repair(
                        TrackKind::Audio,
                        RepairKind::AudioOverlapDropped,
                        input,
                        err,
                    );
                    return None;
                }
            }
        };
        let a = &mut self.audio;
        a.last_step = frame.span(1);
        a.last_out = Some(out);
        a.last_arrival = arrival;
        f.dts = out;
        f.pts = out;
        Some(f)
    }
}

fn frame_of(e: &MediaEvent) -> Option<&Frame> {
    match e {
        MediaEvent::Frame(f) => Some(f),
        MediaEvent::Config(_) => None,
    }
}

#[cfg(test)]
#[path = "timestamps_tests.rs"]
mod tests;
