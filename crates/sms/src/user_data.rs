//! TP-User-Data and TP-User-Data-Length (3GPP TS 23.040 §9.2.3.16, §9.2.3.24): an optional
//! header, then septets (GSM 7-bit, counted in septets) or octets (8-bit / UCS-2).

use crate::{Alphabet, SmsError, UserDataHeader, gsm7};

/// User data: a header and the payload, which holds unpacked septets for GSM 7-bit and octets
/// for 8-bit and UCS-2. Keeping it undecoded lets reassembly join parts first and decode once
/// (a UCS-2 surrogate pair or GSM escape may straddle two parts when others split).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserData {
    pub header: Option<UserDataHeader>,
    pub payload: Vec<u8>,
}

/// The most user data one SMS carries (TS 23.040 §9.2.3.16).
pub const MAX_OCTETS: usize = 140;
/// The most septets one SMS carries.
pub const MAX_SEPTETS: usize = 160;

impl UserData {
    /// Text in the given alphabet; errors for 8-bit, or characters GSM 7-bit lacks.
    pub fn from_text(
        text: &str,
        alphabet: Alphabet,
        header: Option<UserDataHeader>,
    ) -> Result<UserData, SmsError> {
        let payload = match alphabet {
            Alphabet::Gsm7 => gsm7::encode(text).ok_or_else(|| SmsError::Unencodable {
                field: "user data",
                reason: "a character is not in the GSM 7-bit alphabet".into(),
            })?,
            Alphabet::Ucs2 => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            Alphabet::Eight => text.as_bytes().to_vec(),
        };
        Ok(UserData { header, payload })
    }

    /// Binary data (8-bit alphabet).
    pub fn binary(data: &[u8], header: Option<UserDataHeader>) -> UserData {
        UserData {
            header,
            payload: data.to_vec(),
        }
    }

    /// Decodes the payload as text in `alphabet` (8-bit is read as UTF-8).
    pub fn text(&self, alphabet: Alphabet) -> Result<String, SmsError> {
        decode_text(&self.payload, alphabet)
    }

    /// Encodes as (TP-UDL, TP-UD octets).
    pub fn encode(&self, alphabet: Alphabet) -> Result<(u8, Vec<u8>), SmsError> {
        let mut out = Vec::with_capacity(MAX_OCTETS);
        let udh_len = match &self.header {
            Some(h) => {
                h.encode(&mut out)?;
                out.len()
            }
            None => 0,
        };
        let too_long = |what: String| SmsError::Unencodable {
            field: "user data",
            reason: what,
        };
        match alphabet {
            Alphabet::Gsm7 => {
                let skip = gsm7::header_septets(udh_len);
                let udl = skip + self.payload.len();
                if udl > MAX_SEPTETS {
                    return Err(too_long(format!("{udl} septets exceed {MAX_SEPTETS}")));
                }
                let packed = gsm7::pack(&self.payload, skip);
                out.extend_from_slice(&packed[udh_len..]);
                Ok((udl as u8, out))
            }
            Alphabet::Eight | Alphabet::Ucs2 => {
                out.extend_from_slice(&self.payload);
                if out.len() > MAX_OCTETS {
                    return Err(too_long(format!(
                        "{} octets exceed {MAX_OCTETS}",
                        out.len()
                    )));
                }
                Ok((out.len() as u8, out))
            }
        }
    }

    /// Decodes TP-UD given TP-UDL, TP-UDHI and the alphabet; `base` is the offset of the first
    /// TP-UD octet in the TPDU. Octets after the user data are refused.
    pub fn decode(
        udl: u8,
        bytes: &[u8],
        udhi: bool,
        alphabet: Alphabet,
        base: usize,
    ) -> Result<UserData, SmsError> {
        let udl = usize::from(udl);
        let (octets, limit) = match alphabet {
            Alphabet::Gsm7 => ((udl * 7).div_ceil(8), MAX_SEPTETS),
            _ => (udl, MAX_OCTETS),
        };
        if udl > limit {
            return Err(SmsError::Invalid {
                offset: base.saturating_sub(1),
                field: "TP-UDL",
                reason: format!("{udl} exceeds {limit}"),
            });
        }
        if bytes.len() < octets {
            return Err(SmsError::Truncated {
                offset: base + bytes.len(),
                field: "TP-UD",
            });
        }
        if bytes.len() > octets {
            return Err(SmsError::Invalid {
                offset: base + octets,
                field: "TP-UD",
                reason: format!("{} octets follow the user data", bytes.len() - octets),
            });
        }
        let (header, udh_len) = if udhi {
            let h = UserDataHeader::decode(&bytes[..octets], base)?;
            let len = h.encoded_len();
            (Some(h), len)
        } else {
            (None, 0)
        };
        let payload = match alphabet {
            Alphabet::Gsm7 => {
                let skip = gsm7::header_septets(udh_len);
                if skip > udl {
                    return Err(SmsError::Invalid {
                        offset: base,
                        field: "TP-UDL",
                        reason: format!("{udl} septets cannot hold a {udh_len}-octet header"),
                    });
                }
                gsm7::unpack(bytes, skip, udl - skip).ok_or(SmsError::Truncated {
                    offset: base + bytes.len(),
                    field: "TP-UD",
                })?
            }
            _ => {
                if udh_len > udl {
                    return Err(SmsError::Invalid {
                        offset: base,
                        field: "TP-UDL",
                        reason: format!("{udl} octets cannot hold a {udh_len}-octet header"),
                    });
                }
                bytes[udh_len..octets].to_vec()
            }
        };
        Ok(UserData { header, payload })
    }
}

/// Decodes a payload (septets or octets) as text.
pub fn decode_text(payload: &[u8], alphabet: Alphabet) -> Result<String, SmsError> {
    match alphabet {
        Alphabet::Gsm7 => Ok(gsm7::decode(payload)),
        Alphabet::Ucs2 => {
            if !payload.len().is_multiple_of(2) {
                return Err(SmsError::Invalid {
                    offset: payload.len() - 1,
                    field: "UCS-2 text",
                    reason: "odd number of octets".into(),
                });
            }
            let units: Vec<u16> = payload
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            Ok(char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect())
        }
        Alphabet::Eight => String::from_utf8(payload.to_vec()).map_err(|e| SmsError::Invalid {
            offset: e.utf8_error().valid_up_to(),
            field: "8-bit text",
            reason: "not UTF-8".into(),
        }),
    }
}
