//! Sharing a video from the server, for the studio's share dialog: the video's attribute
//! records in the chosen form (text, TLV, XML, WAP SI, WAP SL; crates/messaging) to each number
//! — text and WAP SI as one SMS with the short link `/w/<id>` unless the full form is asked for —
//! through the proxy's outbox and its SMPP binds, so a share gets what every notification gets
//! (retries, delivery receipts, rate limits, exactly once across a crash); and the text for a
//! phone's own messaging app. Only signed-in users send, within a limit. No HTTP here:
//! `api::shares` is the HTTP face.

use std::time::{Duration, Instant};

use vshare_attributes::AttributeRecord;
use vshare_messaging::compose::{self, As, Extent};
use vshare_proxy::Proxy;
use vshare_proxy::direct::{Direct, Target};
use vshare_proxy::store::{Channel, NotificationView};
use vshare_sms::split::ConcatRef;

use crate::accounts::RateLimiter;
use crate::config::Config;

/// Recipients in one request.
pub const MAX_NUMBERS: usize = 10;
/// How often a share waiting for its messages looks at their rows.
const POLL: Duration = Duration::from_millis(100);

/// Why a share was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("form must be text, tlv, xml, wap-si or wap-sl, not {0:?}")]
    UnknownForm(String),
    #[error("an sms: link carries text only: use form=text or form=xml, not {0}")]
    NotText(String),
    #[error("{0:?} is not a phone number in international form (+ and 3 to 20 digits)")]
    BadNumber(String),
    #[error("give at least one number")]
    NoNumbers,
    #[error("at most {MAX_NUMBERS} numbers per request ({0} given)")]
    TooManyNumbers(usize),
    #[error("video {0} has no attribute records yet: share it once it is live or ready")]
    NoRecords(String),
    #[error(
        "this server has no SMSC to send SMS through (set proxy.smsc in its configuration); \
         use share-text to send from your own phone"
    )]
    NoSmsc,
    #[error("you may send {messages} messages per {minutes} minutes")]
    TooManyMessages {
        messages: usize,
        minutes: u64,
        wait: Duration,
    },
    #[error("{refused}")]
    SmsLimit {
        refused: vshare_proxy::guard::Refused,
    },
    #[error("the records do not fit the {form} form: {detail}")]
    DoesNotFit { form: String, detail: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A form's name in the API: `text`, `tlv`, `xml`, `wap-si`, `wap-sl`.
pub fn parse_form(name: &str) -> Result<As, ShareError> {
    Ok(match name {
        "text" => As::Text,
        "tlv" => As::Tlv,
        "xml" => As::Xml,
        "wap-si" => As::WapSi,
        "wap-sl" => As::WapSl,
        other => return Err(ShareError::UnknownForm(other.to_string())),
    })
}

/// A form that an `sms:` link can carry (text or XML).
pub fn parse_text_form(name: &str) -> Result<As, ShareError> {
    let form = parse_form(name)?;
    if matches!(form, As::Text | As::Xml) {
        Ok(form)
    } else {
        Err(ShareError::NotText(name.to_string()))
    }
}

/// A number in international form: `+` and 3 to 20 digits.
pub fn valid_number(n: &str) -> Result<String, ShareError> {
    let n = n.trim();
    let ok = n
        .strip_prefix('+')
        .is_some_and(|d| (3..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(n.to_string())
    } else {
        Err(ShareError::BadNumber(n.to_string()))
    }
}

/// Validates and de-duplicates a list of numbers (1 to [`MAX_NUMBERS`]).
pub fn valid_numbers(numbers: &[String]) -> Result<Vec<String>, ShareError> {
    if numbers.is_empty() {
        return Err(ShareError::NoNumbers);
    }
    if numbers.len() > MAX_NUMBERS {
        return Err(ShareError::TooManyNumbers(numbers.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(numbers.len());
    for n in numbers {
        let n = valid_number(n)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// What a share would send to each number, without sending it (the Share dialog's count).
#[derive(Debug, Clone)]
pub struct Preview {
    /// The form's name as the outbox keeps it (`text`, `text-full`, `wap-si`, …).
    pub form: &'static str,
    /// SMS parts per number.
    pub parts: usize,
    /// `gsm7`, `ucs2` or `8bit`.
    pub alphabet: &'static str,
    /// The message text, for the text forms (and XML).
    pub text: Option<String>,
}

/// Where the messages to one number stand.
#[derive(Debug, Clone, Default)]
pub struct NumberOutcome {
    pub number: String,
    /// The outbox row that carries them.
    pub notification: String,
    /// The row's state: `queued`, `sending`, `unconfirmed` (still on their way), `sent`,
    /// `delivered`, `dead`, `expired`.
    pub state: String,
    /// The SMSC's id of the message (its last part), once accepted.
    pub message_ids: Vec<String>,
    /// Why the last attempt failed, if it did.
    pub error: Option<String>,
}

impl NumberOutcome {
    /// Accepted by the SMSC (or delivered).
    pub fn ok(&self) -> bool {
        matches!(self.state.as_str(), "sent" | "delivered")
    }

    /// Still on its way: the outbox retries it.
    pub fn pending(&self) -> bool {
        matches!(self.state.as_str(), "queued" | "sending" | "unconfirmed")
    }
}

/// A share handed to the outbox, and where its messages stood when the answer was given.
#[derive(Debug, Clone)]
pub struct Sent {
    /// SMS parts per number.
    pub parts: usize,
    /// `gsm7`, `ucs2` or `8bit`.
    pub alphabet: &'static str,
    pub outcomes: Vec<NumberOutcome>,
}

/// Sharing by SMS in the server: the proxy that sends, and each user's message limit.
pub struct Sharing {
    /// The proxy role, when it has an SMSC.
    proxy: Option<Proxy>,
    limiter: RateLimiter,
    messages: usize,
    window_s: u64,
    /// How long a share request waits for its messages to reach the SMSC before it answers.
    wait: Duration,
    /// How long the signed links in a shared private video's message stay valid, s.
    pub link_ttl_s: u64,
    /// The public URL the short links (`/w/<id>`) of compact messages start with.
    link_base: String,
}

impl Sharing {
    pub fn new(config: &Config, proxy: Option<Proxy>) -> Sharing {
        let a = &config.accounts;
        Sharing {
            proxy: proxy.filter(|p| p.config.smpp.is_some()),
            limiter: RateLimiter::new(a.share_messages, Duration::from_secs(a.share_window_s)),
            messages: a.share_messages,
            window_s: a.share_window_s,
            wait: Duration::from_millis(a.share_wait_ms),
            link_ttl_s: a.share_link_ttl_s,
            link_base: config.public_url(),
        }
    }

    /// Compact (one SMS on a short link) unless `full`.
    pub fn extent(&self, full: bool) -> Extent {
        if full {
            Extent::Full
        } else {
            Extent::Compact {
                link_base: self.link_base.clone(),
            }
        }
    }

    /// The message a phone's own messaging app sends: compact or full text, or XML.
    pub fn message_text(
        &self,
        records: &[AttributeRecord],
        form: As,
        full: bool,
    ) -> anyhow::Result<String> {
        compose::message_body(records, form, &self.extent(full))
    }

    /// What sharing `records` in `form` costs per number, composed as the send composes it.
    pub fn preview(
        &self,
        records: &[AttributeRecord],
        form: As,
        full: bool,
    ) -> Result<Preview, ShareError> {
        let name = compose::form_name(form, full);
        let seg =
            compose::compose_message(records, form, &self.extent(full), ConcatRef::Eight(0), 0)
                .map_err(|e| ShareError::DoesNotFit {
                    form: name.to_string(),
                    detail: format!("{e:#}"),
                })?;
        let text = match form {
            As::Text | As::Xml => Some(self.message_text(records, form, full)?),
            _ => None,
        };
        Ok(Preview {
            form: name,
            parts: seg.parts.len(),
            alphabet: compose::alphabet_name(&seg),
            text,
        })
    }

    /// Queues video `video_id`'s records in `form` (compact unless `full`) to each number, counting one message per number against `user_id`'s limit and the SMS guard
    /// (per number, per `client` address, global), then waits (at most the configured time) for
    /// the SMSC to take them.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        video_id: &str,
        user_id: &str,
        client: Option<&str>,
        records: &[AttributeRecord],
        form: As,
        full: bool,
        numbers: &[String],
    ) -> Result<Sent, ShareError> {
        let proxy = self.proxy.as_ref().ok_or(ShareError::NoSmsc)?;
        // Refused before anything is queued or counted: records that no SMS can carry.
        let preview = self.preview(records, form, full)?;
        let (parts, form_name) = (preview.parts, preview.form);
        self.limiter
            .check(user_id, numbers.len(), Instant::now())
            .map_err(|wait| ShareError::TooManyMessages {
                messages: self.messages,
                minutes: self.window_s.div_ceil(60),
                wait,
            })?;
        proxy
            .sms_guard
            .admit(
                vshare_proxy::guard::Send {
                    numbers,
                    per_number: true,
                    client,
                },
                proxy.now_ms(),
            )
            .map_err(|refused| ShareError::SmsLimit { refused })?;
        self.limiter
            .acquire(user_id, numbers.len(), Instant::now())
            .map_err(|wait| ShareError::TooManyMessages {
                messages: self.messages,
                minutes: self.window_s.div_ceil(60),
                wait,
            })?;
        let channel = match form {
            As::WapSi | As::WapSl => Channel::Wap,
            As::Text | As::Tlv | As::Xml => Channel::Sms,
        };
        let message = Direct {
            id: format!("share-{}", vshare_sql::random_id(16)),
            kind: "share".into(),
            source: user_id.to_string(),
            video_id: video_id.to_string(),
            records: records.to_vec(),
            body: None,
            targets: numbers
                .iter()
                .map(|n| Target {
                    channel,
                    address: n.clone(),
                    form: form_name.to_string(),
                })
                .collect(),
        };
        let ids = proxy.queue_direct(&message).await?;
        let deadline = Instant::now() + self.wait;
        let outcomes = loop {
            let rows = proxy
                .store
                .notifications_of(&message.id)
                .await
                .map_err(anyhow::Error::from)?;
            let outcomes = outcomes(numbers, &ids, &rows);
            if Instant::now() >= deadline || !outcomes.iter().any(NumberOutcome::pending) {
                break outcomes;
            }
            tokio::time::sleep(POLL).await;
        };
        Ok(Sent {
            parts,
            alphabet: preview.alphabet,
            outcomes,
        })
    }
}

/// Each number's outcome from the rows of its share (`ids` in the order of `numbers`).
fn outcomes(numbers: &[String], ids: &[String], rows: &[NotificationView]) -> Vec<NumberOutcome> {
    numbers
        .iter()
        .zip(ids)
        .map(|(number, id)| {
            let row = rows.iter().find(|r| &r.id == id);
            NumberOutcome {
                number: number.clone(),
                notification: id.clone(),
                state: row.map_or("queued", |r| r.state.as_str()).to_string(),
                message_ids: row
                    .and_then(|r| r.smsc_message_id.clone())
                    .into_iter()
                    .collect(),
                error: row.and_then(|r| r.last_error.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_counts_what_is_sent() {
        let config = Config {
            public_url: Some("https://v.example".into()),
            ..Config::default()
        };
        let sharing = Sharing::new(&config, None);
        let mut r = AttributeRecord::blank(vshare_attributes::Kind::Vod);
        r.video_id = "v1".into();
        r.url = "https://v.example/vod/v1/video.mp4".into();
        r.format = "mp4".into();
        r.codecs = "avc1.64001F,mp4a.40.2".into();
        r.width = 640;
        r.height = 360;
        r.duration_ms = 3000;
        r.title = "x".repeat(200);
        let records = [r];
        let p = sharing.preview(&records, As::Text, false).expect("compact");
        assert_eq!((p.form, p.parts, p.alphabet), ("text", 1, "gsm7"));
        let text = p.text.expect("text");
        assert!(
            text.starts_with("https://v.example/w/v1\nVOD 640x360 0:03 \"xx"),
            "{text}"
        );
        assert_eq!(text.chars().count(), 160);
        let p = sharing.preview(&records, As::Text, true).expect("full");
        assert_eq!(p.form, "text-full");
        assert!(p.parts > 1);
        let p = sharing.preview(&records, As::WapSi, false).expect("si");
        assert_eq!(
            (p.form, p.parts, p.alphabet, p.text),
            ("wap-si", 1, "8bit", None)
        );
    }

    #[test]
    fn numbers_and_forms() {
        assert_eq!(
            valid_number(" +46701234567 ").ok().as_deref(),
            Some("+46701234567")
        );
        for bad in [
            "46701234567",
            "+12",
            "+1234567890123456789012",
            "+46 70",
            "+4670x",
            "",
        ] {
            assert!(valid_number(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("+4670000000{i}")).collect();
        assert!(valid_numbers(&many).is_err());
        assert!(valid_numbers(&[]).is_err());
        assert_eq!(
            valid_numbers(&["+111".into(), "+111".into(), "+222".into()])
                .ok()
                .map(|v| v.len()),
            Some(2)
        );
        assert_eq!(parse_form("wap-si").ok(), Some(As::WapSi));
        assert!(parse_form("mms").is_err());
        assert_eq!(parse_text_form("xml").ok(), Some(As::Xml));
        assert!(matches!(
            parse_text_form("tlv"),
            Err(ShareError::NotText(f)) if f == "tlv"
        ));
    }
}
