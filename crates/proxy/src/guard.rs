//! The one gate every SMS the server originates passes (confirmation codes, keyword replies,
//! shares, subscribers' notifications): limits per destination number, per client address,
//! globally per minute, and an hourly budget the operator sets. Sans-IO: time (ms) is an
//! argument. Written here rather than taken from a crate because the scopes must be checked
//! and counted together, atomically, with the wait until a message fits.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Figures of the SMS guard; `0` for a count means no limit in that scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsLimits {
    /// SMS a stranger can cause to one number (confirmation codes, replies, shares) per
    /// `per_number_window_ms`.
    pub per_number: usize,
    pub per_number_window_ms: i64,
    /// SMS one client address can cause (confirmation codes, shares) per
    /// `per_client_window_ms`.
    pub per_client: usize,
    pub per_client_window_ms: i64,
    /// Every SMS of this process, notifications included, per minute.
    pub per_minute: usize,
    /// Every SMS of this process, notifications included, per hour: the operator's budget.
    pub per_hour: usize,
}

impl SmsLimits {
    /// No limit in any scope (embedding, benchmarks; `vshare serve` sets its configured ones).
    pub fn unlimited() -> SmsLimits {
        SmsLimits {
            per_number: 0,
            per_number_window_ms: 3_600_000,
            per_client: 0,
            per_client_window_ms: 3_600_000,
            per_minute: 0,
            per_hour: 0,
        }
    }
}

/// Which limit refused a message, and how long until it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", .scope.describe())]
pub struct Refused {
    pub scope: Scope,
    pub wait_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Number,
    Client,
    Minute,
    Hour,
}

impl Scope {
    fn describe(self) -> &'static str {
        match self {
            Scope::Number => "too many SMS to this number",
            Scope::Client => "too many SMS requested from this address",
            Scope::Minute => "this server sends no more SMS this minute",
            Scope::Hour => "this server's hourly SMS budget is spent",
        }
    }
}

/// What a message is, for the scopes that count it.
#[derive(Debug, Clone, Copy)]
pub struct Send<'a> {
    /// Destination numbers (one SMS counted per number); checked per number unless the
    /// recipients asked for it (a subscriber's notification).
    pub numbers: &'a [String],
    pub per_number: bool,
    /// The client address that caused it, if a request did.
    pub client: Option<&'a str>,
}

#[derive(Default)]
struct Windows {
    number: HashMap<String, VecDeque<i64>>,
    client: HashMap<String, VecDeque<i64>>,
    minute: VecDeque<i64>,
    hour: VecDeque<i64>,
}

/// The guard: clone the [`crate::Proxy`] to share it.
pub struct SmsGuard {
    limits: SmsLimits,
    windows: Mutex<Windows>,
}

/// How long until `n` more events fit in `q` (at most `max` per `window`), dropping aged ones.
fn wait(q: &mut VecDeque<i64>, max: usize, window: i64, n: usize, now: i64) -> Option<i64> {
    if max == 0 {
        return None;
    }
    while q.front().is_some_and(|t| now - *t >= window) {
        q.pop_front();
    }
    if q.len() + n <= max {
        return None;
    }
    if n > max {
        return Some(window);
    }
    let t = q[q.len() + n - max - 1];
    Some((t + window - now).max(1))
}

fn count(q: &mut VecDeque<i64>, max: usize, n: usize, now: i64) {
    if max > 0 {
        q.extend(std::iter::repeat_n(now, n));
    }
}

impl SmsGuard {
    pub fn new(limits: SmsLimits) -> SmsGuard {
        SmsGuard {
            limits,
            windows: Mutex::default(),
        }
    }

    pub fn limits(&self) -> &SmsLimits {
        &self.limits
    }

    /// Counts `send` if every scope has room for it; otherwise counts nothing and says which
    /// scope refused and how long until it would fit (the longest wait of the full scopes).
    pub fn admit(&self, send: Send<'_>, now_ms: i64) -> Result<(), Refused> {
        let l = &self.limits;
        let n = send.numbers.len();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w.number.len() > 100_000 || w.client.len() > 100_000 {
            let (nw, cw) = (l.per_number_window_ms, l.per_client_window_ms);
            w.number
                .retain(|_, q| q.back().is_some_and(|t| now_ms - *t < nw));
            w.client
                .retain(|_, q| q.back().is_some_and(|t| now_ms - *t < cw));
        }
        let mut worst: Option<Refused> = None;
        let mut note = |scope, waited: Option<i64>| {
            if let Some(wait_ms) = waited
                && worst.is_none_or(|r| r.wait_ms < wait_ms)
            {
                worst = Some(Refused { scope, wait_ms });
            }
        };
        if send.per_number && l.per_number > 0 {
            for number in send.numbers {
                let q = w.number.entry(number.clone()).or_default();
                note(
                    Scope::Number,
                    wait(q, l.per_number, l.per_number_window_ms, 1, now_ms),
                );
            }
        }
        if let Some(client) = send.client
            && l.per_client > 0
        {
            let q = w.client.entry(client.to_string()).or_default();
            note(
                Scope::Client,
                wait(q, l.per_client, l.per_client_window_ms, n, now_ms),
            );
        }
        note(
            Scope::Minute,
            wait(&mut w.minute, l.per_minute, 60_000, n, now_ms),
        );
        note(
            Scope::Hour,
            wait(&mut w.hour, l.per_hour, 3_600_000, n, now_ms),
        );
        if let Some(r) = worst {
            return Err(r);
        }
        if send.per_number {
            for number in send.numbers {
                let q = w.number.entry(number.clone()).or_default();
                count(q, l.per_number, 1, now_ms);
            }
        }
        if let Some(client) = send.client {
            let q = w.client.entry(client.to_string()).or_default();
            count(q, l.per_client, n, now_ms);
        }
        count(&mut w.minute, l.per_minute, n, now_ms);
        count(&mut w.hour, l.per_hour, n, now_ms);
        Ok(())
    }

    /// [`admit`](Self::admit) for one message to one number.
    pub fn admit_one(
        &self,
        number: &str,
        per_number: bool,
        client: Option<&str>,
        now_ms: i64,
    ) -> Result<(), Refused> {
        self.admit(
            Send {
                numbers: &[number.to_string()],
                per_number,
                client,
            },
            now_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SmsLimits {
        SmsLimits {
            per_number: 2,
            per_number_window_ms: 10_000,
            per_client: 3,
            per_client_window_ms: 10_000,
            per_minute: 6,
            per_hour: 7,
        }
    }

    #[test]
    fn every_scope_counts_and_refuses_with_its_wait() {
        let g = SmsGuard::new(limits());
        assert!(g.admit_one("+1", true, Some("a"), 0).is_ok());
        assert!(g.admit_one("+1", true, Some("b"), 1_000).is_ok());
        let r = g.admit_one("+1", true, Some("c"), 2_000).unwrap_err();
        assert_eq!((r.scope, r.wait_ms), (Scope::Number, 8_000));
        // Nothing was counted for the refused one: "c" still has its whole allowance.
        assert!(g.admit_one("+2", true, Some("c"), 2_000).is_ok());
        assert!(g.admit_one("+3", true, Some("c"), 2_000).is_ok());
        assert!(g.admit_one("+4", true, Some("c"), 2_000).is_ok());
        let r = g.admit_one("+5", true, Some("c"), 2_000).unwrap_err();
        assert_eq!(r.scope, Scope::Client);
        // Notifications are not counted per number, but globally: the minute (6) fills.
        assert!(g.admit_one("+1", false, None, 3_000).is_ok());
        let r = g.admit_one("+1", false, None, 3_000).unwrap_err();
        assert_eq!((r.scope, r.wait_ms), (Scope::Minute, 57_000));
        assert!(g.admit_one("+6", false, None, 60_000).is_ok());
        // The hour's budget (7) is spent until the first one is an hour old.
        let r = g.admit_one("+7", false, None, 61_000).unwrap_err();
        assert_eq!((r.scope, r.wait_ms), (Scope::Hour, 3_600_000 - 61_000));
    }

    #[test]
    fn zero_is_no_limit() {
        let g = SmsGuard::new(SmsLimits::unlimited());
        for i in 0..1000 {
            assert!(g.admit_one("+1", true, Some("a"), i).is_ok());
        }
    }

    #[test]
    fn a_batch_fits_whole_or_not_at_all() {
        let g = SmsGuard::new(limits());
        let numbers: Vec<String> = (0..4).map(|i| format!("+{i}")).collect();
        let send = Send {
            numbers: &numbers,
            per_number: true,
            client: Some("a"),
        };
        assert_eq!(g.admit(send, 0).unwrap_err().scope, Scope::Client);
        assert!(g.admit_one("+9", true, Some("a"), 0).is_ok());
    }
}
