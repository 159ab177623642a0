//! tshark's SMPP dissector reads our PDUs field by field (CI installs tshark; a missing tshark
//! fails the test with its name).

use std::process::Command;

use vshare_smpp::pdu::{Bind, BindResp, Body, Pdu, Sm, SmeAddress, esm};

#[test]
fn tshark_dissects_our_pdus() {
    let sm = Sm {
        source: SmeAddress::parse("+8613800138000"),
        dest: SmeAddress::parse("+8613900139000"),
        esm_class: esm::UDHI,
        data_coding: 4,
        registered_delivery: 1,
        short_message: vec![0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x01, 0x06],
        ..Sm::default()
    };
    let bind = Bind {
        system_id: "vshare".into(),
        password: "pw".into(),
        interface_version: 0x34,
        address_range: "8613900139000".into(),
        ..Bind::default()
    };
    let pdus = [
        Pdu::new(1, Body::BindTransceiver(bind)),
        Pdu::new(
            1,
            Body::BindTransceiverResp(BindResp {
                system_id: "vshare-smsc".into(),
                sc_interface_version: Some(0x34),
            }),
        ),
        Pdu::new(2, Body::SubmitSm(sm)),
        Pdu::new(2, Body::SubmitSmResp("0000002A".into())),
        Pdu {
            status: 0x58,
            sequence: 3,
            body: Body::SubmitSmResp(String::new()),
        },
        Pdu::new(4, Body::EnquireLink),
    ];
    let dir = std::env::temp_dir().join(format!("vshare-smpp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut dump = String::new();
    for p in &pdus {
        dump.push_str("0000");
        for b in p.encode().unwrap() {
            dump.push_str(&format!(" {b:02x}"));
        }
        dump.push('\n');
    }
    let (txt, pcap) = (dir.join("smpp.txt"), dir.join("smpp.pcap"));
    std::fs::write(&txt, dump).unwrap();
    let st = Command::new("text2pcap")
        .args([
            "-q",
            "-l",
            "147",
            txt.to_str().unwrap(),
            pcap.to_str().unwrap(),
        ])
        .status()
        .expect("text2pcap (package tshark) is needed for this test");
    assert!(st.success());
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-o",
            r#"uat:user_dlts:"User 0 (DLT=147)","smpp","0","","0","""#,
        ])
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "smpp.command_id",
            "-e",
            "smpp.command_status",
            "-e",
            "smpp.sequence_number",
        ])
        .args([
            "-e",
            "smpp.system_id",
            "-e",
            "smpp.address_range",
            "-e",
            "smpp.source_addr",
        ])
        .args([
            "-e",
            "smpp.destination_addr",
            "-e",
            "smpp.data_coding",
            "-e",
            "smpp.message_id",
        ])
        .args(["-e", "smpp.esm.submit.features", "-e", "smpp.sm_length"])
        .output()
        .expect("tshark is needed for this test");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), pdus.len(), "{text}");
    assert_eq!(
        rows[0][..5],
        ["0x00000009", "", "1", "vshare", "8613900139000"]
    );
    assert_eq!(
        rows[1][..4],
        ["0x80000009", "0x00000000", "1", "vshare-smsc"]
    );
    assert_eq!(rows[2][0], "0x00000004");
    assert_eq!(rows[2][5..8], ["8613800138000", "8613900139000", "0x04"]);
    assert_eq!(rows[2][9], "0x01", "UDHI feature bits: {:?}", rows[2]);
    assert_eq!(rows[2][10], "9");
    assert_eq!((rows[3][0], rows[3][8]), ("0x80000004", "0000002A"));
    assert_eq!((rows[4][1], rows[4][2]), ("0x00000058", "3"));
    assert_eq!(rows[5][0], "0x00000015");
}
