//! Rate adaptation, both halves (`docs/upload-protocol.md`, *Adaptation*). The server measures
//! the path and suggests a bitrate ([`ServerRate`]); the sender follows the suggestion, drops
//! frames when its backlog grows and steps its picture size and frame rate ([`SenderRate`]).
//! The browser's `web/src/upload.js` ports this file line for line: keep the two in step.

use std::collections::VecDeque;

/// The lowest bitrate ever suggested, kbit/s.
pub const MIN_KBPS: u32 = 64;
/// How long the one-way-delay baseline is remembered.
const BASELINE_US: i64 = 10_000_000;
/// The receive rate is measured over this much time.
const RATE_WINDOW_US: i64 = 1_000_000;
/// At most one increase per feedback (every 500 ms; the slack absorbs timer jitter).
const INCREASE_EVERY_US: i64 = 450_000;
/// The increase per feedback on a path without queueing (~17 % a second).
const INCREASE: f64 = 1.08;
/// The suggestion stays within this multiple of the measured receive rate.
const PROVEN_FACTOR: f64 = 1.5;

/// The server's half: measures receive rate and queueing delay; suggests a bitrate.
#[derive(Debug, Clone)]
pub struct ServerRate {
    max_kbps: u32,
    suggested_kbps: f64,
    /// (arrival µs, arrival − dts µs), increasing in the second field: a sliding-window minimum.
    baseline: VecDeque<(i64, i64)>,
    last_delay: i64,
    /// (arrival µs, payload bytes) over the last second.
    received: VecDeque<(i64, u64)>,
    received_bytes: u64,
    last_change_us: Option<i64>,
    first_frame_us: Option<i64>,
}

impl ServerRate {
    pub fn new(start_kbps: u32, max_kbps: u32) -> Self {
        let max_kbps = max_kbps.max(MIN_KBPS);
        ServerRate {
            max_kbps,
            suggested_kbps: f64::from(start_kbps.clamp(MIN_KBPS, max_kbps)),
            baseline: VecDeque::new(),
            last_delay: 0,
            received: VecDeque::new(),
            received_bytes: 0,
            last_change_us: None,
            first_frame_us: None,
        }
    }

    /// A complete frame of `bytes` with capture-clock `dts` arrived at `now_us`.
    pub fn on_frame(&mut self, now_us: i64, dts_us: i64, bytes: u64) {
        self.first_frame_us.get_or_insert(now_us);
        let d = now_us.saturating_sub(dts_us);
        while self.baseline.back().is_some_and(|&(_, b)| b >= d) {
            self.baseline.pop_back();
        }
        self.baseline.push_back((now_us, d));
        self.last_delay = d;
        self.received.push_back((now_us, bytes));
        self.received_bytes += bytes;
        self.expire(now_us);
    }

    /// A complete late (backfill) frame: it uses the path, so it counts in the receive rate,
    /// but its capture time is long past, so it says nothing of the queue.
    pub fn on_late_frame(&mut self, now_us: i64, bytes: u64) {
        self.first_frame_us.get_or_insert(now_us);
        self.received.push_back((now_us, bytes));
        self.received_bytes += bytes;
        self.expire(now_us);
    }

    fn expire(&mut self, now_us: i64) {
        while self.baseline.len() > 1
            && self
                .baseline
                .front()
                .is_some_and(|&(t, _)| now_us - t > BASELINE_US)
        {
            self.baseline.pop_front();
        }
        while let Some(&(t, b)) = self.received.front() {
            if now_us - t <= RATE_WINDOW_US {
                break;
            }
            self.received.pop_front();
            self.received_bytes -= b;
        }
    }

    /// A resumed connection: frames captured during the outage arrive late by design, so the
    /// delay baseline starts again from what arrives now.
    pub fn reset_baseline(&mut self) {
        self.baseline.clear();
        self.last_delay = 0;
    }

    /// Payload received over the last second, kbit/s.
    pub fn receive_kbps(&mut self, now_us: i64) -> u32 {
        self.expire(now_us);
        (self.received_bytes * 8 / 1000) as u32
    }

    /// How much later than the best of the last 10 s the latest frame arrived, ms.
    pub fn queue_delay_ms(&self) -> u32 {
        let base = self.baseline.front().map_or(self.last_delay, |&(_, d)| d);
        ((self.last_delay - base).max(0) / 1000) as u32
    }

    /// Updates and returns (receive kbit/s, queueing delay ms, suggested kbit/s).
    pub fn feedback(&mut self, now_us: i64) -> (u32, u32, u32) {
        let receive = self.receive_kbps(now_us);
        let delay = self.queue_delay_ms();
        let due = self
            .last_change_us
            .is_none_or(|t| now_us - t >= INCREASE_EVERY_US);
        if delay > 400 {
            self.suggested_kbps = 0.6 * f64::from(receive);
            self.last_change_us = Some(now_us);
        } else if delay > 150 {
            self.suggested_kbps = self.suggested_kbps.min(0.85 * f64::from(receive));
            self.last_change_us = Some(now_us);
        } else if due {
            // Climb, but not beyond what the path has shown it carries: an encoder that
            // undershoots its target hides the path's limit until a step up finds it.
            let proven = self
                .first_frame_us
                .is_some_and(|t| now_us - t >= RATE_WINDOW_US);
            let ceiling = if proven {
                (PROVEN_FACTOR * f64::from(receive)).max(f64::from(MIN_KBPS))
            } else {
                f64::INFINITY
            };
            // Above the ceiling the suggestion holds: only a queue lowers it, so a sender
            // whose encoder undershoots is not talked down step by step.
            let raised = self.suggested_kbps * INCREASE;
            if raised <= ceiling {
                self.suggested_kbps = raised;
            }
            self.last_change_us = Some(now_us);
        }
        self.suggested_kbps = self
            .suggested_kbps
            .clamp(f64::from(MIN_KBPS), f64::from(self.max_kbps));
        (receive, delay, self.suggested_kbps.round() as u32)
    }
}

/// A picture size and frame rate the sender may encode at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityStep {
    /// Scale of the capture size.
    pub scale: f64,
    pub fps: u32,
}

/// The steps, best first.
pub const STEPS: [QualityStep; 5] = [
    QualityStep {
        scale: 1.0,
        fps: 30,
    },
    QualityStep {
        scale: 0.75,
        fps: 30,
    },
    QualityStep {
        scale: 0.5,
        fps: 25,
    },
    QualityStep {
        scale: 0.375,
        fps: 20,
    },
    QualityStep {
        scale: 0.25,
        fps: 15,
    },
];
/// Bits per pixel a step needs to look right.
const BITS_PER_PIXEL: f64 = 0.08;
/// A step up needs the target this much above the better step's need…
const UP_MARGIN: f64 = 1.3;
/// …for this long.
const UP_HOLD_US: i64 = 3_000_000;
/// Frames are dropped when the unacknowledged backlog is more than this much media.
const BACKLOG_LIMIT_S: f64 = 1.5;
/// The lowest video bitrate the sender sets.
const MIN_VIDEO_KBPS: u32 = 32;

/// The sender's half: target bitrate, quality step, and when to drop.
#[derive(Debug, Clone)]
pub struct SenderRate {
    capture_width: u32,
    capture_height: u32,
    audio_kbps: u32,
    max_kbps: u32,
    target_kbps: u32,
    step: usize,
    up_since_us: Option<i64>,
}

impl SenderRate {
    pub fn new(
        capture_width: u32,
        capture_height: u32,
        audio_kbps: u32,
        start_kbps: u32,
        max_kbps: u32,
    ) -> Self {
        let mut me = SenderRate {
            capture_width,
            capture_height,
            audio_kbps,
            max_kbps: max_kbps.max(MIN_KBPS),
            target_kbps: start_kbps.clamp(MIN_KBPS, max_kbps.max(MIN_KBPS)),
            step: 0,
            up_since_us: None,
        };
        while me.step + 1 < STEPS.len() && me.video_kbps() < me.need_kbps(me.step) {
            me.step += 1;
        }
        me
    }

    /// Total target (video + audio), kbit/s.
    pub fn target_kbps(&self) -> u32 {
        self.target_kbps
    }

    /// What the video encoder should aim for, kbit/s.
    pub fn video_kbps(&self) -> u32 {
        self.target_kbps
            .saturating_sub(self.audio_kbps)
            .max(MIN_VIDEO_KBPS)
    }

    /// The current quality step's index in [`STEPS`].
    pub fn step(&self) -> usize {
        self.step
    }

    /// Picture size of a step: the capture size scaled, rounded down to even numbers.
    pub fn step_size(&self, step: usize) -> (u32, u32) {
        let s = STEPS[step.min(STEPS.len() - 1)].scale;
        let even = |v: u32| (((f64::from(v) * s) as u32) & !1).max(2);
        (even(self.capture_width), even(self.capture_height))
    }

    pub fn step_fps(&self, step: usize) -> u32 {
        STEPS[step.min(STEPS.len() - 1)].fps
    }

    /// Video kbit/s a step needs.
    pub fn need_kbps(&self, step: usize) -> u32 {
        let (w, h) = self.step_size(step);
        (f64::from(w) * f64::from(h) * f64::from(self.step_fps(step)) * BITS_PER_PIXEL / 1000.0)
            as u32
    }

    /// Takes the server's suggestion; returns the new step when it changed.
    pub fn on_feedback(&mut self, now_us: i64, suggested_kbps: u32) -> Option<usize> {
        self.target_kbps = suggested_kbps.clamp(MIN_KBPS, self.max_kbps);
        let before = self.step;
        while self.step + 1 < STEPS.len() && self.video_kbps() < self.need_kbps(self.step) {
            self.step += 1;
        }
        if self.step != before {
            self.up_since_us = None;
            return Some(self.step);
        }
        if self.step > 0
            && f64::from(self.video_kbps()) >= UP_MARGIN * f64::from(self.need_kbps(self.step - 1))
        {
            let since = *self.up_since_us.get_or_insert(now_us);
            if now_us - since >= UP_HOLD_US {
                self.step -= 1;
                self.up_since_us = None;
                return Some(self.step);
            }
        } else {
            self.up_since_us = None;
        }
        None
    }

    /// Whether a backlog of `unacked_bytes` (sent or not, not yet acknowledged) is too much
    /// media: then video frames are dropped until the next key frame.
    pub fn backlog_too_big(&self, unacked_bytes: u64) -> bool {
        unacked_bytes as f64 * 8.0 > BACKLOG_LIMIT_S * f64::from(self.target_kbps) * 1000.0
    }

    /// `backfill`: late frame bytes that may be added to a backlog of `unacked_bytes` now. Late
    /// frames may fill the backlog to half the drop point, so they only use room the live send
    /// leaves and never make it drop.
    pub fn late_room(&self, unacked_bytes: u64) -> u64 {
        let half = BACKLOG_LIMIT_S * f64::from(self.target_kbps) * 1000.0 / 8.0 / 2.0;
        (half as u64).saturating_sub(unacked_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `kbps` of 33 ms frames for `secs` seconds from `t0`; each frame's arrival is its
    /// dts plus `delay(t)`. Returns the time after.
    fn feed(
        r: &mut ServerRate,
        t0: i64,
        secs: f64,
        kbps: u32,
        mut delay: impl FnMut(i64) -> i64,
    ) -> i64 {
        let frame_us = 33_333;
        let n = (secs * 30.0) as i64;
        let bytes = u64::from(kbps) * 1000 / 8 / 30;
        for i in 0..n {
            let dts = t0 + i * frame_us;
            r.on_frame(dts + delay(dts), dts, bytes);
        }
        t0 + n * frame_us
    }

    #[test]
    fn an_idle_path_climbs_and_a_queue_cuts_back() {
        let mut r = ServerRate::new(500, 4000);
        // Half a second first, so that the one-second receive window is full from then on.
        let mut t = feed(&mut r, 0, 0.5, 500, |_| 20_000);
        // A sender that follows the suggestion on a path without a queue: it climbs by 8 % a
        // feedback.
        let mut sending = 500;
        for _ in 0..6 {
            t = feed(&mut r, t, 0.5, sending, |_| 20_000);
            let (recv, delay, s) = r.feedback(t);
            assert_eq!(delay, 0);
            assert!(recv > 0);
            assert!(
                s > sending,
                "an uncongested path climbs: {s} after {sending}"
            );
            sending = s;
        }
        assert_eq!(sending, (500.0 * INCREASE.powi(6)).round() as u32);
        // A sender stuck at 500 (its encoder undershoots) does not drag the suggestion up
        // beyond 1.5 × what arrives, nor down: it holds.
        let mut peak = sending;
        for _ in 0..2 {
            t = feed(&mut r, t, 0.5, 500, |_| 20_000);
            peak = r.feedback(t).2;
        }
        assert!(peak < (f64::from(sending) * INCREASE * INCREASE).round() as u32);
        for _ in 0..10 {
            t = feed(&mut r, t, 0.5, 500, |_| 20_000);
            assert_eq!(r.feedback(t).2, peak, "held above 1.5 × 500");
        }
        for _ in 0..10 {
            t = feed(&mut r, t, 0.5, 100, |_| 20_000);
            assert_eq!(r.feedback(t).2, peak, "an idle sender is not talked down");
        }
        let held = peak;
        // Delay grows 100 ms per 100 ms: a queue builds.
        let start = t;
        t = feed(&mut r, t, 1.0, 800, |dts| 20_000 + (dts - start));
        let (recv, delay, s) = r.feedback(t);
        assert!(delay > 400, "queue delay {delay}");
        assert_eq!(s, (0.6 * f64::from(recv)).round() as u32);
        assert!(s < held);
    }

    #[test]
    fn frames_kept_through_an_outage_are_not_a_queue() {
        let mut r = ServerRate::new(500, 4000);
        let t = feed(&mut r, 0, 2.0, 500, |_| 20_000);
        r.feedback(t);
        // Two seconds of frames captured while the line was down arrive in one burst after
        // the resume, then frames arrive on time again.
        r.reset_baseline();
        let burst_at = t + 2_000_000;
        let mut i = 0;
        let t = feed(&mut r, t, 3.0, 500, |dts| {
            i += 1;
            if dts < burst_at {
                burst_at + i * 1000 - dts
            } else {
                20_000
            }
        });
        let (_, delay, _) = r.feedback(t);
        assert_eq!(delay, 0, "no queue once frames are on time again");
    }

    #[test]
    fn the_suggestion_stays_within_bounds() {
        let mut r = ServerRate::new(10, 300);
        let (_, _, s) = r.feedback(0);
        assert!(s >= MIN_KBPS);
        let mut t = 0;
        for _ in 0..40 {
            t = feed(&mut r, t, 0.5, 1000, |_| 0);
            r.feedback(t);
        }
        t = feed(&mut r, t, 0.5, 1000, |_| 0);
        assert_eq!(r.feedback(t).2, 300, "never above max_kbps");
    }

    #[test]
    fn the_sender_steps_down_at_once_and_up_after_three_seconds() {
        // 640x360 capture, 32 kbit/s of audio, starting at 1.2 Mbit/s: the full step.
        let mut s = SenderRate::new(640, 360, 32, 1200, 2500);
        assert_eq!(s.step(), 0);
        assert_eq!(s.step_size(0), (640, 360));
        assert_eq!(s.step_size(2), (320, 180));
        assert_eq!(s.need_kbps(0), 552);
        // A 250 kbit/s path: two steps down in one go.
        assert_eq!(s.on_feedback(0, 250), Some(2));
        assert_eq!(s.video_kbps(), 218);
        // Plenty again: nothing for 3 s, then one step up.
        let plenty = 2500;
        assert_eq!(s.on_feedback(500_000, plenty), None);
        assert_eq!(s.on_feedback(2_000_000, plenty), None);
        assert_eq!(s.on_feedback(3_500_000, plenty), Some(1));
        // A dip resets the hold.
        assert_eq!(s.on_feedback(4_000_000, 450), None);
        assert_eq!(s.on_feedback(6_000_000, plenty), None);
        assert_eq!(s.on_feedback(8_500_000, plenty), None);
        assert_eq!(s.on_feedback(9_000_000, plenty), Some(0));
    }

    #[test]
    fn the_backlog_limit_is_one_and_a_half_seconds_of_media() {
        let s = SenderRate::new(640, 360, 32, 800, 2500);
        // 1.5 s at 800 kbit/s = 150,000 bytes.
        assert!(!s.backlog_too_big(150_000));
        assert!(s.backlog_too_big(150_001));
        // Late frames fill the backlog up to half of that.
        assert_eq!(s.late_room(0), 75_000);
        assert_eq!(s.late_room(70_000), 5_000);
        assert_eq!(s.late_room(200_000), 0);
    }
}
