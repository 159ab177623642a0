//! SI/SL and WSP push checked against libwbxml (`wbxml2xml`, `xml2wbxml`) and tshark's WSP and
//! WBXML dissectors; the WAP-167 example as a vector. CI installs the tools (`.ci/run`); a
//! missing tool fails the test with its name.

use std::io::Write;
use std::process::{Command, Stdio};

use vshare_sms::hex;
use vshare_sms::split::ConcatRef;
use vshare_wap::date::WapDate;
use vshare_wap::si::{ServiceIndication, SiAction};
use vshare_wap::sl::{ServiceLoading, SlAction};
use vshare_wap::wsp::{ApplicationId, PushPdu};
use vshare_wap::{WapError, wdp};

fn run(program: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed for this test (see .ci/run): {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh file path: tests run in parallel threads of one process.
fn tmp(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("vshare-wap-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// The example of WAP-167 §9 (its tokenised form, as WBXML 1.2).
const WAP_167_EXAMPLE: &str = "02056A0045C60D0378797A0085036\
    56D61696C2F3132332F6162632E776D6C000AC30719990625152315\
    10C304199906300103596F7520686176652034206E657720656D61696C73000101";

fn example() -> ServiceIndication {
    ServiceIndication {
        href: Some("http://www.xyz.com/email/123/abc.wml".into()),
        si_id: None,
        created: WapDate::parse("1999-06-25T15:23:15Z"),
        expires: WapDate::parse("1999-06-30T00:00:00Z"),
        action: SiAction::SignalMedium,
        class: None,
        text: "You have 4 new emails".into(),
    }
}

fn ours() -> ServiceIndication {
    ServiceIndication {
        href: Some("http://127.0.0.1:8080/vod/v7Kq2/video.mp4".into()),
        si_id: Some("vshare-v7Kq2".into()),
        created: WapDate::parse("2026-11-25T07:30:05Z"),
        expires: WapDate::parse("2026-12-02T00:00:00Z"),
        action: SiAction::SignalHigh,
        class: None,
        text: "视频 ready: Harbour at dusk 1280x720 & more".into(),
    }
}

#[test]
fn wap_167_example_bytes() {
    let bytes = hex::decode(WAP_167_EXAMPLE).unwrap();
    assert_eq!(example().to_wbxml().unwrap(), bytes);
    assert_eq!(ServiceIndication::from_wbxml(&bytes).unwrap(), example());
}

fn wbxml2xml(bytes: &[u8]) -> String {
    let path = tmp("in.wbxml");
    std::fs::write(&path, bytes).unwrap();
    let out = tmp("out.xml");
    run(
        "wbxml2xml",
        &["-o", out.to_str().unwrap(), path.to_str().unwrap()],
        b"",
    );
    std::fs::read_to_string(out).unwrap()
}

fn xml2wbxml(xml: &str, args: &[&str]) -> Vec<u8> {
    let path = tmp("in.xml");
    std::fs::write(&path, xml).unwrap();
    let out = tmp("out.wbxml");
    let mut a = args.to_vec();
    a.extend(["-o", out.to_str().unwrap(), path.to_str().unwrap()]);
    run("xml2wbxml", &a, b"");
    std::fs::read(out).unwrap()
}

#[test]
fn libwbxml_reads_our_wbxml() {
    for si in [example(), ours()] {
        let xml = wbxml2xml(&si.to_wbxml().unwrap());
        assert!(xml.contains("<si>") || xml.contains("<si "), "{xml}");
        assert_eq!(ServiceIndication::from_xml(&xml).unwrap(), si, "{xml}");
    }
    for action in [SlAction::ExecuteLow, SlAction::ExecuteHigh, SlAction::Cache] {
        let sl = ServiceLoading {
            href: "https://www.example.org/v/7".into(),
            action,
        };
        let xml = wbxml2xml(&sl.to_wbxml().unwrap());
        assert_eq!(ServiceLoading::from_xml(&xml).unwrap(), sl, "{xml}");
    }
}

#[test]
fn we_read_libwbxml_wbxml() {
    // With and without a string table, WBXML 1.1 to 1.3.
    for args in [&[][..], &["-n"], &["-v", "1.1"], &["-v", "1.2", "-n"]] {
        for si in [example(), ours()] {
            let b = xml2wbxml(&si.to_xml(), args);
            assert_eq!(
                ServiceIndication::from_wbxml(&b).unwrap(),
                si,
                "{args:?} {}",
                hex::encode(&b)
            );
        }
        let sl = ServiceLoading {
            href: "http://127.0.0.1:8080/live/v7Kq2/index.m3u8".into(),
            action: SlAction::Cache,
        };
        let b = xml2wbxml(&sl.to_xml(), args);
        assert_eq!(ServiceLoading::from_wbxml(&b).unwrap(), sl, "{args:?}");
    }
}

#[test]
fn xml_round_trips() {
    for si in [example(), ours()] {
        assert_eq!(ServiceIndication::from_xml(&si.to_xml()).unwrap(), si);
        assert_eq!(
            ServiceIndication::from_wbxml(&si.to_wbxml().unwrap()).unwrap(),
            si
        );
    }
    let sl = ServiceLoading::new("http://h/x");
    assert_eq!(ServiceLoading::from_xml(&sl.to_xml()).unwrap(), sl);
    assert_eq!(
        ServiceLoading::from_wbxml(&sl.to_wbxml().unwrap()).unwrap(),
        sl
    );
}

#[test]
fn hostile_wbxml_is_refused_with_offsets() {
    let good = example().to_wbxml().unwrap();
    for n in 0..good.len() {
        assert!(
            ServiceIndication::from_wbxml(&good[..n]).is_err(),
            "cut at {n}"
        );
    }
    let mut bad = good.clone();
    bad[1] = 0x07;
    assert!(matches!(
        ServiceIndication::from_wbxml(&bad),
        Err(WapError::Invalid { offset: 1, .. })
    ));
    let mut bad = good.clone();
    bad[4] = 0x4F; // unknown tag
    let e = ServiceIndication::from_wbxml(&bad).unwrap_err();
    assert!(matches!(e, WapError::Invalid { offset: 4, .. }), "{e}");
    assert!(e.to_string().starts_with("WBXML, byte 4"));
    let mut bad = good.clone();
    bad.push(0x01);
    assert!(ServiceIndication::from_wbxml(&bad).is_err());
    // An SL read as an SI.
    assert!(
        ServiceIndication::from_wbxml(&ServiceLoading::new("http://h").to_wbxml().unwrap())
            .is_err()
    );
    // Deep nesting does not overflow the stack.
    let mut deep = vec![0x02, 0x05, 0x6A, 0x00];
    deep.extend(std::iter::repeat_n(0x45, 10_000));
    assert!(ServiceIndication::from_wbxml(&deep).is_err());
}

#[test]
fn push_pdu_round_trip_and_known_bytes() {
    let si = example().to_wbxml().unwrap();
    let push = PushPdu::service_indication(0x01, si.clone());
    let bytes = push.encode();
    // TID 01, Push, 3 header octets: application/vnd.wap.sic, X-Wap-Application-Id: wml.ua.
    assert_eq!(bytes[..5], [0x01, 0x06, 0x03, 0xAE, 0xAF]);
    assert_eq!(bytes[5], 0x82);
    let back = PushPdu::decode(&bytes).unwrap();
    assert_eq!(back, push);
    assert_eq!(back.application_id(), Some(ApplicationId::WellKnown(2)));
    assert_eq!(back.content_type_name().unwrap(), "application/vnd.wap.sic");
    // A push as operators send it: general-form content type with charset, a text app id.
    let mut pdu = vec![0x25, 0x06, 0x1E, 0x03, 0xAE, 0x81, 0xEA];
    pdu.extend_from_slice(b"\xAFx-wap-application:wml.ua\0");
    pdu.extend_from_slice(&si);
    let p = PushPdu::decode(&pdu).unwrap();
    assert_eq!(p.content_type_params, [0x81, 0xEA]);
    assert_eq!(
        p.application_id(),
        Some(ApplicationId::Uri("x-wap-application:wml.ua".into()))
    );
    assert_eq!(ServiceIndication::from_wbxml(&p.body).unwrap(), example());
    assert_eq!(PushPdu::decode(&p.encode()).unwrap(), p);
    // Errors.
    assert!(matches!(
        PushPdu::decode(&[0x01, 0x04]),
        Err(WapError::Invalid { offset: 1, .. })
    ));
    assert!(matches!(
        PushPdu::decode(&[0x01, 0x06, 0x10, 0xAE]),
        Err(WapError::Truncated { offset: 3, .. })
    ));
    for n in 0..6 {
        assert!(PushPdu::decode(&bytes[..n]).is_err());
    }
}

fn tshark_verbose(frames: &[Vec<u8>], dissector: &str) -> String {
    let txt = tmp("frames.txt");
    let pcap = tmp("frames.pcap");
    let mut dump = String::new();
    for f in frames {
        dump.push_str("0000");
        for b in f {
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
        b"",
    );
    let uat = format!(r#"uat:user_dlts:"User 0 (DLT=147)","{dissector}","0","","0","""#);
    let out = run(
        "tshark",
        &["-r", pcap.to_str().unwrap(), "-o", &uat, "-V"],
        b"",
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn tshark_dissects_our_push_as_sms() {
    // The whole stack: SMS-DELIVER (8-bit, ports 2948/9200) → WSP push → WBXML SI.
    let push = PushPdu::service_indication(0x01, ours().to_wbxml().unwrap()).encode();
    let seg = wdp::sms_parts(&push, ConcatRef::Eight(1)).unwrap();
    assert_eq!(seg.parts.len(), 1);
    let deliver = vshare_sms::Deliver {
        more_messages: false,
        loop_prevention: false,
        status_report_indication: false,
        reply_path: false,
        originator: vshare_sms::Address::parse("+8613800138000").unwrap(),
        pid: 0,
        dcs: seg.dcs,
        timestamp: vshare_sms::Timestamp {
            year: 26,
            month: 11,
            day: 25,
            hour: 7,
            minute: 30,
            second: 5,
            tz_quarters: 0,
        },
        user_data: seg.parts[0].clone(),
    };
    let out = tshark_verbose(&[deliver.encode().unwrap()], "gsm_sms");
    for want in [
        "Destination port: UDP/TCP port numbers assigned by IANA without the need to refer to 3GPP (2948)",
        "PDU Type: Push (0x06)",
        "Content-Type: application/vnd.wap.sic",
        "X-Wap-Application-Id: x-wap-application:wml.ua",
        "-//WAPFORUM//DTD SI 1.0//EN",
        "href='http://'",
        "'127.0.0.1:8080/vod/v7Kq2/video.mp4'",
        "'vshare-v7Kq2'",
        "%DateTime: 2026-11-25T07:30:05Z",
        "%DateTime: 2026-12-02T00:00:00Z",
        "action='signal-high'",
        "'视频 ready: Harbour at dusk 1280x720 & more'",
    ] {
        assert!(out.contains(want), "tshark output lacks {want:?}:\n{out}");
    }
}

#[test]
fn tshark_dissects_a_long_push_in_parts() {
    let mut si = ours();
    si.text = "A long description of the shared video. ".repeat(5);
    let push = PushPdu::service_indication(0x02, si.to_wbxml().unwrap()).encode();
    let seg = wdp::sms_parts(&push, ConcatRef::Eight(0x33)).unwrap();
    assert!(seg.parts.len() >= 2);
    let frames: Vec<Vec<u8>> = seg
        .parts
        .iter()
        .map(|p| {
            vshare_sms::Deliver {
                more_messages: false,
                loop_prevention: false,
                status_report_indication: false,
                reply_path: false,
                originator: vshare_sms::Address::parse("+8613800138000").unwrap(),
                pid: 0,
                dcs: seg.dcs,
                timestamp: vshare_sms::Timestamp {
                    year: 26,
                    month: 11,
                    day: 25,
                    hour: 7,
                    minute: 30,
                    second: 5,
                    tz_quarters: 0,
                },
                user_data: p.clone(),
            }
            .encode()
            .unwrap()
        })
        .collect();
    let out = tshark_verbose(&frames, "gsm_sms");
    assert!(out.contains("Reassembled"), "{out}");
    assert!(
        out.contains("A long description of the shared video."),
        "{out}"
    );
}
