//! A sliding-window rate limiter. A few lines over a map: no crate keys limits the way sharing
//! needs them (n messages at once, with the wait until they fit).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sliding-window limit per key: at most `max` events in any `window`.
pub struct RateLimiter {
    max: usize,
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            max,
            window,
            events: Mutex::default(),
        }
    }

    /// Whether `n` more events fit now; if not, how long until they do.
    pub fn check(&self, key: &str, n: usize, now: Instant) -> Result<(), Duration> {
        let map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        self.check_locked(&map, key, n, now)
    }

    fn check_locked(
        &self,
        map: &HashMap<String, VecDeque<Instant>>,
        key: &str,
        n: usize,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(q) = map.get(key) else {
            return if n <= self.max {
                Ok(())
            } else {
                Err(self.window)
            };
        };
        let live: Vec<Instant> = q
            .iter()
            .copied()
            .filter(|t| now.duration_since(*t) < self.window)
            .collect();
        if live.len() + n <= self.max {
            return Ok(());
        }
        if n > self.max {
            return Err(self.window);
        }
        // The events that must age out first: the oldest (len + n - max).
        let must_expire = live.len() + n - self.max;
        let t = live[must_expire - 1];
        Err((t + self.window).saturating_duration_since(now))
    }

    /// Counts `n` events now.
    pub fn record(&self, key: &str, n: usize, now: Instant) {
        let map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        self.record_locked(map, key, n, now);
    }

    fn record_locked(
        &self,
        mut map: std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>>,
        key: &str,
        n: usize,
        now: Instant,
    ) {
        if map.len() > 10_000 {
            // Forget keys whose events have all aged out, so the map cannot grow without end.
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let window = self.window;
        let q = map.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        q.extend(std::iter::repeat_n(now, n));
    }

    /// [`check`](Self::check), then [`record`](Self::record) if it fits, as one step (under
    /// one lock: concurrent callers cannot all pass the check before any records).
    pub fn acquire(&self, key: &str, n: usize, now: Instant) -> Result<(), Duration> {
        let map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        self.check_locked(&map, key, n, now)?;
        self.record_locked(map, key, n, now);
        Ok(())
    }

    /// Gives back the newest event of `key` (an attempt counted in advance that turned out
    /// not to count, e.g. a sign-in with the right password).
    pub fn release(&self, key: &str) {
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = map.get_mut(key) {
            q.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_counts_a_sliding_window() {
        let l = RateLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(l.acquire("u", 2, t0).is_ok());
        assert!(l.acquire("u", 1, t0 + Duration::from_secs(4)).is_ok());
        // Full: one more fits when the first two age out, at t0 + 10 s.
        assert_eq!(
            l.check("u", 1, t0 + Duration::from_secs(5)),
            Err(Duration::from_secs(5))
        );
        // Two more need the third event gone too (t0 + 14 s).
        assert_eq!(
            l.check("u", 3, t0 + Duration::from_secs(5)),
            Err(Duration::from_secs(9))
        );
        assert!(l.check("v", 3, t0).is_ok(), "keys are apart");
        assert!(
            l.check("v", 4, t0).is_err(),
            "more than the limit never fits"
        );
        assert!(l.acquire("u", 2, t0 + Duration::from_secs(10)).is_ok());
    }
}
