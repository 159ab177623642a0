//! Splitting a long message into concatenated parts (3GPP TS 23.040 §9.2.3.24.1): 153 GSM
//! septets, 134 octets or 67 UCS-2 characters per part with an 8-bit reference, fewer when an
//! application-port header rides along. A GSM escape sequence or a UTF-16 surrogate pair is
//! never cut in two.

use crate::{
    Alphabet, Dcs, InformationElement, SmsError, UserData, UserDataHeader, gsm7,
    user_data::{MAX_OCTETS, MAX_SEPTETS},
};

/// The concatenation reference to use if the message needs more than one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcatRef {
    /// IEI 0x00.
    Eight(u8),
    /// IEI 0x08.
    Sixteen(u16),
}

/// The parts of one message, all with the same DCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub dcs: Dcs,
    pub parts: Vec<UserData>,
}

/// Splits text: GSM 7-bit when every character is in the default alphabet (extension table
/// included), UCS-2 otherwise.
pub fn split_text(
    text: &str,
    ports: Option<(u16, u16)>,
    reference: ConcatRef,
) -> Result<Segments, SmsError> {
    match gsm7::encode(text) {
        Some(septets) => split_payload(&septets, Alphabet::Gsm7, ports, reference),
        None => {
            let octets: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            split_payload(&octets, Alphabet::Ucs2, ports, reference)
        }
    }
}

/// Splits 8-bit data.
pub fn split_binary(
    data: &[u8],
    ports: Option<(u16, u16)>,
    reference: ConcatRef,
) -> Result<Segments, SmsError> {
    split_payload(data, Alphabet::Eight, ports, reference)
}

/// Payload units one part holds next to a header of `udh_len` octets (UDHL included, 0 for none).
pub fn capacity(alphabet: Alphabet, udh_len: usize) -> usize {
    match alphabet {
        Alphabet::Gsm7 => MAX_SEPTETS - gsm7::header_septets(udh_len),
        Alphabet::Eight => MAX_OCTETS - udh_len,
        Alphabet::Ucs2 => (MAX_OCTETS - udh_len) & !1,
    }
}

/// Splits a payload (septets for GSM 7-bit, octets otherwise).
pub fn split_payload(
    payload: &[u8],
    alphabet: Alphabet,
    ports: Option<(u16, u16)>,
    reference: ConcatRef,
) -> Result<Segments, SmsError> {
    let dcs = Dcs::for_alphabet(alphabet);
    let base: Vec<InformationElement> = ports
        .map(|(destination, originator)| InformationElement::Ports16 {
            destination,
            originator,
        })
        .into_iter()
        .collect();
    let header = |extra: Option<InformationElement>| {
        let mut elements = base.clone();
        elements.extend(extra);
        (!elements.is_empty()).then_some(UserDataHeader { elements })
    };
    let single = header(None);
    let single_len = single.as_ref().map_or(0, UserDataHeader::encoded_len);
    if payload.len() <= capacity(alphabet, single_len) {
        return Ok(Segments {
            dcs,
            parts: vec![UserData {
                header: single,
                payload: payload.to_vec(),
            }],
        });
    }
    let concat = |total: u8, sequence: u8| match reference {
        ConcatRef::Eight(reference) => InformationElement::Concat8 {
            reference,
            total,
            sequence,
        },
        ConcatRef::Sixteen(reference) => InformationElement::Concat16 {
            reference,
            total,
            sequence,
        },
    };
    let udh_len = header(Some(concat(1, 1))).map_or(0, |h| h.encoded_len());
    let cap = capacity(alphabet, udh_len);
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let mut n = cap.min(rest.len());
        if n < rest.len() {
            match alphabet {
                Alphabet::Gsm7 if rest[n - 1] == gsm7::ESCAPE => n -= 1,
                Alphabet::Ucs2 if (0xD8..=0xDB).contains(&rest[n - 2]) => n -= 2,
                _ => {}
            }
        }
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    let total = u8::try_from(chunks.len()).map_err(|_| SmsError::Unencodable {
        field: "message",
        reason: format!("needs {} parts, more than 255", chunks.len()),
    })?;
    let parts = chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| UserData {
            header: header(Some(concat(total, i as u8 + 1))),
            payload: c.to_vec(),
        })
        .collect();
    Ok(Segments { dcs, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_are_153_134_67() {
        let s = split_text(&"a".repeat(161), None, ConcatRef::Eight(1)).unwrap();
        assert_eq!(s.dcs, Dcs::GSM7);
        assert_eq!(
            s.parts.iter().map(|p| p.payload.len()).collect::<Vec<_>>(),
            [153, 8]
        );
        let s = split_text(&"a".repeat(160), None, ConcatRef::Eight(1)).unwrap();
        assert_eq!(s.parts.len(), 1);
        assert!(s.parts[0].header.is_none());
        let s = split_binary(&[7u8; 300], None, ConcatRef::Eight(1)).unwrap();
        assert_eq!(
            s.parts.iter().map(|p| p.payload.len()).collect::<Vec<_>>(),
            [134, 134, 32]
        );
        let s = split_text(&"日".repeat(71), None, ConcatRef::Sixteen(0x1234)).unwrap();
        assert_eq!(s.dcs, Dcs::UCS2);
        // 16-bit reference: 7-octet header, 133 octets → 66 characters.
        assert_eq!(
            s.parts
                .iter()
                .map(|p| p.payload.len() / 2)
                .collect::<Vec<_>>(),
            [66, 5]
        );
        let s = split_text(&"日".repeat(71), None, ConcatRef::Eight(1)).unwrap();
        assert_eq!(
            s.parts
                .iter()
                .map(|p| p.payload.len() / 2)
                .collect::<Vec<_>>(),
            [67, 4]
        );
        // Ports + concat: 12-octet header → 128 octets.
        let s = split_binary(&[0u8; 200], Some((2948, 9200)), ConcatRef::Eight(1)).unwrap();
        assert_eq!(s.parts[0].payload.len(), 128);
        for p in &s.parts {
            p.encode(Alphabet::Eight).unwrap();
        }
    }

    #[test]
    fn escapes_and_surrogates_stay_whole() {
        let text = format!("{}€tailtailtail", "a".repeat(152));
        let s = split_text(&text, None, ConcatRef::Eight(9)).unwrap();
        assert_eq!(s.parts[0].payload.len(), 152);
        assert_eq!(s.parts[1].text(Alphabet::Gsm7).unwrap(), "€tailtailtail");
        let text = format!("{}😀xxxx", "日".repeat(66));
        let s = split_text(&text, None, ConcatRef::Eight(9)).unwrap();
        assert_eq!(s.parts[0].payload.len(), 132);
        assert_eq!(s.parts[1].text(Alphabet::Ucs2).unwrap(), "😀xxxx");
    }

    #[test]
    fn too_many_parts_is_an_error() {
        assert!(split_binary(&vec![0u8; 134 * 256], None, ConcatRef::Eight(1)).is_err());
    }
}
