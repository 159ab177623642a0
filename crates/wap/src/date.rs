//! Dates in SI documents: `YYYY-MM-DDThh:mm:ssZ` in XML (WAP-167 §5.2.1), OPAQUE in WBXML
//! (WAP-167 §8.2.2: 14 digits packed two per octet, trailing zero octets left out).

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WapDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl std::fmt::Display for WapDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

impl WapDate {
    fn valid(self) -> Option<WapDate> {
        ((1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.year <= 9999)
            .then_some(self)
    }

    /// Parses `YYYY-MM-DDThh:mm:ssZ`.
    pub fn parse(s: &str) -> Option<WapDate> {
        let b = s.as_bytes();
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'Z'
        {
            return None;
        }
        let n = |r: std::ops::Range<usize>| -> Option<u16> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        WapDate {
            year: n(0..4)?,
            month: n(5..7)? as u8,
            day: n(8..10)? as u8,
            hour: n(11..13)? as u8,
            minute: n(14..16)? as u8,
            second: n(17..19)? as u8,
        }
        .valid()
    }

    /// The OPAQUE form: BCD digit pairs, trailing zero octets removed.
    pub fn to_opaque(self) -> Vec<u8> {
        let bcd = |v: u8| (v / 10) << 4 | (v % 10);
        let mut out = vec![
            bcd((self.year / 100) as u8),
            bcd((self.year % 100) as u8),
            bcd(self.month),
            bcd(self.day),
            bcd(self.hour),
            bcd(self.minute),
            bcd(self.second),
        ];
        while out.last() == Some(&0) {
            out.pop();
        }
        out
    }

    /// Reads the OPAQUE form (1 to 7 octets; missing octets are zero).
    pub fn from_opaque(b: &[u8]) -> Option<WapDate> {
        if b.is_empty() || b.len() > 7 {
            return None;
        }
        let mut v = [0u8; 7];
        for (i, &o) in b.iter().enumerate() {
            let (hi, lo) = (o >> 4, o & 0x0F);
            if hi > 9 || lo > 9 {
                return None;
            }
            v[i] = hi * 10 + lo;
        }
        WapDate {
            year: u16::from(v[0]) * 100 + u16::from(v[1]),
            month: v[2],
            day: v[3],
            hour: v[4],
            minute: v[5],
            second: v[6],
        }
        .valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wap_167_examples() {
        // WAP-167 §8.2.2: 1999-06-25T15:23:15Z → 19 99 06 25 15 23 15; 1999-06-30T00:00:00Z → 19 99 06 30.
        let d = WapDate::parse("1999-06-25T15:23:15Z").unwrap();
        assert_eq!(d.to_opaque(), [0x19, 0x99, 0x06, 0x25, 0x15, 0x23, 0x15]);
        let d = WapDate::parse("1999-06-30T00:00:00Z").unwrap();
        assert_eq!(d.to_opaque(), [0x19, 0x99, 0x06, 0x30]);
        assert_eq!(WapDate::from_opaque(&[0x19, 0x99, 0x06, 0x30]), Some(d));
        assert_eq!(d.to_string(), "1999-06-30T00:00:00Z");
        assert_eq!(WapDate::parse("1999-13-30T00:00:00Z"), None);
        assert_eq!(WapDate::from_opaque(&[0x1A]), None);
    }
}
