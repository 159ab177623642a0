//! The share flow on one machine: compose → SMPP submit → `vshare smsc` → receiver bind →
//! reassemble → decode, for every form; store-and-forward; receipts; throttling.

use std::time::{Duration, Instant};

use vshare_attributes::{AttributeRecord, Kind};
use vshare_messaging::compose::{As, compose, to_smpp, to_tpdus};
use vshare_messaging::receive::{
    Received, decode_message, parse_hex_pdu, reassemble_all, user_data_of_sm,
};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_messaging::smsc::{Smsc, SmscOptions};
use vshare_smpp::pdu::esm;
use vshare_smpp::receipt::Receipt;
use vshare_smpp::{BindKind, Config};
use vshare_sms::reassembly::Reassembler;
use vshare_sms::split::ConcatRef;

fn records() -> Vec<AttributeRecord> {
    vec![
        AttributeRecord {
            kind: Kind::Vod,
            video_id: "v7Kq2".into(),
            url: "http://127.0.0.1:8080/vod/v7Kq2/video.mp4".into(),
            poster: String::new(),
            format: "mp4".into(),
            codecs: "avc1.64001F,mp4a.40.2".into(),
            width: 1280,
            height: 720,
            frame_rate: 30.0,
            bitrate: 2_500_000,
            size: 18_874_368,
            duration_ms: 62_040,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: 48_000,
            audio_channels: 2,
            title: "Harbour at dusk 日落".into(),
        },
        AttributeRecord {
            kind: Kind::Vod,
            video_id: "v7Kq2".into(),
            url: "http://127.0.0.1:8080/vod/v7Kq2/index.m3u8".into(),
            poster: String::new(),
            format: "hls".into(),
            codecs: "avc1.64001F,mp4a.40.2".into(),
            width: 1280,
            height: 720,
            frame_rate: 30.0,
            bitrate: 2_500_000,
            size: 0,
            duration_ms: 62_040,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: 48_000,
            audio_channels: 2,
            title: String::new(),
        },
    ]
}

async fn smsc(opts: SmscOptions) -> String {
    let (addr, _h) = Smsc::new(opts).spawn("127.0.0.1:0").await.unwrap();
    addr.to_string()
}

fn receiver_opts(addr: &str, number: &str) -> ClientOptions {
    let mut o = ClientOptions::new(addr, BindKind::Receiver, "phone", "pw");
    o.address_range = number.into();
    o
}

async fn receive_message(rx: &mut Client, from: &str) -> Received {
    let mut r = Reassembler::new(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sm = rx
            .recv(Some(deadline))
            .await
            .unwrap()
            .expect("no message within 10 s");
        assert_eq!(sm.source.display(), from);
        let (dcs, ud) = user_data_of_sm(&sm).unwrap();
        if let Some(m) = r.push(Instant::now(), from, dcs, ud) {
            return decode_message(&m).unwrap();
        }
    }
}

#[tokio::test]
async fn every_form_travels_through_the_smsc() {
    let addr = smsc(SmscOptions::default()).await;
    let mut rx = Client::connect(&receiver_opts(&addr, "+8613900139000"))
        .await
        .unwrap();
    let mut tx = Client::connect(&ClientOptions::new(
        &addr,
        BindKind::Transmitter,
        "vshare",
        "pw",
    ))
    .await
    .unwrap();
    for (i, form) in [As::Text, As::Tlv, As::Xml, As::WapSi, As::WapSl]
        .into_iter()
        .enumerate()
    {
        let seg = compose(&records(), form, ConcatRef::Eight(i as u8), 1).unwrap();
        let sms = to_smpp("+8613800138000", "+8613900139000", &seg, false).unwrap();
        let n = sms.len();
        let ids = tx.submit_many(sms).await.unwrap();
        assert!(ids.iter().all(Result::is_ok), "{form:?}: {ids:?}");
        let got = receive_message(&mut rx, "+8613800138000").await;
        match (form, &got) {
            (As::Text | As::Tlv | As::Xml, Received::Records { records: r, .. }) => {
                assert_eq!(r, &records(), "{form:?}")
            }
            (As::WapSi, Received::ServiceIndication { si, records: r }) => {
                assert_eq!(si.href.as_deref(), Some(records()[0].url.as_str()));
                assert_eq!(r, &records()[..1]);
            }
            (As::WapSl, Received::ServiceLoading { record, .. }) => {
                assert_eq!(record.url, records()[0].url);
                assert_eq!(record.format, "mp4");
            }
            other => panic!("{form:?} arrived as {other:?}"),
        }
        eprintln!("{form:?}: {n} part(s)");
    }
}

#[tokio::test]
async fn stored_until_the_receiver_binds_and_receipts_come_back() {
    let addr = smsc(SmscOptions::default()).await;
    // The sender binds as transceiver so receipts come back on the same bind.
    let mut tx = Client::connect(&ClientOptions::new(
        &addr,
        BindKind::Transceiver,
        "vshare",
        "pw",
    ))
    .await
    .unwrap();
    let seg = compose(&records(), As::Text, ConcatRef::Sixteen(0x1234), 1).unwrap();
    assert!(seg.parts.len() >= 2);
    let sms = to_smpp("+8613800138000", "+8613700137000", &seg, true).unwrap();
    let ids = tx.submit_many(sms).await.unwrap();
    let ids: Vec<String> = ids.into_iter().map(Result::unwrap).collect();
    // Nobody is bound for the number yet: stored. Now the phone comes online.
    let mut rx = Client::connect(&receiver_opts(&addr, "8613700137000"))
        .await
        .unwrap();
    let got = receive_message(&mut rx, "+8613800138000").await;
    assert_eq!(got.records(), records());
    // One receipt per part, DELIVRD, for the ids we were given.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < ids.len() {
        let sm = tx.recv(Some(deadline)).await.unwrap().expect("receipt");
        assert_eq!(sm.esm_class & esm::DELIVERY_RECEIPT, esm::DELIVERY_RECEIPT);
        let r = Receipt::parse(std::str::from_utf8(&sm.short_message).unwrap()).unwrap();
        assert_eq!(r.stat, "DELIVRD");
        seen.push(r.id);
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn throttled_submits_are_retried_not_lost() {
    let addr = smsc(SmscOptions {
        throttle_every: Some(3),
        ..SmscOptions::default()
    })
    .await;
    let mut opts = ClientOptions::new(&addr, BindKind::Transmitter, "vshare", "pw");
    opts.config = Config {
        window: 8,
        backoff_initial: Duration::from_millis(5),
        ..Config::default()
    };
    let mut tx = Client::connect(&opts).await.unwrap();
    let mut rx = Client::connect(&receiver_opts(&addr, "+8613900139000"))
        .await
        .unwrap();
    let seg = compose(&records(), As::Xml, ConcatRef::Eight(9), 1).unwrap();
    let sms = to_smpp("+8613800138000", "+8613900139000", &seg, false).unwrap();
    let ids = tx.submit_many(sms).await.unwrap();
    assert!(ids.iter().all(Result::is_ok), "{ids:?}");
    assert_eq!(
        receive_message(&mut rx, "+8613800138000").await.records(),
        records()
    );
}

#[tokio::test]
async fn wrong_password_and_no_smsc_are_clear_errors() {
    let addr = smsc(SmscOptions {
        password: Some("right".into()),
        ..SmscOptions::default()
    })
    .await;
    let e = Client::connect(&ClientOptions::new(
        &addr,
        BindKind::Transmitter,
        "vshare",
        "wrong",
    ))
    .await
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .contains("refused the bind: command_status 0x0000000E"),
        "{e}"
    );
    let mut o = ClientOptions::new("127.0.0.1:1", BindKind::Transmitter, "vshare", "pw");
    o.attempts = 2;
    o.retry_backoff = Duration::from_millis(10);
    let e = Client::connect(&o).await.err().unwrap();
    assert!(
        format!("{e:#}").contains("connecting to the SMSC at 127.0.0.1:1"),
        "{e:#}"
    );
}

#[test]
fn printed_pdus_open_again() {
    for form in [As::Text, As::Tlv, As::Xml, As::WapSi] {
        let seg = compose(&records(), form, ConcatRef::Eight(3), 1).unwrap();
        let pdus = to_tpdus("+8613900139000", &seg, 0).unwrap();
        let mut parts: Vec<_> = pdus
            .iter()
            .map(|p| parse_hex_pdu(&vshare_sms::hex::encode(p)).unwrap())
            .collect();
        parts.reverse();
        let msgs = reassemble_all(parts, Instant::now());
        assert_eq!(msgs.len(), 1);
        let got = decode_message(&msgs[0]).unwrap();
        let want = if form == As::WapSi {
            records()[..1].to_vec()
        } else {
            records()
        };
        assert_eq!(got.records(), want, "{form:?}");
    }
}
