//! Attribute records → SMS parts, in the form the user picked (docs/messages.md, "How each form
//! travels").

use vshare_attributes::AttributeRecord;
use vshare_attributes::forms::{Compact, Form, encode_text};
use vshare_smpp::pdu::{Sm, SmeAddress, esm};
use vshare_sms::split::{ConcatRef, Segments, split_binary, split_text};
use vshare_sms::{Address, Alphabet, Submit, Tpdu, gsm7};
use vshare_wap::si::ServiceIndication;
use vshare_wap::sl::ServiceLoading;
use vshare_wap::wdp;
use vshare_wap::wsp::PushPdu;

/// Application port of TLV attribute messages (TS 23.040 §9.2.3.24.4 leaves 16000–16999 to
/// applications).
pub const TLV_PORT: u16 = 16180;

/// How the records are packed (`vshare share --as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum As {
    Text,
    Tlv,
    Xml,
    WapSi,
    WapSl,
}

/// How much a message carries (docs/messages.md, "Compact").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extent {
    /// One SMS: the short link `<link_base>/w/<id>` and the attributes that fit (text and
    /// WAP SI; TLV, XML and WAP SL always carry their full form).
    Compact { link_base: String },
    /// Every record, in as many parts as it takes.
    Full,
}

/// The record a WAP Push points at: the live stream if there is one, else the MP4, else the first.
pub fn primary(records: &[AttributeRecord]) -> Option<&AttributeRecord> {
    vshare_attributes::forms::compact::primary(records)
}

/// A form's name in the API and the outbox: `text` and `wap-si` are compact, `text-full` and
/// `wap-si-full` carry every record; `tlv`, `xml` and `wap-sl` have one size.
pub fn form_name(form: As, full: bool) -> &'static str {
    match (form, full) {
        (As::Text, false) => "text",
        (As::Text, true) => "text-full",
        (As::WapSi, false) => "wap-si",
        (As::WapSi, true) => "wap-si-full",
        (As::Tlv, _) => "tlv",
        (As::Xml, _) => "xml",
        (As::WapSl, _) => "wap-sl",
    }
}

/// Reads what [`form_name`] writes: the form, and whether it is a full one.
pub fn parse_form_name(name: &str) -> Option<(As, bool)> {
    Some(match name {
        "text" => (As::Text, false),
        "text-full" => (As::Text, true),
        "wap-si" => (As::WapSi, false),
        "wap-si-full" => (As::WapSi, true),
        "tlv" => (As::Tlv, true),
        "xml" => (As::Xml, true),
        "wap-sl" => (As::WapSl, true),
        _ => return None,
    })
}

/// Whether text goes in one SMS (GSM 7-bit ≤ 160 septets, else UCS-2 ≤ 70 characters).
pub fn fits_one_sms(text: &str) -> bool {
    split_text(text, None, ConcatRef::Eight(0)).is_ok_and(|s| s.parts.len() == 1)
}

fn compact_of(link_base: &str, records: &[AttributeRecord]) -> anyhow::Result<Compact> {
    Compact::from_records(link_base, records)
        .ok_or_else(|| anyhow::anyhow!("no attribute records to share"))
}

/// The compact text message: the short link and as much of the summary as one SMS holds.
pub fn compact_text(link_base: &str, records: &[AttributeRecord]) -> anyhow::Result<String> {
    let c = compact_of(link_base, records)?;
    // A shortened GSM title ends in "..." (… is not in GSM 03.38); a UCS-2 one in "…".
    let mark = if gsm7::is_encodable(&c.encode()) {
        "..."
    } else {
        "…"
    };
    let fit = c
        .fit(mark, |m| fits_one_sms(&m.encode()))
        .ok_or_else(|| anyhow::anyhow!("the short link {} does not fit one SMS", c.link))?;
    Ok(fit.encode())
}

/// The compact SI: href the short link, text the summary, si-id `vshare-<id>` if `with_id`.
fn compact_si(c: &Compact, with_id: bool) -> ServiceIndication {
    let mut si = ServiceIndication::new(&c.link, &c.summary());
    if with_id {
        si.si_id = c.video_id().map(|id| format!("vshare-{id}"));
    }
    si
}

/// The compact SI, fitted so that its WSP push (transaction id `tid`) goes in one 140-octet
/// SMS with its port header.
pub fn compact_service_indication(
    link_base: &str,
    records: &[AttributeRecord],
    tid: u8,
) -> anyhow::Result<ServiceIndication> {
    let c = compact_of(link_base, records)?;
    let fits = |si: ServiceIndication| {
        si.to_wbxml()
            .ok()
            .map(|wbxml| PushPdu::service_indication(tid, wbxml).encode())
            .is_some_and(|push| {
                wdp::sms_parts(&push, ConcatRef::Eight(0)).is_ok_and(|s| s.parts.len() == 1)
            })
    };
    // The si-id (which lets a phone replace an older SI of the video) goes before the link does,
    // as a long signed link may need its room.
    for with_id in [true, false] {
        if let Some(fit) = c.fit("...", |m| fits(compact_si(m, with_id))) {
            return Ok(compact_si(&fit, with_id));
        }
    }
    anyhow::bail!("the short link {} does not fit one WAP Push SMS", c.link)
}

/// The compact WAP Push: the WSP push PDU of [`compact_service_indication`].
pub fn compact_push(
    link_base: &str,
    records: &[AttributeRecord],
    tid: u8,
) -> anyhow::Result<Vec<u8>> {
    let si = compact_service_indication(link_base, records, tid)?;
    Ok(PushPdu::service_indication(tid, si.to_wbxml()?).encode())
}

/// Packs records as SMS user data parts, compact or full.
pub fn compose_message(
    records: &[AttributeRecord],
    form: As,
    extent: &Extent,
    reference: ConcatRef,
    tid: u8,
) -> anyhow::Result<Segments> {
    match (form, extent) {
        (As::Text, Extent::Compact { link_base }) => Ok(split_text(
            &compact_text(link_base, records)?,
            None,
            reference,
        )?),
        (As::WapSi, Extent::Compact { link_base }) => Ok(wdp::sms_parts(
            &compact_push(link_base, records, tid)?,
            reference,
        )?),
        _ => compose(records, form, reference, tid),
    }
}

/// The body an `sms:` link or a phone's own app sends: compact or full text, or XML.
pub fn message_body(
    records: &[AttributeRecord],
    form: As,
    extent: &Extent,
) -> anyhow::Result<String> {
    Ok(match (form, extent) {
        (As::Text, Extent::Compact { link_base }) => compact_text(link_base, records)?,
        (As::Text, Extent::Full) => encode_text(records)?,
        (As::Xml, _) => String::from_utf8(Form::Xml.encode(records)?)?,
        (other, _) => anyhow::bail!(
            "--as {other:?} needs a data SMS; an sms: link carries text only (use --as text or xml)"
        ),
    })
}

/// The name of an SMS alphabet in the API and the docs.
pub fn alphabet_name(seg: &Segments) -> &'static str {
    match seg.dcs.alphabet() {
        Some(Alphabet::Gsm7) => "gsm7",
        Some(Alphabet::Ucs2) => "ucs2",
        Some(Alphabet::Eight) => "8bit",
        None => "unknown",
    }
}

/// The SI for a video: href the primary record's URL, text its text-form field line (so the
/// target gets every attribute from the SI alone), si-id `vshare-<video id>`.
pub fn service_indication(records: &[AttributeRecord]) -> anyhow::Result<ServiceIndication> {
    let r = primary(records).ok_or_else(|| anyhow::anyhow!("no attribute records to share"))?;
    let text = encode_text(std::slice::from_ref(r))?;
    let line = text.lines().nth(1).unwrap_or_default();
    let mut si = ServiceIndication::new(&r.url, line);
    si.si_id = Some(format!("vshare-{}", r.video_id));
    Ok(si)
}

/// Packs every record as SMS user data parts (the full forms).
pub fn compose(
    records: &[AttributeRecord],
    form: As,
    reference: ConcatRef,
    tid: u8,
) -> anyhow::Result<Segments> {
    Ok(match form {
        As::Text => split_text(
            &String::from_utf8(Form::Text.encode(records)?)?,
            None,
            reference,
        )?,
        As::Xml => split_text(
            &String::from_utf8(Form::Xml.encode(records)?)?,
            None,
            reference,
        )?,
        As::Tlv => split_binary(
            &Form::Tlv.encode(records)?,
            Some((TLV_PORT, TLV_PORT)),
            reference,
        )?,
        As::WapSi => {
            let push = PushPdu::service_indication(tid, service_indication(records)?.to_wbxml()?);
            wdp::sms_parts(&push.encode(), reference)?
        }
        As::WapSl => {
            let r =
                primary(records).ok_or_else(|| anyhow::anyhow!("no attribute records to share"))?;
            let push = PushPdu::service_loading(tid, ServiceLoading::new(&r.url).to_wbxml()?);
            wdp::sms_parts(&push.encode(), reference)?
        }
    })
}

/// SMPP data_coding for an SMS alphabet (SMPP v3.4 §5.2.19).
pub fn data_coding(a: Alphabet) -> u8 {
    match a {
        Alphabet::Gsm7 => 0x00,
        Alphabet::Eight => 0x04,
        Alphabet::Ucs2 => 0x08,
    }
}

/// The submit_sm PDUs for one recipient: short_message is the UDH (if any) then the payload —
/// GSM 7-bit unpacked, one septet per octet, as SMPP carries it.
pub fn to_smpp(from: &str, to: &str, seg: &Segments, receipt: bool) -> anyhow::Result<Vec<Sm>> {
    let alphabet = seg
        .dcs
        .alphabet()
        .ok_or_else(|| anyhow::anyhow!("DCS without an alphabet"))?;
    let mut out = Vec::with_capacity(seg.parts.len());
    for part in &seg.parts {
        let mut sm = Sm {
            source: SmeAddress::parse(from),
            dest: SmeAddress::parse(to),
            data_coding: data_coding(alphabet),
            registered_delivery: u8::from(receipt),
            ..Sm::default()
        };
        if let Some(h) = &part.header {
            h.encode(&mut sm.short_message)?;
            sm.esm_class |= esm::UDHI;
        }
        sm.short_message.extend_from_slice(&part.payload);
        out.push(sm);
    }
    Ok(out)
}

/// SMS-SUBMIT TPDUs (with an empty service centre address in front, as AT+CMGS takes them).
pub fn to_tpdus(to: &str, seg: &Segments, first_reference: u8) -> anyhow::Result<Vec<Vec<u8>>> {
    let dest = Address::parse(to)?;
    seg.parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let s = Submit::new(dest.clone(), seg.dcs, p.clone())
                .with_reference(first_reference.wrapping_add(i as u8));
            Ok(Tpdu::Submit(s).encode_with_sca(None)?)
        })
        .collect()
}

/// An RFC 5724 `sms:` URI with the full text form as body, for a phone's own messaging app.
pub fn sms_uri(
    numbers: &[String],
    records: &[AttributeRecord],
    form: As,
) -> anyhow::Result<String> {
    Ok(sms_uri_of(
        numbers,
        &message_body(records, form, &Extent::Full)?,
    ))
}

/// An RFC 5724 `sms:` URI with `body`.
pub fn sms_uri_of(numbers: &[String], body: &str) -> String {
    let mut uri = format!("sms:{}?body=", numbers.join(","));
    for b in body.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;
    use vshare_attributes::Kind;

    const BASE: &str = "http://127.0.0.1:8080";

    fn vod(title: &str) -> AttributeRecord {
        let mut r = AttributeRecord::blank(Kind::Vod);
        r.video_id = "v7Kq2".into();
        r.url = format!("{BASE}/vod/v7Kq2/video.mp4");
        r.format = "mp4".into();
        r.codecs = "avc1.64001F,mp4a.40.2".into();
        r.width = 1280;
        r.height = 720;
        r.duration_ms = 62_040;
        r.size = 18_874_368;
        r.title = title.into();
        r
    }

    fn septets(text: &str) -> usize {
        gsm7::encode(text).map_or(0, |s| s.len())
    }

    #[test]
    fn one_sms_is_160_gsm_septets_or_70_ucs2_characters() {
        assert!(fits_one_sms(&"a".repeat(160)));
        assert!(!fits_one_sms(&"a".repeat(161)));
        // Extension characters take two septets.
        assert!(fits_one_sms(&"{".repeat(80)));
        assert!(!fits_one_sms(&format!("{}a", "{".repeat(80))));
        assert!(fits_one_sms(&"日".repeat(70)));
        assert!(!fits_one_sms(&"日".repeat(71)));
    }

    #[test]
    fn a_gsm_title_is_cut_to_exactly_160_septets() {
        let records = [vod(&"x".repeat(300))];
        let text = compact_text(BASE, &records).expect("compact");
        assert_eq!(septets(&text), 160, "{text}");
        assert!(text.starts_with("http://127.0.0.1:8080/w/v7Kq2\nVOD 1280x720 1:02 \"xxx"));
        assert!(text.ends_with("...\""), "{text}");
        let seg = compose_message(
            &records,
            As::Text,
            &Extent::Compact {
                link_base: BASE.into(),
            },
            ConcatRef::Eight(1),
            1,
        )
        .expect("compose");
        assert_eq!((seg.parts.len(), alphabet_name(&seg)), (1, "gsm7"));
        assert!(seg.parts[0].header.is_none());
        // The full text form of the same record takes more.
        let full = compose_message(&records, As::Text, &Extent::Full, ConcatRef::Eight(1), 1)
            .expect("full");
        assert!(full.parts.len() > 1);
        // A short title is not touched.
        let text = compact_text(BASE, &[vod("Harbour")]).expect("compact");
        assert_eq!(
            text,
            "http://127.0.0.1:8080/w/v7Kq2\nVOD 1280x720 1:02 \"Harbour\""
        );
        // Extension characters count twice.
        let text = compact_text(BASE, &[vod(&"{".repeat(300))]).expect("compact");
        assert!(matches!(septets(&text), 159 | 160), "{text}");
    }

    #[test]
    fn a_title_outside_gsm_makes_ucs2_of_at_most_70_characters() {
        let text = compact_text(BASE, &[vod(&"日落".repeat(50))]).expect("compact");
        assert!(!gsm7::is_encodable(&text));
        assert_eq!(text.encode_utf16().count(), 70, "{text}");
        assert!(text.ends_with("…\""), "{text}");
        assert!(fits_one_sms(&text));
        // Too little room for a useful title: the fields go before the title does.
        let c = Compact::decode(&text).expect("decodes");
        assert_eq!(
            c.title.chars().count(),
            70 - 2 - 1 - "VOD 1280x720 1:02 ".len() - 29
        );
        let short = compact_text(BASE, &[vod("日落")]).expect("compact");
        assert_eq!(
            short,
            "http://127.0.0.1:8080/w/v7Kq2\nVOD 1280x720 1:02 \"日落\""
        );
    }

    #[test]
    fn the_compact_wap_push_fits_one_140_octet_sms() {
        for title in ["Harbour", &"x".repeat(300), &"日落".repeat(80)] {
            let records = [vod(title)];
            let seg = compose_message(
                &records,
                As::WapSi,
                &Extent::Compact {
                    link_base: BASE.into(),
                },
                ConcatRef::Eight(1),
                7,
            )
            .expect("compose");
            assert_eq!(seg.parts.len(), 1, "{title}");
            let part = &seg.parts[0];
            let udh = part.header.as_ref().map_or(0, |h| h.encoded_len());
            assert!(udh + part.payload.len() <= 140, "{title}");
            let push = PushPdu::decode(&part.payload).expect("push");
            let si = ServiceIndication::from_wbxml(&push.body).expect("si");
            assert_eq!(si.href.as_deref(), Some("http://127.0.0.1:8080/w/v7Kq2"));
            assert_eq!(si.si_id.as_deref(), Some("vshare-v7Kq2"));
            assert!(si.text.starts_with("VOD"), "{}", si.text);
        }
        // The full SI of the same record takes two.
        let full = compose(&[vod("Harbour")], As::WapSi, ConcatRef::Eight(1), 7).expect("full");
        assert_eq!(full.parts.len(), 2);
    }

    #[test]
    fn a_signed_link_keeps_its_query_and_the_summary_makes_room() {
        let mut r = vod("Harbour at dusk");
        r.url
            .push_str("?exp=1900000000&sig=0123456789abcdef0123456789abcdef0123456789abcdef");
        let text = compact_text(BASE, &[r]).expect("compact");
        let c = Compact::decode(&text).expect("decodes");
        assert!(c.link.ends_with(
            "/w/v7Kq2?exp=1900000000&sig=0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(fits_one_sms(&text));
        // A private video's link on a server with a long address: the SI drops its si-id.
        let mut r = vod("Harbour");
        r.video_id = "3mgpkc2e3r99".into();
        r.url = format!(
            "http://127.0.0.1:36841/vod/3mgpkc2e3r99/video.mp4?exp=1796829486&sig={}",
            "ad".repeat(32)
        );
        let si = compact_service_indication("http://127.0.0.1:36841", &[r], 9).expect("fits");
        assert!(
            si.href
                .as_deref()
                .is_some_and(|h| h.ends_with(&"ad".repeat(32)))
        );
        assert_eq!(si.si_id, None);
    }
}

#[cfg(test)]
mod cost {
    use super::*;
    use vshare_attributes::Kind;

    /// The records of docs/messages.md's cost table: a ready VOD (MP4 and HLS) of 62 s.
    fn records(title: &str) -> Vec<AttributeRecord> {
        let mut mp4 = AttributeRecord::blank(Kind::Vod);
        mp4.video_id = "v7Kq2".into();
        mp4.url = "http://127.0.0.1:8080/vod/v7Kq2/video.mp4".into();
        mp4.format = "mp4".into();
        mp4.codecs = "avc1.64001F,mp4a.40.2".into();
        mp4.width = 1280;
        mp4.height = 720;
        mp4.frame_rate = 29.97;
        mp4.bitrate = 2_500_000;
        mp4.size = 18_874_368;
        mp4.duration_ms = 62_040;
        mp4.audio_sample_rate = 48_000;
        mp4.audio_channels = 2;
        mp4.title = title.into();
        let mut hls = mp4.clone();
        hls.format = "hls".into();
        hls.url = "http://127.0.0.1:8080/vod/v7Kq2/index.m3u8".into();
        hls.size = 0;
        vec![mp4, hls]
    }

    fn parts(records: &[AttributeRecord], form: As, full: bool) -> (usize, &'static str) {
        let extent = if full {
            Extent::Full
        } else {
            Extent::Compact {
                link_base: "http://127.0.0.1:8080".into(),
            }
        };
        let seg = compose_message(records, form, &extent, ConcatRef::Eight(1), 1).expect("compose");
        (seg.parts.len(), alphabet_name(&seg))
    }

    /// The figures of docs/messages.md, "What each form costs".
    #[test]
    fn the_documented_costs() {
        let latin = records("Harbour at dusk");
        let cjk = records("港口的黄昏");
        let table = [
            (As::Text, false, (1, "gsm7"), (1, "ucs2")),
            (As::WapSi, false, (1, "8bit"), (1, "8bit")),
            (As::Text, true, (3, "gsm7"), (5, "ucs2")),
            (As::Xml, true, (5, "gsm7"), (10, "ucs2")),
            (As::Tlv, true, (3, "8bit"), (3, "8bit")),
            (As::WapSi, true, (2, "8bit"), (2, "8bit")),
            (As::WapSl, true, (1, "8bit"), (1, "8bit")),
        ];
        for (form, full, want_latin, want_cjk) in table {
            let got = (parts(&latin, form, full), parts(&cjk, form, full));
            println!("{} {got:?}", form_name(form, full));
            assert_eq!(got, (want_latin, want_cjk), "{}", form_name(form, full));
        }
        let base = "http://127.0.0.1:8080";
        for (records, units) in [(&latin, 65), (&cjk, 55)] {
            let text = compact_text(base, records).expect("compact");
            println!("{text:?}");
            assert_eq!(text.encode_utf16().count(), units);
        }
        for (records, octets) in [(&latin, 99), (&cjk, 99)] {
            let push = compact_push(base, records, 1).expect("push");
            // UDH: length, 16-bit ports element (6 octets).
            println!("SI push {} octets + 7 UDH", push.len());
            assert_eq!(push.len() + 7, octets);
        }
    }
}
