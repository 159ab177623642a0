//! SMS transfer-layer PDUs per 3GPP TS 23.040, the alphabets of TS 23.038, user data headers,
//! splitting long messages and reassembling them — sans-IO: bytes in, bytes out, time is an
//! argument.
//!
//! Hand-written: the crates on crates.io (sms-pdu 1.1, a subset of huawei-modem) have no
//! SMS-STATUS-REPORT, no 16-bit concatenation or port addressing, no validity period and no
//! septet packing after a header, which is what WAP Push and data SMS need.
//!
//! ```
//! use vshare_sms::{Address, Submit, split::{split_text, ConcatRef}, tpdu::Tpdu};
//! let to = Address::parse("+8613800138000").unwrap();
//! let seg = split_text("Watch: http://example.com/v/1", None, ConcatRef::Eight(7)).unwrap();
//! let pdus: Vec<Vec<u8>> = seg.parts.iter().enumerate()
//!     .map(|(i, ud)| Submit::new(to.clone(), seg.dcs, ud.clone()).with_reference(i as u8).encode().unwrap())
//!     .collect();
//! let back = Tpdu::decode(&pdus[0], vshare_sms::Direction::MobileOriginated).unwrap();
//! assert!(matches!(back, Tpdu::Submit(_)));
//! ```

pub mod address;
pub mod dcs;
pub mod gsm7;
pub mod reassembly;
pub mod split;
pub mod tpdu;
pub mod udh;
pub mod user_data;

pub use address::{Address, NumberingPlan, TypeOfNumber};
pub use dcs::{Alphabet, Dcs};
pub use tpdu::{Deliver, Direction, StatusReport, Submit, Timestamp, Tpdu, ValidityPeriod};
pub use udh::{InformationElement, UserDataHeader};
pub use user_data::UserData;

/// Why bytes did not decode as an SMS, or a value cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    #[error("SMS TPDU, byte {offset}: ends inside {field}")]
    Truncated { offset: usize, field: &'static str },
    #[error("SMS TPDU, byte {offset}: invalid {field}: {reason}")]
    Invalid {
        offset: usize,
        field: &'static str,
        reason: String,
    },
    #[error("SMS: cannot encode {field}: {reason}")]
    Unencodable { field: &'static str, reason: String },
}

/// A bounds-checked reader over a TPDU that knows its absolute offset.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }
    pub fn u8(&mut self, field: &'static str) -> Result<u8, SmsError> {
        let b = *self.bytes.get(self.pos).ok_or(SmsError::Truncated {
            offset: self.pos,
            field,
        })?;
        self.pos += 1;
        Ok(b)
    }
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], SmsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(SmsError::Truncated {
                offset: self.pos,
                field,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.bytes.get(self.pos..).unwrap_or(&[]);
        self.pos = self.bytes.len();
        s
    }
}

/// Hex helpers for tests, the CLI and logs.
pub mod hex {
    /// Upper-case hex without separators.
    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }
    /// Parses hex, ignoring ASCII white space; `None` on odd length or a non-hex digit.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
            .collect()
    }
}
