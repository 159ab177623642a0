//! WDP over SMS (WAP-259 §6.5): a push PDU as 8-bit data SMS with 16-bit application ports
//! (TS 23.040 §9.2.3.24.4), destination 2948 (WAP Push connectionless), source 9200,
//! concatenated (§9.2.3.24.1) when longer than one SMS.

use vshare_sms::split::{ConcatRef, Segments, split_binary};
use vshare_sms::{SmsError, reassembly::Message};

/// WDP port of the connectionless WAP Push service (WAP-259 Appendix B).
pub const PUSH_PORT: u16 = 2948;
/// WDP port of the connectionless WSP session service, used as source.
pub const WSP_PORT: u16 = 9200;

/// The SMS user data of a push PDU.
pub fn sms_parts(push_pdu: &[u8], reference: ConcatRef) -> Result<Segments, SmsError> {
    split_binary(push_pdu, Some((PUSH_PORT, WSP_PORT)), reference)
}

/// Whether a reassembled SMS is a WAP Push (destination port 2948, 8-bit data).
pub fn is_push(m: &Message) -> bool {
    m.ports.is_some_and(|(d, _)| d == PUSH_PORT)
}
