//! Who is watching: distinct watch pages (a random id per browser tab) that sent a beacon within
//! the last window, per video. Counted at the origin from `POST /api/v1/videos/{id}/watching`,
//! so that no public object (playlist, segment) varies per viewer and a CDN keeps caching them.
//!
//! Sans-IO (the caller passes the time); memory is bounded: tabs per video, tabs in all, videos
//! and client addresses each have a cap, and beacons per client address per window are limited.
//! Past a cap a beacon is refused and counts nothing: hostile input gets nothing, and never
//! grows the tables. Our own code: a few maps and counters, no crate does this counting.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// The limits of a [`WatchCounter`] (`[watching]` in the server config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// A tab counts this long after its last beacon.
    pub window: Duration,
    /// Tabs counted per video.
    pub max_per_video: usize,
    /// Tabs counted over all videos.
    pub max_tabs: usize,
    /// Videos with counted tabs.
    pub max_videos: usize,
    /// Beacons one client address may send per window.
    pub beacons_per_ip: u32,
    /// Client addresses tracked per window for that limit.
    pub max_ips: usize,
}

/// Why a beacon was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client address sent its beacons for this window.
    RateLimited,
    /// A table is full.
    Full,
}

#[derive(Debug, Default)]
struct Video {
    /// Tab (hashed id) → when it was last seen.
    tabs: HashMap<u64, Instant>,
}

/// Distinct tabs per video within a window. See the module docs.
#[derive(Debug)]
pub struct WatchCounter {
    limits: WatchLimits,
    videos: HashMap<String, Video>,
    tabs: usize,
    /// Client address → (start of its window, beacons in it).
    ips: HashMap<String, (Instant, u32)>,
    /// Tab ids are kept as 64-bit keyed hashes: fixed size, whatever the client sent.
    hasher: std::collections::hash_map::RandomState,
    /// When full tables were last swept: at most once a second, so that beacons refused while
    /// full cost no sweep each.
    swept_at: Option<Instant>,
}

/// Full tables are swept for stale entries at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A tab id as the watch page makes it: 8 to 64 characters of `[A-Za-z0-9_-]`.
pub fn valid_tab(tab: &str) -> bool {
    (8..=64).contains(&tab.len())
        && tab
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl WatchCounter {
    pub fn new(limits: WatchLimits) -> Self {
        WatchCounter {
            limits,
            videos: HashMap::new(),
            tabs: 0,
            ips: HashMap::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            swept_at: None,
        }
    }

    pub fn limits(&self) -> WatchLimits {
        self.limits
    }

    fn tab_key(&self, tab: &str) -> u64 {
        self.hasher.hash_one(tab)
    }

    fn fresh(&self, seen: Instant, now: Instant) -> bool {
        now.saturating_duration_since(seen) < self.limits.window
    }

    /// Drops the tabs of `video` not seen within the window (and the video once it has none).
    fn prune_video(&mut self, video: &str, now: Instant) {
        let window = self.limits.window;
        let Some(v) = self.videos.get_mut(video) else {
            return;
        };
        let before = v.tabs.len();
        v.tabs
            .retain(|_, seen| now.saturating_duration_since(*seen) < window);
        self.tabs -= before - v.tabs.len();
        if v.tabs.is_empty() {
            self.videos.remove(video);
        }
    }

    /// [`prune`](Self::prune), unless that was done less than [`SWEEP_EVERY`] ago.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept_at
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.swept_at = Some(now);
        self.prune(now);
    }

    /// Drops every stale tab, video and address window.
    pub fn prune(&mut self, now: Instant) {
        let keys: Vec<String> = self.videos.keys().cloned().collect();
        for k in keys {
            self.prune_video(&k, now);
        }
        let window = self.limits.window;
        self.ips
            .retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
    }

    /// Counts one beacon of tab `tab` (see [`valid_tab`]) watching `video`, from client address
    /// `ip`.
    pub fn beat(&mut self, video: &str, tab: &str, ip: &str, now: Instant) -> Result<(), Refused> {
        self.admit_ip(ip, now)?;
        let key = self.tab_key(tab);
        if let Some(seen) = self
            .videos
            .get_mut(video)
            .and_then(|v| v.tabs.get_mut(&key))
        {
            *seen = now;
            return Ok(());
        }
        let video_full = |c: &Self| {
            c.videos
                .get(video)
                .is_some_and(|v| v.tabs.len() >= c.limits.max_per_video)
        };
        if video_full(self) {
            self.prune_video(video, now);
        }
        if self.tabs >= self.limits.max_tabs
            || (!self.videos.contains_key(video) && self.videos.len() >= self.limits.max_videos)
        {
            self.sweep(now);
        }
        if video_full(self)
            || self.tabs >= self.limits.max_tabs
            || (!self.videos.contains_key(video) && self.videos.len() >= self.limits.max_videos)
        {
            return Err(Refused::Full);
        }
        self.videos
            .entry(video.to_string())
            .or_default()
            .tabs
            .insert(key, now);
        self.tabs += 1;
        Ok(())
    }

    fn admit_ip(&mut self, ip: &str, now: Instant) -> Result<(), Refused> {
        let window = self.limits.window;
        if !self.ips.contains_key(ip) && self.ips.len() >= self.limits.max_ips {
            self.sweep(now);
            if self.ips.len() >= self.limits.max_ips {
                return Err(Refused::Full);
            }
        }
        let entry = self.ips.entry(ip.to_string()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limits.beacons_per_ip {
            return Err(Refused::RateLimited);
        }
        entry.1 += 1;
        Ok(())
    }

    /// Tabs that sent a beacon for `video` within the window.
    pub fn count(&self, video: &str, now: Instant) -> usize {
        self.videos.get(video).map_or(0, |v| {
            v.tabs.values().filter(|s| self.fresh(**s, now)).count()
        })
    }

    /// Tabs held over all videos (fresh or not yet pruned).
    pub fn held(&self) -> usize {
        self.tabs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> WatchLimits {
        WatchLimits {
            window: Duration::from_secs(30),
            max_per_video: 3,
            max_tabs: 5,
            max_videos: 2,
            beacons_per_ip: 4,
            max_ips: 3,
        }
    }

    fn tab(n: u32) -> String {
        format!("tab-{n:08}")
    }

    #[test]
    fn distinct_tabs_within_the_window() {
        let t0 = Instant::now();
        let mut c = WatchCounter::new(limits());
        c.beat("v", &tab(1), "a", t0).unwrap();
        c.beat("v", &tab(1), "b", t0 + Duration::from_secs(10))
            .unwrap();
        c.beat("v", &tab(2), "c", t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(c.count("v", t0 + Duration::from_secs(10)), 2);
        assert_eq!(c.count("other", t0), 0);
        // Tab 1 last beat at 10 s, tab 2 too: both gone 30 s later.
        assert_eq!(c.count("v", t0 + Duration::from_secs(39)), 2);
        assert_eq!(c.count("v", t0 + Duration::from_secs(40)), 0);
        c.prune(t0 + Duration::from_secs(40));
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn tables_are_bounded_and_refuse_past_their_caps() {
        let t0 = Instant::now();
        let mut c = WatchCounter::new(WatchLimits {
            beacons_per_ip: 100,
            max_ips: 100,
            ..limits()
        });
        for n in 0..3 {
            c.beat("v", &tab(n), &format!("ip{n}"), t0).unwrap();
        }
        assert_eq!(c.beat("v", &tab(9), "ip9", t0), Err(Refused::Full));
        assert_eq!(c.count("v", t0), 3);
        // A known tab still beats.
        c.beat("v", &tab(0), "ip0", t0).unwrap();
        c.beat("w", &tab(10), "ip10", t0).unwrap();
        c.beat("w", &tab(11), "ip11", t0).unwrap();
        // Five tabs in all.
        assert_eq!(c.beat("w", &tab(12), "ip12", t0), Err(Refused::Full));
        // Two videos at most.
        assert_eq!(c.beat("x", &tab(13), "ip13", t0), Err(Refused::Full));
        assert_eq!(c.held(), 5);
        // Once the window passed, the stale tabs make room.
        let later = t0 + Duration::from_secs(31);
        c.beat("x", &tab(13), "ip13", later).unwrap();
        assert_eq!((c.count("x", later), c.count("v", later)), (1, 0));
        assert_eq!(c.held(), 1);
    }

    #[test]
    fn one_address_is_rate_limited_and_addresses_are_bounded() {
        let t0 = Instant::now();
        let mut c = WatchCounter::new(WatchLimits {
            max_per_video: 100,
            max_tabs: 100,
            ..limits()
        });
        for n in 0..4 {
            c.beat("v", &tab(n), "a", t0).unwrap();
        }
        assert_eq!(c.beat("v", &tab(4), "a", t0), Err(Refused::RateLimited));
        assert_eq!(c.count("v", t0), 4);
        c.beat("v", &tab(5), "b", t0).unwrap();
        c.beat("v", &tab(6), "c", t0).unwrap();
        // A fourth address while three are tracked.
        assert_eq!(c.beat("v", &tab(7), "d", t0), Err(Refused::Full));
        // The next window: the address may beat again, and old addresses leave.
        let later = t0 + Duration::from_secs(30);
        c.beat("v", &tab(4), "a", later).unwrap();
        c.beat("v", &tab(7), "d", later).unwrap();
    }

    #[test]
    fn tab_ids() {
        assert!(valid_tab("abcdEFGH-_12"));
        assert!(!valid_tab("short"));
        assert!(!valid_tab(&"x".repeat(65)));
        assert!(!valid_tab("has space!"));
    }
}
