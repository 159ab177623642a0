//! Real-time pacing, sans-IO: when each tag is due, from its media timestamp and a clock reading
//! passed in. One pacer serves `vshare publish`, every publisher of `vshare bench` and the
//! capture thread of the upload source; the async code around it only sleeps and sends.
//!
//! Deadlines are absolute (`anchor + timestamp`), never "previous send + gap": a late wake-up
//! makes the next tags due at once and the publish catches up, so lateness never adds up to
//! drift. The anchor is the clock reading at the first tag, so a stream may start at any
//! timestamp.

use std::time::{Duration, Instant};

/// A timestamp this far from the previous one, forwards or back, starts a new timeline, ms.
pub const DEFAULT_MAX_JUMP_MS: i64 = 5_000;

/// What to do with a tag now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Send it now; it is `late` behind its deadline (the publish's lag).
    Due { late: Duration },
    /// Send it at `until`, not before.
    Wait { until: Instant },
}

/// Which media time is due at which instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeline {
    /// Media time `origin_ms` is due at `at`.
    at: Instant,
    origin_ms: i64,
    /// The timestamp last paced, to see jumps.
    last_ms: i64,
}

impl Timeline {
    fn deadline(&self, timestamp_ms: i64) -> Instant {
        // Before the origin (a small step back) is due at the origin: at once.
        self.at + Duration::from_millis((timestamp_ms - self.origin_ms).max(0) as u64)
    }
}

/// Paces tags to real time. Asking about the same tag again (while waiting for it) gives the
/// same deadline.
#[derive(Debug, Clone)]
pub struct Pacer {
    timeline: Option<Timeline>,
    max_jump_ms: i64,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// A pacer whose clock starts at the first tag asked about.
    pub fn new() -> Self {
        Self {
            timeline: None,
            max_jump_ms: DEFAULT_MAX_JUMP_MS,
        }
    }

    /// How far a timestamp may move from the previous one before it counts as a
    /// discontinuity, ms ([`DEFAULT_MAX_JUMP_MS`]).
    pub fn with_max_jump_ms(mut self, max_jump_ms: i64) -> Self {
        self.max_jump_ms = max_jump_ms.max(0);
        self
    }

    /// The instant the tag with `timestamp_ms` is due. A jump (a file's discontinuity) makes
    /// the tag due when the previous one was, and the timeline goes on from there: the publish
    /// neither stalls for a gap nor bursts after a step back.
    pub fn deadline(&mut self, timestamp_ms: i64, now: Instant) -> Instant {
        let timeline = match self.timeline {
            None => Timeline {
                at: now,
                origin_ms: timestamp_ms,
                last_ms: timestamp_ms,
            },
            Some(t) if (timestamp_ms - t.last_ms).abs() > self.max_jump_ms => Timeline {
                at: t.deadline(t.last_ms),
                origin_ms: timestamp_ms,
                last_ms: timestamp_ms,
            },
            Some(t) => Timeline {
                last_ms: timestamp_ms,
                ..t
            },
        };
        self.timeline = Some(timeline);
        timeline.deadline(timestamp_ms)
    }

    /// Whether the tag with `timestamp_ms` is due at `now`, and if not, until when to wait.
    pub fn pace(&mut self, timestamp_ms: i64, now: Instant) -> Pace {
        let due = self.deadline(timestamp_ms, now);
        match now.checked_duration_since(due) {
            Some(late) => Pace::Due { late },
            None => Pace::Wait { until: due },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_tag_is_due_at_once_whatever_its_timestamp() {
        let start = Instant::now();
        let mut p = Pacer::new();
        assert_eq!(p.pace(5_000, start), Pace::Due { late: ms(0) });
        assert_eq!(
            p.pace(5_040, start + ms(10)),
            Pace::Wait {
                until: start + ms(40)
            }
        );
        assert_eq!(p.pace(5_040, start + ms(40)), Pace::Due { late: ms(0) });
    }

    #[test]
    fn tags_are_due_at_their_time() {
        let start = Instant::now();
        let mut p = Pacer::new();
        let timestamps = [0, 21, 33, 42, 66];
        let due: Vec<Instant> = timestamps.iter().map(|&t| p.deadline(t, start)).collect();
        let want: Vec<Instant> = timestamps.iter().map(|&t| start + ms(t as u64)).collect();
        assert_eq!(due, want);
        // Asked again while waiting: the same answer.
        assert_eq!(p.deadline(66, start + ms(50)), start + ms(66));
    }

    #[test]
    fn a_late_clock_does_not_accumulate_drift() {
        let start = Instant::now();
        let mut p = Pacer::new();
        assert_eq!(p.pace(0, start), Pace::Due { late: ms(0) });
        // The wake-up for 33 ms comes 200 ms late: 33, 66, ..., 231 are all due now.
        let late_now = start + ms(233);
        for (i, t) in [33, 66, 99, 132, 165, 198, 231].into_iter().enumerate() {
            assert_eq!(
                p.pace(t, late_now),
                Pace::Due {
                    late: ms(233 - t as u64)
                },
                "tag {i}"
            );
        }
        // The next one is due at its own time, not 200 ms after it.
        assert_eq!(
            p.pace(264, late_now),
            Pace::Wait {
                until: start + ms(264)
            }
        );
        // A thousand frames on, each paced at its own time: still no drift.
        for t in (297..33_000).step_by(33) {
            p.deadline(t, start + ms(t as u64));
        }
        assert_eq!(p.deadline(33_000, start + ms(32_990)), start + ms(33_000));
    }

    #[test]
    fn a_jump_forward_does_not_stall_the_publish() {
        let start = Instant::now();
        let mut p = Pacer::new();
        p.deadline(0, start);
        p.deadline(40, start);
        // An hour ahead: due when the previous tag was, and the timeline goes on from there.
        assert_eq!(p.deadline(3_600_040, start + ms(40)), start + ms(40));
        assert_eq!(p.deadline(3_600_080, start + ms(40)), start + ms(80));
    }

    #[test]
    fn a_jump_back_does_not_burst() {
        let start = Instant::now();
        let mut p = Pacer::new();
        p.deadline(60_000, start);
        p.deadline(60_040, start);
        assert_eq!(p.deadline(0, start + ms(40)), start + ms(40));
        assert_eq!(
            p.pace(40, start + ms(41)),
            Pace::Wait {
                until: start + ms(80)
            }
        );
    }

    #[test]
    fn a_small_step_back_is_due_at_once_without_a_new_timeline() {
        let start = Instant::now();
        let mut p = Pacer::new();
        p.deadline(0, start);
        p.deadline(100, start);
        // Audio 2 ms before the video just sent: already due.
        assert_eq!(p.pace(98, start + ms(100)), Pace::Due { late: ms(2) });
        assert_eq!(p.deadline(133, start + ms(100)), start + ms(133));
    }

    #[test]
    fn the_jump_limit_is_a_setting() {
        let start = Instant::now();
        let mut p = Pacer::new().with_max_jump_ms(60_000);
        p.deadline(0, start);
        // A 10 s gap (a slide show) is kept.
        assert_eq!(p.deadline(10_000, start), start + ms(10_000));
        assert_eq!(p.deadline(80_000, start), start + ms(10_000));
    }
}
