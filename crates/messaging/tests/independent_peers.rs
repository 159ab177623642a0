//! Against SMPP peers we did not write: the `smpp34` Python package's server as the SMSC for our
//! client, and `smpplib` clients as the ESMEs of our SMSC. CI installs both (`.ci/run`); if
//! Python or a package is missing the test fails naming it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use vshare_attributes::Kind;
use vshare_messaging::compose::{As, compose, to_smpp};
use vshare_messaging::receive::{Received, decode_message, user_data_of_sm};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_messaging::smsc::{Smsc, SmscOptions};
use vshare_smpp::pdu::Sm;
use vshare_smpp::{BindKind, Config};
use vshare_sms::reassembly::Reassembler;
use vshare_sms::split::ConcatRef;
use vshare_testkit::net::free_port;

fn python() -> String {
    std::env::var("VSHARE_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn record() -> vshare_attributes::AttributeRecord {
    vshare_attributes::AttributeRecord {
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
        title: "A long title so that the push needs two short messages to travel".into(),
    }
}

const SMPP34_SMSC: &str = r#"
import asyncio, json, sys, smpp34
async def main():
    srv = smpp34.Server('127.0.0.1', int(sys.argv[1]), system_id='py-smsc')
    await srv.start()
    print('READY', flush=True)
    n = 0
    while True:
        ev = await srv.next()
        if isinstance(ev, smpp34.SubmitSmEvent):
            n += 1
            if n == 1:
                ev.reject(smpp34.ESME_RTHROTTLED)
                print(json.dumps({'throttled': n}), flush=True)
                continue
            ev.accept('py%d' % n)
            print(json.dumps({'submit': n, 'src': ev.source_addr, 'dst': ev.destination_addr,
                              'esm': ev.esm_class, 'dc': ev.data_coding, 'sm': ev.short_message.hex()}), flush=True)
        elif isinstance(ev, smpp34.Esme):
            print(json.dumps({'bind': ev.system_id, 'rx': ev.can_receive}), flush=True)
            if ev.can_receive:
                text = b'http://127.0.0.1:8080/vod/abc/video.mp4\nVS1 k=vod;id=abc;f=mp4;sz=1234\n'
                r = await ev.deliver_sm('8613900139000', text, source_addr='8613800138000',
                                        source_addr_ton=1, source_addr_npi=1, dest_addr_ton=1, dest_addr_npi=1,
                                        data_coding=0)
                print(json.dumps({'delivered': r.is_success}), flush=True)
asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_against_the_smpp34_smsc() {
    let port = free_port();
    let mut child = tokio::process::Command::new(python())
        .args(["-c", SMPP34_SMSC, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with the smpp34 package is needed (see .ci/run)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some("READY"),
        "smpp34 server did not start"
    );
    let addr = format!("127.0.0.1:{port}");

    // Submit a two-part WAP SI; the first submit is throttled and must be retried.
    let mut opts = ClientOptions::new(&addr, BindKind::Transmitter, "vshare", "pw");
    opts.config = Config {
        backoff_initial: Duration::from_millis(20),
        ..Config::default()
    };
    let mut tx = Client::connect(&opts).await.unwrap();
    let seg = compose(&[record()], As::WapSi, ConcatRef::Eight(0x42), 1).unwrap();
    assert_eq!(seg.parts.len(), 2);
    let sms = to_smpp("+8613800138000", "+8613900139000", &seg, false).unwrap();
    let ids = tx.submit_many(sms.clone()).await.unwrap();
    let mut ids: Vec<String> = ids.into_iter().map(Result::unwrap).collect();
    // Part 1 was throttled and retried after part 2 went through.
    ids.sort();
    assert_eq!(ids, ["py2", "py3"]);

    // What the independent SMSC received reassembles into our SI.
    let mut r = Reassembler::new(Duration::from_secs(30));
    let mut got = None;
    let mut throttled = false;
    while got.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v.get("throttled").is_some() {
            throttled = true;
            continue;
        }
        if v.get("submit").is_none() {
            continue;
        }
        assert_eq!(v["dst"], "8613900139000");
        assert_eq!(v["esm"], 0x40);
        assert_eq!(v["dc"], 4);
        let bytes = vshare_sms::hex::decode(v["sm"].as_str().unwrap()).unwrap();
        let sm = Sm {
            esm_class: 0x40,
            data_coding: 4,
            short_message: bytes,
            ..Sm::default()
        };
        let (dcs, ud) = user_data_of_sm(&sm).unwrap();
        got = r.push(Instant::now(), "+8613800138000", dcs, ud);
    }
    assert!(throttled);
    let Received::ServiceIndication { si, records } = decode_message(&got.unwrap()).unwrap() else {
        panic!()
    };
    assert_eq!(si.href.as_deref(), Some(record().url.as_str()));
    assert_eq!(records, vec![record()]);

    // Their deliver_sm, decoded by us.
    let mut o = ClientOptions::new(&addr, BindKind::Receiver, "phone", "pw");
    o.address_range = "8613900139000".into();
    let mut rx = Client::connect(&o).await.unwrap();
    let sm = rx
        .recv(Some(Instant::now() + Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("deliver_sm from smpp34");
    let (dcs, ud) = user_data_of_sm(&sm).unwrap();
    let m = Reassembler::new(Duration::from_secs(1))
        .push(Instant::now(), "x", dcs, ud)
        .unwrap();
    let recs = decode_message(&m).unwrap().records();
    assert_eq!(recs[0].video_id, "abc");
    assert_eq!(recs[0].size, 1234);
    child.kill().await.ok();
}

const SMPPLIB_ESMES: &str = r#"
import json, sys
import smpplib.client, smpplib.smpp as s, smpplib.consts as k
port = int(sys.argv[1])
tx = smpplib.client.Client('127.0.0.1', port, allow_unknown_opt_params=True)
tx.connect()
tx.bind_transceiver(system_id='pylib', password='pw')
ids = []
def on_sent(pdu):
    ids.append(pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else pdu.message_id)
tx.set_message_sent_handler(on_sent)
udh = bytes([5, 0, 3, 0x77, 2])
tx.send_message(source_addr_ton=1, source_addr_npi=1, source_addr='8613800138000',
                dest_addr_ton=1, dest_addr_npi=1, destination_addr='8613900139000',
                short_message=udh + bytes([1]) + b'http://127.0.0.1:8080/vod/x/video.mp4\n',
                esm_class=0x40, data_coding=0, registered_delivery=1)
tx.send_message(source_addr_ton=1, source_addr_npi=1, source_addr='8613800138000',
                dest_addr_ton=1, dest_addr_npi=1, destination_addr='8613900139000',
                short_message=udh + bytes([2]) + b'VS1 k=vod;id=x;f=mp4;sz=99\n',
                esm_class=0x40, data_coding=0, registered_delivery=1)
while len(ids) < 2:
    tx.read_once()
rx = smpplib.client.Client('127.0.0.1', port, allow_unknown_opt_params=True)
rx.connect()
got = []
def on_rx(pdu):
    got.append({'src': pdu.source_addr.decode(), 'dst': pdu.destination_addr.decode(), 'esm': pdu.esm_class,
                'sm': pdu.short_message.hex()})
rx.set_message_received_handler(on_rx)
rx.bind_receiver(system_id='phone', password='pw', address_range='8613900139000')
while len(got) < 2:
    rx.read_once()
receipts = []
tx.set_message_received_handler(lambda pdu: receipts.append(pdu.short_message.decode()))
while len(receipts) < 2:
    tx.read_once()
print(json.dumps({'ids': ids, 'got': got, 'receipts': receipts}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpplib_esmes_against_our_smsc() {
    let (addr, _h) = Smsc::new(SmscOptions::default())
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(python())
            .args(["-c", SMPPLIB_ESMES, &addr.port().to_string()])
            .output(),
    )
    .await
    .expect("smpplib script hung")
    .expect("python3 with the smpplib package is needed (see .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ids"].as_array().unwrap().len(), 2);
    let got = v["got"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    let mut r = Reassembler::new(Duration::from_secs(30));
    let mut msg = None;
    for g in got {
        assert_eq!(g["src"], "8613800138000");
        assert_eq!(g["dst"], "8613900139000");
        let sm = Sm {
            esm_class: g["esm"].as_u64().unwrap() as u8,
            short_message: vshare_sms::hex::decode(g["sm"].as_str().unwrap()).unwrap(),
            ..Sm::default()
        };
        let (dcs, ud) = user_data_of_sm(&sm).unwrap();
        msg = r.push(Instant::now(), "a", dcs, ud).or(msg);
    }
    let recs = decode_message(&msg.unwrap()).unwrap().records();
    assert_eq!((recs[0].video_id.as_str(), recs[0].size), ("x", 99));
    for (receipt, id) in v["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["ids"].as_array().unwrap())
    {
        let r = receipt.as_str().unwrap();
        assert!(r.contains("stat:DELIVRD"), "{r}");
        assert!(
            v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| r.starts_with(&format!("id:{} ", i.as_str().unwrap()))),
            "{r} / {id}"
        );
    }
}
