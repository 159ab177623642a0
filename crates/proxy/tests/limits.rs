//! Rate limits and quiet hours end to end: the real SMS dispatcher sending through the
//! development SMSC (`vshare smsc`'s code, in process), timed by the outbox's own rows.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use vshare_messaging::smsc::{Smsc, SmscOptions};
use vshare_proxy::dispatcher::{Limits, QuietHours, Rate, State};
use vshare_proxy::{Channel, Proxy, ProxyConfig};

/// When each row of `sources` was first seen sent, by polling the outbox every 20 ms until
/// `n` rows are sent: (address, source, seconds since `t0`) per row id.
async fn send_times(
    proxy: &Proxy,
    sources: &[&str],
    n: usize,
    t0: Instant,
    timeout: Duration,
) -> HashMap<String, (String, String, f64)> {
    let mut seen: HashMap<String, (String, String, f64)> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} sent within {timeout:?}",
            seen.len()
        );
        for s in sources {
            for r in proxy
                .store
                .notifications(None, Some(s))
                .await
                .expect("rows")
            {
                assert!(
                    matches!(r.state, State::Queued | State::Sending | State::Sent),
                    "{} is {} ({:?})",
                    r.id,
                    r.state,
                    r.last_error
                );
                if r.state == State::Sent && !seen.contains_key(&r.id) {
                    seen.insert(
                        r.id.clone(),
                        (r.address, r.source, t0.elapsed().as_secs_f64()),
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

async fn smsc_and_proxy(
    dir: &tempfile::TempDir,
    tune: impl FnOnce(&mut ProxyConfig),
) -> (Smsc, Proxy) {
    let smsc = Smsc::new(SmscOptions::default());
    let (addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    // The SMSC task lives as long as the runtime (the handle is dropped, not aborted).
    let mut c = config(&sqlite_url(dir), Some(&addr.to_string()));
    tune(&mut c);
    let proxy = Proxy::open(c).await.expect("proxy");
    (smsc, proxy)
}

fn numbers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+{prefix}{i:05}")).collect()
}

/// Times, sorted, of the rows matching `f`.
fn times_of(
    seen: &HashMap<String, (String, String, f64)>,
    f: impl Fn(&str, &str) -> bool,
) -> Vec<f64> {
    let mut t: Vec<f64> = seen
        .values()
        .filter(|(a, s, _)| f(a, s))
        .map(|(_, _, t)| *t)
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bind_rate_spreads_a_fan_out_over_n_over_rate_seconds() {
    init_tracing();
    const N: usize = 30;
    const RATE: f64 = 10.0;
    let dir = tempfile::tempdir().expect("tmp");
    let (smsc, proxy) = smsc_and_proxy(&dir, |c| {
        c.limits = Limits {
            per_channel: Some(Rate {
                per_s: RATE,
                burst: 1.0,
            }),
            ..Limits::default()
        };
    })
    .await;
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers("4420", N), 1)
        .await
        .expect("subs");
    let _tasks = proxy.spawn();
    let t0 = Instant::now();
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    let seen = send_times(&proxy, &["alice"], N, t0, Duration::from_secs(30)).await;
    let t = times_of(&seen, |_, _| true);
    let span = t[N - 1] - t[0];
    eprintln!("{N} messages at {RATE}/s: {span:.2} s from first to last send");
    // N messages with a burst of 1 need (N - 1) / rate seconds between first and last.
    let floor = (N - 1) as f64 / RATE;
    assert!(
        span >= floor - 0.1,
        "{span:.2} s < {floor:.2} s: the bind rate was exceeded"
    );
    // …and not much more: a deferred row goes out when its token is there.
    assert!(
        span <= floor * 1.5 + 1.0,
        "{span:.2} s: far slower than {RATE}/s"
    );
    // No window of one second held more than rate + burst sends.
    for (i, start) in t.iter().enumerate() {
        let within = t[i..].iter().take_while(|x| **x < start + 1.0).count();
        assert!(
            within as f64 <= RATE + 1.0 + 1.0,
            "{within} sends in one second"
        );
    }
    assert_eq!(
        smsc.stats().submitted as usize % N,
        0,
        "each row submitted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_subscriber_and_per_source_limits_hold_without_slowing_the_others() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tmp");
    // One phone may get a message every 0.5 s; one source's audience 10 per second.
    let (smsc, proxy) = smsc_and_proxy(&dir, |c| {
        c.limits = Limits {
            per_channel: None,
            per_source: Some(Rate {
                per_s: 10.0,
                burst: 1.0,
            }),
            per_subscriber: Some(Rate {
                per_s: 2.0,
                burst: 1.0,
            }),
        };
    })
    .await;
    // alice: 20 phones, one video → the source rate rules (≥ 1.9 s).
    // bob and carol: the same 2 phones subscribe to both, 4 videos each → each phone gets 8
    // messages, the subscriber rate rules (≥ 3.5 s per phone).
    let alice = numbers("4930", 20);
    let shared = numbers("4931", 2);
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &alice, 1)
        .await
        .expect("alice subs");
    for s in ["bob", "carol"] {
        proxy
            .store
            .bulk_active(s, Channel::Sms, "text", &shared, 1)
            .await
            .expect("shared subs");
    }
    let _tasks = proxy.spawn();
    let t0 = Instant::now();
    proxy
        .handle_event(&live_event("a1", "alice"))
        .await
        .expect("event");
    for i in 0..4 {
        for s in ["bob", "carol"] {
            proxy
                .handle_event(&live_event(&format!("{s}{i}"), s))
                .await
                .expect("event");
        }
    }
    let seen = send_times(
        &proxy,
        &["alice", "bob", "carol"],
        20 + 16,
        t0,
        Duration::from_secs(30),
    )
    .await;
    let a = times_of(&seen, |_, s| s == "alice");
    assert_eq!(a.len(), 20);
    // The span as the SMSC saw alice's audience arrive (see the gaps below).
    let mut at: Vec<f64> = alice
        .iter()
        .flat_map(|n| smsc.arrivals_for(n))
        .map(|i| i.duration_since(t0).as_secs_f64())
        .collect();
    at.sort_by(f64::total_cmp);
    assert_eq!(at.len(), 20, "alice's submits at the SMSC");
    let a_span = at[19] - at[0];
    eprintln!("alice: 20 phones in {a_span:.2} s at 10/s per source");
    assert!(a_span >= 1.9 - 0.1, "source rate exceeded: {a_span:.2} s");
    for phone in &shared {
        assert_eq!(times_of(&seen, |addr, _| addr == phone).len(), 8, "{phone}");
        // The gaps as the SMSC saw the submits arrive: the outbox poller above may see two
        // rows turn Sent in one pass on a busy machine, the SMSC sees each submit_sm.
        let t: Vec<f64> = smsc
            .arrivals_for(phone)
            .iter()
            .map(|i| i.duration_since(t0).as_secs_f64())
            .collect();
        assert_eq!(t.len(), 8, "{phone}: submits at the SMSC");
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let span = t[7] - t[0];
        eprintln!("{phone}: 8 messages over {span:.2} s, gaps {gaps:.2?}");
        assert!(span >= 3.5 - 0.1, "subscriber rate exceeded: {span:.2} s");
        // bob's and carol's messages to the phone share its bucket: no two within 0.5 s, less
        // what a late read of the first submit on the SMSC's side can take off one gap.
        assert!(
            gaps.iter().all(|g| *g >= 0.5 - 0.06),
            "two messages to {phone} too close: {gaps:.2?}"
        );
    }
    // The limited phones did not hold alice's audience back: hers are done long before.
    let shared_last = times_of(&seen, |addr, _| shared.iter().any(|p| p == addr))[15];
    assert!(
        a[19] < shared_last,
        "alice {:.2} s, shared phones {shared_last:.2} s",
        a[19]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_messages_until_the_window_ends() {
    init_tracing();
    // The proxy's clock reads 06:59:56 UTC (today); quiet hours are 22:00–07:00.
    const DAY: i64 = 86_400_000;
    let real = vshare_proxy::now_ms();
    let fake_now = real.div_euclid(DAY) * DAY + 7 * 3_600_000 - 4_000;
    let offset = fake_now - real;
    let dir = tempfile::tempdir().expect("tmp");
    let (smsc, proxy) = smsc_and_proxy(&dir, |c| {
        c.clock_offset_ms = offset;
        c.policy.quiet_hours = Some(QuietHours::parse("22:00-07:00").expect("quiet hours"));
    })
    .await;
    let phones = numbers("3360", 10);
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &phones, 1)
        .await
        .expect("subs");
    let _tasks = proxy.spawn();
    let t0 = Instant::now();
    let window_end = t0
        + Duration::from_millis(
            u64::try_from(7 * 3_600_000 - (proxy.now_ms() - proxy.now_ms().div_euclid(DAY) * DAY))
                .expect("before 07:00"),
        );
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    // Inside the window: nothing goes out, no attempt is spent, nothing expires.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter()
            .all(|r| r.state == State::Queued && r.attempts == 0),
        "{:?}",
        rows.iter()
            .map(|r| (r.state, r.attempts))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        smsc.stats().submitted,
        0,
        "a message went out in quiet hours"
    );
    // At 07:00 they go, once each.
    let seen = send_times(&proxy, &["alice"], 10, t0, Duration::from_secs(10)).await;
    let first = times_of(&seen, |_, _| true)[0];
    let end = (window_end - t0).as_secs_f64();
    eprintln!("quiet hours end at +{end:.2} s; first send at +{first:.2} s");
    assert!(
        first >= end - 0.05,
        "sent at +{first:.2} s, before the window ended (+{end:.2} s)"
    );
    assert!(
        first <= end + 1.5,
        "held {:.2} s past the window",
        first - end
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.state == State::Sent && r.attempts == 1)
    );
}

/// Subscribers' SMS pass the SMS guard's global limits: over the hourly budget they wait in the
/// outbox (queued, not dropped) instead of going out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_sms_budget_holds_subscribers_messages_back() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tmp");
    let (smsc, proxy) = smsc_and_proxy(&dir, |c| {
        c.sms_limits.per_hour = 2;
    })
    .await;
    let phones = numbers("4932", 3);
    proxy
        .store
        .bulk_active("dora", Channel::Sms, "text", &phones, 1)
        .await
        .expect("subs");
    let _tasks = proxy.spawn();
    proxy
        .handle_event(&live_event("d1", "dora"))
        .await
        .expect("event");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = proxy
            .store
            .notifications(None, Some("dora"))
            .await
            .expect("rows");
        if rows.iter().filter(|r| r.state == State::Sent).count() == 2 {
            break rows;
        }
        assert!(Instant::now() < deadline, "not 2 sent: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waiting: Vec<_> = rows.iter().filter(|r| r.state != State::Sent).collect();
    assert_eq!(waiting.len(), 1, "{rows:?}");
    assert_eq!(waiting[0].state, State::Queued, "{rows:?}");
    assert_eq!(waiting[0].attempts, 0, "a deferred row spends no attempt");
    let refused = proxy
        .sms_guard
        .admit_one("+1", false, None, proxy.now_ms())
        .expect_err("the budget is spent");
    assert_eq!(refused.scope, vshare_proxy::guard::Scope::Hour);
    assert_eq!(smsc.stats().submitted, 2);
}
