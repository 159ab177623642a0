//! Addresses: TP-OA / TP-DA / TP-RA (3GPP TS 23.040 §9.1.2.5) and the service centre address
//! in front of a TPDU (TS 24.011 §8.2.5.1, as AT+CMGS/+CMGR and gammu write it).

use crate::{Reader, SmsError, gsm7};

/// Type of number, bits 6..4 of the type-of-address octet (TS 23.040 §9.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeOfNumber {
    Unknown,
    International,
    National,
    NetworkSpecific,
    Subscriber,
    /// Coded in the GSM 7-bit default alphabet.
    Alphanumeric,
    Abbreviated,
    Reserved,
}

/// Numbering plan, bits 3..0 of the type-of-address octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberingPlan {
    Unknown,
    /// E.164 / E.163 (ISDN telephone).
    Isdn,
    Other(u8),
}

/// An SMS address: a phone number (digits, `*`, `#`, `a`, `b`, `c`) or alphanumeric text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub ton: TypeOfNumber,
    pub npi: NumberingPlan,
    /// Digits without `+` for numbers; the text for alphanumeric addresses.
    pub value: String,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ton == TypeOfNumber::International {
            f.write_str("+")?;
        }
        f.write_str(&self.value)
    }
}

const DIGITS: &[u8; 16] = b"0123456789*#abc?";

impl Address {
    /// `+8613800138000` → international/ISDN; `13800138000` → unknown/ISDN; anything with a
    /// letter → alphanumeric (at most 11 characters of the GSM alphabet).
    pub fn parse(s: &str) -> Result<Address, SmsError> {
        let bad = |reason: &str| SmsError::Unencodable {
            field: "address",
            reason: format!("{s:?}: {reason}"),
        };
        if let Some(d) = s.strip_prefix('+') {
            if d.is_empty() || d.len() > 20 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("expected + and 1 to 20 digits"));
            }
            return Ok(Address {
                ton: TypeOfNumber::International,
                npi: NumberingPlan::Isdn,
                value: d.into(),
            });
        }
        if !s.is_empty()
            && s.len() <= 20
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        {
            return Ok(Address {
                ton: TypeOfNumber::Unknown,
                npi: NumberingPlan::Isdn,
                value: s.into(),
            });
        }
        if s.is_empty() || s.chars().count() > 11 || !gsm7::is_encodable(s) {
            return Err(bad(
                "alphanumeric addresses are 1 to 11 GSM 7-bit characters",
            ));
        }
        Ok(Address::alphanumeric(s))
    }

    /// An alphanumeric sender such as `vshare`.
    pub fn alphanumeric(s: &str) -> Address {
        Address {
            ton: TypeOfNumber::Alphanumeric,
            npi: NumberingPlan::Unknown,
            value: s.into(),
        }
    }

    /// The type-of-address octet.
    pub fn type_octet(&self) -> u8 {
        let ton = match self.ton {
            TypeOfNumber::Unknown => 0,
            TypeOfNumber::International => 1,
            TypeOfNumber::National => 2,
            TypeOfNumber::NetworkSpecific => 3,
            TypeOfNumber::Subscriber => 4,
            TypeOfNumber::Alphanumeric => 5,
            TypeOfNumber::Abbreviated => 6,
            TypeOfNumber::Reserved => 7,
        };
        let npi = match self.npi {
            NumberingPlan::Unknown => 0,
            NumberingPlan::Isdn => 1,
            NumberingPlan::Other(n) => n & 0x0F,
        };
        0x80 | ton << 4 | npi
    }

    fn from_type_octet(t: u8, value: String) -> Address {
        let ton = match (t >> 4) & 7 {
            0 => TypeOfNumber::Unknown,
            1 => TypeOfNumber::International,
            2 => TypeOfNumber::National,
            3 => TypeOfNumber::NetworkSpecific,
            4 => TypeOfNumber::Subscriber,
            5 => TypeOfNumber::Alphanumeric,
            6 => TypeOfNumber::Abbreviated,
            _ => TypeOfNumber::Reserved,
        };
        let npi = match t & 0x0F {
            0 => NumberingPlan::Unknown,
            1 => NumberingPlan::Isdn,
            n => NumberingPlan::Other(n),
        };
        Address { ton, npi, value }
    }

    /// The address value field: swapped BCD digits, or packed septets for alphanumeric.
    /// Returns (semi-octet count, bytes).
    fn value_bytes(&self) -> Result<(usize, Vec<u8>), SmsError> {
        if self.ton == TypeOfNumber::Alphanumeric {
            let septets = gsm7::encode(&self.value).ok_or_else(|| SmsError::Unencodable {
                field: "address",
                reason: format!("{:?} is not in the GSM 7-bit alphabet", self.value),
            })?;
            let packed = gsm7::pack(&septets, 0);
            let semi = (septets.len() * 7).div_ceil(4);
            return Ok((semi, packed));
        }
        let mut nibbles = Vec::with_capacity(self.value.len());
        for c in self.value.bytes() {
            let n = DIGITS[..15]
                .iter()
                .position(|&d| d == c.to_ascii_lowercase())
                .ok_or_else(|| SmsError::Unencodable {
                    field: "address",
                    reason: format!("{:?} has a character that is not a digit", self.value),
                })?;
            nibbles.push(n as u8);
        }
        let out = nibbles
            .chunks(2)
            .map(|p| p[0] | p.get(1).copied().unwrap_or(0x0F) << 4)
            .collect();
        Ok((nibbles.len(), out))
    }

    /// Encodes as TP-DA/TP-OA/TP-RA: length in semi-octets, type, value (≤ 12 octets in all).
    pub fn encode_tp(&self, out: &mut Vec<u8>) -> Result<(), SmsError> {
        let (semi, bytes) = self.value_bytes()?;
        if semi > 20 {
            return Err(SmsError::Unencodable {
                field: "address",
                reason: "longer than 20 semi-octets".into(),
            });
        }
        out.push(semi as u8);
        out.push(self.type_octet());
        out.extend_from_slice(&bytes);
        Ok(())
    }

    pub(crate) fn decode_tp(r: &mut Reader<'_>, field: &'static str) -> Result<Address, SmsError> {
        let at = r.pos;
        let semi = usize::from(r.u8(field)?);
        if semi > 20 {
            return Err(SmsError::Invalid {
                offset: at,
                field,
                reason: format!("length {semi} semi-octets exceeds 20"),
            });
        }
        let t = r.u8(field)?;
        let value_at = r.pos;
        let bytes = r.take(semi.div_ceil(2), field)?;
        Self::decode_value(t, bytes, semi, value_at, field)
    }

    fn decode_value(
        t: u8,
        bytes: &[u8],
        semi: usize,
        at: usize,
        field: &'static str,
    ) -> Result<Address, SmsError> {
        if (t >> 4) & 7 == 5 {
            let septets = gsm7::unpack(bytes, 0, semi * 4 / 7).unwrap_or_default();
            return Ok(Address::from_type_octet(t, gsm7::decode(&septets)));
        }
        let mut value = String::with_capacity(semi);
        for i in 0..semi {
            let b = bytes[i / 2];
            let n = if i % 2 == 0 { b & 0x0F } else { b >> 4 };
            if n == 0x0F {
                return Err(SmsError::Invalid {
                    offset: at + i / 2,
                    field,
                    reason: "filler 0xF inside the digits".into(),
                });
            }
            value.push(char::from(DIGITS[usize::from(n)]));
        }
        Ok(Address::from_type_octet(t, value))
    }

    /// Encodes as a service centre address: length in octets (type included), type, digits.
    pub fn encode_sca(sca: Option<&Address>, out: &mut Vec<u8>) -> Result<(), SmsError> {
        match sca {
            None => out.push(0),
            Some(a) => {
                let (_, bytes) = a.value_bytes()?;
                out.push(1 + bytes.len() as u8);
                out.push(a.type_octet());
                out.extend_from_slice(&bytes);
            }
        }
        Ok(())
    }

    pub(crate) fn decode_sca(r: &mut Reader<'_>) -> Result<Option<Address>, SmsError> {
        let at = r.pos;
        let len = usize::from(r.u8("SMSC address length")?);
        if len == 0 {
            return Ok(None);
        }
        if len > 11 {
            return Err(SmsError::Invalid {
                offset: at,
                field: "SMSC address",
                reason: format!("length {len} exceeds 11"),
            });
        }
        let t = r.u8("SMSC address")?;
        let value_at = r.pos;
        let bytes = r.take(len - 1, "SMSC address")?;
        let mut semi = bytes.len() * 2;
        if bytes.last().is_some_and(|b| b >> 4 == 0x0F) {
            semi -= 1;
        }
        Self::decode_value(t, bytes, semi, value_at, "SMSC address").map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_number_is_swapped_bcd() {
        let a = Address::parse("+8613800138000").unwrap();
        let mut out = Vec::new();
        a.encode_tp(&mut out).unwrap();
        assert_eq!(out, [0x0D, 0x91, 0x68, 0x31, 0x08, 0x10, 0x83, 0x00, 0xF0]);
        let back = Address::decode_tp(&mut Reader::new(&out), "TP-DA").unwrap();
        assert_eq!(back, a);
        assert_eq!(back.to_string(), "+8613800138000");
    }

    #[test]
    fn alphanumeric_sender() {
        // TS 23.040 §9.1.2.5 example style: "vshare" as 7-bit, TON 101.
        let a = Address::parse("vshare").unwrap();
        let mut out = Vec::new();
        a.encode_tp(&mut out).unwrap();
        assert_eq!(out[0], 11); // 6 septets = 42 bits = 11 semi-octets
        assert_eq!(out[1], 0xD0);
        let back = Address::decode_tp(&mut Reader::new(&out), "TP-OA").unwrap();
        assert_eq!(back.value, "vshare");
    }

    #[test]
    fn sca_round_trip_and_errors() {
        let a = Address::parse("+31624000000").unwrap();
        let mut out = Vec::new();
        Address::encode_sca(Some(&a), &mut out).unwrap();
        assert_eq!(out, [0x07, 0x91, 0x13, 0x26, 0x04, 0x00, 0x00, 0xF0]);
        assert_eq!(
            Address::decode_sca(&mut Reader::new(&out)).unwrap(),
            Some(a)
        );
        assert!(Address::decode_tp(&mut Reader::new(&[0x0D, 0x91, 0x68]), "TP-DA").is_err());
        assert!(Address::decode_tp(&mut Reader::new(&[0x30, 0x91]), "TP-DA").is_err());
        assert!(Address::parse("+12ab").is_err());
        assert!(Address::parse("日本").is_err());
    }
}
