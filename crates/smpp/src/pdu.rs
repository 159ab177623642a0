//! SMPP v3.4 PDUs (§4): the 16-octet header (§3.2) and the bodies vshare speaks — binds,
//! submit_sm, deliver_sm, their responses, enquire_link, unbind and generic_nack; any other
//! command is kept as raw bytes.

/// command_id values (§5.1.2.1).
pub mod id {
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    pub const BIND_RECEIVER_RESP: u32 = 0x8000_0001;
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    pub const BIND_TRANSMITTER_RESP: u32 = 0x8000_0002;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
}

/// TLV tags (§5.3.2) vshare reads.
pub mod tag {
    pub const DEST_ADDR_SUBUNIT: u16 = 0x0005;
    pub const SOURCE_PORT: u16 = 0x020A;
    pub const DESTINATION_PORT: u16 = 0x020B;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MESSAGE_STATE: u16 = 0x0427;
}

/// esm_class bits (§5.2.12).
pub mod esm {
    /// UDH indicator: short_message starts with a user data header.
    pub const UDHI: u8 = 0x40;
    /// Message type: SMSC delivery receipt.
    pub const DELIVERY_RECEIPT: u8 = 0x04;
}

/// The largest PDU this crate accepts (the spec sets no limit; real SMSCs stay far below).
pub const MAX_PDU: usize = 64 * 1024;

/// Why bytes are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("SMPP PDU, byte {offset}: ends inside {field}")]
    Truncated { offset: usize, field: &'static str },
    #[error("SMPP PDU, byte {offset}: invalid {field}: {reason}")]
    Invalid {
        offset: usize,
        field: &'static str,
        reason: String,
    },
}

/// A (ton, npi, address) triple (§5.2.5–5.2.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SmeAddress {
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

impl SmeAddress {
    /// `+8613800138000` → international/ISDN without the `+`; digits → unknown/ISDN; else
    /// alphanumeric (TON 5).
    pub fn parse(s: &str) -> SmeAddress {
        if let Some(d) = s.strip_prefix('+') {
            SmeAddress {
                ton: 1,
                npi: 1,
                addr: d.into(),
            }
        } else if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            SmeAddress {
                ton: 0,
                npi: 1,
                addr: s.into(),
            }
        } else {
            SmeAddress {
                ton: 5,
                npi: 0,
                addr: s.into(),
            }
        }
    }

    /// The number with `+` for international numbers.
    pub fn display(&self) -> String {
        if self.ton == 1 {
            format!("+{}", self.addr)
        } else {
            self.addr.clone()
        }
    }
}

/// An optional parameter (§5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

/// bind_transmitter / bind_receiver / bind_transceiver body (§4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bind {
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    /// The addresses this ESME serves (a receiver's phone number, in vshare).
    pub address_range: String,
}

/// bind_*_resp body (§4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindResp {
    pub system_id: String,
    pub sc_interface_version: Option<u8>,
}

/// submit_sm (§4.4.1) and deliver_sm (§4.6.1) share one layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sm {
    pub service_type: String,
    pub source: SmeAddress,
    pub dest: SmeAddress,
    /// §5.2.12; [`esm::UDHI`] when short_message starts with a UDH.
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    /// §5.2.17: bit 0 asks for a delivery receipt.
    pub registered_delivery: u8,
    pub replace_if_present: u8,
    /// §5.2.19: 0 SMSC default (GSM 7-bit), 4 octet data, 8 UCS-2.
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// Up to 254 octets (§5.2.21); longer content goes in message_payload.
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

impl Sm {
    /// A message with default fields.
    pub fn text(from: &str, to: &str, message: &[u8]) -> Sm {
        Sm {
            source: SmeAddress::parse(from),
            dest: SmeAddress::parse(to),
            short_message: message.to_vec(),
            ..Sm::default()
        }
    }

    /// short_message, or the message_payload TLV when short_message is empty.
    pub fn payload(&self) -> &[u8] {
        if self.short_message.is_empty()
            && let Some(t) = self.tlvs.iter().find(|t| t.tag == tag::MESSAGE_PAYLOAD)
        {
            return &t.value;
        }
        &self.short_message
    }

    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.value.as_slice())
    }
}

/// The body of a PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    BindTransmitter(Bind),
    BindReceiver(Bind),
    BindTransceiver(Bind),
    BindTransmitterResp(BindResp),
    BindReceiverResp(BindResp),
    BindTransceiverResp(BindResp),
    SubmitSm(Sm),
    /// message_id (empty on error).
    SubmitSmResp(String),
    DeliverSm(Sm),
    DeliverSmResp(String),
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    GenericNack,
    /// A command this crate does not model, kept as its body octets.
    Other {
        command_id: u32,
        body: Vec<u8>,
    },
}

/// One PDU: header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub status: u32,
    pub sequence: u32,
    pub body: Body,
}

fn put_c(out: &mut Vec<u8>, s: &str, max: usize, field: &'static str) -> Result<(), PduError> {
    if s.len() >= max || s.contains('\0') {
        return Err(PduError::Invalid {
            offset: out.len(),
            field,
            reason: format!("{s:?} does not fit {max} octets with its NUL"),
        });
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        let v = *self.b.get(self.pos).ok_or(PduError::Truncated {
            offset: self.pos,
            field,
        })?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, PduError> {
        let s = self.take(2, field)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, PduError> {
        let s = self.take(4, field)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PduError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(PduError::Truncated {
                offset: self.pos,
                field,
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// A C-Octet String of at most `max` octets including its NUL (§3.1).
    fn c(&mut self, max: usize, field: &'static str) -> Result<String, PduError> {
        let at = self.pos;
        let rest = &self.b[self.pos..];
        let end = rest.iter().take(max).position(|&c| c == 0).ok_or_else(|| {
            if rest.len() < max {
                PduError::Truncated {
                    offset: self.b.len(),
                    field,
                }
            } else {
                PduError::Invalid {
                    offset: at,
                    field,
                    reason: format!("no NUL within {max} octets"),
                }
            }
        })?;
        self.pos += end + 1;
        String::from_utf8(rest[..end].to_vec()).map_err(|e| PduError::Invalid {
            offset: at + e.utf8_error().valid_up_to(),
            field,
            reason: "not ASCII/UTF-8".into(),
        })
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn tlvs(&mut self) -> Result<Vec<Tlv>, PduError> {
        let mut v = Vec::new();
        while !self.done() {
            let tag = self.u16("TLV tag")?;
            let len = self.u16("TLV length")?;
            let value = self.take(usize::from(len), "TLV value")?.to_vec();
            v.push(Tlv { tag, value });
        }
        Ok(v)
    }
}

impl Pdu {
    pub fn new(sequence: u32, body: Body) -> Pdu {
        Pdu {
            status: 0,
            sequence,
            body,
        }
    }

    pub fn command_id(&self) -> u32 {
        match &self.body {
            Body::BindTransmitter(_) => id::BIND_TRANSMITTER,
            Body::BindReceiver(_) => id::BIND_RECEIVER,
            Body::BindTransceiver(_) => id::BIND_TRANSCEIVER,
            Body::BindTransmitterResp(_) => id::BIND_TRANSMITTER_RESP,
            Body::BindReceiverResp(_) => id::BIND_RECEIVER_RESP,
            Body::BindTransceiverResp(_) => id::BIND_TRANSCEIVER_RESP,
            Body::SubmitSm(_) => id::SUBMIT_SM,
            Body::SubmitSmResp(_) => id::SUBMIT_SM_RESP,
            Body::DeliverSm(_) => id::DELIVER_SM,
            Body::DeliverSmResp(_) => id::DELIVER_SM_RESP,
            Body::EnquireLink => id::ENQUIRE_LINK,
            Body::EnquireLinkResp => id::ENQUIRE_LINK_RESP,
            Body::Unbind => id::UNBIND,
            Body::UnbindResp => id::UNBIND_RESP,
            Body::GenericNack => id::GENERIC_NACK,
            Body::Other { command_id, .. } => *command_id,
        }
    }

    /// Appends the encoded PDU to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.command_id().to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        match &self.body {
            Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b) => {
                put_c(out, &b.system_id, 16, "system_id")?;
                put_c(out, &b.password, 9, "password")?;
                put_c(out, &b.system_type, 13, "system_type")?;
                out.extend_from_slice(&[b.interface_version, b.addr_ton, b.addr_npi]);
                put_c(out, &b.address_range, 41, "address_range")?;
            }
            Body::BindTransmitterResp(r)
            | Body::BindReceiverResp(r)
            | Body::BindTransceiverResp(r) => {
                // §4.1.2: the body is left out when the bind failed.
                if self.status == 0 || !r.system_id.is_empty() {
                    put_c(out, &r.system_id, 16, "system_id")?;
                    if let Some(v) = r.sc_interface_version {
                        out.extend_from_slice(&tag::SC_INTERFACE_VERSION.to_be_bytes());
                        out.extend_from_slice(&1u16.to_be_bytes());
                        out.push(v);
                    }
                }
            }
            Body::SubmitSm(sm) | Body::DeliverSm(sm) => {
                put_c(out, &sm.service_type, 6, "service_type")?;
                out.extend_from_slice(&[sm.source.ton, sm.source.npi]);
                put_c(out, &sm.source.addr, 21, "source_addr")?;
                out.extend_from_slice(&[sm.dest.ton, sm.dest.npi]);
                put_c(out, &sm.dest.addr, 21, "destination_addr")?;
                out.extend_from_slice(&[sm.esm_class, sm.protocol_id, sm.priority_flag]);
                put_c(
                    out,
                    &sm.schedule_delivery_time,
                    17,
                    "schedule_delivery_time",
                )?;
                put_c(out, &sm.validity_period, 17, "validity_period")?;
                out.extend_from_slice(&[
                    sm.registered_delivery,
                    sm.replace_if_present,
                    sm.data_coding,
                    sm.sm_default_msg_id,
                ]);
                if sm.short_message.len() > 254 {
                    return Err(PduError::Invalid {
                        offset: out.len(),
                        field: "short_message",
                        reason: format!(
                            "{} octets exceed 254; use message_payload",
                            sm.short_message.len()
                        ),
                    });
                }
                out.push(sm.short_message.len() as u8);
                out.extend_from_slice(&sm.short_message);
                for t in &sm.tlvs {
                    let len = u16::try_from(t.value.len()).map_err(|_| PduError::Invalid {
                        offset: out.len(),
                        field: "TLV",
                        reason: "value longer than 65535".into(),
                    })?;
                    out.extend_from_slice(&t.tag.to_be_bytes());
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&t.value);
                }
            }
            Body::SubmitSmResp(m) | Body::DeliverSmResp(m) => {
                // §4.4.2: no body on error.
                if self.status == 0 || !m.is_empty() {
                    put_c(out, m, 65, "message_id")?;
                }
            }
            Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::Unbind
            | Body::UnbindResp
            | Body::GenericNack => {}
            Body::Other { body, .. } => out.extend_from_slice(body),
        }
        let len = out.len() - start;
        if len > MAX_PDU {
            return Err(PduError::Invalid {
                offset: 0,
                field: "command_length",
                reason: format!("{len} exceeds {MAX_PDU}"),
            });
        }
        out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    pub fn encode(&self) -> Result<Vec<u8>, PduError> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// The length of the PDU at the start of `buf`, once its length field is there.
    pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, PduError> {
        let Some(b) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if !(16..=MAX_PDU).contains(&len) {
            return Err(PduError::Invalid {
                offset: 0,
                field: "command_length",
                reason: format!("{len} is outside 16..={MAX_PDU}"),
            });
        }
        Ok(Some(len))
    }

    /// Decodes exactly one PDU.
    pub fn decode(bytes: &[u8]) -> Result<Pdu, PduError> {
        let mut r = Reader { b: bytes, pos: 0 };
        let len = r.u32("command_length")? as usize;
        if len != bytes.len() || len < 16 {
            return Err(PduError::Invalid {
                offset: 0,
                field: "command_length",
                reason: format!("{len} but the PDU has {} octets", bytes.len()),
            });
        }
        let command_id = r.u32("command_id")?;
        let status = r.u32("command_status")?;
        let sequence = r.u32("sequence_number")?;
        let bind = |r: &mut Reader<'_>| -> Result<Bind, PduError> {
            Ok(Bind {
                system_id: r.c(16, "system_id")?,
                password: r.c(9, "password")?,
                system_type: r.c(13, "system_type")?,
                interface_version: r.u8("interface_version")?,
                addr_ton: r.u8("addr_ton")?,
                addr_npi: r.u8("addr_npi")?,
                address_range: r.c(41, "address_range")?,
            })
        };
        let bind_resp = |r: &mut Reader<'_>| -> Result<BindResp, PduError> {
            if r.done() {
                return Ok(BindResp::default());
            }
            let system_id = r.c(16, "system_id")?;
            let tlvs = r.tlvs()?;
            let sc_interface_version = tlvs
                .iter()
                .find(|t| t.tag == tag::SC_INTERFACE_VERSION)
                .and_then(|t| t.value.first().copied());
            Ok(BindResp {
                system_id,
                sc_interface_version,
            })
        };
        let sm = |r: &mut Reader<'_>| -> Result<Sm, PduError> {
            let service_type = r.c(6, "service_type")?;
            let source = SmeAddress {
                ton: r.u8("source_addr_ton")?,
                npi: r.u8("source_addr_npi")?,
                addr: r.c(21, "source_addr")?,
            };
            let dest = SmeAddress {
                ton: r.u8("dest_addr_ton")?,
                npi: r.u8("dest_addr_npi")?,
                addr: r.c(21, "destination_addr")?,
            };
            let esm_class = r.u8("esm_class")?;
            let protocol_id = r.u8("protocol_id")?;
            let priority_flag = r.u8("priority_flag")?;
            let schedule_delivery_time = r.c(17, "schedule_delivery_time")?;
            let validity_period = r.c(17, "validity_period")?;
            let registered_delivery = r.u8("registered_delivery")?;
            let replace_if_present = r.u8("replace_if_present_flag")?;
            let data_coding = r.u8("data_coding")?;
            let sm_default_msg_id = r.u8("sm_default_msg_id")?;
            let sm_at = r.pos;
            let n = r.u8("sm_length")?;
            if n > 254 {
                return Err(PduError::Invalid {
                    offset: sm_at,
                    field: "sm_length",
                    reason: "255 exceeds 254".into(),
                });
            }
            let short_message = r.take(usize::from(n), "short_message")?.to_vec();
            let tlvs = r.tlvs()?;
            Ok(Sm {
                service_type,
                source,
                dest,
                esm_class,
                protocol_id,
                priority_flag,
                schedule_delivery_time,
                validity_period,
                registered_delivery,
                replace_if_present,
                data_coding,
                sm_default_msg_id,
                short_message,
                tlvs,
            })
        };
        let message_id = |r: &mut Reader<'_>| -> Result<String, PduError> {
            if r.done() {
                Ok(String::new())
            } else {
                r.c(65, "message_id")
            }
        };
        let body = match command_id {
            id::BIND_TRANSMITTER => Body::BindTransmitter(bind(&mut r)?),
            id::BIND_RECEIVER => Body::BindReceiver(bind(&mut r)?),
            id::BIND_TRANSCEIVER => Body::BindTransceiver(bind(&mut r)?),
            id::BIND_TRANSMITTER_RESP => Body::BindTransmitterResp(bind_resp(&mut r)?),
            id::BIND_RECEIVER_RESP => Body::BindReceiverResp(bind_resp(&mut r)?),
            id::BIND_TRANSCEIVER_RESP => Body::BindTransceiverResp(bind_resp(&mut r)?),
            id::SUBMIT_SM => Body::SubmitSm(sm(&mut r)?),
            id::SUBMIT_SM_RESP => Body::SubmitSmResp(message_id(&mut r)?),
            id::DELIVER_SM => Body::DeliverSm(sm(&mut r)?),
            id::DELIVER_SM_RESP => Body::DeliverSmResp(message_id(&mut r)?),
            id::ENQUIRE_LINK => Body::EnquireLink,
            id::ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
            id::UNBIND => Body::Unbind,
            id::UNBIND_RESP => Body::UnbindResp,
            id::GENERIC_NACK => Body::GenericNack,
            other => Body::Other {
                command_id: other,
                body: r.take(len - 16, "body")?.to_vec(),
            },
        };
        if !r.done() {
            return Err(PduError::Invalid {
                offset: r.pos,
                field: "body",
                reason: format!(
                    "{} octets after the last field of 0x{command_id:08X}",
                    bytes.len() - r.pos
                ),
            });
        }
        Ok(Pdu {
            status,
            sequence,
            body,
        })
    }
}
