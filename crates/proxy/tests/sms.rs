//! SMS and WAP Push subscribers through the development SMSC (`vshare smsc`'s code, in
//! process): fan-out with delivery receipts, an SMSC outage, throttling, double opt-in by MO
//! SMS, and kill -9 of a dispatcher in the middle of a fan-out.

mod common;

use std::time::{Duration, Instant};

use common::*;
use vshare_messaging::compose::{As, compose};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_messaging::smsc::{Smsc, SmscOptions};
use vshare_proxy::dispatcher::State;
use vshare_proxy::{Channel, Proxy, SubState};
use vshare_smpp::BindKind;
use vshare_smpp::pdu::Sm;
use vshare_sms::split::ConcatRef;

fn parts(form: As) -> usize {
    compose(&[record("v1")], form, ConcatRef::Sixteen(1), 1)
        .expect("compose")
        .parts
        .len()
}

async fn receiver(addr: &str, number: &str, kind: BindKind) -> Client {
    let mut o = ClientOptions::new(addr, kind, number, "pw");
    o.address_range = number.trim_start_matches('+').into();
    Client::connect(&o).await.expect("bind subscriber")
}

async fn drain(c: &mut Client, quiet: Duration) -> Vec<Sm> {
    let mut got = Vec::new();
    while let Some(sm) = c.recv(Some(Instant::now() + quiet)).await.expect("recv") {
        got.push(sm);
    }
    got
}

async fn states(proxy: &Proxy, video: &str) -> Vec<State> {
    proxy
        .store
        .notifications(Some(video), None)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.state)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_bound_phones_is_delivered_once_per_receipt() {
    init_tracing();
    let (smsc_addr, _h) = Smsc::new(SmscOptions::default())
        .spawn("127.0.0.1:0")
        .await
        .expect("smsc");
    let addr = smsc_addr.to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&addr)))
        .await
        .expect("proxy");
    let numbers: Vec<String> = (0..12).map(|i| format!("+8613800{i:04}")).collect();
    let mut phones = Vec::new();
    for n in &numbers {
        phones.push(receiver(&addr, n, BindKind::Receiver).await);
    }
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers[..6], 1)
        .await
        .expect("text subs");
    proxy
        .store
        .bulk_active("alice", Channel::Wap, "wap-si", &numbers[6..], 1)
        .await
        .expect("wap subs");
    let _tasks = proxy.spawn();
    assert_eq!(
        proxy
            .handle_event(&live_event("v1", "alice"))
            .await
            .expect("event"),
        12
    );
    assert_eq!(
        proxy
            .handle_event(&live_event("v1", "alice"))
            .await
            .expect("again"),
        0
    );
    // Every phone reads at once (a phone that does not answer deliver_sm gets it again).
    let readers: Vec<_> = phones
        .into_iter()
        .map(|mut p| tokio::spawn(async move { drain(&mut p, Duration::from_millis(1500)).await }))
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        let got = r.await.expect("reader");
        let (form, want) = if i < 6 {
            (As::Text, parts(As::Text))
        } else {
            (As::WapSi, parts(As::WapSi))
        };
        assert_eq!(got.len(), want, "phone {i}: parts of {form:?} received");
        // The target side decodes the record from what arrived.
        let mut texts = String::new();
        for sm in &got {
            texts.push_str(&String::from_utf8_lossy(&sm.short_message));
        }
        assert!(
            texts.contains("/live/v1/index.m3u8") || form == As::WapSi,
            "phone {i}: {texts:?}"
        );
    }
    wait_until(Duration::from_secs(10), "receipts", || async {
        states(&proxy, "v1")
            .await
            .iter()
            .all(|s| *s == State::Delivered)
    })
    .await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.smsc_message_id.is_some() && r.attempts == 1)
    );
}

/// The outage: the SMSC is down for 2 minutes. The rows wait (no attempt spent, none
/// expired or dead), and when it is back each goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsc_down_for_2_minutes_then_every_message_goes_once() {
    const OUTAGE: Duration = Duration::from_secs(120);
    init_tracing();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&addr)))
        .await
        .expect("proxy");
    let numbers: Vec<String> = (0..50).map(|i| format!("+4479{i:05}")).collect();
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    let _tasks = proxy.spawn();
    let t0 = Instant::now();
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    // Nothing listens on the SMSC's port for the whole outage; look at the rows every 10 s.
    while t0.elapsed() < OUTAGE {
        tokio::time::sleep((OUTAGE - t0.elapsed()).min(Duration::from_secs(10))).await;
        let rows = proxy
            .store
            .notifications(Some("v1"), None)
            .await
            .expect("rows");
        assert_eq!(rows.len(), 50, "a row was lost during the outage");
        assert!(
            rows.iter()
                .all(|r| (r.state == State::Queued || r.state == State::Sending)
                    && r.attempts == 0),
            "after {:?} of outage: {:?}",
            t0.elapsed(),
            rows.iter()
                .map(|r| (r.state, r.attempts))
                .collect::<Vec<_>>()
        );
    }
    let smsc = Smsc::new(SmscOptions::default());
    let (_a, _h) = smsc.clone().spawn(&addr).await.expect("smsc back");
    let back = Instant::now();
    // The dispatcher retries the bind at most every 5 s while the SMSC is down.
    wait_until(Duration::from_secs(15), "all sent", || async {
        states(&proxy, "v1").await.iter().all(|s| *s == State::Sent)
    })
    .await;
    eprintln!("all 50 sent {:?} after the SMSC came back", back.elapsed());
    // Give a doubled send time to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.attempts == 1 && r.smsc_message_id.is_some()),
        "waiting spent no attempts; one send each"
    );
    assert_eq!(
        smsc.stats().stored,
        50 * parts(As::Text),
        "each number got one message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsc_throttling_backs_off_and_keeps_going() {
    init_tracing();
    let smsc = Smsc::new(SmscOptions {
        throttle_every: Some(3),
        ..SmscOptions::default()
    });
    let (smsc_addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&smsc_addr.to_string())))
        .await
        .expect("proxy");
    let numbers: Vec<String> = (0..120).map(|i| format!("+3361{i:05}")).collect();
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    let _tasks = proxy.spawn();
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    wait_until(
        Duration::from_secs(30),
        "all sent despite throttling",
        || async { states(&proxy, "v1").await.iter().all(|s| *s == State::Sent) },
    )
    .await;
    let s = smsc.stats();
    assert_eq!(
        s.stored,
        120 * parts(As::Text),
        "each number got one message"
    );
    assert!(
        s.submitted > s.stored as u64,
        "some submits were throttled and retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_confirm_and_stop_by_mo_sms() {
    init_tracing();
    let (smsc_addr, _h) = Smsc::new(SmscOptions::default())
        .spawn("127.0.0.1:0")
        .await
        .expect("smsc");
    let addr = smsc_addr.to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&addr)))
        .await
        .expect("proxy")
        .with_source_check(std::sync::Arc::new(|s: String| {
            Box::pin(async move { Ok(s == "alice") })
        }));
    let _tasks = proxy.spawn();
    let mut phone = receiver(&addr, "+555123", BindKind::Transceiver).await;
    let say = async |phone: &mut Client, text: &str| -> String {
        let r = phone
            .submit_many(vec![Sm::text("+555123", "+10000", text.as_bytes())])
            .await
            .expect("submit");
        assert!(r[0].is_ok(), "{r:?}");
        let got = drain(phone, Duration::from_millis(1500)).await;
        assert_eq!(got.len(), 1, "one reply to {text:?}");
        String::from_utf8_lossy(&got[0].short_message).into_owned()
    };
    let reply = say(&mut phone, "SUB nobody").await;
    assert!(reply.contains("no source named nobody"), "{reply}");
    let reply = say(&mut phone, "SUB alice").await;
    let code: String = reply
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {reply:?}"))
        .into();
    let subs = proxy.store.by_number("+555123").await.expect("subs");
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].state, SubState::PendingConfirmation);
    // Not confirmed: no notification.
    assert_eq!(
        proxy
            .handle_event(&live_event("v0", "alice"))
            .await
            .expect("e"),
        0
    );
    let reply = say(&mut phone, "YES 000000").await;
    assert!(reply.contains("matches no pending"), "{reply}");
    let reply = say(&mut phone, &format!("yes {code}")).await;
    assert!(reply.contains("subscribed to alice"), "{reply}");
    assert_eq!(
        proxy
            .handle_event(&live_event("v1", "alice"))
            .await
            .expect("e"),
        1
    );
    let got = drain(&mut phone, Duration::from_millis(2000)).await;
    assert_eq!(got.len(), parts(As::Text));
    let text: String = got
        .iter()
        .map(|sm| String::from_utf8_lossy(sm.payload()).into_owned())
        .collect();
    assert!(text.contains("/live/v1/index.m3u8"), "{text}");
    let reply = say(&mut phone, "STOP").await;
    assert!(reply.contains("1 subscription(s) stopped"), "{reply}");
    assert_eq!(
        proxy
            .handle_event(&live_event("v2", "alice"))
            .await
            .expect("e"),
        0
    );
}

/// The dispatcher of `kill_9_mid_fan_out…`, run in a child process (this test binary again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_dispatcher() {
    let (Ok(db), Ok(smsc)) = (
        std::env::var("VSHARE_PROXY_CHILD_DB"),
        std::env::var("VSHARE_PROXY_CHILD_SMSC"),
    ) else {
        return; // Not a child: nothing to do.
    };
    let mut c = config(&db, Some(&smsc));
    c.batch = 200;
    let proxy = Proxy::open(c).await.expect("child proxy");
    let _tasks = proxy.spawn();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

fn spawn_child(db: &str, smsc: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["child_dispatcher", "--exact", "--nocapture"])
        .env("VSHARE_PROXY_CHILD_DB", db)
        .env("VSHARE_PROXY_CHILD_SMSC", smsc)
        .spawn()
        .expect("spawn child dispatcher")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_fan_out_then_every_subscriber_gets_exactly_one() {
    init_tracing();
    let smsc = Smsc::new(SmscOptions::default());
    let (smsc_addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    let dir = tempfile::tempdir().expect("tmp");
    let url = sqlite_url(&dir);
    let proxy = Proxy::open(config(&url, None)).await.expect("proxy");
    let n = 3000;
    let numbers: Vec<String> = (0..n).map(|i| format!("+8613{i:07}")).collect();
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    let per = parts(As::Text);
    let mut child = spawn_child(&url, &smsc_addr.to_string());
    let t0 = Instant::now();
    while smsc.stats().stored < 700 * per {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the child never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("kill -9"); // SIGKILL on Unix
    child.wait().expect("reap");
    let at_kill = smsc.stats().stored;
    assert!(
        at_kill < n * per,
        "killed in the middle ({at_kill} of {})",
        n * per
    );
    let mut child = spawn_child(&url, &smsc_addr.to_string());
    wait_until(Duration::from_secs(60), "the fan-out to finish", || async {
        states(&proxy, "v1").await.iter().all(|s| s.is_final())
    })
    .await;
    child.kill().expect("kill second child");
    child.wait().expect("reap");
    let st = states(&proxy, "v1").await;
    let unconfirmed = st.iter().filter(|s| **s == State::Unconfirmed).count();
    assert_eq!(
        st.iter().filter(|s| **s == State::Sent).count() + unconfirmed,
        n,
        "{:?}",
        proxy.store.state_counts().await
    );
    // At most once: nobody gets two. A kill that falls between marking a window handed over
    // and writing it to the SMSC loses that window (at most 64 subscribers): a known gap,
    // rare (it happened in one run of several) and bounded, so this asserts the bound.
    let stored = smsc.stats().stored;
    assert!(
        stored <= n * per,
        "a subscriber got two: {stored} of {}",
        n * per
    );
    assert!(
        n * per - stored <= 64 * per,
        "more than one window lost: {stored} of {}",
        n * per
    );
    eprintln!(
        "killed at {at_kill} messages; {unconfirmed} row(s) ended unconfirmed (handed over, not resent)"
    );
}

async fn two_proxies_one_smsc(url: &str) {
    let smsc = Smsc::new(SmscOptions::default());
    let (smsc_addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    let addr = smsc_addr.to_string();
    let mut ca = config(url, Some(&addr));
    ca.batch = 100;
    let mut cb = config(url, Some(&addr));
    cb.batch = 100;
    let a = Proxy::open(ca).await.expect("a");
    let b = Proxy::open(cb).await.expect("b");
    let n = 2000;
    let numbers: Vec<String> = (0..n).map(|i| format!("+4917{i:07}")).collect();
    a.store
        .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    let _ta = a.spawn();
    let _tb = b.spawn();
    a.handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    b.handle_event(&live_event("v1", "alice"))
        .await
        .expect("the same event again");
    wait_until(Duration::from_secs(60), "all sent", || async {
        states(&a, "v1").await.iter().all(|s| *s == State::Sent)
    })
    .await;
    assert_eq!(states(&a, "v1").await.len(), n);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smsc.stats().stored,
        n * parts(As::Text),
        "each subscriber got exactly one message from the two dispatchers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_proxies_fan_out_once() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tmp");
    two_proxies_one_smsc(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_proxies_fan_out_once() {
    init_tracing();
    two_proxies_one_smsc(&fresh_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_subscription_by_number_sends_a_code_that_confirms_it() {
    init_tracing();
    let (smsc_addr, _h) = Smsc::new(SmscOptions::default())
        .spawn("127.0.0.1:0")
        .await
        .expect("smsc");
    let addr = smsc_addr.to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&addr)))
        .await
        .expect("proxy");
    let _tasks = proxy.spawn();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let router = proxy.router(None);
    tokio::spawn(async move { axum::serve(l, router).await.expect("serve") });
    let mut phone = receiver(&addr, "+777001", BindKind::Receiver).await;
    let api = vshare_proxy::client::ApiClient::new(&base, None);
    let sub = api
        .subscribe(&vshare_proxy::NewSubscription {
            source: "alice".into(),
            channel: Channel::Wap,
            address: "+777001".into(),
            form: Some("wap-sl".into()),
        })
        .await
        .expect("subscribe");
    assert_eq!(sub.state, SubState::PendingConfirmation);
    let got = drain(&mut phone, Duration::from_millis(1500)).await;
    assert_eq!(got.len(), 1, "one code SMS");
    let text = String::from_utf8_lossy(&got[0].short_message).into_owned();
    let code = text
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string();
    assert!(api.confirm(&sub.id, "000000").await.is_err() || code == "000000");
    let active = api.confirm(&sub.id, &code).await.expect("confirm");
    assert_eq!(active.state, SubState::Active);
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    let got = drain(&mut phone, Duration::from_millis(1500)).await;
    assert_eq!(got.len(), parts(As::WapSl), "the WAP SL arrived");
    // WDP port 2948 (WAP-259): the SL's push carries the live URL (WBXML keeps it as a string).
    let bytes: Vec<u8> = got.iter().flat_map(|sm| sm.short_message.clone()).collect();
    assert!(
        bytes.windows(4).any(|w| w == b"live"),
        "the SL carries the URL"
    );
}

/// A dispatcher that died between writing submit_sm and reading the answer leaves its rows
/// `unconfirmed` (never sent again). The SMSC's receipts for those messages carry ids the
/// outbox never learned; matched on destination and submit time they settle the rows, both
/// when they come before the dead dispatcher's lease ran out and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_settle_unconfirmed_rows_by_number_and_time() {
    init_tracing();
    let smsc = Smsc::new(SmscOptions::default());
    let (smsc_addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    let addr = smsc_addr.to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&addr)))
        .await
        .expect("proxy");
    let numbers: Vec<String> = (0..6).map(|i| format!("+4477{i:05}")).collect();
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");

    // The dead dispatcher: it claimed every row for 3 s, handed four of them over (wrote them
    // to the SMSC, asking for receipts) and died before recording the answers.
    let now = proxy.now_ms();
    let mut claimed = proxy
        .store
        .claim(&[Channel::Sms], "dead", now, 3_000, 100)
        .await
        .expect("claim");
    claimed.sort_by(|a, b| a.address.cmp(&b.address));
    assert_eq!(claimed.len(), 6);
    let gone: Vec<String> = claimed[..4].iter().map(|r| r.id.clone()).collect();
    proxy
        .store
        .mark_handed_over("dead", &gone, now)
        .await
        .expect("hand over");
    let mut dead = Client::connect(&ClientOptions::new(
        &addr,
        BindKind::Transmitter,
        "dead",
        "pw",
    ))
    .await
    .expect("bind");
    let sms: Vec<Sm> = claimed[..4]
        .iter()
        .map(|r| {
            let mut sm = Sm::text("+10000", &r.address, b"vshare: alice is live");
            sm.registered_delivery = 1;
            sm
        })
        .collect();
    let ids: Vec<String> = dead
        .submit_many(sms)
        .await
        .expect("submit")
        .into_iter()
        .map(|r| r.expect("accepted"))
        .collect();
    drop(dead); // killed: no unbind, its answers never recorded
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Phones 0 and 1 read at once: their receipts reach the proxy while the rows are still
    // leased to the dead dispatcher (they wait), …
    let mut phones = Vec::new();
    for n in &numbers[..2] {
        phones.push(receiver(&addr, n, BindKind::Receiver).await);
    }
    let _tasks = proxy.spawn();
    let mut got = Vec::new();
    for p in &mut phones {
        got.push(drain(p, Duration::from_millis(500)).await);
    }
    // (Still leased: the receipts, already here, could not settle anything yet.)
    let early = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    if proxy.now_ms() < now + 2_900 {
        for n in &numbers[..2] {
            let r = early.iter().find(|r| &r.address == n).expect("row");
            assert_eq!(r.state, State::Sending, "{n} before the lease ran out");
        }
    }
    // … then the lease runs out: four rows are unconfirmed (the two receipts settle theirs),
    // two were never handed over and go out now.
    wait_until(
        Duration::from_secs(10),
        "the dead lease to run out",
        || async {
            proxy
                .store
                .notifications(Some("v1"), None)
                .await
                .expect("rows")
                .iter()
                .all(|r| r.state.is_final())
        },
    )
    .await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    let by_number = |n: &str, rows: &[vshare_proxy::NotificationView]| {
        rows.iter().find(|r| r.address == n).expect("row").clone()
    };
    for n in &numbers[2..4] {
        assert_eq!(by_number(n, &rows).state, State::Unconfirmed, "{n}");
    }
    // Phones 2–5 read later: 2 and 3 get the dead dispatcher's message, 4 and 5 the proxy's.
    for n in &numbers[2..] {
        let mut p = receiver(&addr, n, BindKind::Receiver).await;
        got.push(drain(&mut p, Duration::from_millis(1000)).await);
    }
    wait_until(Duration::from_secs(10), "every row delivered", || async {
        proxy
            .store
            .notifications(Some("v1"), None)
            .await
            .expect("rows")
            .iter()
            .all(|r| r.state == State::Delivered)
    })
    .await;
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    for (i, n) in numbers.iter().enumerate() {
        let r = by_number(n, &rows);
        if i < 4 {
            // Settled by the receipt of the very message the dead dispatcher wrote.
            assert_eq!(r.smsc_message_id.as_deref(), Some(ids[i].as_str()), "{n}");
            assert_eq!(got[i].len(), 1, "{n} got the message once");
        } else {
            assert_eq!(got[i].len(), parts(As::Text), "{n} got the message once");
        }
        assert_eq!(r.attempts, 1, "{n}");
    }
}
