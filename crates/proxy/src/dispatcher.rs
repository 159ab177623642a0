//! The outbox dispatcher as a state machine: no sockets, no clock, no database. Time (ms since
//! the Unix epoch) and jitter are arguments, so tests drive it faster than real time.
//!
//! A notification row lives through
//! `queued → sending → sent → delivered` (delivered per SMSC receipt, or at once for channels
//! whose transport acknowledges delivery), or on failure back to `queued` with exponential
//! backoff and jitter, to `dead` after [`Policy::max_attempts`], to `expired` when its
//! [`Policy::expire_after`] passed before it could go out, and to `unconfirmed` when a
//! message left but its acceptance was never confirmed. An unconfirmed SMS waits
//! [`Policy::unconfirmed_grace_ms`] for the SMSC's receipt (intermediate or final), which
//! settles it; without one it is queued again (the store does both).
//!
//! The adapter's loop: claim due rows from the store, [`Dispatcher::plan`] them (rate limits,
//! quiet hours, expiry), send what is [`Plan::Send`], then [`Dispatcher::outcome`] each result
//! into a [`Transition`] the store records.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a notification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Sending,
    Sent,
    Delivered,
    Failed,
    Dead,
    Expired,
    Unconfirmed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Failed => "failed",
            State::Dead => "dead",
            State::Expired => "expired",
            State::Unconfirmed => "unconfirmed",
        }
    }

    /// No sending is under way or planned (an `unconfirmed` SMS can still be queued again when
    /// no receipt came within its grace period).
    pub fn is_final(self) -> bool {
        !matches!(self, State::Queued | State::Sending)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        Ok(match s {
            "queued" => State::Queued,
            "sending" => State::Sending,
            "sent" => State::Sent,
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            "dead" => State::Dead,
            "expired" => State::Expired,
            "unconfirmed" => State::Unconfirmed,
            other => return Err(format!("unknown notification state {other:?}")),
        })
    }
}

/// Retry and expiry rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts (sends that failed) before the row is dead.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles per attempt up to `backoff_max`.
    pub backoff_initial_ms: i64,
    pub backoff_max_ms: i64,
    /// Jitter as a fraction of the delay: 0.2 spreads it over ±20 %.
    pub jitter: f64,
    /// A row not sent this long after it was queued expires (a "live now" message is stale).
    pub expire_after_ms: i64,
    /// Quiet hours, if any: nothing is sent inside them; rows wait for their end.
    pub quiet_hours: Option<QuietHours>,
    /// How long an `unconfirmed` SMS (handed to the SMSC, its answer never read) waits for a
    /// delivery receipt of its destination before it is queued and sent again; `None`: never
    /// sent again (at most once, for an SMSC that sends no receipts).
    pub unconfirmed_grace_ms: Option<i64>,
    /// Attempts for webhook rows, when they differ (the server's `[webhook] max_attempts`).
    pub webhook_max_attempts: Option<u32>,
}

impl Policy {
    /// Attempts before a row of `channel` is dead.
    pub fn max_attempts_for(&self, channel: &str) -> u32 {
        match self.webhook_max_attempts {
            Some(n) if channel == "webhook" => n,
            _ => self.max_attempts,
        }
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_attempts: 8,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 300_000,
            jitter: 0.2,
            expire_after_ms: 24 * 3_600_000,
            quiet_hours: None,
            unconfirmed_grace_ms: Some(5 * 60_000),
            webhook_max_attempts: None,
        }
    }
}

impl Policy {
    /// The delay before the attempt after `attempts` failed ones (≥ 1); `unit` in [0, 1) is the
    /// jitter draw.
    pub fn backoff_ms(&self, attempts: u32, unit: f64) -> i64 {
        let exp = attempts.saturating_sub(1).min(30);
        let base = self
            .backoff_initial_ms
            .saturating_mul(1i64 << exp)
            .min(self.backoff_max_ms);
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        ((base as f64) * factor).max(0.0) as i64
    }
}

/// A daily window in UTC minutes `[start, end)` (may wrap midnight: 22:00–07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start_minute: u32,
    pub end_minute: u32,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let minute = |t: &str| -> Result<u32, String> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("quiet hours: {t:?} is not HH:MM"))?;
            let h: u32 = h.parse().map_err(|_| format!("quiet hours: hour {h:?}"))?;
            let m: u32 = m
                .parse()
                .map_err(|_| format!("quiet hours: minute {m:?}"))?;
            if h > 23 || m > 59 {
                return Err(format!("quiet hours: {t:?} is not a time of day"));
            }
            Ok(h * 60 + m)
        };
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("quiet hours: {s:?} is not HH:MM-HH:MM"))?;
        Ok(QuietHours {
            start_minute: minute(a)?,
            end_minute: minute(b)?,
        })
    }

    /// When sending may resume, if `now_ms` is inside the window.
    pub fn resume_at(&self, now_ms: i64) -> Option<i64> {
        const DAY: i64 = 86_400_000;
        let day_start = now_ms.div_euclid(DAY) * DAY;
        let minute = (now_ms - day_start) / 60_000;
        let (s, e) = (i64::from(self.start_minute), i64::from(self.end_minute));
        let inside = if s <= e {
            minute >= s && minute < e
        } else {
            minute >= s || minute < e
        };
        if !inside {
            return None;
        }
        let end_today = day_start + e * 60_000;
        Some(if end_today > now_ms {
            end_today
        } else {
            end_today + DAY
        })
    }
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ms: i64,
}

impl TokenBucket {
    pub fn new(rate_per_s: f64, burst: f64, now_ms: i64) -> TokenBucket {
        TokenBucket {
            rate: rate_per_s.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        if now_ms > self.last_ms {
            self.tokens =
                (self.tokens + (now_ms - self.last_ms) as f64 * self.rate / 1000.0).min(self.burst);
            self.last_ms = now_ms;
        }
    }

    /// When one token will be there (now if there is one already); takes nothing.
    pub fn ready_at(&mut self, now_ms: i64) -> i64 {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            now_ms
        } else {
            now_ms + ((1.0 - self.tokens) * 1000.0 / self.rate).ceil() as i64
        }
    }

    pub fn take(&mut self, now_ms: i64) {
        self.refill(now_ms);
        self.tokens -= 1.0;
    }
}

/// Rates in messages per second (and bursts) for one scope; `None` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_s: f64,
    pub burst: f64,
}

/// The three rate limits of the outbox.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Per channel bind (an SMSC bind's throughput; a webhook worker pool).
    pub per_channel: Option<Rate>,
    /// Per source: how fast one publisher's audience is notified.
    pub per_source: Option<Rate>,
    /// Per subscriber: protects one phone from a burst of messages.
    pub per_subscriber: Option<Rate>,
}

/// A claimed row, as much as the dispatcher needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub channel: String,
    pub source: String,
    pub address: String,
    pub attempts: u32,
    pub created_at_ms: i64,
    /// A subscriber's notification (quiet hours hold it), not a direct message that a person
    /// or the server sent to a named address (a share, the server's webhook).
    pub to_subscriber: bool,
}

/// What to do with a claimed row now.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Send,
    /// Put it back, unchanged attempts, until `until_ms` (rate limit or quiet hours).
    Defer {
        until_ms: i64,
        reason: &'static str,
    },
    /// Too old to be worth sending.
    Expire,
}

/// What happened when the adapter sent a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted by the next hop; delivery will be confirmed later (SMSC receipt).
    Accepted { message_id: Option<String> },
    /// Delivered (the transport acknowledged the receiver got it).
    Delivered,
    /// Failed in a way that may pass: retry.
    Transient { error: String },
    /// Failed, and the next hop said when to try again (HTTP 429 or 503 with `Retry-After`,
    /// RFC 9110 §10.2.3; RFC 8030 §8.4 for push services): retry no sooner than `after_ms`
    /// from now (nor sooner than the backoff).
    RetryAfter { error: String, after_ms: i64 },
    /// Failed for good (malformed number, 4xx other than 408/429): dead now.
    Permanent { error: String },
    /// It left, but acceptance was never confirmed: not sent again unless no receipt comes
    /// within [`Policy::unconfirmed_grace_ms`].
    Unconfirmed { error: String },
}

/// What the store records for a row after an outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: State,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub message_id: Option<String>,
    pub error: Option<String>,
}

/// The dispatcher: rate-limit buckets and the policy.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pub policy: Policy,
    pub limits: Limits,
    buckets: HashMap<(u8, String), TokenBucket>,
}

impl Dispatcher {
    pub fn new(policy: Policy, limits: Limits) -> Dispatcher {
        Dispatcher {
            policy,
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Decides for each claimed row, in order, taking rate tokens for those sent.
    pub fn plan(&mut self, rows: &[Row], now_ms: i64) -> Vec<Plan> {
        let quiet = self.policy.quiet_hours.and_then(|q| q.resume_at(now_ms));
        rows.iter()
            .map(|row| {
                if now_ms - row.created_at_ms > self.policy.expire_after_ms {
                    return Plan::Expire;
                }
                if let Some(until_ms) = quiet.filter(|_| row.to_subscriber) {
                    return Plan::Defer {
                        until_ms,
                        reason: "quiet hours",
                    };
                }
                let scopes = [
                    (
                        0u8,
                        self.limits.per_channel,
                        row.channel.as_str(),
                        "channel rate",
                    ),
                    (
                        1,
                        self.limits.per_source,
                        row.source.as_str(),
                        "source rate",
                    ),
                    (
                        2,
                        self.limits.per_subscriber,
                        row.address.as_str(),
                        "subscriber rate",
                    ),
                ];
                let mut ready = now_ms;
                let mut reason = "";
                for (scope, rate, key, why) in scopes {
                    if let Some(rate) = rate {
                        let b = self
                            .buckets
                            .entry((scope, key.to_string()))
                            .or_insert_with(|| TokenBucket::new(rate.per_s, rate.burst, now_ms));
                        let at = b.ready_at(now_ms);
                        if at > ready {
                            ready = at;
                            reason = why;
                        }
                    }
                }
                if ready > now_ms {
                    return Plan::Defer {
                        until_ms: ready,
                        reason,
                    };
                }
                for (scope, rate, key) in [
                    (0u8, self.limits.per_channel, &row.channel),
                    (1, self.limits.per_source, &row.source),
                    (2, self.limits.per_subscriber, &row.address),
                ] {
                    if rate.is_some()
                        && let Some(b) = self.buckets.get_mut(&(scope, key.clone()))
                    {
                        b.take(now_ms);
                    }
                }
                Plan::Send
            })
            .collect()
    }

    /// The row's next state after `outcome`; `unit` in [0, 1) is the jitter draw.
    pub fn outcome(&self, row: &Row, outcome: Outcome, now_ms: i64, unit: f64) -> Transition {
        let attempts = row.attempts + 1;
        let done = |state, message_id, error| Transition {
            state,
            attempts,
            next_attempt_at_ms: now_ms,
            message_id,
            error,
        };
        match outcome {
            Outcome::Accepted { message_id } => done(State::Sent, message_id, None),
            Outcome::Delivered => done(State::Delivered, None, None),
            Outcome::Permanent { error } => done(State::Dead, None, Some(error)),
            Outcome::Unconfirmed { error } => done(State::Unconfirmed, None, Some(error)),
            Outcome::Transient { error } | Outcome::RetryAfter { error, .. }
                if attempts >= self.policy.max_attempts_for(&row.channel) =>
            {
                done(State::Dead, None, Some(error))
            }
            Outcome::RetryAfter { error, after_ms } => {
                let next = now_ms + self.policy.backoff_ms(attempts, unit).max(after_ms);
                if next - row.created_at_ms > self.policy.expire_after_ms {
                    return done(State::Expired, None, Some(error));
                }
                Transition {
                    state: State::Queued,
                    attempts,
                    next_attempt_at_ms: next,
                    message_id: None,
                    error: Some(error),
                }
            }
            Outcome::Transient { error } => {
                let next = now_ms + self.policy.backoff_ms(attempts, unit);
                if next - row.created_at_ms > self.policy.expire_after_ms {
                    return done(State::Expired, None, Some(error));
                }
                Transition {
                    state: State::Queued,
                    attempts,
                    next_attempt_at_ms: next,
                    message_id: None,
                    error: Some(error),
                }
            }
        }
    }
}

/// The wait an HTTP `Retry-After` value asks for, in ms from `now_ms` (RFC 9110 §10.2.3:
/// delay-seconds, or an HTTP-date in IMF-fixdate form); `None` when it is neither.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<i64> {
    let v = value.trim();
    if let Ok(seconds) = v.parse::<u32>() {
        return Some(i64::from(seconds) * 1000);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.timestamp_millis() - now_ms).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_or_date_and_its_wait() {
        assert_eq!(parse_retry_after("2", 0), Some(2_000));
        assert_eq!(parse_retry_after(" 120 ", 0), Some(120_000));
        // Wed, 21 Oct 2015 07:28:00 GMT
        let at = 1_445_412_480_000;
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at - 5_000),
            Some(5_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at + 5_000),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-3", 0), None);
        let d = Dispatcher::new(
            Policy {
                jitter: 0.0,
                backoff_initial_ms: 100,
                ..Policy::default()
            },
            Limits::default(),
        );
        let t = d.outcome(
            &row("n1", "https://push.example/a"),
            Outcome::RetryAfter {
                error: "HTTP 429".into(),
                after_ms: 2_000,
            },
            10_000,
            0.5,
        );
        assert_eq!(
            (t.state, t.attempts, t.next_attempt_at_ms),
            (State::Queued, 1, 12_000)
        );
        // A Retry-After shorter than the backoff does not shorten it.
        let mut r = row("n1", "https://push.example/a");
        r.attempts = 3;
        let t = d.outcome(
            &r,
            Outcome::RetryAfter {
                error: "HTTP 503".into(),
                after_ms: 0,
            },
            10_000,
            0.5,
        );
        assert_eq!(t.next_attempt_at_ms, 10_800);
    }

    fn row(id: &str, address: &str) -> Row {
        Row {
            id: id.into(),
            channel: "sms".into(),
            source: "alice".into(),
            address: address.into(),
            attempts: 0,
            created_at_ms: 0,
            to_subscriber: true,
        }
    }

    #[test]
    fn lifecycle_accepted_then_retry_then_dead() {
        let d = Dispatcher::new(
            Policy {
                max_attempts: 3,
                jitter: 0.0,
                ..Policy::default()
            },
            Limits::default(),
        );
        let mut r = row("n1", "+1");
        let t = d.outcome(
            &r,
            Outcome::Transient {
                error: "HTTP 500".into(),
            },
            10_000,
            0.5,
        );
        assert_eq!(t.state, State::Queued);
        assert_eq!(t.attempts, 1);
        assert_eq!(t.next_attempt_at_ms, 11_000);
        r.attempts = t.attempts;
        let t = d.outcome(&r, Outcome::Transient { error: "x".into() }, 11_000, 0.5);
        assert_eq!((t.state, t.next_attempt_at_ms), (State::Queued, 13_000));
        r.attempts = t.attempts;
        let t = d.outcome(&r, Outcome::Transient { error: "x".into() }, 13_000, 0.5);
        assert_eq!(t.state, State::Dead);
        assert_eq!(t.attempts, 3);
        let ok = d.outcome(
            &row("n2", "+2"),
            Outcome::Accepted {
                message_id: Some("0A".into()),
            },
            0,
            0.0,
        );
        assert_eq!(ok.state, State::Sent);
        assert_eq!(ok.message_id.as_deref(), Some("0A"));
        let u = d.outcome(
            &row("n3", "+3"),
            Outcome::Unconfirmed {
                error: "cut".into(),
            },
            0,
            0.0,
        );
        assert_eq!(u.state, State::Unconfirmed);
        let p = d.outcome(
            &row("n4", "+4"),
            Outcome::Permanent {
                error: "404".into(),
            },
            0,
            0.0,
        );
        assert_eq!(p.state, State::Dead);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let p = Policy::default();
        assert_eq!(p.backoff_ms(1, 0.5), 1_000);
        assert_eq!(p.backoff_ms(4, 0.5), 8_000);
        assert_eq!(p.backoff_ms(40, 0.5), 300_000);
        assert_eq!(p.backoff_ms(1, 0.0), 800);
        assert_eq!(p.backoff_ms(1, 1.0), 1_200);
    }

    #[test]
    fn expiry_before_send_and_by_backoff() {
        let mut d = Dispatcher::new(
            Policy {
                expire_after_ms: 60_000,
                jitter: 0.0,
                ..Policy::default()
            },
            Limits::default(),
        );
        let r = row("n1", "+1");
        assert_eq!(d.plan(std::slice::from_ref(&r), 59_000), vec![Plan::Send]);
        assert_eq!(d.plan(std::slice::from_ref(&r), 61_000), vec![Plan::Expire]);
        let mut late = r.clone();
        late.attempts = 6; // next backoff 64 s: beyond the expiry
        let t = d.outcome(&late, Outcome::Transient { error: "x".into() }, 1_000, 0.5);
        assert_eq!(t.state, State::Expired);
    }

    #[test]
    fn channel_bucket_spreads_a_burst() {
        let mut d = Dispatcher::new(
            Policy::default(),
            Limits {
                per_channel: Some(Rate {
                    per_s: 10.0,
                    burst: 2.0,
                }),
                ..Limits::default()
            },
        );
        let rows: Vec<Row> = (0..4)
            .map(|i| row(&format!("n{i}"), &format!("+{i}")))
            .collect();
        let plans = d.plan(&rows, 0);
        assert_eq!(plans[0], Plan::Send);
        assert_eq!(plans[1], Plan::Send);
        assert_eq!(
            plans[2],
            Plan::Defer {
                until_ms: 100,
                reason: "channel rate"
            }
        );
        // 100 ms later one token is back.
        assert_eq!(d.plan(&rows[2..3], 100), vec![Plan::Send]);
        assert!(matches!(d.plan(&rows[3..4], 100)[0], Plan::Defer { .. }));
    }

    #[test]
    fn subscriber_bucket_limits_one_number_only() {
        let mut d = Dispatcher::new(
            Policy::default(),
            Limits {
                per_subscriber: Some(Rate {
                    per_s: 0.5,
                    burst: 1.0,
                }),
                ..Limits::default()
            },
        );
        let rows = vec![row("a", "+1"), row("b", "+1"), row("c", "+2")];
        let plans = d.plan(&rows, 0);
        assert_eq!(plans[0], Plan::Send);
        assert_eq!(
            plans[1],
            Plan::Defer {
                until_ms: 2_000,
                reason: "subscriber rate"
            }
        );
        assert_eq!(plans[2], Plan::Send);
    }

    #[test]
    fn source_bucket() {
        let mut d = Dispatcher::new(
            Policy::default(),
            Limits {
                per_source: Some(Rate {
                    per_s: 1.0,
                    burst: 1.0,
                }),
                ..Limits::default()
            },
        );
        let rows = vec![row("a", "+1"), row("b", "+2")];
        let plans = d.plan(&rows, 5_000);
        assert_eq!(plans[0], Plan::Send);
        assert_eq!(
            plans[1],
            Plan::Defer {
                until_ms: 6_000,
                reason: "source rate"
            }
        );
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours::parse("22:00-07:00").expect("parse");
        let day = 86_400_000i64;
        let at = |h: i64, m: i64| 20 * day + h * 3_600_000 + m * 60_000;
        assert_eq!(q.resume_at(at(21, 59)), None);
        assert_eq!(q.resume_at(at(22, 0)), Some(at(7, 0) + day));
        assert_eq!(q.resume_at(at(3, 30)), Some(at(7, 0)));
        assert_eq!(q.resume_at(at(7, 0)), None);
        let mut d = Dispatcher::new(
            Policy {
                quiet_hours: Some(q),
                expire_after_ms: i64::MAX / 2,
                ..Policy::default()
            },
            Limits::default(),
        );
        let share = Row {
            to_subscriber: false,
            ..row("b", "+2")
        };
        assert_eq!(
            d.plan(&[row("a", "+1"), share], at(23, 0)),
            vec![
                Plan::Defer {
                    until_ms: at(7, 0) + day,
                    reason: "quiet hours"
                },
                // A message a person sent to a number now goes now.
                Plan::Send
            ]
        );
        assert!(QuietHours::parse("25:00-01:00").is_err());
        assert!(QuietHours::parse("nonsense").is_err());
    }

    #[test]
    fn states_round_trip() {
        for s in [
            State::Queued,
            State::Sending,
            State::Sent,
            State::Delivered,
            State::Failed,
            State::Dead,
            State::Expired,
            State::Unconfirmed,
        ] {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
        assert!("bogus".parse::<State>().is_err());
    }
}
