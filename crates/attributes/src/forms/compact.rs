//! The compact form (docs/messages.md §Compact): a short watch link and a one-line summary,
//! sized by the caller to fit one SMS. Hand-written, the format is ours.
//!
//! ```text
//! http://127.0.0.1:8080/w/v7Kq2
//! VOD 1280x720 1:02 "Harbour at dusk"
//! ```
//!
//! The link's path ends `/w/<video id>` (a signed link adds its query); the summary is the
//! kind (`LIVE` or `VOD`), then optionally `WIDTHxHEIGHT`, the duration (`m:ss` or `h:mm:ss`,
//! VOD only) and the title in double quotes (control characters written as spaces; a shortened
//! title ends with `...` or `…`). The full record is fetched from the link.

use crate::{AttributeRecord, Kind};

/// Titles longer than this are shortened before fitting starts.
const MAX_TITLE_CHARS: usize = 160;
/// Titles are first shortened down to this many characters before other fields are dropped.
const MIN_TITLE_CHARS: usize = 16;

/// A short link with the attributes that matter most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compact {
    /// Absolute URL whose path ends `/w/<video id>`, with a signed link's query if any.
    pub link: String,
    /// None: the link alone, no summary line.
    pub kind: Option<Kind>,
    pub width: u32,
    pub height: u32,
    /// Whole seconds; 0: not shown.
    pub duration_s: u64,
    /// As shown (possibly shortened); empty: not shown.
    pub title: String,
}

/// Why a message is not in the compact form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compact form, line {line}: {reason}")]
pub struct CompactError {
    pub line: usize,
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> CompactError {
    CompactError {
        line,
        reason: reason.into(),
    }
}

/// The short watch link of a video: `<base>/w/<id>`, plus `query` (a signed link's) if not empty.
pub fn short_link(base: &str, video_id: &str, query: &str) -> String {
    let mut link = format!("{}/w/{video_id}", base.trim_end_matches('/'));
    if !query.is_empty() {
        link.push('?');
        link.push_str(query);
    }
    link
}

/// The video id of a short link: the path segment after `/w/`; None if the link is not one.
pub fn link_video_id(link: &str) -> Option<&str> {
    let rest = link
        .strip_prefix("http://")
        .or_else(|| link.strip_prefix("https://"))?;
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    let (_, after) = path.rsplit_once("/w/")?;
    (!after.is_empty() && !after.contains('/') && !path.starts_with("/w/")).then_some(after)
}

/// The record a short message describes: the live stream if there is one, else the MP4, else
/// the first.
pub fn primary(records: &[AttributeRecord]) -> Option<&AttributeRecord> {
    records
        .iter()
        .find(|r| r.kind == Kind::Live)
        .or_else(|| records.iter().find(|r| r.format == "mp4"))
        .or_else(|| records.first())
}

/// The query of a signed record URL (`…?exp=…&sig=…`), to carry on the short link; empty if
/// the URL is not signed.
pub fn signed_query(url: &str) -> &str {
    match url.split_once('?') {
        Some((_, q)) if q.split('&').any(|kv| kv.starts_with("sig=")) => {
            q.split('#').next().unwrap_or(q)
        }
        _ => "",
    }
}

fn clean_title(t: &str) -> String {
    let t: String = t
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    t.trim().chars().take(MAX_TITLE_CHARS).collect()
}

impl Compact {
    /// Everything the primary record offers, on a short link under `base` (the signed query
    /// of its URL rides along). None without records.
    pub fn from_records(base: &str, records: &[AttributeRecord]) -> Option<Compact> {
        let r = primary(records)?;
        Some(Compact {
            link: short_link(base, &r.video_id, signed_query(&r.url)),
            kind: Some(r.kind),
            width: r.width,
            height: r.height,
            duration_s: if r.kind == Kind::Vod {
                r.duration_ms.saturating_add(500) / 1000
            } else {
                0
            },
            title: clean_title(&r.title),
        })
    }

    /// The video id of the link.
    pub fn video_id(&self) -> Option<&str> {
        link_video_id(&self.link)
    }

    /// The summary line (empty when `kind` is None).
    pub fn summary(&self) -> String {
        let Some(kind) = self.kind else {
            return String::new();
        };
        let mut s = String::from(match kind {
            Kind::Live => "LIVE",
            Kind::Vod => "VOD",
        });
        if self.width > 0 && self.height > 0 {
            s.push_str(&format!(" {}x{}", self.width, self.height));
        }
        if self.duration_s > 0 {
            let (h, m, sec) = (
                self.duration_s / 3600,
                self.duration_s / 60 % 60,
                self.duration_s % 60,
            );
            if h > 0 {
                s.push_str(&format!(" {h}:{m:02}:{sec:02}"));
            } else {
                s.push_str(&format!(" {m}:{sec:02}"));
            }
        }
        if !self.title.is_empty() {
            s.push_str(&format!(" \"{}\"", self.title));
        }
        s
    }

    /// The message text: the link, then the summary on its own line.
    pub fn encode(&self) -> String {
        let summary = self.summary();
        if summary.is_empty() {
            self.link.clone()
        } else {
            format!("{}\n{summary}", self.link)
        }
    }

    /// The fullest version of this message that `fits` accepts: the title is shortened (to
    /// [`MIN_TITLE_CHARS`], ending in `mark`: `...` for GSM 7-bit text, `…` where it costs one
    /// character), then the duration, the resolution dropped, the title shortened further and
    /// dropped, the summary dropped. None when even the link alone does not fit.
    pub fn fit(&self, mark: &str, fits: impl Fn(&Compact) -> bool) -> Option<Compact> {
        let mut levels = vec![self.clone()];
        let mut c = self.clone();
        if c.duration_s > 0 {
            c.duration_s = 0;
            levels.push(c.clone());
        }
        if c.width > 0 || c.height > 0 {
            c.width = 0;
            c.height = 0;
            levels.push(c.clone());
        }
        let full: Vec<char> = self.title.chars().collect();
        let last = levels.len() - 1;
        for (i, level) in levels.iter().enumerate() {
            let min = if i == last {
                1
            } else {
                MIN_TITLE_CHARS.min(full.len())
            };
            for n in (min..=full.len()).rev() {
                if let Some(candidate) = shortened(level, &full, n, mark)
                    && fits(&candidate)
                {
                    return Some(candidate);
                }
            }
        }
        let mut bare = levels[last].clone();
        bare.title.clear();
        if fits(&bare) {
            return Some(bare);
        }
        bare.kind = None;
        fits(&bare).then_some(bare)
    }

    /// Reads what [`Compact::encode`] writes: a short link, optionally followed by a summary line.
    pub fn decode(text: &str) -> Result<Compact, CompactError> {
        let mut lines = text.split('\n');
        let link = lines.next().unwrap_or_default().trim_end_matches('\r');
        if link_video_id(link).is_none() {
            return Err(err(1, "expected a short link http(s)://…/w/<id>"));
        }
        let mut c = Compact {
            link: link.to_string(),
            kind: None,
            width: 0,
            height: 0,
            duration_s: 0,
            title: String::new(),
        };
        let summary = lines.next().map(|l| l.trim_end_matches('\r'));
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(err(3, "text after the summary line"));
        }
        let Some(summary) = summary.filter(|s| !s.is_empty()) else {
            return Ok(c);
        };
        let (fields, title) = match summary.split_once(" \"") {
            Some((f, t)) => {
                let t = t
                    .strip_suffix('"')
                    .ok_or_else(|| err(2, "the title does not end with '\"'"))?;
                if t.is_empty() {
                    return Err(err(2, "empty title"));
                }
                (f, t)
            }
            None => (summary, ""),
        };
        c.title = title.to_string();
        let mut tokens = fields.split(' ');
        c.kind = Some(match tokens.next() {
            Some("LIVE") => Kind::Live,
            Some("VOD") => Kind::Vod,
            other => return Err(err(2, format!("expected LIVE or VOD, found {other:?}"))),
        });
        let mut next = tokens.next();
        if let Some((w, h)) = next.and_then(|t| t.split_once('x')) {
            let (w, h) = (positive(w), positive(h));
            let (Some(w), Some(h)) = (w, h) else {
                return Err(err(2, "bad resolution"));
            };
            c.width = u32::try_from(w).map_err(|_| err(2, "bad width"))?;
            c.height = u32::try_from(h).map_err(|_| err(2, "bad height"))?;
            next = tokens.next();
        }
        if let Some(t) = next {
            c.duration_s = parse_duration(t).ok_or_else(|| err(2, format!("bad field {t:?}")))?;
            next = tokens.next();
        }
        if let Some(t) = next {
            return Err(err(2, format!("unexpected field {t:?}")));
        }
        Ok(c)
    }

    /// A record with what the summary says (kind, size, duration, title) and the link as URL;
    /// format `link`, so a caller knows to fetch the full record from it.
    pub fn to_record(&self) -> AttributeRecord {
        let mut r = AttributeRecord::blank(self.kind.unwrap_or(Kind::Vod));
        r.video_id = self.video_id().unwrap_or_default().to_string();
        r.url = self.link.clone();
        r.format = "link".into();
        r.width = self.width;
        r.height = self.height;
        r.duration_ms = self.duration_s.saturating_mul(1000);
        r.title = self.title.clone();
        r
    }
}

/// `level` with the title cut to `n` of `full`'s characters: as is when `n` is all of them,
/// else ending in `mark`.
fn shortened(level: &Compact, full: &[char], n: usize, mark: &str) -> Option<Compact> {
    let mut c = level.clone();
    if n == full.len() {
        c.title = full.iter().collect();
        return Some(c);
    }
    let prefix: String = full[..n].iter().collect::<String>().trim_end().to_string();
    if prefix.is_empty() {
        return None;
    }
    c.title = format!("{prefix}{mark}");
    Some(c)
}

/// A canonical positive decimal.
fn positive(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// `m:ss` or `h:mm:ss`, as [`Compact::summary`] writes it (not zero).
fn parse_duration(t: &str) -> Option<u64> {
    let parts: Vec<&str> = t.split(':').collect();
    let two = |s: &str| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .filter(|v| *v < 60)
    };
    let lead = |s: &str| {
        (!s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse::<u64>().ok())
        .flatten()
    };
    let secs = match parts.as_slice() {
        [m, s] => {
            let m = lead(m)?;
            (m < 60).then_some(m * 60 + two(s)?)?
        }
        [h, m, s] => lead(h).filter(|h| *h > 0)? * 3600 + two(m)? * 60 + two(s)?,
        _ => return None,
    };
    (secs > 0).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::tests::{live, vod};

    const BASE: &str = "http://127.0.0.1:8080";

    #[test]
    fn a_vod_summarises_and_round_trips() {
        let mut r = vod();
        r.title = "Harbour at dusk".into();
        let c = Compact::from_records(BASE, &[live_of(&r), r.clone()]).expect("compact");
        assert_eq!(
            c.encode(),
            "http://127.0.0.1:8080/w/v7Kq2\nLIVE \"Harbour at dusk\""
        );
        let c = Compact::from_records(BASE, std::slice::from_ref(&r)).expect("compact");
        let text = c.encode();
        assert_eq!(
            text,
            "http://127.0.0.1:8080/w/v7Kq2\nVOD 1280x720 1:02 \"Harbour at dusk\""
        );
        assert_eq!(Compact::decode(&text), Ok(c.clone()));
        assert_eq!(c.video_id(), Some("v7Kq2"));
        let rec = c.to_record();
        assert_eq!(
            (rec.format.as_str(), rec.width, rec.duration_ms),
            ("link", 1280, 62_000)
        );
    }

    fn live_of(r: &AttributeRecord) -> AttributeRecord {
        let mut l = live();
        l.title = r.title.clone();
        l
    }

    #[test]
    fn links_alone_and_signed_links() {
        let mut r = vod();
        r.url = "http://h/vod/v7Kq2/video.mp4?exp=1900000000&sig=abcd".into();
        let c = Compact::from_records("http://h/", &[r]).expect("compact");
        assert_eq!(c.link, "http://h/w/v7Kq2?exp=1900000000&sig=abcd");
        assert_eq!(c.video_id(), Some("v7Kq2"));
        let bare = Compact::decode("https://x.example/w/abc").expect("bare");
        assert_eq!((bare.kind, bare.video_id()), (None, Some("abc")));
        assert_eq!(
            Compact::decode("http://h/w/a\nVOD 2:00:05").map(|c| c.duration_s),
            Ok(7205)
        );
        for bad in [
            "",
            "http://h/watch/a",
            "http://h/w/",
            "ftp://h/w/a",
            "http://h/w/a b",
            "http://h/w/a\nMP4",
            "http://h/w/a\nVOD 0x720",
            "http://h/w/a\nVOD 1:2",
            "http://h/w/a\nVOD 0:00",
            "http://h/w/a\nVOD 01:02",
            "http://h/w/a\nVOD \"t",
            "http://h/w/a\nVOD \"\"",
            "http://h/w/a\nVOD 1:02 extra",
            "http://h/w/a\nVOD\nmore",
        ] {
            assert!(Compact::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fitting_shortens_the_title_then_drops_fields() {
        let mut r = vod();
        r.title = "A very long title about the harbour at dusk, seen from the pier".into();
        let c = Compact::from_records(BASE, &[r]).expect("compact");
        // Everything fits in a generous budget.
        assert_eq!(
            c.fit("...", |m| m.encode().chars().count() <= 160),
            Some(c.clone())
        );
        // A tight budget shortens the title first, to exactly the budget.
        let f = c
            .fit("...", |m| m.encode().chars().count() <= 70)
            .expect("fits");
        assert_eq!(f.encode().chars().count(), 70, "{}", f.encode());
        assert!(
            f.title.ends_with("...") && f.duration_s > 0 && f.width > 0,
            "{f:?}"
        );
        assert!(Compact::decode(&f.encode()).is_ok_and(|d| d == f));
        // Tighter: fields go, then the title, then the summary.
        let f = c
            .fit("...", |m| m.encode().chars().count() <= 50)
            .expect("fits");
        assert_eq!((f.duration_s, f.width), (0, 0), "{f:?}");
        assert!(!f.title.is_empty());
        let f = c
            .fit("...", |m| m.encode().chars().count() <= 33)
            .expect("fits");
        assert_eq!(f.encode(), "http://127.0.0.1:8080/w/v7Kq2\nVOD");
        let f = c
            .fit("...", |m| m.encode().chars().count() <= 29)
            .expect("fits");
        assert_eq!(f.encode(), "http://127.0.0.1:8080/w/v7Kq2");
        assert_eq!(c.fit("...", |m| m.encode().chars().count() <= 28), None);
    }

    #[test]
    fn titles_lose_control_characters() {
        let mut r = vod();
        r.title = " two\nlines\t".into();
        let c = Compact::from_records(BASE, &[r]).expect("compact");
        assert_eq!(c.title, "two lines");
    }
}
