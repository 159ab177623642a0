//! Sharing a video from the server, for the studio's share dialog: the video's attribute
//! records packed in the chosen form (text, TLV, XML, WAP SI, WAP SL; crates/messaging) and
//! submitted to the configured SMSC over SMPP, as `vshare share --via smpp` does; and the text
//! for a phone's own messaging app. Only signed-in users send, within a limit. No HTTP here:
//! `api::shares` is the HTTP face.

use std::time::{Duration, Instant};

use rand::RngCore;
use tracing::warn;
use vshare_attributes::AttributeRecord;
use vshare_messaging::compose::{self, As};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_smpp::BindKind;
use vshare_sms::split::ConcatRef;

use crate::accounts::RateLimiter;
use crate::config::Config;

/// Recipients in one request.
pub const MAX_NUMBERS: usize = 10;
/// The longest a share may wait for the SMSC (connect, bind, every answer).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

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
    #[error("the records do not fit the {form} form: {detail}")]
    DoesNotFit { form: String, detail: String },
    #[error(
        "the SMSC at {addr} did not answer within {} s; some messages may have been sent",
        SEND_TIMEOUT.as_secs()
    )]
    SmscTimeout { addr: String },
    #[error("could not send through the SMSC: {0}")]
    Smsc(String),
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

/// The message a phone's own messaging app sends: the records as text, or as XML.
pub fn message_text(records: &[AttributeRecord], form: As) -> anyhow::Result<String> {
    Ok(match form {
        As::Xml => String::from_utf8(vshare_attributes::forms::Form::Xml.encode(records)?)?,
        _ => vshare_attributes::forms::encode_text(records)?,
    })
}

/// The SMSC that users' shares go through (`[proxy] smsc`, `smsc_system_id`, `smsc_password`;
/// the sender is the proxy's `number`, where replies such as SUB arrive).
#[derive(Debug, Clone)]
pub struct SmscTarget {
    pub addr: String,
    pub system_id: String,
    pub password: String,
    pub from: String,
}

/// What became of the messages to one number.
#[derive(Debug, Clone, Default)]
pub struct NumberOutcome {
    pub number: String,
    /// The SMSC's id of each message accepted.
    pub message_ids: Vec<String>,
    /// The error of each message refused.
    pub errors: Vec<String>,
}

/// A share that reached the SMSC.
#[derive(Debug, Clone)]
pub struct Sent {
    /// SMS parts per number.
    pub parts: usize,
    pub outcomes: Vec<NumberOutcome>,
}

/// Sharing by SMS in the server: the SMSC, and each user's message limit.
pub struct Sharing {
    smsc: Option<SmscTarget>,
    limiter: RateLimiter,
    messages: usize,
    window_s: u64,
    /// How long the signed links in a shared private video's message stay valid, s.
    pub link_ttl_s: u64,
}

impl Sharing {
    pub fn new(config: &Config) -> Sharing {
        let a = &config.accounts;
        Sharing {
            smsc: config.proxy.smsc.as_ref().map(|addr| SmscTarget {
                addr: addr.clone(),
                system_id: config.proxy.smsc_system_id.clone(),
                password: config.proxy.smsc_password.clone(),
                from: config.proxy.number.clone(),
            }),
            limiter: RateLimiter::new(a.share_messages, Duration::from_secs(a.share_window_s)),
            messages: a.share_messages,
            window_s: a.share_window_s,
            link_ttl_s: a.share_link_ttl_s,
        }
    }

    /// Sends video `video_id`'s records in `form` (named `form_name` in the request) to each
    /// number through the SMSC, counting one message per number against `user_id`'s limit.
    pub async fn send(
        &self,
        video_id: &str,
        user_id: &str,
        records: &[AttributeRecord],
        form: As,
        form_name: &str,
        numbers: &[String],
    ) -> Result<Sent, ShareError> {
        let smsc = self.smsc.as_ref().ok_or(ShareError::NoSmsc)?;
        self.limiter
            .acquire(user_id, numbers.len(), Instant::now())
            .map_err(|wait| ShareError::TooManyMessages {
                messages: self.messages,
                minutes: self.window_s.div_ceil(60),
                wait,
            })?;
        // A concatenation reference and WSP transaction id that differ from one share to the next.
        let mut seed = [0u8; 2];
        rand::rng().fill_bytes(&mut seed);
        let seg =
            compose::compose(records, form, ConcatRef::Eight(seed[0]), seed[1]).map_err(|e| {
                ShareError::DoesNotFit {
                    form: form_name.to_string(),
                    detail: format!("{e:#}"),
                }
            })?;
        let mut messages = Vec::new();
        let mut owners = Vec::new();
        for (i, n) in numbers.iter().enumerate() {
            let sms = compose::to_smpp(&smsc.from, n, &seg, false)?;
            owners.extend(std::iter::repeat_n(i, sms.len()));
            messages.extend(sms);
        }
        let mut opts = ClientOptions::new(
            &smsc.addr,
            BindKind::Transmitter,
            &smsc.system_id,
            &smsc.password,
        );
        opts.attempts = 2;
        opts.bind_timeout = Duration::from_secs(5);
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            Client::submit_with_reconnect(&opts, messages, 1),
        )
        .await;
        let results = match sent {
            Err(_) => {
                return Err(ShareError::SmscTimeout {
                    addr: smsc.addr.clone(),
                });
            }
            Ok(Err(e)) => {
                warn!(video = %video_id, "share: SMSC: {e:#}");
                return Err(ShareError::Smsc(format!("{e:#}")));
            }
            Ok(Ok((results, client))) => {
                tokio::spawn(async move {
                    let _ = client.unbind().await;
                });
                results
            }
        };
        let mut outcomes: Vec<NumberOutcome> = numbers
            .iter()
            .map(|n| NumberOutcome {
                number: n.clone(),
                ..Default::default()
            })
            .collect();
        for (i, r) in owners.iter().zip(results) {
            match r {
                Ok(message_id) => outcomes[*i].message_ids.push(message_id),
                Err(e) => outcomes[*i].errors.push(e.to_string()),
            }
        }
        Ok(Sent {
            parts: seg.parts.len(),
            outcomes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
