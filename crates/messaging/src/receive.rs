//! SMS parts → what they carry: attribute records (text, XML or TLV form, or inside a WAP SI),
//! an SL's URL, or plain text.

use std::time::Instant;

use vshare_attributes::forms::{Compact, Form, decode_any, decode_text, decode_tlv};
use vshare_attributes::{AttributeRecord, Kind};
use vshare_smpp::pdu::{Sm, esm};
use vshare_sms::reassembly::{Message, Reassembler};
use vshare_sms::{Dcs, Direction, Tpdu, UserData, UserDataHeader};
use vshare_wap::si::ServiceIndication;
use vshare_wap::sl::ServiceLoading;
use vshare_wap::wdp;
use vshare_wap::wsp::{CT_SIC, CT_SLC, ContentType, PushPdu};

use crate::compose::TLV_PORT;

/// What a message turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Records in one of our forms.
    Records {
        form: Form,
        records: Vec<AttributeRecord>,
    },
    /// A WAP Service Indication; `records` when its text is our field line.
    ServiceIndication {
        si: ServiceIndication,
        records: Vec<AttributeRecord>,
    },
    /// A WAP Service Loading: only a URL.
    ServiceLoading {
        sl: ServiceLoading,
        record: AttributeRecord,
    },
    /// The compact form: a short link (in text, or as a WAP SI's href) and a summary; the full
    /// records are fetched from the link ([`crate::api::fetch_link`]).
    Link { compact: Compact, wap: bool },
    /// Text that is none of our forms.
    Text(String),
}

impl Received {
    /// The records, whatever the carrier.
    pub fn records(&self) -> Vec<AttributeRecord> {
        match self {
            Received::Records { records, .. } | Received::ServiceIndication { records, .. } => {
                records.clone()
            }
            Received::ServiceLoading { record, .. } => vec![record.clone()],
            Received::Link { compact, .. } => vec![compact.to_record()],
            Received::Text(_) => vec![],
        }
    }
}

/// A record that knows only its URL (from an SL, or an SI without our field line).
pub fn record_from_url(url: &str) -> AttributeRecord {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let format = if path.ends_with(".mp4") {
        "mp4"
    } else if path.ends_with(".m3u8") {
        if path.contains("/live/") {
            "ll-hls"
        } else {
            "hls"
        }
    } else {
        "unknown"
    };
    let video_id = path.rsplit('/').nth(1).unwrap_or_default().to_string();
    AttributeRecord {
        kind: if path.contains("/live/") {
            Kind::Live
        } else {
            Kind::Vod
        },
        video_id,
        url: url.into(),
        poster: String::new(),
        format: format.into(),
        codecs: String::new(),
        width: 0,
        height: 0,
        frame_rate: 0.0,
        bitrate: 0,
        size: 0,
        duration_ms: 0,
        dvr: 0,
        frames_coming: 0,
        audio_sample_rate: 0,
        audio_channels: 0,
        title: String::new(),
    }
}

/// Decodes a whole (reassembled) message.
pub fn decode_message(m: &Message) -> anyhow::Result<Received> {
    if !m.is_complete() {
        anyhow::bail!(
            "message from {} is missing part(s) {:?} of {}",
            m.originator,
            m.missing,
            m.parts
        );
    }
    if wdp::is_push(m) {
        let push = PushPdu::decode(&m.payload)?;
        return match push.content_type {
            ContentType::WellKnown(CT_SIC) => {
                let si = ServiceIndication::from_wbxml(&push.body)?;
                if let Some(compact) = si.href.as_deref().and_then(|h| compact_si(h, &si.text)) {
                    return Ok(Received::Link { compact, wap: true });
                }
                let records = match &si.href {
                    Some(href) => decode_text(format!("{href}\n{}\n", si.text).as_bytes())
                        .unwrap_or_else(|_| vec![record_from_url(href)]),
                    None => vec![],
                };
                Ok(Received::ServiceIndication { si, records })
            }
            ContentType::WellKnown(CT_SLC) => {
                let sl = ServiceLoading::from_wbxml(&push.body)?;
                let record = record_from_url(&sl.href);
                Ok(Received::ServiceLoading { sl, record })
            }
            other => anyhow::bail!("WAP Push of content type {other:?} is neither SI nor SL"),
        };
    }
    if m.ports.is_some_and(|(d, _)| d == TLV_PORT) {
        return Ok(Received::Records {
            form: Form::Tlv,
            records: decode_tlv(&m.payload)?,
        });
    }
    let text = m.text()?;
    if let Ok(compact) = Compact::decode(&text) {
        return Ok(Received::Link {
            compact,
            wap: false,
        });
    }
    match decode_any(text.as_bytes()) {
        Ok((form, records)) => Ok(Received::Records { form, records }),
        Err(_) => Ok(Received::Text(text)),
    }
}

/// The compact form of an SI whose href is a short link: its text is the summary line (or
/// something else, then the link alone).
fn compact_si(href: &str, text: &str) -> Option<Compact> {
    vshare_attributes::forms::compact::link_video_id(href)?;
    Compact::decode(&format!("{href}\n{text}"))
        .or_else(|_| Compact::decode(href))
        .ok()
}

/// Decodes one datagram from an IP push channel (WDP over UDP, WAP-259 §6.4: port 2948 carries
/// a WSP connectionless push PDU) or one of our forms sent as is.
pub fn decode_datagram(bytes: &[u8]) -> anyhow::Result<Received> {
    if let Ok(push) = PushPdu::decode(bytes)
        && matches!(push.content_type, ContentType::WellKnown(CT_SIC | CT_SLC))
    {
        let m = Message {
            originator: String::new(),
            dcs: Dcs::EIGHT_BIT,
            ports: Some((wdp::PUSH_PORT, wdp::WSP_PORT)),
            payload: bytes.to_vec(),
            parts: 1,
            missing: vec![],
        };
        return decode_message(&m);
    }
    if let Some(compact) = std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| Compact::decode(t).ok())
    {
        return Ok(Received::Link {
            compact,
            wap: false,
        });
    }
    let (form, records) = decode_any(bytes)?;
    Ok(Received::Records { form, records })
}

/// The user data of an SMPP deliver_sm/submit_sm (UDH when esm_class has UDHI; GSM 7-bit
/// unpacked, one septet per octet).
pub fn user_data_of_sm(sm: &Sm) -> anyhow::Result<(Dcs, UserData)> {
    let dcs = match sm.data_coding {
        0x00 | 0x01 => Dcs::GSM7,
        0x02 | 0x04 => Dcs::EIGHT_BIT,
        0x08 => Dcs::UCS2,
        other => Dcs(other),
    };
    let bytes = sm.payload();
    if sm.esm_class & esm::UDHI != 0 {
        let h = UserDataHeader::decode(bytes, 0)?;
        let n = h.encoded_len();
        Ok((
            dcs,
            UserData {
                header: Some(h),
                payload: bytes.get(n..).unwrap_or_default().to_vec(),
            },
        ))
    } else {
        Ok((
            dcs,
            UserData {
                header: None,
                payload: bytes.to_vec(),
            },
        ))
    }
}

/// Reads a hex TPDU the way people paste them: SMS-DELIVER or SMS-SUBMIT, with or without a
/// service centre address. Returns (sender or recipient, DCS, user data).
pub fn parse_hex_pdu(hex: &str) -> anyhow::Result<(String, Dcs, UserData)> {
    let bytes =
        vshare_sms::hex::decode(hex).ok_or_else(|| anyhow::anyhow!("{hex:?} is not hex"))?;
    let mut first_err = None;
    for dir in [Direction::MobileTerminated, Direction::MobileOriginated] {
        for with_sca in [true, false] {
            let r = if with_sca {
                Tpdu::decode_with_sca(&bytes, dir).map(|(_, t)| t)
            } else {
                Tpdu::decode(&bytes, dir)
            };
            match r {
                Ok(Tpdu::Deliver(d)) => return Ok((d.originator.to_string(), d.dcs, d.user_data)),
                Ok(Tpdu::Submit(s)) => return Ok((s.destination.to_string(), s.dcs, s.user_data)),
                Ok(Tpdu::StatusReport(_)) => {
                    anyhow::bail!("this PDU is a status report, not a message")
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Err(first_err.map_or_else(|| anyhow::anyhow!("not a TPDU"), anyhow::Error::from))
}

/// Feeds parts to a reassembler and collects whole messages.
pub fn reassemble_all(parts: Vec<(String, Dcs, UserData)>, now: Instant) -> Vec<Message> {
    let mut r = Reassembler::new(std::time::Duration::from_secs(60));
    let mut out: Vec<Message> = parts
        .into_iter()
        .filter_map(|(from, dcs, ud)| r.push(now, &from, dcs, ud))
        .collect();
    out.extend(r.handle_timeout(now + std::time::Duration::from_secs(3600)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams() {
        let si = ServiceIndication::new("http://h/vod/v1/video.mp4", "VS1 k=vod;id=v1;f=mp4;sz=5");
        let push = PushPdu::service_indication(1, si.to_wbxml().unwrap()).encode();
        let got = decode_datagram(&push).unwrap();
        assert_eq!(got.records()[0].size, 5);
        let tlv = Form::Tlv.encode(&got.records()).unwrap();
        assert_eq!(decode_datagram(&tlv).unwrap().records(), got.records());
        assert!(decode_datagram(b"\x01\x06junk").is_err());
    }

    #[test]
    fn a_short_link_is_the_compact_form() {
        let text = "http://h/w/v1\nVOD 640x360 0:03 \"t\"";
        let Ok(Received::Link { compact, wap }) = decode_datagram(text.as_bytes()) else {
            panic!("not a link");
        };
        assert!(!wap);
        assert_eq!(compact.encode(), text);
        let si = ServiceIndication::new("http://h/w/v1", "LIVE");
        let push = PushPdu::service_indication(1, si.to_wbxml().unwrap()).encode();
        let Ok(Received::Link { compact, wap }) = decode_datagram(&push) else {
            panic!("not a link");
        };
        assert!(wap);
        assert_eq!(compact.kind, Some(Kind::Live));
        // An SI whose text is not a summary still gives the link.
        let si = ServiceIndication::new("http://h/w/v1", "watch this");
        let push = PushPdu::service_indication(1, si.to_wbxml().unwrap()).encode();
        let got = decode_datagram(&push).unwrap().records();
        assert_eq!(
            (got[0].url.as_str(), got[0].format.as_str()),
            ("http://h/w/v1", "link")
        );
    }
}
