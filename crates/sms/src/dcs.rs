//! TP-Data-Coding-Scheme (3GPP TS 23.038 §4) — the alphabet and message class.

/// How the user data is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// GSM 7-bit default alphabet, septets packed (TS 23.038 §6.2.1).
    Gsm7,
    /// 8-bit data, octets as they are.
    Eight,
    /// UCS-2 (UTF-16BE in practice, TS 23.038 §6.2.3), two octets per character.
    Ucs2,
}

/// The TP-DCS octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dcs(pub u8);

impl Dcs {
    /// General data coding, GSM 7-bit, no class.
    pub const GSM7: Dcs = Dcs(0x00);
    /// General data coding, 8-bit data, no class.
    pub const EIGHT_BIT: Dcs = Dcs(0x04);
    /// General data coding, UCS-2, no class.
    pub const UCS2: Dcs = Dcs(0x08);

    /// The plain general-data-coding DCS for an alphabet.
    pub fn for_alphabet(a: Alphabet) -> Dcs {
        match a {
            Alphabet::Gsm7 => Dcs::GSM7,
            Alphabet::Eight => Dcs::EIGHT_BIT,
            Alphabet::Ucs2 => Dcs::UCS2,
        }
    }

    /// The alphabet (TS 23.038 §4): groups 00xx/01xx (general, bits 3..2), 1111 (bit 2),
    /// 1100/1101 (GSM 7-bit), 1110 (UCS-2); `None` for compressed text and reserved groups.
    pub fn alphabet(self) -> Option<Alphabet> {
        let b = self.0;
        match b >> 4 {
            0x0..=0x7 => {
                if b & 0x20 != 0 {
                    return None; // compressed
                }
                match (b >> 2) & 3 {
                    0 => Some(Alphabet::Gsm7),
                    1 => Some(Alphabet::Eight),
                    2 => Some(Alphabet::Ucs2),
                    _ => None,
                }
            }
            0xC | 0xD => Some(Alphabet::Gsm7),
            0xE => Some(Alphabet::Ucs2),
            0xF => Some(if b & 0x04 != 0 {
                Alphabet::Eight
            } else {
                Alphabet::Gsm7
            }),
            _ => None,
        }
    }

    /// Message class 0..=3 when the DCS carries one (bit 4 of general coding, or group 1111).
    pub fn class(self) -> Option<u8> {
        let b = self.0;
        match b >> 4 {
            0x0..=0x7 if b & 0x10 != 0 => Some(b & 3),
            0xF => Some(b & 3),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabets_and_classes() {
        assert_eq!(Dcs(0x00).alphabet(), Some(Alphabet::Gsm7));
        assert_eq!(Dcs(0x04).alphabet(), Some(Alphabet::Eight));
        assert_eq!(Dcs(0x08).alphabet(), Some(Alphabet::Ucs2));
        assert_eq!(Dcs(0x0C).alphabet(), None);
        assert_eq!(Dcs(0x24).alphabet(), None);
        assert_eq!(Dcs(0xF5).alphabet(), Some(Alphabet::Eight));
        assert_eq!(Dcs(0xF5).class(), Some(1));
        assert_eq!(Dcs(0x10).class(), Some(0));
        assert_eq!(Dcs(0x00).class(), None);
        assert_eq!(Dcs(0x80).alphabet(), None);
    }
}
