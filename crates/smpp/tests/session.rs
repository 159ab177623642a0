//! The session state machine driven by hand, both ends in one test, time passed in.

use std::time::{Duration, Instant};

use vshare_smpp::pdu::{Body, Pdu, Sm};
use vshare_smpp::{BindKind, Config, Event, Session, SessionError, State, status};

fn pump(a: &mut Session, b: &mut Session, now: Instant) -> usize {
    let mut n = 0;
    while let Some(bytes) = a.poll_transmit() {
        n += bytes.len();
        b.handle_input(&bytes, now).unwrap();
    }
    n
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn bound_pair(config: Config, kind: BindKind, now: Instant) -> (Session, Session) {
    let mut esme = Session::esme(config.clone());
    let mut smsc = Session::smsc(config);
    esme.bind(kind, "vshare", "pw", "8613800138000", now);
    pump(&mut esme, &mut smsc, now);
    let ev = events(&mut smsc);
    let Event::BindRequest {
        sequence,
        kind: k,
        bind,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*k, kind);
    assert_eq!(bind.address_range, "8613800138000");
    smsc.accept_bind(*sequence, "dev-smsc");
    pump(&mut smsc, &mut esme, now);
    assert_eq!(
        events(&mut esme),
        vec![Event::Bound {
            kind,
            system_id: "dev-smsc".into()
        }]
    );
    (esme, smsc)
}

fn submits(smsc: &mut Session) -> Vec<u32> {
    events(smsc)
        .into_iter()
        .filter_map(|e| match e {
            Event::Submit { sequence, .. } => Some(sequence),
            _ => None,
        })
        .collect()
}

#[test]
fn window_limits_outstanding_submits() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(
        Config {
            window: 3,
            ..Config::default()
        },
        BindKind::Transmitter,
        now,
    );
    for tag in 0..10 {
        esme.submit(tag, Sm::text("+1", "+2", b"x"), now);
    }
    assert_eq!((esme.in_flight(), esme.queued()), (3, 7));
    pump(&mut esme, &mut smsc, now);
    let seqs = submits(&mut smsc);
    assert_eq!(seqs.len(), 3);
    smsc.respond_submit(seqs[1], 0, "m1");
    pump(&mut smsc, &mut esme, now);
    assert_eq!(
        events(&mut esme),
        vec![Event::Submitted {
            tag: 1,
            message_id: "m1".into()
        }]
    );
    assert_eq!((esme.in_flight(), esme.queued()), (3, 6));
    pump(&mut esme, &mut smsc, now);
    assert_eq!(submits(&mut smsc).len(), 1);
}

#[test]
fn throttling_backs_off_and_retries() {
    let now = Instant::now();
    let cfg = Config {
        window: 1,
        backoff_initial: Duration::from_millis(100),
        max_retries: 2,
        ..Config::default()
    };
    let (mut esme, mut smsc) = bound_pair(cfg, BindKind::Transceiver, now);
    esme.submit(7, Sm::text("+1", "+2", b"x"), now);
    esme.submit(8, Sm::text("+1", "+2", b"y"), now);
    pump(&mut esme, &mut smsc, now);
    let s = submits(&mut smsc);
    smsc.respond_submit(s[0], status::THROTTLED, "");
    pump(&mut smsc, &mut esme, now);
    let retry = now + Duration::from_millis(100);
    assert_eq!(
        events(&mut esme),
        vec![Event::Throttled {
            tag: 7,
            status: 0x58,
            retry_at: retry
        }]
    );
    // Nothing goes out during the backoff, not even the next message.
    assert_eq!(pump(&mut esme, &mut smsc, now), 0);
    assert_eq!(esme.poll_timeout(), Some(retry));
    esme.handle_timeout(retry);
    pump(&mut esme, &mut smsc, retry);
    let s = submits(&mut smsc);
    assert_eq!(s.len(), 1);
    // Queue full: the backoff doubles.
    smsc.respond_submit(s[0], status::MSG_QUEUE_FULL, "");
    pump(&mut smsc, &mut esme, retry);
    let retry2 = retry + Duration::from_millis(200);
    assert_eq!(
        events(&mut esme),
        vec![Event::Throttled {
            tag: 7,
            status: 0x14,
            retry_at: retry2
        }]
    );
    esme.handle_timeout(retry2);
    pump(&mut esme, &mut smsc, retry2);
    let s = submits(&mut smsc);
    // Third refusal exceeds max_retries = 2: failed for good, and the next message goes.
    smsc.respond_submit(s[0], status::THROTTLED, "");
    pump(&mut smsc, &mut esme, retry2);
    assert_eq!(
        events(&mut esme),
        vec![Event::Failed {
            tag: 7,
            status: 0x58
        }]
    );
    pump(&mut esme, &mut smsc, retry2);
    let s = submits(&mut smsc);
    smsc.respond_submit(s[0], 0, "m8");
    pump(&mut smsc, &mut esme, retry2);
    assert_eq!(
        events(&mut esme),
        vec![Event::Submitted {
            tag: 8,
            message_id: "m8".into()
        }]
    );
}

#[test]
fn timeouts_and_keepalive() {
    let now = Instant::now();
    let cfg = Config {
        response_timeout: Duration::from_secs(5),
        enquire_link_interval: Duration::from_secs(30),
        ..Config::default()
    };
    let (mut esme, mut smsc) = bound_pair(cfg, BindKind::Transmitter, now);
    esme.submit(1, Sm::text("+1", "+2", b"x"), now);
    pump(&mut esme, &mut smsc, now);
    assert_eq!(esme.poll_timeout(), Some(now + Duration::from_secs(5)));
    esme.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(events(&mut esme), vec![Event::TimedOut { tag: 1 }]);
    assert_eq!(esme.in_flight(), 0);
    // Silence: an enquire_link goes out; the SMSC answers it by itself.
    let t = now + Duration::from_secs(30);
    assert_eq!(esme.poll_timeout(), Some(t));
    esme.handle_timeout(t);
    pump(&mut esme, &mut smsc, t);
    pump(&mut smsc, &mut esme, t);
    assert_eq!(esme.state(), State::Bound(BindKind::Transmitter));
    // No answer this time: the link is dead.
    let t2 = t + Duration::from_secs(30);
    esme.handle_timeout(t2);
    let _ = esme.poll_transmit();
    esme.handle_timeout(t2 + Duration::from_secs(5));
    assert_eq!(events(&mut esme), vec![Event::LinkDead]);
    assert_eq!(esme.state(), State::Closed);
}

#[test]
fn smsc_delivers_to_a_receiver_and_refuses_unbound_submits() {
    let now = Instant::now();
    // A submit before bind is refused with ESME_RINVBNDSTS.
    let mut smsc = Session::smsc(Config::default());
    let pdu = Pdu::new(1, Body::SubmitSm(Sm::text("+1", "+2", b"x")))
        .encode()
        .unwrap();
    smsc.handle_input(&pdu, now).unwrap();
    let out = Pdu::decode(&smsc.poll_transmit().unwrap()).unwrap();
    assert_eq!((out.status, out.sequence), (status::INVALID_BIND_STATUS, 1));

    let (mut esme, mut smsc) = bound_pair(Config::default(), BindKind::Receiver, now);
    smsc.submit(
        42,
        Sm::text("+8613800138000", "+8613900139000", b"hello"),
        now,
    );
    pump(&mut smsc, &mut esme, now);
    let ev = events(&mut esme);
    let Event::Deliver { sm } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(sm.short_message, b"hello");
    pump(&mut esme, &mut smsc, now);
    assert_eq!(
        events(&mut smsc),
        vec![Event::Submitted {
            tag: 42,
            message_id: String::new()
        }]
    );
    // A receiver may not submit.
    esme.submit(1, Sm::text("+1", "+2", b"x"), now);
    assert_eq!(esme.poll_transmit(), None);
    // Unbind from the SMSC side.
    smsc.unbind(now);
    pump(&mut smsc, &mut esme, now);
    pump(&mut esme, &mut smsc, now);
    assert_eq!(events(&mut esme), vec![Event::Unbound]);
    assert_eq!(events(&mut smsc), vec![Event::Unbound]);
    assert_eq!(smsc.state(), State::Closed);
}

#[test]
fn bad_pdus_get_generic_nack_and_broken_framing_ends_the_session() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(Config::default(), BindKind::Transceiver, now);
    // A submit_sm whose body is cut short, split across two reads.
    let mut bad = Pdu::new(77, Body::SubmitSm(Sm::text("+1", "+2", b"x")))
        .encode()
        .unwrap();
    bad.truncate(30);
    bad[..4].copy_from_slice(&30u32.to_be_bytes());
    smsc.handle_input(&bad[..10], now).unwrap();
    smsc.handle_input(&bad[10..], now).unwrap();
    let ev = events(&mut smsc);
    assert!(matches!(ev[0], Event::BadPdu { .. }), "{ev:?}");
    let nack = Pdu::decode(&smsc.poll_transmit().unwrap()).unwrap();
    assert_eq!((nack.body, nack.sequence), (Body::GenericNack, 77));
    // An unknown command gets generic_nack ESME_RINVCMDID.
    let other = Pdu::new(
        78,
        Body::Other {
            command_id: 0x0000_0103,
            body: vec![],
        },
    )
    .encode()
    .unwrap();
    smsc.handle_input(&other, now).unwrap();
    let nack = Pdu::decode(&smsc.poll_transmit().unwrap()).unwrap();
    assert_eq!(
        (nack.status, nack.sequence),
        (status::INVALID_COMMAND_ID, 78)
    );
    // A length below 16 cannot be resynchronised.
    assert!(matches!(
        esme.handle_input(&[0, 0, 0, 3, 0, 0, 0, 0], now),
        Err(SessionError::Framing(_))
    ));
    assert_eq!(esme.state(), State::Closed);
}

#[test]
fn unanswered_messages_survive_for_a_new_session() {
    let now = Instant::now();
    let (mut esme, mut smsc) = bound_pair(
        Config {
            window: 2,
            ..Config::default()
        },
        BindKind::Transmitter,
        now,
    );
    for tag in 0..5 {
        esme.submit(tag, Sm::text("+1", "+2", &[tag as u8]), now);
    }
    pump(&mut esme, &mut smsc, now);
    let (queued, in_flight) = esme.take_unanswered();
    assert_eq!(
        queued.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(
        in_flight.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [0, 1]
    );
}

#[test]
fn bind_refused() {
    let now = Instant::now();
    let mut esme = Session::esme(Config::default());
    let mut smsc = Session::smsc(Config::default());
    esme.bind(BindKind::Transmitter, "vshare", "bad", "", now);
    pump(&mut esme, &mut smsc, now);
    let Some(Event::BindRequest { sequence, .. }) = smsc.poll_event() else {
        panic!()
    };
    smsc.reject_bind(sequence, status::INVALID_PASSWORD);
    pump(&mut smsc, &mut esme, now);
    assert_eq!(
        events(&mut esme),
        vec![Event::BindFailed {
            status: status::INVALID_PASSWORD
        }]
    );
    assert_eq!(esme.state(), State::Open);
}
