//! Mobile-originated keywords on the proxy's number (double opt-in: `SUB <source>` → code by
//! SMS → `YES <code>`; `STOP`) and the fixed replies to them, through the SMS guard.

use vshare_smpp::pdu::Sm;

use crate::sms::{number_of, send_text};
use crate::store::{NewSubscription, SubState, Subscribed};
use crate::{Channel, Proxy, SmppConfig};

/// The text of a deliver_sm (GSM 7-bit unpacked as SMPP carries it, or UCS-2).
fn sm_text(sm: &Sm) -> String {
    let bytes = sm.payload();
    if sm.data_coding == 0x08 {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect()
}

/// What a mobile-originated message asks for (keywords are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    /// `SUB <source> [form]` (also SUBSCRIBE, JOIN).
    Subscribe {
        source: String,
        form: Option<String>,
    },
    /// `YES <code>` (also Y, OK, CONFIRM).
    Confirm {
        code: String,
    },
    /// `STOP [source]` (also UNSUB, UNSUBSCRIBE, QUIT, END, CANCEL).
    Stop {
        source: Option<String>,
    },
    Unknown,
}

/// Parses a mobile-originated message.
pub fn parse_keyword(text: &str) -> Keyword {
    let mut words = text.split_whitespace();
    let Some(first) = words.next() else {
        return Keyword::Unknown;
    };
    let rest: Vec<&str> = words.collect();
    match first.to_ascii_uppercase().as_str() {
        "SUB" | "SUBSCRIBE" | "JOIN" => match rest.first() {
            Some(s) => Keyword::Subscribe {
                source: s.to_string(),
                form: rest.get(1).map(|f| f.to_ascii_lowercase()),
            },
            None => Keyword::Unknown,
        },
        "YES" | "Y" | "OK" | "CONFIRM" => match rest.first() {
            Some(c) => Keyword::Confirm {
                code: c.to_string(),
            },
            None => Keyword::Unknown,
        },
        "STOP" | "UNSUB" | "UNSUBSCRIBE" | "QUIT" | "END" | "CANCEL" => Keyword::Stop {
            source: rest.first().map(|s| s.to_string()),
        },
        _ => Keyword::Unknown,
    }
}

/// Acts on a mobile-originated message (keywords) and replies with fixed words (never a name
/// someone chose), through the SMS guard: over its limits, no reply.
pub(crate) async fn handle_mo(proxy: &Proxy, cfg: &SmppConfig, sm: &Sm) -> anyhow::Result<()> {
    let from = number_of(&sm.source);
    let text = sm_text(sm);
    tracing::info!(from = %from, text = %text, "MO SMS");
    let rules = crate::store::CodeRules {
        ttl_ms: proxy.config.code_ttl_ms,
        attempts: proxy.config.code_attempts,
    };
    let now = proxy.now_ms();
    // The code's SMS is admitted when the subscription is made; other replies here.
    let mut admitted = false;
    let reply = match parse_keyword(&text) {
        Keyword::Subscribe { source, form } => {
            if !proxy.source_exists(&source).await? {
                "vshare: no such source.".to_string()
            } else {
                let channel = if form.as_deref().is_some_and(|f| f.starts_with("wap")) {
                    Channel::Wap
                } else {
                    Channel::Sms
                };
                let made = proxy
                    .store
                    .subscribe(
                        &NewSubscription {
                            source,
                            channel,
                            address: from.clone(),
                            form,
                        },
                        now,
                        rules,
                        |number| proxy.sms_guard.admit_one(number, true, None, now),
                    )
                    .await;
                match made {
                    Ok(Subscribed::Created(s)) => {
                        admitted = true;
                        crate::api::confirmation_text(s.code.as_deref().unwrap_or_default())
                    }
                    Ok(Subscribed::Exists) => {
                        "vshare: you are subscribed already, or a code was sent to you: reply YES <code>."
                            .to_string()
                    }
                    Err(crate::store::StoreError::Refused(r)) => {
                        tracing::info!(to = %from, "no reply to SUB: {r}");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!("SUB from {from}: {e}");
                        "vshare: that did not work; try again later.".to_string()
                    }
                }
            }
        }
        Keyword::Confirm { code } => {
            let done = proxy.store.confirm(&from, &code, rules, now).await?;
            if done.is_empty() {
                "vshare: that code matches no pending subscription.".to_string()
            } else {
                format!(
                    "vshare: {} subscription(s) confirmed. STOP to end.",
                    done.len()
                )
            }
        }
        Keyword::Stop { source } => {
            let mut n = 0;
            for s in proxy.store.by_number(&from).await? {
                if s.state != SubState::Stopped
                    && source.as_ref().is_none_or(|src| *src == s.source)
                {
                    proxy
                        .store
                        .set_sub_state(&s.id, SubState::Stopped, proxy.now_ms())
                        .await?;
                    n += 1;
                }
            }
            format!("vshare: {n} subscription(s) stopped.")
        }
        Keyword::Unknown => "vshare: send SUB <source>, YES <code> or STOP.".to_string(),
    };
    if !admitted && let Err(r) = proxy.sms_guard.admit_one(&from, true, None, now) {
        tracing::info!(to = %from, "no reply: {r}");
        return Ok(());
    }
    send_text(cfg, &from, &reply).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        assert_eq!(
            parse_keyword("sub alice"),
            Keyword::Subscribe {
                source: "alice".into(),
                form: None
            }
        );
        assert_eq!(
            parse_keyword("SUBSCRIBE alice WAP-SI"),
            Keyword::Subscribe {
                source: "alice".into(),
                form: Some("wap-si".into())
            }
        );
        assert_eq!(
            parse_keyword(" Yes 123456 "),
            Keyword::Confirm {
                code: "123456".into()
            }
        );
        assert_eq!(parse_keyword("STOP"), Keyword::Stop { source: None });
        assert_eq!(
            parse_keyword("unsub bob"),
            Keyword::Stop {
                source: Some("bob".into())
            }
        );
        assert_eq!(parse_keyword("SUB"), Keyword::Unknown);
        assert_eq!(parse_keyword(""), Keyword::Unknown);
        assert_eq!(parse_keyword("hello"), Keyword::Unknown);
    }

    #[test]
    fn ucs2_and_gsm_text() {
        let mut sm = Sm::text("+1", "2", b"SUB alice");
        assert_eq!(sm_text(&sm), "SUB alice");
        sm.data_coding = 8;
        sm.short_message = "YES 1"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(sm_text(&sm), "YES 1");
    }
}
