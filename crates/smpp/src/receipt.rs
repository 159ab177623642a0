//! The delivery receipt text of SMPP v3.4 Appendix B, carried in deliver_sm with esm_class
//! 0x04: `id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
//! err:E text:...`.

/// A parsed or to-be-written receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub submitted: u32,
    pub delivered: u32,
    /// `YYMMDDhhmm`.
    pub submit_date: String,
    pub done_date: String,
    /// `DELIVRD`, `EXPIRED`, `UNDELIV`, `REJECTD`, …
    pub stat: String,
    pub err: String,
    /// The first 20 characters of the message.
    pub text: String,
}

impl Receipt {
    pub fn to_text(&self) -> String {
        format!(
            "id:{} sub:{:03} dlvrd:{:03} submit date:{} done date:{} stat:{} err:{} text:{}",
            self.id,
            self.submitted,
            self.delivered,
            self.submit_date,
            self.done_date,
            self.stat,
            self.err,
            self.text.chars().take(20).collect::<String>()
        )
    }

    /// Reads a receipt; `None` if the id or stat is missing.
    pub fn parse(s: &str) -> Option<Receipt> {
        let field = |key: &str| -> Option<String> {
            let i = s.find(key)? + key.len();
            let rest = &s[i..];
            if key == "text:" {
                return Some(rest.to_string());
            }
            Some(rest.split(' ').next().unwrap_or("").to_string())
        };
        Some(Receipt {
            id: field("id:")?,
            submitted: field("sub:").and_then(|v| v.parse().ok()).unwrap_or(0),
            delivered: field("dlvrd:").and_then(|v| v.parse().ok()).unwrap_or(0),
            submit_date: field("submit date:").unwrap_or_default(),
            done_date: field("done date:").unwrap_or_default(),
            stat: field("stat:")?,
            err: field("err:").unwrap_or_default(),
            text: field("text:").unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_text_round_trips() {
        let r = Receipt {
            id: "42".into(),
            submitted: 1,
            delivered: 1,
            submit_date: "2611250730".into(),
            done_date: "2611250731".into(),
            stat: "DELIVRD".into(),
            err: "000".into(),
            text: "http://h/v.mp4 and more".into(),
        };
        let t = r.to_text();
        assert_eq!(
            t,
            "id:42 sub:001 dlvrd:001 submit date:2611250730 done date:2611250731 stat:DELIVRD err:000 text:http://h/v.mp4 and m"
        );
        let back = Receipt::parse(&t).unwrap();
        assert_eq!(back.stat, "DELIVRD");
        assert_eq!(back.id, "42");
        assert_eq!(back.text, "http://h/v.mp4 and m");
    }
}
