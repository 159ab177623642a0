//! TPDUs (3GPP TS 23.040 §9.2.2): SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT, with the
//! fields of §9.2.3.

use crate::{Address, Alphabet, Dcs, Reader, SmsError, UserData};

/// Which way a TPDU travels; TP-MTI means different things each way (§9.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Phone → service centre (SMS-SUBMIT).
    MobileOriginated,
    /// Service centre → phone (SMS-DELIVER, SMS-STATUS-REPORT).
    MobileTerminated,
}

/// TP-SCTS / TP-DT / absolute TP-VP: a service-centre time stamp (§9.2.3.11), semi-octets
/// swapped, time zone in quarter hours (−48..=+56 in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Two-digit year (00..=99).
    pub year: u8,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in quarters of an hour.
    pub tz_quarters: i8,
}

fn bcd(v: u8) -> u8 {
    ((v % 10) << 4) | ((v / 10) % 10)
}

impl Timestamp {
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        ] {
            out.push(bcd(v));
        }
        let q = self.tz_quarters.unsigned_abs();
        let sign = if self.tz_quarters < 0 { 0x08 } else { 0 };
        out.push(((q % 10) << 4) | ((q / 10) % 10) | sign);
    }

    fn decode(r: &mut Reader<'_>, field: &'static str) -> Result<Timestamp, SmsError> {
        let at = r.pos;
        let b = r.take(7, field)?;
        let mut v = [0u8; 6];
        for (i, slot) in v.iter_mut().enumerate() {
            let (lo, hi) = (b[i] & 0x0F, b[i] >> 4);
            if lo > 9 || hi > 9 {
                return Err(SmsError::Invalid {
                    offset: at + i,
                    field,
                    reason: format!("0x{:02X} is not BCD", b[i]),
                });
            }
            *slot = lo * 10 + hi;
        }
        let (tens, units) = (b[6] & 0x07, b[6] >> 4);
        if units > 9 {
            return Err(SmsError::Invalid {
                offset: at + 6,
                field,
                reason: "time zone is not BCD".into(),
            });
        }
        let q = (tens * 10 + units) as i8;
        let ts = Timestamp {
            year: v[0],
            month: v[1],
            day: v[2],
            hour: v[3],
            minute: v[4],
            second: v[5],
            tz_quarters: if b[6] & 0x08 != 0 { -q } else { q },
        };
        if !(1..=12).contains(&ts.month)
            || !(1..=31).contains(&ts.day)
            || ts.hour > 23
            || ts.minute > 59
            || ts.second > 59
        {
            return Err(SmsError::Invalid {
                offset: at,
                field,
                reason: format!("{ts:?} is not a valid time"),
            });
        }
        Ok(ts)
    }
}

/// TP-VP (§9.2.3.12) with its format TP-VPF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidityPeriod {
    /// Relative, one octet (§9.2.3.12.1): 0..=143 five-minute steps up to 12 h, then half hours,
    /// days, weeks.
    Relative(u8),
    /// Enhanced format, seven octets (§9.2.3.12.3), kept as they are.
    Enhanced([u8; 7]),
    /// Absolute time (§9.2.3.12.2).
    Absolute(Timestamp),
}

impl ValidityPeriod {
    /// The relative period as minutes.
    pub fn relative_minutes(v: u8) -> u32 {
        let v = u32::from(v);
        match v {
            0..=143 => (v + 1) * 5,
            144..=167 => 12 * 60 + (v - 143) * 30,
            168..=196 => (v - 166) * 24 * 60,
            _ => (v - 192) * 7 * 24 * 60,
        }
    }
}

/// SMS-SUBMIT (§9.2.2.2): phone → service centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// TP-RD: reject a duplicate of a message still held by the SC.
    pub reject_duplicates: bool,
    /// TP-SRR: ask for a status report.
    pub status_report_request: bool,
    /// TP-RP: reply path.
    pub reply_path: bool,
    /// TP-MR (§9.2.3.6).
    pub message_reference: u8,
    /// TP-DA (§9.2.3.8).
    pub destination: Address,
    /// TP-PID (§9.2.3.9).
    pub pid: u8,
    /// TP-DCS (§9.2.3.10).
    pub dcs: Dcs,
    /// TP-VP with TP-VPF (§9.2.3.12, §9.2.3.3).
    pub validity: Option<ValidityPeriod>,
    /// TP-UDHI + TP-UDL + TP-UD.
    pub user_data: UserData,
}

/// SMS-DELIVER (§9.2.2.1): service centre → phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// TP-MMS: true when more messages are waiting (the bit itself is 0 then).
    pub more_messages: bool,
    /// TP-LP: loop prevention.
    pub loop_prevention: bool,
    /// TP-SRI: a status report will be returned to the sender.
    pub status_report_indication: bool,
    pub reply_path: bool,
    /// TP-OA (§9.2.3.7).
    pub originator: Address,
    pub pid: u8,
    pub dcs: Dcs,
    /// TP-SCTS (§9.2.3.11).
    pub timestamp: Timestamp,
    pub user_data: UserData,
}

/// SMS-STATUS-REPORT (§9.2.2.3): the fate of an earlier SMS-SUBMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub more_messages: bool,
    /// TP-SRQ: this reports on an SMS-COMMAND rather than an SMS-SUBMIT.
    pub qualifier_command: bool,
    /// TP-MR of the SMS-SUBMIT it reports on.
    pub message_reference: u8,
    /// TP-RA (§9.2.3.14).
    pub recipient: Address,
    /// TP-SCTS of the original message.
    pub timestamp: Timestamp,
    /// TP-DT (§9.2.3.13): when the status below was reached.
    pub discharge_time: Timestamp,
    /// TP-ST (§9.2.3.15): 0x00 delivered, 0x20..=0x3F still trying, 0x40.. permanent error.
    pub status: u8,
    /// TP-PID, TP-DCS, TP-UD announced by TP-PI (§9.2.3.27).
    pub pid: Option<u8>,
    pub dcs: Option<Dcs>,
    pub user_data: Option<UserData>,
}

impl StatusReport {
    /// TP-ST says the message reached the recipient.
    pub fn delivered(&self) -> bool {
        self.status < 0x20
    }
}

/// Any TPDU this crate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    Submit(Submit),
    Deliver(Deliver),
    StatusReport(StatusReport),
}

fn alphabet_of(dcs: Dcs, at: usize) -> Result<Alphabet, SmsError> {
    dcs.alphabet().ok_or(SmsError::Invalid {
        offset: at,
        field: "TP-DCS",
        reason: format!("0x{:02X} is compressed or a reserved coding group", dcs.0),
    })
}

impl Submit {
    /// A SUBMIT with defaults: no status report, relative validity 4 days (TP-VP 170).
    pub fn new(destination: Address, dcs: Dcs, user_data: UserData) -> Submit {
        Submit {
            reject_duplicates: false,
            status_report_request: false,
            reply_path: false,
            message_reference: 0,
            destination,
            pid: 0,
            dcs,
            validity: Some(ValidityPeriod::Relative(170)),
            user_data,
        }
    }

    /// Sets TP-MR.
    pub fn with_reference(mut self, mr: u8) -> Submit {
        self.message_reference = mr;
        self
    }

    pub fn encode(&self) -> Result<Vec<u8>, SmsError> {
        let alphabet = self.dcs.alphabet().ok_or(SmsError::Unencodable {
            field: "TP-DCS",
            reason: format!("0x{:02X} has no alphabet this crate writes", self.dcs.0),
        })?;
        let vpf = match self.validity {
            None => 0,
            Some(ValidityPeriod::Enhanced(_)) => 1,
            Some(ValidityPeriod::Relative(_)) => 2,
            Some(ValidityPeriod::Absolute(_)) => 3,
        };
        let first = 0x01
            | u8::from(self.reject_duplicates) << 2
            | vpf << 3
            | u8::from(self.status_report_request) << 5
            | u8::from(self.user_data.header.is_some()) << 6
            | u8::from(self.reply_path) << 7;
        let mut out = vec![first, self.message_reference];
        self.destination.encode_tp(&mut out)?;
        out.push(self.pid);
        out.push(self.dcs.0);
        match self.validity {
            None => {}
            Some(ValidityPeriod::Relative(v)) => out.push(v),
            Some(ValidityPeriod::Enhanced(e)) => out.extend_from_slice(&e),
            Some(ValidityPeriod::Absolute(t)) => t.encode(&mut out),
        }
        let (udl, ud) = self.user_data.encode(alphabet)?;
        out.push(udl);
        out.extend_from_slice(&ud);
        Ok(out)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Submit, SmsError> {
        let first = r.u8("first octet")?;
        let message_reference = r.u8("TP-MR")?;
        let destination = Address::decode_tp(r, "TP-DA")?;
        let pid = r.u8("TP-PID")?;
        let dcs_at = r.pos;
        let dcs = Dcs(r.u8("TP-DCS")?);
        let validity = match (first >> 3) & 3 {
            0 => None,
            2 => Some(ValidityPeriod::Relative(r.u8("TP-VP")?)),
            1 => {
                let b = r.take(7, "TP-VP")?;
                let mut e = [0u8; 7];
                e.copy_from_slice(b);
                Some(ValidityPeriod::Enhanced(e))
            }
            _ => Some(ValidityPeriod::Absolute(Timestamp::decode(r, "TP-VP")?)),
        };
        let alphabet = alphabet_of(dcs, dcs_at)?;
        let udl = r.u8("TP-UDL")?;
        let base = r.pos;
        let user_data = UserData::decode(udl, r.rest(), first & 0x40 != 0, alphabet, base)?;
        Ok(Submit {
            reject_duplicates: first & 0x04 != 0,
            status_report_request: first & 0x20 != 0,
            reply_path: first & 0x80 != 0,
            message_reference,
            destination,
            pid,
            dcs,
            validity,
            user_data,
        })
    }
}

impl Deliver {
    pub fn encode(&self) -> Result<Vec<u8>, SmsError> {
        let alphabet = self.dcs.alphabet().ok_or(SmsError::Unencodable {
            field: "TP-DCS",
            reason: format!("0x{:02X} has no alphabet this crate writes", self.dcs.0),
        })?;
        let first = u8::from(!self.more_messages) << 2
            | u8::from(self.loop_prevention) << 3
            | u8::from(self.status_report_indication) << 5
            | u8::from(self.user_data.header.is_some()) << 6
            | u8::from(self.reply_path) << 7;
        let mut out = vec![first];
        self.originator.encode_tp(&mut out)?;
        out.push(self.pid);
        out.push(self.dcs.0);
        self.timestamp.encode(&mut out);
        let (udl, ud) = self.user_data.encode(alphabet)?;
        out.push(udl);
        out.extend_from_slice(&ud);
        Ok(out)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Deliver, SmsError> {
        let first = r.u8("first octet")?;
        let originator = Address::decode_tp(r, "TP-OA")?;
        let pid = r.u8("TP-PID")?;
        let dcs_at = r.pos;
        let dcs = Dcs(r.u8("TP-DCS")?);
        let timestamp = Timestamp::decode(r, "TP-SCTS")?;
        let alphabet = alphabet_of(dcs, dcs_at)?;
        let udl = r.u8("TP-UDL")?;
        let base = r.pos;
        let user_data = UserData::decode(udl, r.rest(), first & 0x40 != 0, alphabet, base)?;
        Ok(Deliver {
            more_messages: first & 0x04 == 0,
            loop_prevention: first & 0x08 != 0,
            status_report_indication: first & 0x20 != 0,
            reply_path: first & 0x80 != 0,
            originator,
            pid,
            dcs,
            timestamp,
            user_data,
        })
    }
}

impl StatusReport {
    pub fn encode(&self) -> Result<Vec<u8>, SmsError> {
        let udhi = self.user_data.as_ref().is_some_and(|u| u.header.is_some());
        let first = 0x02
            | u8::from(!self.more_messages) << 2
            | u8::from(self.qualifier_command) << 5
            | u8::from(udhi) << 6;
        let mut out = vec![first, self.message_reference];
        self.recipient.encode_tp(&mut out)?;
        self.timestamp.encode(&mut out);
        self.discharge_time.encode(&mut out);
        out.push(self.status);
        let pi = u8::from(self.pid.is_some())
            | u8::from(self.dcs.is_some()) << 1
            | u8::from(self.user_data.is_some()) << 2;
        if pi != 0 {
            out.push(pi);
            if let Some(p) = self.pid {
                out.push(p);
            }
            if let Some(d) = self.dcs {
                out.push(d.0);
            }
            if let Some(ud) = &self.user_data {
                let alphabet =
                    self.dcs
                        .unwrap_or(Dcs::GSM7)
                        .alphabet()
                        .ok_or(SmsError::Unencodable {
                            field: "TP-DCS",
                            reason: "no alphabet this crate writes".into(),
                        })?;
                let (udl, bytes) = ud.encode(alphabet)?;
                out.push(udl);
                out.extend_from_slice(&bytes);
            }
        }
        Ok(out)
    }

    fn decode(r: &mut Reader<'_>) -> Result<StatusReport, SmsError> {
        let first = r.u8("first octet")?;
        let message_reference = r.u8("TP-MR")?;
        let recipient = Address::decode_tp(r, "TP-RA")?;
        let timestamp = Timestamp::decode(r, "TP-SCTS")?;
        let discharge_time = Timestamp::decode(r, "TP-DT")?;
        let status = r.u8("TP-ST")?;
        let mut sr = StatusReport {
            more_messages: first & 0x04 == 0,
            qualifier_command: first & 0x20 != 0,
            message_reference,
            recipient,
            timestamp,
            discharge_time,
            status,
            pid: None,
            dcs: None,
            user_data: None,
        };
        // TP-PI is optional (§9.2.2.3): absent when the TPDU ends here.
        if r.pos < r.bytes.len() {
            let pi_at = r.pos;
            let pi = r.u8("TP-PI")?;
            if pi & 0x80 != 0 {
                return Err(SmsError::Invalid {
                    offset: pi_at,
                    field: "TP-PI",
                    reason: "extension bit set".into(),
                });
            }
            if pi & 1 != 0 {
                sr.pid = Some(r.u8("TP-PID")?);
            }
            let dcs_at = r.pos;
            if pi & 2 != 0 {
                sr.dcs = Some(Dcs(r.u8("TP-DCS")?));
            }
            if pi & 4 != 0 {
                let alphabet = alphabet_of(sr.dcs.unwrap_or(Dcs::GSM7), dcs_at)?;
                let udl = r.u8("TP-UDL")?;
                let base = r.pos;
                sr.user_data = Some(UserData::decode(
                    udl,
                    r.rest(),
                    first & 0x40 != 0,
                    alphabet,
                    base,
                )?);
            }
        }
        if r.pos < r.bytes.len() {
            return Err(SmsError::Invalid {
                offset: r.pos,
                field: "TPDU",
                reason: "octets after the last field".into(),
            });
        }
        Ok(sr)
    }
}

impl Tpdu {
    /// Decodes a bare TPDU (no service centre address in front).
    pub fn decode(bytes: &[u8], direction: Direction) -> Result<Tpdu, SmsError> {
        let mut r = Reader::new(bytes);
        let mti = bytes.first().ok_or(SmsError::Truncated {
            offset: 0,
            field: "first octet",
        })? & 3;
        let t = match (direction, mti) {
            (Direction::MobileOriginated, 1) => Tpdu::Submit(Submit::decode(&mut r)?),
            (Direction::MobileTerminated, 0) => Tpdu::Deliver(Deliver::decode(&mut r)?),
            (Direction::MobileTerminated, 2) => Tpdu::StatusReport(StatusReport::decode(&mut r)?),
            (d, m) => {
                return Err(SmsError::Invalid {
                    offset: 0,
                    field: "TP-MTI",
                    reason: format!("{m} {d:?} is not SUBMIT, DELIVER or STATUS-REPORT"),
                });
            }
        };
        Ok(t)
    }

    /// Decodes a TPDU preceded by a service centre address, as modems and gammu write them.
    pub fn decode_with_sca(
        bytes: &[u8],
        direction: Direction,
    ) -> Result<(Option<Address>, Tpdu), SmsError> {
        let mut r = Reader::new(bytes);
        let sca = Address::decode_sca(&mut r)?;
        let start = r.pos;
        let tpdu = Tpdu::decode(&bytes[start..], direction).map_err(|e| match e {
            SmsError::Truncated { offset, field } => SmsError::Truncated {
                offset: offset + start,
                field,
            },
            SmsError::Invalid {
                offset,
                field,
                reason,
            } => SmsError::Invalid {
                offset: offset + start,
                field,
                reason,
            },
            other => other,
        })?;
        Ok((sca, tpdu))
    }

    /// Encodes a bare TPDU.
    pub fn encode(&self) -> Result<Vec<u8>, SmsError> {
        match self {
            Tpdu::Submit(s) => s.encode(),
            Tpdu::Deliver(d) => d.encode(),
            Tpdu::StatusReport(s) => s.encode(),
        }
    }

    /// Encodes with a service centre address in front (`None` writes `00`: the phone's default).
    pub fn encode_with_sca(&self, sca: Option<&Address>) -> Result<Vec<u8>, SmsError> {
        let mut out = Vec::with_capacity(176);
        Address::encode_sca(sca, &mut out)?;
        out.extend_from_slice(&self.encode()?);
        Ok(out)
    }

    /// The user data and its DCS, whatever the type.
    pub fn user_data(&self) -> Option<(Dcs, &UserData)> {
        match self {
            Tpdu::Submit(s) => Some((s.dcs, &s.user_data)),
            Tpdu::Deliver(d) => Some((d.dcs, &d.user_data)),
            Tpdu::StatusReport(s) => s
                .user_data
                .as_ref()
                .map(|u| (s.dcs.unwrap_or(Dcs::GSM7), u)),
        }
    }
}
