//! The one drop policy of the workers that must never block their caller (the ladder's
//! [`TranscodeWorker`](crate::TranscodeWorker), the HEVC [`ConvertWorker`](crate::ConvertWorker)):
//! when a frame cannot be queued, video is dropped until the next keyframe, where decoding
//! recovers cleanly. Drops are counted, and each episode is logged once.

use std::sync::atomic::{AtomicU64, Ordering};

/// Frames dropped and the episodes they came in, shared with the stats readers.
#[derive(Debug, Default)]
pub(crate) struct DropCounters {
    pub frames_dropped: AtomicU64,
    pub drop_episodes: AtomicU64,
}

impl DropCounters {
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped.load(Ordering::Relaxed)
    }

    pub fn drop_episodes(&self) -> u64 {
        self.drop_episodes.load(Ordering::Relaxed)
    }
}

/// Drop-until-keyframe state of one worker's input.
#[derive(Debug)]
pub(crate) struct KeyframeGate {
    /// What is behind, for the log line ("transcoder", "HEVC conversion").
    what: &'static str,
    dropping: bool,
}

impl KeyframeGate {
    pub fn new(what: &'static str) -> Self {
        KeyframeGate {
            what,
            dropping: false,
        }
    }

    /// Whether a video frame may be offered: not while dropping, unless it is a keyframe.
    pub fn admits(&self, key: bool) -> bool {
        !self.dropping || key
    }

    /// A frame was not taken (not admitted, or the queue was full): it is counted, and video
    /// waits for the next keyframe. The first drop of an episode counts the episode and logs.
    pub fn dropped(&mut self, counters: &DropCounters) {
        counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
        self.until_keyframe(counters);
    }

    /// Video must wait for the next keyframe (something before it could not be queued).
    pub fn until_keyframe(&mut self, counters: &DropCounters) {
        if !self.dropping {
            self.dropping = true;
            counters.drop_episodes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "{} behind: dropping video until the next keyframe",
                self.what
            );
        }
    }

    /// A video frame went through. True when it ended an episode: the consumer's decoder
    /// resumes at this keyframe.
    pub fn passed(&mut self) -> bool {
        std::mem::take(&mut self.dropping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_until_a_keyframe_and_counts_one_episode() {
        let c = DropCounters::default();
        let mut g = KeyframeGate::new("test");
        assert!(g.admits(false) && !g.passed());
        g.dropped(&c);
        assert!(!g.admits(false), "non-key video waits");
        g.dropped(&c);
        assert!(g.admits(true), "a keyframe may go");
        assert!(g.passed(), "and ends the episode");
        assert!(g.admits(false) && !g.passed());
        assert_eq!((c.frames_dropped(), c.drop_episodes()), (2, 1));
        g.until_keyframe(&c);
        assert!(!g.admits(false));
        assert_eq!((c.frames_dropped(), c.drop_episodes()), (2, 2));
    }
}
