//! The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1, §6.2.1.1),
//! and septet packing (TS 23.038 §6.1.2.1.1) with the fill bits that follow a user data header
//! (TS 23.040 §9.2.3.24).

/// The escape septet that introduces a character of the extension table.
pub const ESCAPE: u8 = 0x1B;

/// TS 23.038 §6.2.1: the default alphabet, indexed by septet. 0x1B is the escape.
pub const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// TS 23.038 §6.2.1.1: the extension table (septet after [`ESCAPE`], character).
pub const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets for one character: one from the basic table, or escape + one from the
/// extension table; `None` if the character is not in the default alphabet.
pub fn char_septets(c: char) -> Option<([u8; 2], usize)> {
    if c != '\u{1B}'
        && let Some(i) = BASIC.iter().position(|&b| b == c)
    {
        return Some(([i as u8, 0], 1));
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|&(s, _)| ([ESCAPE, s], 2))
}

/// Encodes text as septets (one per byte, unpacked); `None` if a character is not in the
/// default alphabet or its extension table.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (s, n) = char_septets(c)?;
        out.extend_from_slice(&s[..n]);
    }
    Some(out)
}

/// Whether every character of `text` is in the default alphabet or its extension table.
pub fn is_encodable(text: &str) -> bool {
    text.chars().all(|c| char_septets(c).is_some())
}

/// Decodes unpacked septets. An escape followed by a septet that is not in the extension
/// table shows the basic character (TS 23.038 §6.2.1.1); a trailing escape shows a space.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut it = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = it.next() {
        if s == ESCAPE {
            match it.next() {
                Some(e) => match EXTENSION.iter().find(|(k, _)| *k == e) {
                    Some(&(_, c)) => out.push(c),
                    None if e == ESCAPE => out.push(' '),
                    None => out.push(BASIC[usize::from(e)]),
                },
                None => out.push(' '),
            }
        } else {
            out.push(BASIC[usize::from(s)]);
        }
    }
    out
}

/// Packs septets into octets, starting after `skip_septets` septets of space (the septets a
/// user data header occupies, fill bits included), which are left zero.
pub fn pack(septets: &[u8], skip_septets: usize) -> Vec<u8> {
    let total = skip_septets + septets.len();
    let mut out = vec![0u8; (total * 7).div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = (skip_septets + i) * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let v = u16::from(s & 0x7F) << shift;
        out[byte] |= v as u8;
        if shift > 1 {
            out[byte + 1] |= (v >> 8) as u8;
        }
    }
    out
}

/// Unpacks `count` septets that start `skip_septets` septets into `bytes`; `None` if the
/// bytes are too short.
pub fn unpack(bytes: &[u8], skip_septets: usize, count: usize) -> Option<Vec<u8>> {
    let total = skip_septets.checked_add(count)?;
    if bytes.len() < (total * 7).div_ceil(8) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in skip_septets..total {
        let bit = i * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let lo = u16::from(bytes[byte]);
        let hi = u16::from(bytes.get(byte + 1).copied().unwrap_or(0));
        out.push((((hi << 8 | lo) >> shift) & 0x7F) as u8);
    }
    Some(out)
}

/// Septets a header of `udh_octets` octets (its length octet included) occupies, fill bits
/// included (TS 23.040 §9.2.3.24).
pub fn header_septets(udh_octets: usize) -> usize {
    (udh_octets * 8).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_packs_like_the_textbook_example() {
        // "hellohello" → E8329BFD4697D9EC37 (the classic example of GSM 03.38 packing).
        let s = encode("hellohello").unwrap();
        assert_eq!(
            pack(&s, 0),
            [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(unpack(&pack(&s, 0), 0, 10).unwrap(), s);
    }

    #[test]
    fn extension_characters_take_two_septets() {
        let s = encode("a€[]{}|^~\\").unwrap();
        assert_eq!(s.len(), 1 + 9 * 2);
        assert_eq!(decode(&s), "a€[]{}|^~\\");
        assert_eq!(encode("日"), None);
        assert_eq!(decode(&[ESCAPE, 0x41]), "A");
        assert_eq!(decode(&[0x41, ESCAPE]), "A ");
    }

    #[test]
    fn every_basic_character_round_trips() {
        for (i, &c) in BASIC.iter().enumerate() {
            if i == usize::from(ESCAPE) {
                continue;
            }
            let s = encode(&c.to_string()).unwrap();
            assert_eq!(s, [i as u8]);
            assert_eq!(decode(&s), c.to_string());
        }
    }

    #[test]
    fn packing_after_a_header_leaves_fill_bits() {
        // A 6-octet header (UDHL 05 + concat IE) occupies 7 septets: 1 fill bit.
        assert_eq!(header_septets(6), 7);
        assert_eq!(header_septets(7), 8);
        assert_eq!(header_septets(12), 14);
        let s = encode("Hi").unwrap();
        let p = pack(&s, 7);
        // Septet 7 starts at bit 49: byte 6 bit 1.
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], (0x48 << 1) as u8);
        assert_eq!(unpack(&p, 7, 2).unwrap(), s);
        assert_eq!(unpack(&p, 7, 3), None);
    }
}
