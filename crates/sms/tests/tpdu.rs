//! Round trips of every TPDU type and field variant, and hostile input.

use vshare_sms::split::{ConcatRef, split_binary, split_text};
use vshare_sms::{
    Address, Alphabet, Dcs, Deliver, Direction, SmsError, StatusReport, Submit, Timestamp, Tpdu,
    UserData, ValidityPeriod, hex,
};

fn ts(tz: i8) -> Timestamp {
    Timestamp {
        year: 26,
        month: 2,
        day: 28,
        hour: 23,
        minute: 59,
        second: 58,
        tz_quarters: tz,
    }
}

fn samples() -> Vec<(Tpdu, Direction)> {
    let to = Address::parse("+8613800138000").unwrap();
    let mut v = Vec::new();
    for validity in [
        None,
        Some(ValidityPeriod::Relative(167)),
        Some(ValidityPeriod::Absolute(ts(-20))),
        Some(ValidityPeriod::Enhanced([0x01, 0x02, 0, 0, 0, 0, 0])),
    ] {
        let seg = split_text(
            &"€uro ".repeat(40),
            Some((16180, 16180)),
            ConcatRef::Sixteen(513),
        )
        .unwrap();
        for p in seg.parts {
            let mut s = Submit::new(to.clone(), seg.dcs, p);
            s.validity = validity;
            s.status_report_request = true;
            s.reject_duplicates = true;
            s.reply_path = true;
            v.push((Tpdu::Submit(s), Direction::MobileOriginated));
        }
    }
    let seg = split_binary(&[0xAB; 150], Some((2948, 9200)), ConcatRef::Eight(255)).unwrap();
    for p in seg.parts {
        v.push((
            Tpdu::Deliver(Deliver {
                more_messages: true,
                loop_prevention: true,
                status_report_indication: true,
                reply_path: false,
                originator: Address::parse("10086").unwrap(),
                pid: 0x39,
                dcs: Dcs(0xF5),
                timestamp: ts(56),
                user_data: p,
            }),
            Direction::MobileTerminated,
        ));
    }
    v.push((
        Tpdu::StatusReport(StatusReport {
            more_messages: false,
            qualifier_command: false,
            message_reference: 255,
            recipient: Address::parse("+447700900123").unwrap(),
            timestamp: ts(0),
            discharge_time: ts(4),
            status: 0x41,
            pid: Some(0),
            dcs: Some(Dcs::UCS2),
            user_data: Some(UserData::from_text("未送达", Alphabet::Ucs2, None).unwrap()),
        }),
        Direction::MobileTerminated,
    ));
    v
}

#[test]
fn every_sample_round_trips() {
    for (t, dir) in samples() {
        let bytes = t.encode().unwrap();
        assert_eq!(
            Tpdu::decode(&bytes, dir).unwrap(),
            t,
            "{}",
            hex::encode(&bytes)
        );
        let with_sca = t
            .encode_with_sca(Some(&Address::parse("+8613800100500").unwrap()))
            .unwrap();
        let (sca, back) = Tpdu::decode_with_sca(&with_sca, dir).unwrap();
        assert_eq!(sca.unwrap().to_string(), "+8613800100500");
        assert_eq!(back, t);
    }
}

#[test]
fn truncations_and_extra_bytes_are_errors_never_panics() {
    for (t, dir) in samples() {
        let bytes = t.encode().unwrap();
        for n in 0..bytes.len() {
            match Tpdu::decode(&bytes[..n], dir) {
                Err(_) => {}
                // TP-PI and what it announces are optional: a report may end after TP-ST.
                Ok(Tpdu::StatusReport(sr)) if sr.pid.is_none() && sr.user_data.is_none() => {}
                Ok(other) => panic!("cut at {n} of {} decoded as {other:?}", hex::encode(&bytes)),
            }
        }
        let mut long = bytes.clone();
        long.push(0);
        let e = Tpdu::decode(&long, dir).unwrap_err();
        assert!(matches!(e, SmsError::Invalid { .. }), "{e}");
        // Every single-byte corruption decodes or errors; no panic.
        for i in 0..bytes.len() {
            for x in [0x00, 0xFF, 0x80, 0x7F] {
                let mut b = bytes.clone();
                b[i] = x;
                let _ = Tpdu::decode(&b, dir);
            }
        }
    }
}

#[test]
fn errors_name_field_and_offset() {
    // SUBMIT whose UDL says 10 septets but carries 3 octets.
    let pdu = hex::decode("0100 0B916407281553F8 0000 0A E8329B").unwrap();
    assert_eq!(
        Tpdu::decode(&pdu, Direction::MobileOriginated),
        Err(SmsError::Truncated {
            offset: 16,
            field: "TP-UD"
        })
    );
    // DELIVER with a month of 13.
    let pdu = hex::decode("04 0B916407281553F8 0000 623140000000 00 00").unwrap();
    let e = Tpdu::decode(&pdu, Direction::MobileTerminated).unwrap_err();
    assert!(
        matches!(
            e,
            SmsError::Invalid {
                offset: 11,
                field: "TP-SCTS",
                ..
            }
        ),
        "{e}"
    );
    // Compressed DCS.
    let pdu = hex::decode("0100 0B916407281553F8 00 20 00").unwrap();
    let e = Tpdu::decode(&pdu, Direction::MobileOriginated).unwrap_err();
    assert!(
        matches!(
            e,
            SmsError::Invalid {
                offset: 11,
                field: "TP-DCS",
                ..
            }
        ),
        "{e}"
    );
    // A SUBMIT read as mobile-terminated.
    let e = Tpdu::decode(&[0x01], Direction::MobileTerminated).unwrap_err();
    assert!(matches!(
        e,
        SmsError::Invalid {
            offset: 0,
            field: "TP-MTI",
            ..
        }
    ));
    assert!(e.to_string().contains("byte 0"));
}

#[test]
fn relative_validity_steps() {
    assert_eq!(ValidityPeriod::relative_minutes(0), 5);
    assert_eq!(ValidityPeriod::relative_minutes(143), 12 * 60);
    assert_eq!(ValidityPeriod::relative_minutes(167), 24 * 60);
    assert_eq!(ValidityPeriod::relative_minutes(170), 4 * 24 * 60);
    assert_eq!(ValidityPeriod::relative_minutes(255), 63 * 7 * 24 * 60);
}
