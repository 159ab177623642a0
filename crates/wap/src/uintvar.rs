//! The variable-length unsigned integer shared by WSP (uintvar, WAP-230 §8.1.2) and WBXML
//! (mb_u_int32, WAP-192 §5.1): 7 bits per octet, high bit set on all but the last, at most 5
//! octets for 32 bits.

/// Why a uintvar could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UintvarError {
    /// The input ended inside it.
    Truncated,
    /// Its value does not fit 32 bits.
    TooLarge,
    /// More than 5 octets.
    TooLong,
}

/// Reads a uintvar at the start of `b`: its value and the octets it took.
pub(crate) fn read(b: &[u8]) -> Result<(u32, usize), UintvarError> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let octet = *b.get(i).ok_or(UintvarError::Truncated)?;
        v = v.checked_mul(128).ok_or(UintvarError::TooLarge)? | u32::from(octet & 0x7F);
        if octet & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(UintvarError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_errors() {
        assert_eq!(read(&[0x00]), Ok((0, 1)));
        assert_eq!(read(&[0x81, 0x00]), Ok((128, 2)));
        assert_eq!(read(&[0x8F, 0xFF, 0xFF, 0xFF, 0x7F]), Ok((u32::MAX, 5)));
        assert_eq!(read(&[0x81]), Err(UintvarError::Truncated));
        assert_eq!(
            read(&[0x90, 0x80, 0x80, 0x80, 0x00]),
            Err(UintvarError::TooLarge)
        );
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(UintvarError::TooLong)
        );
    }
}
