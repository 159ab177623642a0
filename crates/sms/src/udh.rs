//! The user data header (3GPP TS 23.040 §9.2.3.24): concatenation (8- and 16-bit reference,
//! §9.2.3.24.1 and .8) and application port addressing (8- and 16-bit, §9.2.3.24.3 and .4).

use crate::{Reader, SmsError};

/// One information element of a user data header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InformationElement {
    /// IEI 0x00: concatenated short message, 8-bit reference (§9.2.3.24.1).
    Concat8 {
        reference: u8,
        total: u8,
        sequence: u8,
    },
    /// IEI 0x08: concatenated short message, 16-bit reference (§9.2.3.24.8).
    Concat16 {
        reference: u16,
        total: u8,
        sequence: u8,
    },
    /// IEI 0x04: application port addressing, 8-bit (§9.2.3.24.3).
    Ports8 { destination: u8, originator: u8 },
    /// IEI 0x05: application port addressing, 16-bit (§9.2.3.24.4).
    Ports16 { destination: u16, originator: u16 },
    /// Any other element, kept as it came (also a concatenation IE whose sequence is 0 or above
    /// its total, which §9.2.3.24.1 says to ignore).
    Other { iei: u8, data: Vec<u8> },
}

/// Concatenation data of a header, whatever the reference width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    pub reference: u16,
    pub sixteen_bit: bool,
    pub total: u8,
    pub sequence: u8,
}

/// A user data header: its information elements, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UserDataHeader {
    pub elements: Vec<InformationElement>,
}

impl UserDataHeader {
    /// Length of the encoded header including the UDHL octet.
    pub fn encoded_len(&self) -> usize {
        1 + self
            .elements
            .iter()
            .map(|e| {
                2 + match e {
                    InformationElement::Concat8 { .. } => 3,
                    InformationElement::Concat16 { .. } => 4,
                    InformationElement::Ports8 { .. } => 2,
                    InformationElement::Ports16 { .. } => 4,
                    InformationElement::Other { data, .. } => data.len(),
                }
            })
            .sum::<usize>()
    }

    /// Writes UDHL and the elements.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), SmsError> {
        let len = self.encoded_len() - 1;
        if len > 139 {
            return Err(SmsError::Unencodable {
                field: "user data header",
                reason: format!("{len} octets exceed 139"),
            });
        }
        out.push(len as u8);
        for e in &self.elements {
            match e {
                InformationElement::Concat8 {
                    reference,
                    total,
                    sequence,
                } => out.extend_from_slice(&[0x00, 3, *reference, *total, *sequence]),
                InformationElement::Concat16 {
                    reference,
                    total,
                    sequence,
                } => {
                    let r = reference.to_be_bytes();
                    out.extend_from_slice(&[0x08, 4, r[0], r[1], *total, *sequence])
                }
                InformationElement::Ports8 {
                    destination,
                    originator,
                } => out.extend_from_slice(&[0x04, 2, *destination, *originator]),
                InformationElement::Ports16 {
                    destination,
                    originator,
                } => {
                    let (d, o) = (destination.to_be_bytes(), originator.to_be_bytes());
                    out.extend_from_slice(&[0x05, 4, d[0], d[1], o[0], o[1]])
                }
                InformationElement::Other { iei, data } => {
                    out.push(*iei);
                    out.push(data.len() as u8);
                    out.extend_from_slice(data);
                }
            }
        }
        Ok(())
    }

    /// Reads UDHL and the elements; `base` is the offset of the UDHL octet in the TPDU.
    pub fn decode(bytes: &[u8], base: usize) -> Result<UserDataHeader, SmsError> {
        let shift = |e: SmsError| match e {
            SmsError::Truncated { offset, field } => SmsError::Truncated {
                offset: offset + base,
                field,
            },
            SmsError::Invalid {
                offset,
                field,
                reason,
            } => SmsError::Invalid {
                offset: offset + base,
                field,
                reason,
            },
            other => other,
        };
        let mut r = Reader::new(bytes);
        let udhl = usize::from(r.u8("UDHL").map_err(shift)?);
        let body = r.take(udhl, "user data header").map_err(shift)?;
        let mut r = Reader::new(body);
        let mut elements = Vec::new();
        while r.pos < body.len() {
            let at = base + 1 + r.pos;
            let iei = r.u8("IEI").map_err(shift)?;
            let len = usize::from(r.u8("IEDL").map_err(|_| SmsError::Truncated {
                offset: at + 1,
                field: "IEDL",
            })?);
            let data = r.take(len, "IED").map_err(|_| SmsError::Truncated {
                offset: at + 2,
                field: "IED",
            })?;
            let wrong = |want: usize| SmsError::Invalid {
                offset: at + 1,
                field: "IEDL",
                reason: format!("IEI 0x{iei:02X} needs {want} octets, has {len}"),
            };
            let ie = match iei {
                0x00 => {
                    let [reference, total, sequence] = data.try_into().map_err(|_| wrong(3))?;
                    if sequence == 0 || sequence > total {
                        InformationElement::Other {
                            iei,
                            data: data.to_vec(),
                        }
                    } else {
                        InformationElement::Concat8 {
                            reference,
                            total,
                            sequence,
                        }
                    }
                }
                0x08 => {
                    let [hi, lo, total, sequence] = data.try_into().map_err(|_| wrong(4))?;
                    if sequence == 0 || sequence > total {
                        InformationElement::Other {
                            iei,
                            data: data.to_vec(),
                        }
                    } else {
                        InformationElement::Concat16 {
                            reference: u16::from_be_bytes([hi, lo]),
                            total,
                            sequence,
                        }
                    }
                }
                0x04 => {
                    let [destination, originator] = data.try_into().map_err(|_| wrong(2))?;
                    InformationElement::Ports8 {
                        destination,
                        originator,
                    }
                }
                0x05 => {
                    let [d0, d1, o0, o1] = data.try_into().map_err(|_| wrong(4))?;
                    InformationElement::Ports16 {
                        destination: u16::from_be_bytes([d0, d1]),
                        originator: u16::from_be_bytes([o0, o1]),
                    }
                }
                _ => InformationElement::Other {
                    iei,
                    data: data.to_vec(),
                },
            };
            elements.push(ie);
        }
        Ok(UserDataHeader { elements })
    }

    /// The concatenation element, if any.
    pub fn concat(&self) -> Option<Concat> {
        self.elements.iter().find_map(|e| match *e {
            InformationElement::Concat8 {
                reference,
                total,
                sequence,
            } => Some(Concat {
                reference: reference.into(),
                sixteen_bit: false,
                total,
                sequence,
            }),
            InformationElement::Concat16 {
                reference,
                total,
                sequence,
            } => Some(Concat {
                reference,
                sixteen_bit: true,
                total,
                sequence,
            }),
            _ => None,
        })
    }

    /// Application ports (destination, originator), if any.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.elements.iter().find_map(|e| match *e {
            InformationElement::Ports16 {
                destination,
                originator,
            } => Some((destination, originator)),
            InformationElement::Ports8 {
                destination,
                originator,
            } => Some((destination.into(), originator.into())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wap_push_header_bytes() {
        // The header every WAP Push SMS starts with: ports 2948 ← 9200, concat ref 0x5A, 1 of 2.
        let h = UserDataHeader {
            elements: vec![
                InformationElement::Ports16 {
                    destination: 2948,
                    originator: 9200,
                },
                InformationElement::Concat8 {
                    reference: 0x5A,
                    total: 2,
                    sequence: 1,
                },
            ],
        };
        let mut out = Vec::new();
        h.encode(&mut out).unwrap();
        assert_eq!(
            out,
            [
                0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x5A, 0x02, 0x01
            ]
        );
        assert_eq!(h.encoded_len(), out.len());
        assert_eq!(UserDataHeader::decode(&out, 0).unwrap(), h);
        assert_eq!(h.ports(), Some((2948, 9200)));
        assert_eq!(h.concat().unwrap().total, 2);
    }

    #[test]
    fn bad_headers() {
        assert!(matches!(
            UserDataHeader::decode(&[0x05, 0x00, 0x03], 10),
            Err(SmsError::Truncated { offset: 11, .. })
        ));
        assert!(matches!(
            UserDataHeader::decode(&[0x04, 0x00, 0x02, 1, 2], 0),
            Err(SmsError::Invalid {
                field: "IEDL",
                offset: 2,
                ..
            })
        ));
        assert!(matches!(
            UserDataHeader::decode(&[0x02, 0x00, 0x03], 0),
            Err(SmsError::Truncated { field: "IED", .. })
        ));
        // Sequence 0 is ignored, not refused.
        let h = UserDataHeader::decode(&[0x05, 0x00, 0x03, 1, 2, 0], 0).unwrap();
        assert_eq!(h.concat(), None);
    }
}
