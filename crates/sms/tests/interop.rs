//! Our TPDUs decoded by independent implementations (gammu, smspdudecoder, python-messaging,
//! tshark's gsm_sms dissector), and theirs decoded by us. The tools are installed by CI
//! (`.ci/run`); a missing tool fails the test with its name.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vshare_sms::reassembly::Reassembler;
use vshare_sms::split::{ConcatRef, split_binary, split_text};
use vshare_sms::{
    Address, Alphabet, Dcs, Deliver, Direction, StatusReport, Submit, Timestamp, Tpdu, UserData,
    hex,
};

/// Python with the gammu module (Debian's python3-gammu lives in the system interpreter).
fn python_gammu() -> String {
    std::env::var("VSHARE_PYTHON_GAMMU").unwrap_or_else(|_| "/usr/bin/python3".into())
}
/// Python with the pip packages python-messaging and smspdudecoder.
fn python() -> String {
    std::env::var("VSHARE_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn run(program: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed for this test (see .ci/run): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ts() -> Timestamp {
    Timestamp {
        year: 26,
        month: 11,
        day: 25,
        hour: 7,
        minute: 30,
        second: 5,
        tz_quarters: 32,
    }
}

fn sample_submits() -> Vec<(Vec<u8>, String)> {
    let to = Address::parse("+8613800138000").unwrap();
    let mut out = Vec::new();
    // GSM 7-bit with extension characters.
    let text = "Watch [live] {now} €5 ~ http://h/v_1".to_string();
    let seg = split_text(&text, None, ConcatRef::Eight(1)).unwrap();
    let s = Submit::new(to.clone(), seg.dcs, seg.parts[0].clone()).with_reference(7);
    out.push((s.encode().unwrap(), text));
    // UCS-2, concatenated with a 16-bit reference.
    let text = "视频分享：".repeat(20);
    let seg = split_text(&text, None, ConcatRef::Sixteen(0xBEEF)).unwrap();
    assert_eq!(seg.parts.len(), 2);
    for (i, p) in seg.parts.iter().enumerate() {
        let s = Submit::new(to.clone(), seg.dcs, p.clone()).with_reference(i as u8);
        out.push((s.encode().unwrap(), p.text(Alphabet::Ucs2).unwrap()));
    }
    // GSM 7-bit concatenated with an 8-bit reference (fill bits after the header).
    let text = "0123456789".repeat(20);
    let seg = split_text(&text, None, ConcatRef::Eight(0x5A)).unwrap();
    for p in &seg.parts {
        let s = Submit::new(to.clone(), seg.dcs, p.clone());
        out.push((s.encode().unwrap(), p.text(Alphabet::Gsm7).unwrap()));
    }
    out
}

#[test]
fn vectors_from_other_implementations_decode() {
    // SMS-DELIVER "hellohello" (the textbook example, SCA +27381000015).
    let pdu =
        hex::decode("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
            .unwrap();
    let (sca, t) = Tpdu::decode_with_sca(&pdu, Direction::MobileTerminated).unwrap();
    assert_eq!(sca.unwrap().to_string(), "+27381000015");
    let Tpdu::Deliver(d) = t else {
        panic!("not a DELIVER")
    };
    assert_eq!(d.originator.value, "27838890001");
    assert_eq!(d.user_data.text(Alphabet::Gsm7).unwrap(), "hellohello");
    assert_eq!(
        (d.timestamp.year, d.timestamp.month, d.timestamp.day),
        (99, 3, 29)
    );
    assert_eq!(
        (d.timestamp.hour, d.timestamp.minute, d.timestamp.second),
        (15, 16, 59)
    );
    assert_eq!(d.timestamp.tz_quarters, 8);
    assert_eq!(d.encode().unwrap(), pdu[8..]);

    // smspdudecoder's README vector.
    let pdu =
        hex::decode("07916407058099F9040B916407950303F100008921222140140004D4E2940A").unwrap();
    let (_, Tpdu::Deliver(d)) = Tpdu::decode_with_sca(&pdu, Direction::MobileTerminated).unwrap()
    else {
        panic!()
    };
    assert_eq!(d.originator.to_string(), "+46705930301");
    assert_eq!(d.user_data.text(Alphabet::Gsm7).unwrap(), "TEST");

    // A status report as modems print it (MR 214, delivered).
    let pdu = hex::decode("0006D60B911326880736F4111011719551401110117195714000").unwrap();
    let (_, Tpdu::StatusReport(sr)) =
        Tpdu::decode_with_sca(&pdu, Direction::MobileTerminated).unwrap()
    else {
        panic!()
    };
    assert_eq!(sr.message_reference, 214);
    assert_eq!(sr.recipient.to_string(), "+31628870634");
    assert!(sr.delivered());
    assert_eq!(sr.discharge_time.second, 17);
    assert_eq!(sr.encode().unwrap(), pdu[1..]);

    // Two SMS-SUBMIT parts python-messaging 0.5.13 wrote for "hello " × 40.
    let parts = [
        "0041000D91683108108300F00000A0050003000201D06536FB0D4297D9EC37085D66B3DF207499CD7E83D06536FB0D4297D9EC37085D66B3DF207499CD7E83D06536FB0D4297D9EC37085D66B3DF207499CD7E83D06536FB0D4297D9EC37085D66B3DF207499CD7E83D06536FB0D4297D9EC37085D66B3DF207499CD7E83D06536FB0D4297D9EC37085D66B3DF207499CD7E83D06536FB0D4297D9",
        "0041000D91683108108300F000005E050003000202D86F10BACC66BF41E8329BFD06A1CB6CF61B842EB3D96F10BACC66BF41E8329BFD06A1CB6CF61B842EB3D96F10BACC66BF41E8329BFD06A1CB6CF61B842EB3D96F10BACC66BF41E8329BFD0601",
    ];
    let mut r = Reassembler::new(Duration::from_secs(60));
    let now = Instant::now();
    let mut done = None;
    for p in parts.iter().rev() {
        let (_, Tpdu::Submit(s)) =
            Tpdu::decode_with_sca(&hex::decode(p).unwrap(), Direction::MobileOriginated).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.destination.to_string(), "+8613800138000");
        done = r.push(now, "me", s.dcs, s.user_data).or(done);
    }
    assert_eq!(done.unwrap().text().unwrap(), "hello ".repeat(40));
}

#[test]
fn gammu_decodes_our_pdus() {
    let mut lines = String::new();
    let submits = sample_submits();
    for (pdu, _) in &submits {
        lines.push_str(&format!("00{}\n", hex::encode(pdu)));
    }
    let deliver = Deliver {
        more_messages: false,
        loop_prevention: false,
        status_report_indication: false,
        reply_path: false,
        originator: Address::parse("+8613900139000").unwrap(),
        pid: 0,
        dcs: Dcs::GSM7,
        timestamp: ts(),
        user_data: UserData::from_text("Open http://h/v.mp4", Alphabet::Gsm7, None).unwrap(),
    };
    lines.push_str(&format!("00{}\n", hex::encode(&deliver.encode().unwrap())));
    let sr = StatusReport {
        more_messages: false,
        qualifier_command: false,
        message_reference: 99,
        recipient: Address::parse("+8613900139000").unwrap(),
        timestamp: ts(),
        discharge_time: Timestamp { second: 9, ..ts() },
        status: 0,
        pid: None,
        dcs: None,
        user_data: None,
    };
    lines.push_str(&format!("00{}\n", hex::encode(&sr.encode().unwrap())));
    let script = r#"
import sys, json, gammu
out = []
for line in sys.stdin:
    d = gammu.DecodePDU(bytes.fromhex(line.strip()))
    t = d['Text']
    out.append({'type': d['Type'], 'number': d['Number'], 'text': t if isinstance(t, str) else t.hex(),
                'coding': d['Coding'], 'udh': d['UDH']['Type'], 'id8': d['UDH']['ID8bit'],
                'id16': d['UDH']['ID16bit'], 'part': d['UDH']['PartNumber'], 'all': d['UDH']['AllParts'],
                'mr': d['MessageReference'], 'status': d['DeliveryStatus'],
                'date': str(d['DateTime']), 'smscdate': str(d['SMSCDateTime'])})
print(json.dumps(out))
"#;
    let out: Vec<Value> =
        serde_json::from_str(&run(&python_gammu(), &["-c", script], &lines)).unwrap();
    assert_eq!(out.len(), submits.len() + 2);
    for (i, (_, text)) in submits.iter().enumerate() {
        assert_eq!(out[i]["type"], "Submit", "{}", out[i]);
        assert_eq!(out[i]["number"], "+8613800138000");
        let got = out[i]["text"].as_str().unwrap();
        if i == 0 {
            // python-gammu sizes Text by TP-UDL (septets), so each two-septet extension
            // character leaves one junk character at the end; the decoded text itself matches.
            assert!(got.starts_with(text.as_str()), "{got:?}");
            assert_eq!(got.chars().count(), 36 + 6);
        } else {
            assert_eq!(got, text.as_str());
        }
    }
    assert_eq!(out[0]["coding"], "Default_No_Compression");
    assert_eq!(out[0]["mr"], 7);
    assert_eq!(out[1]["coding"], "Unicode_No_Compression");
    assert_eq!(out[1]["udh"], "ConcatenatedMessages16bit");
    assert_eq!(out[1]["id16"], 0xBEEF);
    assert_eq!(
        (out[2]["part"].clone(), out[2]["all"].clone()),
        (Value::from(2), Value::from(2))
    );
    assert_eq!(out[3]["udh"], "ConcatenatedMessages");
    assert_eq!(out[3]["id8"], 0x5A);
    let d = &out[submits.len()];
    assert_eq!(d["type"], "Deliver");
    assert_eq!(d["number"], "+8613900139000");
    assert_eq!(d["text"], "Open http://h/v.mp4");
    assert_eq!(d["date"], "2026-11-25 07:30:05");
    let s = &out[submits.len() + 1];
    assert_eq!(s["type"], "Status_Report");
    assert_eq!(s["mr"], 99);
    assert_eq!(s["status"], 0);
    assert_eq!(s["number"], "+8613900139000");
}

#[test]
fn python_decoders_read_our_pdus() {
    let submits = sample_submits();
    let deliver = Deliver {
        more_messages: false,
        loop_prevention: false,
        status_report_indication: true,
        reply_path: false,
        originator: Address::parse("vshare").unwrap(),
        pid: 0,
        dcs: Dcs::UCS2,
        timestamp: ts(),
        user_data: UserData::from_text("分享 http://h/v.mp4", Alphabet::Ucs2, None).unwrap(),
    };
    let mut input = format!("D 00{}\n", hex::encode(&deliver.encode().unwrap()));
    for (pdu, _) in &submits {
        input.push_str(&format!("S 00{}\n", hex::encode(pdu)));
    }
    let script = r#"
import sys, json
from smspdudecoder.easy import read_incoming_sms, read_outgoing_sms
from messaging.sms import SmsDeliver
out = []
for line in sys.stdin:
    kind, pdu = line.split()
    if kind == 'D':
        a = read_incoming_sms(pdu)
        b = SmsDeliver(pdu).data
        out.append({'sender': a['sender'], 'text': a['content'], 'pm_text': b['text'], 'pm_number': b['number'],
                    'date': a['date'].isoformat()})
    else:
        a = read_outgoing_sms(pdu)
        out.append({'recipient': a['recipient'], 'text': a['content']})
print(json.dumps(out))
"#;
    let out: Vec<Value> = serde_json::from_str(&run(&python(), &["-c", script], &input)).unwrap();
    assert_eq!(out[0]["sender"], "vshare");
    assert_eq!(out[0]["text"], "分享 http://h/v.mp4");
    assert_eq!(out[0]["pm_text"], "分享 http://h/v.mp4");
    assert_eq!(out[0]["pm_number"], "vshare");
    // smspdudecoder gives the time in UTC: 07:30:05 at +08:00.
    assert_eq!(out[0]["date"], "2026-11-24T23:30:05+00:00");
    // smspdudecoder reads single-part SUBMITs (its concatenated-SUBMIT path is out of scope).
    assert_eq!(out[1]["recipient"], "+8613800138000");
    assert_eq!(out[1]["text"], submits[0].1.as_str());
}

fn tshark_fields(frames: &[(Vec<u8>, bool)], fields: &[&str]) -> Vec<Vec<String>> {
    // Each frame goes into a pcap with user DLT 147; MO TPDUs are wrapped in an RP-DATA
    // (MS → network) so the dissector knows their direction (TS 24.011 §7.3.1.2).
    let dir = std::env::temp_dir().join(format!("vshare-sms-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let txt = dir.join("frames.txt");
    let pcap = dir.join("frames.pcap");
    let mut dump = String::new();
    for (tpdu, mo) in frames {
        let mut bytes = Vec::new();
        if *mo {
            bytes.extend_from_slice(&[
                0x00, 0x01, 0x00, 0x07, 0x91, 0x68, 0x31, 0x08, 0x10, 0x83, 0xF0,
            ]);
            bytes.push(tpdu.len() as u8);
            bytes.extend_from_slice(tpdu);
        } else {
            bytes.extend_from_slice(&[
                0x01, 0x01, 0x07, 0x91, 0x68, 0x31, 0x08, 0x10, 0x83, 0xF0, 0x00,
            ]);
            bytes.push(tpdu.len() as u8);
            bytes.extend_from_slice(tpdu);
        }
        dump.push_str("0000");
        for b in &bytes {
            dump.push_str(&format!(" {b:02x}"));
        }
        dump.push('\n');
    }
    std::fs::write(&txt, dump).unwrap();
    run(
        "text2pcap",
        &[
            "-q",
            "-l",
            "147",
            txt.to_str().unwrap(),
            pcap.to_str().unwrap(),
        ],
        "",
    );
    let mut args = vec![
        "-r".to_string(),
        pcap.to_str().unwrap().to_string(),
        "-o".into(),
        r#"uat:user_dlts:"User 0 (DLT=147)","gsm_a_rp","0","","0","""#.into(),
        "-o".into(),
        "gsm_sms.reassemble:FALSE".into(),
        "-T".into(),
        "fields".into(),
        "-E".into(),
        "separator=|".into(),
    ];
    for f in fields {
        args.push("-e".into());
        args.push(f.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("tshark", &args, "");
    std::fs::remove_dir_all(&dir).ok();
    out.lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
fn tshark_dissects_our_pdus() {
    let submits = sample_submits();
    let mut frames: Vec<(Vec<u8>, bool)> = submits.iter().map(|(p, _)| (p.clone(), true)).collect();
    // An 8-bit data SMS to an application port, as TLV attribute records travel.
    let seg = split_binary(
        b"\x56\x01\x30\x03\x01\x01\x02",
        Some((16180, 16180)),
        ConcatRef::Eight(3),
    )
    .unwrap();
    let data = Submit::new(
        Address::parse("+8613900139000").unwrap(),
        seg.dcs,
        seg.parts[0].clone(),
    );
    frames.push((data.encode().unwrap(), true));
    let deliver = Deliver {
        more_messages: false,
        loop_prevention: false,
        status_report_indication: false,
        reply_path: false,
        originator: Address::parse("+8613900139000").unwrap(),
        pid: 0,
        dcs: Dcs::GSM7,
        timestamp: ts(),
        user_data: UserData::from_text("hello from vshare", Alphabet::Gsm7, None).unwrap(),
    };
    frames.push((deliver.encode().unwrap(), false));
    let rows = tshark_fields(
        &frames,
        &[
            "gsm_sms.tp-mti",
            "gsm_sms.tp-da",
            "gsm_sms.tp-oa",
            "gsm_sms.tp-dcs",
            "gsm_sms.sms_text",
            "gsm_sms.udh.mm.msg_id",
            "gsm_sms.udh.mm.msg_part",
            "gsm_sms.destination_port",
            "gsm_sms.tp-mr",
        ],
    );
    assert_eq!(rows.len(), frames.len());
    for (i, (_, text)) in submits.iter().enumerate() {
        assert_eq!(rows[i][0], "1", "row {i}: {:?}", rows[i]);
        assert_eq!(rows[i][1], "8613800138000");
        assert_eq!(rows[i][4], *text, "row {i}");
    }
    assert_eq!(rows[0][8], "7");
    assert_eq!(rows[1][5], "48879");
    assert_eq!(rows[2][6], "2");
    assert_eq!(rows[3][5], "90");
    let data_row = &rows[submits.len()];
    assert_eq!(data_row[3], "4");
    assert_eq!(data_row[7], "16180");
    let d = &rows[submits.len() + 1];
    assert_eq!(d[0], "0");
    assert_eq!(d[2], "8613900139000");
    assert_eq!(d[4], "hello from vshare");
}

#[test]
fn their_concatenated_pdus_reassemble_here() {
    let text = "视频分享 video ".repeat(30);
    // gammu: UCS-2 with a 16-bit concatenation reference, SMSC address in front.
    let gammu = r#"
import sys, gammu
text = sys.stdin.read()
parts = gammu.EncodeSMS({'Class': -1, 'Unicode': True, 'Entries': [{'ID': 'ConcatenatedTextLong16bit', 'Buffer': text}]})
for p in parts:
    p['SMSC'] = {'Location': 0, 'Number': '+8613800100500'}
    p['Number'] = '+8613900139000'
    print(gammu.EncodePDU(p, 'Submit').hex())
"#;
    // python-messaging: UCS-2 with an 8-bit reference.
    let pm = r#"
import sys
from messaging.sms import SmsSubmit
for p in SmsSubmit('+8613900139000', sys.stdin.read()).to_pdu():
    print(p.pdu)
"#;
    for (python, script, sixteen) in [(python_gammu(), gammu, true), (python(), pm, false)] {
        let out = run(&python, &["-c", script], &text);
        let mut pdus: Vec<Vec<u8>> = out.lines().map(|l| hex::decode(l).unwrap()).collect();
        assert!(pdus.len() >= 3, "{out}");
        pdus.reverse();
        let mut r = Reassembler::new(Duration::from_secs(60));
        let mut done = None;
        for p in &pdus {
            let (_, t) = Tpdu::decode_with_sca(p, Direction::MobileOriginated).unwrap();
            let Tpdu::Submit(s) = t else { panic!() };
            assert_eq!(s.dcs.alphabet(), Some(Alphabet::Ucs2));
            assert_eq!(
                s.user_data
                    .header
                    .as_ref()
                    .unwrap()
                    .concat()
                    .unwrap()
                    .sixteen_bit,
                sixteen
            );
            done = r.push(Instant::now(), "x", s.dcs, s.user_data).or(done);
        }
        assert_eq!(done.unwrap().text().unwrap(), text);
    }
}
