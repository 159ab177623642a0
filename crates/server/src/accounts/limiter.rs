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
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = map.get_mut(key) else {
            return if n <= self.max {
                Ok(())
            } else {
                Err(self.window)
            };
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() + n <= self.max {
            return Ok(());
        }
        if n > self.max {
            return Err(self.window);
        }
        // The events that must age out first: the oldest (len + n - max).
        let must_expire = q.len() + n - self.max;
        let t = q[must_expire - 1];
        Err((t + self.window).saturating_duration_since(now))
    }

    /// Counts `n` events now.
    pub fn record(&self, key: &str, n: usize, now: Instant) {
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            // Forget keys whose events have all aged out, so the map cannot grow without end.
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let q = map.entry(key.to_string()).or_default();
        q.extend(std::iter::repeat_n(now, n));
    }

    /// [`check`](Self::check), then [`record`](Self::record) if it fits.
    pub fn acquire(&self, key: &str, n: usize, now: Instant) -> Result<(), Duration> {
        self.check(key, n, now)?;
        self.record(key, n, now);
        Ok(())
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
