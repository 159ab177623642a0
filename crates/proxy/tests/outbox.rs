//! The SQL outbox on SQLite and PostgreSQL: fan-out in one transaction, idempotency, claims by
//! two dispatchers at once, leases, early receipts, receipts that settle unconfirmed rows.

mod common;

use std::collections::HashSet;

use common::*;
use vshare_proxy::dispatcher::{State, Transition};
use vshare_proxy::store::{IncomingReceipt, ReceiptOrigin, ReceiptStatus, Store};
use vshare_proxy::{Channel, NewSubscription, SubState};

async fn fan_out_once(url: &str) {
    let store = Store::open(url).await.expect("open");
    Store::open(url)
        .await
        .expect("reopen runs no migration twice");
    let sub = |source: &str, channel, address: &str| NewSubscription {
        source: source.into(),
        channel,
        address: address.into(),
        form: None,
    };
    store
        .subscribe_test(&sub("alice", Channel::Websocket, "l1"), 1)
        .await
        .expect("ws");
    // By the key id instead of the name: matches too.
    store
        .subscribe_test(&sub("id-alice", Channel::Websocket, "l2"), 1)
        .await
        .expect("ws id");
    store
        .subscribe_test(
            &sub("alice", Channel::Webhook, "http://127.0.0.1:9/hook"),
            1,
        )
        .await
        .expect("webhook");
    let pending = store
        .subscribe_test(&sub("alice", Channel::Sms, "+8613800138000"), 1)
        .await
        .expect("sms");
    assert_eq!(pending.state, SubState::PendingConfirmation);
    assert_eq!(pending.code.as_ref().map(String::len), Some(6));
    let stopped = store
        .subscribe_test(&sub("alice", Channel::Websocket, "l3"), 1)
        .await
        .expect("l3");
    store
        .set_sub_state(&stopped.id, SubState::Stopped, 2)
        .await
        .expect("stop");
    store
        .subscribe_test(&sub("bob", Channel::Websocket, "l4"), 1)
        .await
        .expect("bob");

    // Bad input: clear errors.
    for bad in [
        sub("alice", Channel::Sms, "12ab"),
        sub("alice", Channel::Webhook, "ftp://x"),
        sub("", Channel::Websocket, "x"),
        sub("alice", Channel::Websocket, "has space"),
        NewSubscription {
            form: Some("wap-si".into()),
            ..sub("alice", Channel::Sms, "+123456")
        },
    ] {
        let e = store.subscribe_test(&bad, 1).await.expect_err("refused");
        assert!(e.to_string().starts_with("invalid request"), "{e}");
    }

    let event = live_event("v1", "alice");
    assert_eq!(store.handle_event(&event, 10).await.expect("event"), 3);
    assert_eq!(store.handle_event(&event, 11).await.expect("again"), 0);
    let rows = store.notifications(Some("v1"), None).await.expect("list");
    let mut addresses: Vec<&str> = rows.iter().map(|r| r.address.as_str()).collect();
    addresses.sort();
    assert_eq!(addresses, ["http://127.0.0.1:9/hook", "l1", "l2"]);
    assert!(rows.iter().all(|r| r.state == State::Queued));
    let payload = store.payload("v1.live").await.expect("payload");
    assert_eq!(payload.records, event.records);
    assert_eq!((payload.kind.as_str(), payload.body), ("live", None));

    // The SMS number confirms: active; a wrong code does nothing.
    assert!(
        store
            .confirm("+8613800138000", "nope", RULES, 3)
            .await
            .expect("c")
            .is_empty()
    );
    let code = pending.code.clone().expect("code");
    assert_eq!(
        store
            .confirm("8613800138000", &code, RULES, 3)
            .await
            .expect("confirm")
            .len(),
        1
    );
    let ready = common::live_event("v1", "alice");
    let ready = vshare_proxy::Event::new(
        vshare_proxy::EventKind::Ready,
        "v1",
        &ready.source_id,
        Some("alice"),
        ready.records,
    );
    assert_eq!(store.handle_event(&ready, 12).await.expect("ready"), 4);
}

/// `both`: require both to have claimed rows (PostgreSQL; SQLite serialises writers and one
/// may take everything while the other waits on the lock).
async fn two_dispatchers_claim_disjoint(url: &str, both: bool) {
    let a = Store::open(url).await.expect("open a");
    let b = Store::open(url).await.expect("open b");
    let n = 2000;
    let listeners: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
    a.bulk_active("alice", Channel::Websocket, "json", &listeners, 1)
        .await
        .expect("bulk");
    assert_eq!(
        a.handle_event(&live_event("v2", "alice"), 5)
            .await
            .expect("event"),
        n as u64
    );
    let run = |store: Store, owner: &'static str| async move {
        let mut got = Vec::new();
        loop {
            let rows = store
                .claim(&[Channel::Websocket], owner, 100, 60_000, 37)
                .await
                .expect("claim");
            if rows.is_empty() {
                break;
            }
            let done: Vec<(String, Transition)> = rows
                .iter()
                .map(|r| {
                    (
                        r.id.clone(),
                        Transition {
                            state: State::Sent,
                            attempts: 1,
                            next_attempt_at_ms: 100,
                            message_id: None,
                            error: None,
                        },
                    )
                })
                .collect();
            store.record(owner, &done, 100).await.expect("record");
            got.extend(rows.into_iter().map(|r| r.id));
        }
        got
    };
    let (ga, gb) = tokio::join!(
        tokio::spawn(run(a.clone(), "a")),
        tokio::spawn(run(b.clone(), "b"))
    );
    let (ga, gb) = (ga.expect("a"), gb.expect("b"));
    let sa: HashSet<_> = ga.iter().collect();
    let sb: HashSet<_> = gb.iter().collect();
    assert_eq!(sa.len(), ga.len(), "a claimed a row twice");
    assert_eq!(sb.len(), gb.len(), "b claimed a row twice");
    assert!(sa.is_disjoint(&sb), "a row was claimed by both");
    assert_eq!(ga.len() + gb.len(), n);
    assert!(
        !both || (!ga.is_empty() && !gb.is_empty()),
        "both dispatchers took part: {} / {}",
        ga.len(),
        gb.len()
    );
    assert_eq!(
        a.state_counts().await.expect("counts"),
        vec![("sent".to_string(), n as i64)]
    );
}

async fn leases_and_receipts(url: &str) {
    let s = Store::open(url).await.expect("open");
    s.bulk_active(
        "carol",
        Channel::Sms,
        "text",
        &["+111".into(), "+222".into()],
        1,
    )
    .await
    .expect("bulk");
    s.handle_event(&live_event("v3", "carol"), 1)
        .await
        .expect("event");
    let first = s
        .claim(&[Channel::Sms], "dead", 10, 100, 10)
        .await
        .expect("claim");
    assert_eq!(first.len(), 2);
    // Before the lease ends nobody else gets them.
    assert!(
        s.claim(&[Channel::Sms], "x", 50, 100, 10)
            .await
            .expect("c")
            .is_empty()
    );
    // One was handed to the SMSC before its dispatcher died: unconfirmed, not sent again.
    s.mark_handed_over("dead", &[first[0].id.clone()], 20)
        .await
        .expect("mark");
    let again = s
        .claim(&[Channel::Sms], "live", 200, 100, 10)
        .await
        .expect("reclaim");
    assert_eq!(
        again.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&first[1].id]
    );
    let all = s.notifications(Some("v3"), None).await.expect("list");
    let handed = all.iter().find(|r| r.id == first[0].id).expect("row");
    assert_eq!(handed.state, State::Unconfirmed);
    // The dead dispatcher's late record is ignored (it no longer holds the lease).
    let sent = |id: &str| {
        (
            id.to_string(),
            Transition {
                state: State::Sent,
                attempts: 1,
                next_attempt_at_ms: 0,
                message_id: Some("00000042".into()),
                error: None,
            },
        )
    };
    s.record("dead", &[sent(&first[1].id)], 210)
        .await
        .expect("stale");
    let row = |id: String| {
        let s = s.clone();
        async move {
            s.notifications(Some("v3"), None)
                .await
                .expect("list")
                .into_iter()
                .find(|r| r.id == id)
                .expect("row")
        }
    };
    assert_eq!(row(first[1].id.clone()).await.state, State::Sending);
    // The receipt comes before the submit_sm_resp is recorded; it is applied on record.
    s.receipt("00000042", true, 215).await.expect("receipt");
    s.record("live", &[sent(&first[1].id)], 220)
        .await
        .expect("record");
    let r = row(first[1].id.clone()).await;
    assert_eq!(r.state, State::Delivered);
    assert_eq!(r.smsc_message_id.as_deref(), Some("00000042"));
}

/// Receipts whose ids the outbox never learned settle `unconfirmed` rows of their destination,
/// the one handed over nearest the receipt's submit minute, within the window only; one that
/// comes before its row is known to be unconfirmed waits for it.
async fn receipts_settle_unconfirmed(url: &str) {
    let s = Store::open(url).await.expect("open");
    let numbers = ["+4410".to_string(), "+4420".to_string()];
    s.bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    const T0: i64 = 1_795_591_800_000; // a whole minute
    for v in ["v1", "v2"] {
        s.handle_event(&live_event(v, "alice"), T0 - 1_000)
            .await
            .expect("event");
    }
    // A dispatcher claims all four, hands v1's over at T0 and v2's 90 s later, and dies.
    let claimed = s
        .claim(&[Channel::Sms], "dead", T0, 100, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    for (v, at) in [("v1", T0), ("v2", T0 + 90_000)] {
        let ids: Vec<String> = claimed
            .iter()
            .filter(|c| c.video_id == v)
            .map(|c| c.id.clone())
            .collect();
        s.mark_handed_over("dead", &ids, at)
            .await
            .expect("hand over");
    }
    let origin = |n: &str, at: i64| ReceiptOrigin {
        address: n.into(),
        submitted_at_ms: at,
    };
    // +4420's receipt for v1 comes while the rows are still leased: it waits.
    s.receipt_from("m-20-v1", true, Some(&origin("+4420", T0)), T0 + 95_000)
        .await
        .expect("early receipt");
    // The lease runs out: a live dispatcher's claim finds all four unconfirmed and applies the
    // waiting receipt.
    let again = s
        .claim(&[Channel::Sms], "live", T0 + 200_000, 1_000, 10)
        .await
        .expect("claim");
    assert!(again.is_empty(), "unconfirmed rows are never sent again");
    // Ten minutes off: matches nothing.
    s.receipt_from(
        "m-far",
        true,
        Some(&origin("+4410", T0 - 600_000)),
        T0 + 210_000,
    )
    .await
    .expect("far receipt");
    // Submitted in the minute after T0: v2's hand-over (T0 + 90 s) is nearer than v1's.
    s.receipt_from(
        "m-10-v2",
        true,
        Some(&origin("+4410", T0 + 60_000)),
        T0 + 220_000,
    )
    .await
    .expect("receipt");
    s.receipt_from("m-10-v1", false, Some(&origin("+4410", T0)), T0 + 230_000)
        .await
        .expect("receipt");
    let rows = s.notifications(None, Some("alice")).await.expect("rows");
    let row = |v: &str, n: &str| {
        rows.iter()
            .find(|r| r.video_id == v && r.address == n)
            .expect("row")
            .clone()
    };
    let r = row("v2", "+4410");
    assert_eq!(r.state, State::Delivered);
    assert_eq!(r.smsc_message_id.as_deref(), Some("m-10-v2"));
    let r = row("v1", "+4410");
    assert_eq!(r.state, State::Failed, "UNDELIV settles it as failed");
    assert_eq!(r.smsc_message_id.as_deref(), Some("m-10-v1"));
    let r = row("v1", "+4420");
    assert_eq!(r.state, State::Delivered, "the waiting receipt applied");
    assert_eq!(r.smsc_message_id.as_deref(), Some("m-20-v1"));
    let r = row("v2", "+4420");
    assert_eq!(r.state, State::Unconfirmed, "no receipt for it");
    assert_eq!(r.smsc_message_id, None);

    // An intermediate receipt (ENROUTE) for it: the SMSC has the message, the row is `sent`;
    // the same receipt again changes nothing; the final one, matched by id, delivers it.
    let accepted = IncomingReceipt {
        message_id: "m-20-v2".into(),
        status: ReceiptStatus::Accepted,
        origin: Some(origin("+4420", T0 + 60_000)),
    };
    s.receipts(std::slice::from_ref(&accepted), T0 + 240_000)
        .await
        .expect("intermediate");
    let state = |v: &'static str, n: &'static str| {
        let s = s.clone();
        async move {
            s.notifications(None, Some("alice"))
                .await
                .expect("rows")
                .into_iter()
                .find(|r| r.video_id == v && r.address == n)
                .expect("row")
        }
    };
    let r = state("v2", "+4420").await;
    assert_eq!(r.state, State::Sent);
    assert_eq!(r.smsc_message_id.as_deref(), Some("m-20-v2"));
    s.receipts(std::slice::from_ref(&accepted), T0 + 241_000)
        .await
        .expect("repeat");
    assert_eq!(state("v2", "+4420").await.state, State::Sent);
    s.receipts(
        &[IncomingReceipt {
            status: ReceiptStatus::Delivered,
            ..accepted
        }],
        T0 + 250_000,
    )
    .await
    .expect("final");
    assert_eq!(state("v2", "+4420").await.state, State::Delivered);
    // A repeated receipt of a settled row settles nothing else.
    s.receipt_from("m-10-v1", false, Some(&origin("+4410", T0)), T0 + 260_000)
        .await
        .expect("repeat");
    assert_eq!(state("v1", "+4410").await.state, State::Failed);
    assert_eq!(state("v2", "+4410").await.state, State::Delivered);
}

/// Unconfirmed rows that no receipt settles within the grace period are queued again (and
/// `dead` when their attempts are spent); a receipt while another message to the same number
/// is in flight is not taken for the unconfirmed one.
async fn unconfirmed_rows_go_again_after_grace(url: &str) {
    let s = Store::open(url).await.expect("open");
    let numbers = ["+4610".to_string(), "+4620".to_string()];
    s.bulk_active("alice", Channel::Sms, "text", &numbers, 1)
        .await
        .expect("subs");
    const T0: i64 = 1_795_591_800_000;
    const GRACE: i64 = 5_000;
    s.handle_event(&live_event("v1", "alice"), T0 - 1_000)
        .await
        .expect("event");
    let claimed = s
        .claim(&[Channel::Sms], "dead", T0, 100, 10)
        .await
        .expect("claim");
    let ids: Vec<String> = claimed.iter().map(|c| c.id.clone()).collect();
    s.mark_handed_over("dead", &ids, T0)
        .await
        .expect("hand over");
    // The lease ran out: both unconfirmed, nothing to send.
    assert!(
        s.claim(&[Channel::Sms], "live", T0 + 1_000, 1_000, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // v2 for +4610 is being sent (handed over) when a receipt for +4610 comes: it may be
    // v2's, so it does not settle v1's unconfirmed row.
    s.handle_event(&live_event("v2", "alice"), T0 + 1_500)
        .await
        .expect("event 2");
    let v2 = s
        .claim(&[Channel::Sms], "live", T0 + 2_000, 60_000, 10)
        .await
        .expect("claim v2");
    assert_eq!(v2.len(), 2);
    let v2_4610 = v2.iter().find(|c| c.address == "+4610").expect("v2 row");
    s.mark_handed_over("live", std::slice::from_ref(&v2_4610.id), T0 + 2_000)
        .await
        .expect("hand over v2");
    let enroute = |id: &str, n: &str| IncomingReceipt {
        message_id: id.into(),
        status: ReceiptStatus::Accepted,
        origin: Some(ReceiptOrigin {
            address: n.into(),
            submitted_at_ms: T0,
        }),
    };
    s.receipts(&[enroute("m-v2", "+4610")], T0 + 2_100)
        .await
        .expect("receipt");
    let rows = |v: &'static str| {
        let s = s.clone();
        async move {
            let mut r = s.notifications(Some(v), None).await.expect("rows");
            r.sort_by(|a, b| a.address.cmp(&b.address));
            r
        }
    };
    assert_eq!(rows("v1").await[0].state, State::Unconfirmed);
    // It was v2's: recorded with that id, the waiting receipt is v2's.
    let sent = |id: &str, mid: &str| {
        (
            id.to_string(),
            Transition {
                state: State::Sent,
                attempts: 1,
                next_attempt_at_ms: T0,
                message_id: Some(mid.into()),
                error: None,
            },
        )
    };
    let v2_4620 = v2.iter().find(|c| c.address == "+4620").expect("v2 row");
    s.record(
        "live",
        &[sent(&v2_4610.id, "m-v2"), sent(&v2_4620.id, "m-v2b")],
        T0 + 2_200,
    )
    .await
    .expect("record v2");
    // +4620's v1 message did reach the SMSC: its receipt settles it.
    s.receipts(&[enroute("m-v1-4620", "+4620")], T0 + 3_000)
        .await
        .expect("receipt");
    // Not yet past the grace: nothing goes again.
    assert_eq!(
        s.requeue_unconfirmed(GRACE, 4, T0 + 1_000 + GRACE - 1)
            .await
            .expect("requeue"),
        0
    );
    assert_eq!(
        s.requeue_unconfirmed(GRACE, 4, T0 + 1_000 + GRACE)
            .await
            .expect("requeue"),
        1,
        "+4610's v1 row: no receipt of its own"
    );
    let v1 = rows("v1").await;
    assert_eq!(
        (v1[0].state, v1[1].state),
        (State::Queued, State::Sent),
        "{v1:?}"
    );
    assert_eq!(v1[1].smsc_message_id.as_deref(), Some("m-v1-4620"));
    let again = s
        .claim(&[Channel::Sms], "live", T0 + 7_000, 60_000, 10)
        .await
        .expect("claim again");
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].address.as_str(), again[0].attempts), ("+4610", 1));
    // Unconfirmed once more with its attempts spent: dead after the grace, not queued.
    s.record(
        "live",
        &[(
            again[0].id.clone(),
            Transition {
                state: State::Unconfirmed,
                attempts: 4,
                next_attempt_at_ms: T0 + 7_000,
                message_id: None,
                error: Some("connection lost".into()),
            },
        )],
        T0 + 7_000,
    )
    .await
    .expect("unconfirmed again");
    assert_eq!(
        s.requeue_unconfirmed(GRACE, 4, T0 + 7_000 + GRACE)
            .await
            .expect("requeue"),
        1
    );
    assert_eq!(rows("v1").await[0].state, State::Dead);
}

#[tokio::test]
async fn sqlite_unconfirmed_rows_go_again_after_grace() {
    let dir = tempfile::tempdir().expect("tmp");
    unconfirmed_rows_go_again_after_grace(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_unconfirmed_rows_go_again_after_grace() {
    unconfirmed_rows_go_again_after_grace(&fresh_postgres().await).await;
}

#[tokio::test]
async fn sqlite_receipts_settle_unconfirmed() {
    let dir = tempfile::tempdir().expect("tmp");
    receipts_settle_unconfirmed(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_receipts_settle_unconfirmed() {
    receipts_settle_unconfirmed(&fresh_postgres().await).await;
}

#[tokio::test]
async fn sqlite_fan_out_once() {
    let dir = tempfile::tempdir().expect("tmp");
    fan_out_once(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_dispatchers_claim_disjoint() {
    let dir = tempfile::tempdir().expect("tmp");
    two_dispatchers_claim_disjoint(&sqlite_url(&dir), false).await;
}

#[tokio::test]
async fn sqlite_leases_and_receipts() {
    let dir = tempfile::tempdir().expect("tmp");
    leases_and_receipts(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_fan_out_once() {
    fan_out_once(&fresh_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_dispatchers_claim_disjoint() {
    two_dispatchers_claim_disjoint(&fresh_postgres().await, true).await;
}

#[tokio::test]
async fn postgres_leases_and_receipts() {
    leases_and_receipts(&fresh_postgres().await).await;
}

/// Confirmation codes expire, allow `RULES.attempts` tries (counted before the compare, so
/// concurrent guesses cannot pass the budget), are not renewed while valid, and a subscription
/// made again gets a new id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_expire_have_an_attempt_budget_and_are_not_renewed_while_valid() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&sqlite_url(&dir)).await.expect("open");
    let req = NewSubscription {
        source: "alice".into(),
        channel: Channel::Sms,
        address: "+46700000009".into(),
        form: None,
    };
    let first = store.subscribe_test(&req, 0).await.expect("new");
    let code = first.code.clone().expect("code");
    // While the code is valid a repeat changes nothing and sends nothing.
    let mut admitted = false;
    let again = store
        .subscribe(&req, 1_000, RULES, |_| {
            admitted = true;
            Ok(())
        })
        .await
        .expect("repeat");
    assert_eq!(again, vshare_proxy::store::Subscribed::Exists);
    assert!(!admitted, "a repeat asked the SMS guard for another code");
    // Expired: the right code does nothing; a new request makes a new code and id.
    assert!(
        store
            .confirm_id(&first.id, &code, RULES, RULES.ttl_ms + 1)
            .await
            .expect("confirm")
            .is_none()
    );
    let second = store
        .subscribe_test(&req, RULES.ttl_ms + 1)
        .await
        .expect("renewed");
    assert_ne!(second.id, first.id, "the old id holds nothing now");
    // 20 concurrent wrong guesses: only the budget is checked; then the right code fails too.
    let now = RULES.ttl_ms + 2;
    let wrong = if second.code.as_deref() == Some("000000") {
        "000001"
    } else {
        "000000"
    };
    let guesses = (0..20).map(|_| {
        let store = store.clone();
        let id = second.id.clone();
        tokio::spawn(async move { store.confirm_id(&id, wrong, RULES, now).await })
    });
    for g in guesses {
        assert!(g.await.expect("task").expect("confirm").is_none());
    }
    let row = store
        .subscription(&second.id)
        .await
        .expect("row")
        .expect("sub");
    assert_eq!(row.state, SubState::PendingConfirmation);
    assert!(
        store
            .confirm_id(
                &second.id,
                second.code.as_deref().expect("code"),
                RULES,
                now
            )
            .await
            .expect("confirm")
            .is_none(),
        "the right code after the budget was spent"
    );
    // A fresh code confirms with the right code.
    let third = store
        .subscribe_test(&req, 2 * RULES.ttl_ms + 10)
        .await
        .expect("third");
    let active = store
        .confirm_id(
            &third.id,
            third.code.as_deref().expect("code"),
            RULES,
            2 * RULES.ttl_ms + 11,
        )
        .await
        .expect("confirm")
        .expect("active");
    assert_eq!(active.state, SubState::Active);
}
