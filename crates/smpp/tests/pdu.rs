//! PDUs written by smpplib (an independent implementation) decode here, ours decode there,
//! and every body round-trips; hostile input gets errors with offsets.

use std::io::Write;
use std::process::{Command, Stdio};

use vshare_smpp::pdu::{Bind, BindResp, Body, Pdu, PduError, Sm, SmeAddress, Tlv, esm, tag};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Written by smpplib 2.2.4 (`make_pdu(...).generate()`).
const SMPPLIB_BIND: &str =
    "0000002c00000009000000000000000776736861726500707700003400003836313338303031333830303000";
const SMPPLIB_SUBMIT: &str = "000000470000000400000000000000080001013836313338303031333830303000010138363133393030313339303030004000000000010004000c0605040b8423f068656c6c6f";

#[test]
fn smpplib_pdus_decode() {
    let p = Pdu::decode(&hex(SMPPLIB_BIND)).unwrap();
    assert_eq!(p.sequence, 7);
    let Body::BindTransceiver(b) = &p.body else {
        panic!("{p:?}")
    };
    assert_eq!(
        (b.system_id.as_str(), b.password.as_str()),
        ("vshare", "pw")
    );
    assert_eq!(b.interface_version, 0x34);
    assert_eq!(b.address_range, "8613800138000");
    assert_eq!(to_hex(&p.encode().unwrap()), SMPPLIB_BIND);

    let p = Pdu::decode(&hex(SMPPLIB_SUBMIT)).unwrap();
    let Body::SubmitSm(sm) = &p.body else {
        panic!()
    };
    assert_eq!(sm.source.display(), "+8613800138000");
    assert_eq!(sm.dest.display(), "+8613900139000");
    assert_eq!(sm.esm_class, esm::UDHI);
    assert_eq!(sm.data_coding, 4);
    assert_eq!(sm.registered_delivery, 1);
    assert_eq!(sm.short_message, b"\x06\x05\x04\x0b\x84\x23\xf0hello");
    assert_eq!(to_hex(&p.encode().unwrap()), SMPPLIB_SUBMIT);
}

fn samples() -> Vec<Pdu> {
    let bind = Bind {
        system_id: "vshare".into(),
        password: "secret".into(),
        system_type: "VMA".into(),
        interface_version: 0x34,
        addr_ton: 1,
        addr_npi: 1,
        address_range: "8613900139000".into(),
    };
    let sm = Sm {
        service_type: "WAP".into(),
        source: SmeAddress::parse("+8613800138000"),
        dest: SmeAddress::parse("+8613900139000"),
        esm_class: esm::UDHI,
        protocol_id: 0,
        priority_flag: 1,
        schedule_delivery_time: String::new(),
        validity_period: "000001000000000R".into(),
        registered_delivery: 1,
        replace_if_present: 0,
        data_coding: 8,
        sm_default_msg_id: 0,
        short_message: vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x4F, 0x60],
        tlvs: vec![Tlv {
            tag: tag::DESTINATION_PORT,
            value: vec![0x0B, 0x84],
        }],
    };
    vec![
        Pdu::new(1, Body::BindTransmitter(bind.clone())),
        Pdu::new(2, Body::BindReceiver(bind.clone())),
        Pdu::new(3, Body::BindTransceiver(bind)),
        Pdu::new(
            4,
            Body::BindTransceiverResp(BindResp {
                system_id: "vshare-smsc".into(),
                sc_interface_version: Some(0x34),
            }),
        ),
        Pdu {
            status: 0x0E,
            sequence: 5,
            body: Body::BindReceiverResp(BindResp::default()),
        },
        Pdu::new(6, Body::SubmitSm(sm.clone())),
        Pdu::new(7, Body::SubmitSmResp("msg-0000001".into())),
        Pdu {
            status: 0x58,
            sequence: 8,
            body: Body::SubmitSmResp(String::new()),
        },
        Pdu::new(9, Body::DeliverSm(sm)),
        Pdu::new(10, Body::DeliverSmResp(String::new())),
        Pdu::new(11, Body::EnquireLink),
        Pdu::new(12, Body::EnquireLinkResp),
        Pdu::new(13, Body::Unbind),
        Pdu::new(14, Body::UnbindResp),
        Pdu {
            status: 3,
            sequence: 15,
            body: Body::GenericNack,
        },
        Pdu::new(
            16,
            Body::Other {
                command_id: 0x0000_0103,
                body: vec![1, 2, 3],
            },
        ),
    ]
}

#[test]
fn every_body_round_trips() {
    for p in samples() {
        let b = p.encode().unwrap();
        assert_eq!(Pdu::frame_len(&b).unwrap(), Some(b.len()));
        assert_eq!(Pdu::decode(&b).unwrap(), p);
    }
}

#[test]
fn hostile_pdus_are_errors() {
    for p in samples() {
        let b = p.encode().unwrap();
        for n in 0..b.len() {
            let mut cut = b[..n].to_vec();
            if n >= 4 {
                cut[..4].copy_from_slice(&(n as u32).to_be_bytes());
            }
            // Optional parts (TLVs, a response's body) may be cut off whole: what still
            // decodes is a valid PDU whose encoding decodes to it again.
            if let Ok(q) = Pdu::decode(&cut) {
                assert_eq!(Pdu::decode(&q.encode().unwrap()).unwrap(), q);
            }
        }
    }
    assert!(matches!(
        Pdu::frame_len(&[0, 0, 0, 4]),
        Err(PduError::Invalid {
            field: "command_length",
            ..
        })
    ));
    assert!(matches!(
        Pdu::frame_len(&[0x7F, 0, 0, 0]),
        Err(PduError::Invalid { .. })
    ));
    // A system_id with no NUL within 16 octets.
    let mut b = hex(SMPPLIB_BIND);
    b[16..32].copy_from_slice(b"AAAAAAAAAAAAAAAA");
    assert!(matches!(
        Pdu::decode(&b),
        Err(PduError::Invalid {
            offset: 16,
            field: "system_id",
            ..
        })
    ));
    // sm_length 255.
    let mut b = hex(SMPPLIB_SUBMIT);
    let at = b.len() - 13;
    b[at] = 0xFF;
    let e = Pdu::decode(&b).unwrap_err();
    assert!(
        matches!(
            e,
            PduError::Invalid {
                field: "sm_length",
                ..
            }
        ),
        "{e}"
    );
    // Trailing garbage after a complete TLV list is a truncated TLV.
    let mut b = hex(SMPPLIB_SUBMIT);
    b.push(0x02);
    let n = b.len() as u32;
    b[..4].copy_from_slice(&n.to_be_bytes());
    assert!(matches!(
        Pdu::decode(&b),
        Err(PduError::Truncated {
            field: "TLV tag",
            ..
        })
    ));
}

#[test]
fn smpplib_parses_our_pdus() {
    let mut input = String::new();
    for p in samples()
        .into_iter()
        .filter(|p| !matches!(p.body, Body::Other { .. }))
    {
        input.push_str(&to_hex(&p.encode().unwrap()));
        input.push('\n');
    }
    let script = r#"
import sys, json
import smpplib.smpp as s, smpplib.client as c
cl = c.Client('127.0.0.1', 1)
out = []
for line in sys.stdin:
    p = s.parse_pdu(bytes.fromhex(line.strip()), client=cl)
    d = {'command': p.command, 'sequence': p.sequence, 'status': p.status}
    for f in ('system_id', 'password', 'address_range', 'source_addr', 'destination_addr', 'short_message', 'message_id'):
        v = getattr(p, f, None)
        if v is not None:
            d[f] = v.hex() if isinstance(v, bytes) and f == 'short_message' else (v.decode() if isinstance(v, bytes) else v)
    for f in ('esm_class', 'data_coding', 'registered_delivery'):
        v = getattr(p, f, None)
        if v is not None:
            d[f] = v
    out.append(d)
print(json.dumps(out))
"#;
    let python = std::env::var("VSHARE_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} with smpplib is needed (see .ci/run): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "smpplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let commands: Vec<&str> = v.iter().map(|d| d["command"].as_str().unwrap()).collect();
    assert_eq!(
        commands,
        [
            "bind_transmitter",
            "bind_receiver",
            "bind_transceiver",
            "bind_transceiver_resp",
            "bind_receiver_resp",
            "submit_sm",
            "submit_sm_resp",
            "submit_sm_resp",
            "deliver_sm",
            "deliver_sm_resp",
            "enquire_link",
            "enquire_link_resp",
            "unbind",
            "unbind_resp",
            "generic_nack"
        ]
    );
    assert_eq!(v[0]["system_id"], "vshare");
    assert_eq!(v[0]["password"], "secret");
    assert_eq!(v[0]["address_range"], "8613900139000");
    assert_eq!(v[3]["system_id"], "vshare-smsc");
    assert_eq!(v[4]["status"], 0x0E);
    assert_eq!(v[5]["source_addr"], "8613800138000");
    assert_eq!(v[5]["destination_addr"], "8613900139000");
    assert_eq!(v[5]["esm_class"], 0x40);
    assert_eq!(v[5]["data_coding"], 8);
    assert_eq!(v[5]["short_message"], "0500030102014f60");
    assert_eq!(v[6]["message_id"], "msg-0000001");
    assert_eq!(v[7]["status"], 0x58);
    assert_eq!(v[8]["sequence"], 9);
}
