//! SMS and WAP Push subscribers through the development SMSC (`vshare smsc`'s code, in
//! process): fan-out with delivery receipts, an SMSC outage, throttling, double opt-in by MO
//! SMS, kill -9 of a dispatcher in the middle of a fan-out, and unconfirmed messages settled by
//! receipts or sent again.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use vshare_messaging::compose::{As, Extent, compose_message};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_messaging::smsc::{Smsc, SmscOptions};
use vshare_proxy::dispatcher::State;
use vshare_proxy::{Channel, Proxy, SubState};
use vshare_smpp::BindKind;
use vshare_smpp::pdu::Sm;
use vshare_sms::split::ConcatRef;
use vshare_sms::udh::UserDataHeader;
use vshare_testkit::wait::wait_until;

/// Parts of the compact form a subscriber of `form` gets (its link on the record's origin).
fn parts(form: As) -> usize {
    let extent = Extent::Compact {
        link_base: "http://127.0.0.1:8080".into(),
    };
    compose_message(&[record("v1")], form, &extent, ConcatRef::Sixteen(1), 1)
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

/// Parts the SMSC holds for `numbers` (what their phones get when they bind); receipts held
/// for the proxy's own number are not counted.
fn held_for(smsc: &Smsc, numbers: &[String]) -> usize {
    let per = smsc.stored_per_destination();
    numbers
        .iter()
        .map(|n| per.get(n.trim_start_matches('+')).copied().unwrap_or(0))
        .sum()
}

/// What the phone of `number` would show from the parts the SMSC holds for it: complete
/// messages (parts joined by their concatenation reference, as a phone joins them), and parts
/// of messages that never became complete.
fn messages_held(smsc: &Smsc, number: &str) -> (usize, usize) {
    let mut complete = 0;
    let mut groups: HashMap<u16, (u8, HashSet<u8>)> = HashMap::new();
    for sm in smsc.stored_for(number) {
        let concat = if sm.esm_class & 0x40 != 0 {
            UserDataHeader::decode(&sm.short_message, 0)
                .ok()
                .and_then(|h| h.concat())
        } else {
            None
        };
        match concat {
            Some(c) => {
                groups
                    .entry(c.reference)
                    .or_insert_with(|| (c.total, HashSet::new()))
                    .1
                    .insert(c.sequence);
            }
            None => complete += 1,
        }
    }
    let mut loose = 0;
    for (total, seen) in groups.values() {
        if seen.len() == usize::from(*total) {
            complete += 1;
        } else {
            loose += seen.len();
        }
    }
    (complete, loose)
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
        // One SMS each, carrying the short link.
        assert_eq!(
            (got.len(), want),
            (1, 1),
            "phone {i}: parts of {form:?} received"
        );
        let text = String::from_utf8_lossy(&got[0].short_message).into_owned();
        assert!(
            text.contains("http://127.0.0.1:8080/w/v1\nLIVE 640x360 \"test\"") || form == As::WapSi,
            "phone {i}: {text:?}"
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
        held_for(&smsc, &numbers),
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
    let held = held_for(&smsc, &numbers);
    assert_eq!(held, 120 * parts(As::Text), "each number got one message");
    assert!(
        smsc.stats().submitted > held as u64,
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
    assert!(reply.contains("no such source"), "{reply}");
    assert!(
        !reply.contains("nobody"),
        "words the sender chose came back: {reply}"
    );
    let reply = say(&mut phone, "SUB alice").await;
    assert!(
        !reply.contains("alice"),
        "the source's name is in the code SMS: {reply}"
    );
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
    assert!(reply.contains("1 subscription(s) confirmed"), "{reply}");
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
    assert_eq!(text, "http://127.0.0.1:8080/w/v1\nLIVE 640x360 \"test\"");
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

/// The fault: kill -9 of the dispatcher process (its SMS dispatcher and receiver bind)
/// in the middle of a fan-out, at each of `kills` (messages the SMSC holds for subscribers),
/// restarting it each time. Each kill lands wherever the child happens to be in its cycle of
/// mark handed over → write submit_sm → read the answers → record. After the last restart
/// every subscriber has exactly one complete message at the SMSC.
async fn kill_9_during_fan_out(url: &str, kills: &[usize], n: usize) {
    let smsc = Smsc::new(SmscOptions::default());
    let (smsc_addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    let proxy = Proxy::open(config(url, None)).await.expect("proxy");
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
    let mut child = spawn_child(url, &smsc_addr.to_string());
    for &at in kills {
        let t0 = Instant::now();
        while held_for(&smsc, &numbers) < at * per {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the child never got to {at} messages"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // A random 0–6 ms more, so that kills land at different points of the child's cycle
        // (between marking and writing, writing and reading, reading and recording).
        let offset = Duration::from_micros(rand::random_range(0..6_000));
        let until = Instant::now() + offset;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        child.kill().expect("kill -9"); // SIGKILL on Unix
        child.wait().expect("reap");
        let held = held_for(&smsc, &numbers);
        assert!(
            held < n * per,
            "killed in the middle ({held} of {})",
            n * per
        );
        let counts = proxy.store.state_counts().await.expect("counts");
        eprintln!("killed {offset:?} after {at} messages, with {held} held; rows {counts:?}");
        child = spawn_child(url, &smsc_addr.to_string());
    }
    // Unconfirmed rows wait for their receipt (or the 3 s grace): all must end `sent`.
    wait_until(Duration::from_secs(90), "every row sent", || async {
        states(&proxy, "v1").await.iter().all(|s| *s == State::Sent)
    })
    .await;
    // A doubled send would show up within this.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("kill the last child");
    child.wait().expect("reap");
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    assert_eq!(rows.len(), n);
    assert!(
        rows.iter()
            .all(|r| r.state == State::Sent && r.smsc_message_id.is_some())
    );
    let mut wrong = Vec::new();
    let mut loose = 0;
    for number in &numbers {
        let (complete, parts_of_incomplete) = messages_held(&smsc, number);
        if complete != 1 {
            wrong.push((number.clone(), complete));
        }
        loose += parts_of_incomplete;
    }
    assert!(
        wrong.is_empty(),
        "{} subscriber(s) without exactly one message: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    let again = rows.iter().filter(|r| r.attempts > 1).count();
    eprintln!(
        "{n} subscribers, one message each after {} kill(s); {again} row(s) sent again after the grace period; {loose} loose part(s) of messages cut by a kill",
        kills.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_fan_out_then_every_subscriber_gets_exactly_one() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tmp");
    kill_9_during_fan_out(&sqlite_url(&dir), &[300, 800, 1300, 1800, 2300, 2700], 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_mid_fan_out_then_every_subscriber_gets_exactly_one() {
    init_tracing();
    kill_9_during_fan_out(&fresh_postgres().await, &[400, 1200, 2000, 2600], 3000).await;
}

/// The two ways an unconfirmed SMS ends, without a phone bound (the SMSC stores the messages):
/// a dead dispatcher wrote A's submit_sm (asking for receipts) but never read the answer, and
/// marked B handed over but died before writing it. The SMSC's intermediate receipt for A
/// settles A as `sent` as soon as the lease runs out; B gets no receipt and goes again after
/// the grace period. Each number ends with exactly one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_sms_settled_by_intermediate_receipt_or_sent_again_after_grace() {
    init_tracing();
    let smsc = Smsc::new(SmscOptions::default());
    let (smsc_addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
    let addr = smsc_addr.to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let proxy = Proxy::open(config(&sqlite_url(&dir), Some(&addr)))
        .await
        .expect("proxy");
    let numbers: Vec<String> = ["+3930001", "+3930002", "+3930003"]
        .map(String::from)
        .to_vec();
    proxy
        .store
        .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    proxy
        .handle_event(&live_event("v1", "alice"))
        .await
        .expect("event");
    let now = proxy.now_ms();
    let mut claimed = proxy
        .store
        .claim(&[Channel::Sms], "dead", now, 1_500, 10)
        .await
        .expect("claim");
    claimed.sort_by(|a, b| a.address.cmp(&b.address));
    let handed: Vec<String> = claimed[..2].iter().map(|r| r.id.clone()).collect();
    proxy
        .store
        .mark_handed_over("dead", &handed, now)
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
    let mut sm = Sm::text("+10000", &numbers[0], b"vshare: alice is live");
    sm.registered_delivery =
        vshare_proxy::sms::REGISTERED_FINAL | vshare_proxy::sms::REGISTERED_INTERMEDIATE;
    let id_a = dead.submit_many(vec![sm]).await.expect("submit")[0]
        .clone()
        .expect("accepted");
    drop(dead); // killed before recording the answer
    let _tasks = proxy.spawn();
    let row = |n: &str, rows: &[vshare_proxy::NotificationView]| {
        rows.iter().find(|r| r.address == n).expect("row").clone()
    };
    let t0 = Instant::now();
    let b_when_a_settled = std::sync::Mutex::new(None);
    wait_until(Duration::from_secs(20), "every row sent", || async {
        let rows = proxy
            .store
            .notifications(Some("v1"), None)
            .await
            .expect("rows");
        let mut first = b_when_a_settled.lock().expect("lock");
        if first.is_none() && row(&numbers[0], &rows).state == State::Sent {
            *first = Some((row(&numbers[1], &rows).state, t0.elapsed()));
        }
        rows.iter().all(|r| r.state == State::Sent)
    })
    .await;
    let (b_state, a_at) = b_when_a_settled
        .into_inner()
        .expect("lock")
        .expect("A settled");
    assert_eq!(
        b_state,
        State::Unconfirmed,
        "A was settled by its receipt ({a_at:?}) while B still waited for one"
    );
    let rows = proxy
        .store
        .notifications(Some("v1"), None)
        .await
        .expect("rows");
    let a = row(&numbers[0], &rows);
    assert_eq!(a.smsc_message_id.as_deref(), Some(id_a.as_str()));
    assert_eq!(a.attempts, 1, "A was not sent again");
    let b = row(&numbers[1], &rows);
    assert_eq!(
        b.attempts, 2,
        "B: handed over once (never arrived), then sent"
    );
    assert!(b.smsc_message_id.is_some());
    assert_eq!(row(&numbers[2], &rows).attempts, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in &numbers {
        assert_eq!(messages_held(&smsc, n), (1, 0), "{n}: exactly one message");
    }
    eprintln!(
        "A settled by its intermediate receipt {a_at:?} after the restart; B sent again {:?} after it",
        t0.elapsed()
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
        held_for(&smsc, &numbers),
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
    let mut c = config(&sqlite_url(&dir), Some(&addr));
    // Phones 2 and 3 read seconds after their rows turned unconfirmed: their receipts settle
    // them well within this grace.
    c.policy.unconfirmed_grace_ms = Some(30_000);
    let proxy = Proxy::open(c).await.expect("proxy");
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
