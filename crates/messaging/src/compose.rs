//! Attribute records → SMS parts, in the form the user picked (docs/messages.md, "How each form
//! travels").

use vshare_attributes::forms::{Form, encode_text};
use vshare_attributes::{AttributeRecord, Kind};
use vshare_smpp::pdu::{Sm, SmeAddress, esm};
use vshare_sms::split::{ConcatRef, Segments, split_binary, split_text};
use vshare_sms::{Address, Alphabet, Submit, Tpdu};
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

/// The record a WAP Push points at: the live stream if there is one, else the MP4, else the first.
pub fn primary(records: &[AttributeRecord]) -> Option<&AttributeRecord> {
    records
        .iter()
        .find(|r| r.kind == Kind::Live)
        .or_else(|| records.iter().find(|r| r.format == "mp4"))
        .or_else(|| records.first())
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

/// Packs records as SMS user data parts.
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

/// An RFC 5724 `sms:` URI with the text form as body, for a phone's own messaging app.
pub fn sms_uri(
    numbers: &[String],
    records: &[AttributeRecord],
    form: As,
) -> anyhow::Result<String> {
    let body = match form {
        As::Text => encode_text(records)?,
        As::Xml => String::from_utf8(Form::Xml.encode(records)?)?,
        other => anyhow::bail!(
            "--as {other:?} needs a data SMS; an sms: link carries text only (use --as text or xml)"
        ),
    };
    let mut uri = format!("sms:{}?body=", numbers.join(","));
    for b in body.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(uri)
}
