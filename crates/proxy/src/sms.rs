//! SMS and WAP Push subscribers over SMPP: the dispatcher (transmitter bind, through
//! `vshare_messaging::smpp_client` and `compose`), and the receiver bind on the proxy's own
//! number that takes delivery receipts (SMPP v3.4 Appendix B) and mobile-originated keywords
//! (double opt-in: `SUB <source>` → code by SMS → `YES <code>`; `STOP`).

use std::time::Duration;

use vshare_messaging::compose::{As, compose, to_smpp};
use vshare_messaging::smpp_client::{Client, ClientOptions, SubmitError};
use vshare_smpp::pdu::{Sm, esm, tag};
use vshare_smpp::receipt::Receipt;
use vshare_smpp::{BindKind, Config, status};
use vshare_sms::split::ConcatRef;

use crate::dispatcher::Outcome;
use crate::store::{Channel, Claimed, NewSubscription, ReceiptOrigin, SubState};
use crate::{Proxy, SmppConfig};

fn options(c: &SmppConfig, kind: BindKind) -> ClientOptions {
    let mut o = ClientOptions::new(&c.addr, kind, &c.system_id, &c.password);
    o.config = Config {
        window: c.window.max(1),
        ..Config::default()
    };
    o.attempts = 2;
    o.retry_backoff = Duration::from_millis(200);
    o.bind_timeout = Duration::from_secs(5);
    if kind == BindKind::Receiver {
        o.address_range = c.number.trim_start_matches('+').to_string();
    }
    o
}

fn form(s: &str) -> Option<As> {
    Some(match s {
        "text" => As::Text,
        "tlv" => As::Tlv,
        "xml" => As::Xml,
        "wap-si" => As::WapSi,
        "wap-sl" => As::WapSl,
        _ => return None,
    })
}

/// Claims SMS and WAP rows, submits them over one transmitter bind, records the outcomes,
/// until the runtime stops. While the SMSC cannot be reached, rows wait in the outbox without
/// spending attempts.
///
/// Exactly-once across crashes: just before a chunk (at most one window) is written to the
/// SMSC its rows are marked handed over in the store. A dispatcher that dies leaves its rows
/// `sending`; when their lease runs out, rows never handed over are sent again, and rows handed
/// over become `unconfirmed` — never sent twice, like the messaging client's
/// [`SubmitError::Unconfirmed`].
pub async fn run_dispatcher(proxy: Proxy) {
    let Some(cfg) = proxy.config.smpp.clone() else {
        return;
    };
    let opts = options(&cfg, BindKind::Transmitter);
    let mut reference: u16 = rand::random();
    let mut client: Option<Client> = None;
    let mut down_backoff = Duration::from_millis(250);
    let t = proxy.sms_timings.clone();
    let add = |counter: &std::sync::atomic::AtomicU64, since: std::time::Instant| {
        counter.fetch_add(
            since.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    };
    loop {
        let t0 = std::time::Instant::now();
        let claimed = proxy
            .claim_and_plan(&[Channel::Sms, Channel::Wap], proxy.config.batch)
            .await;
        add(&t.claim_us, t0);
        let (rows, next) = match claimed {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("SMS outbox claim: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if rows.is_empty() {
            proxy.idle_until(Duration::from_millis(500), next).await;
            continue;
        }
        if client.is_none() {
            match Client::connect(&opts).await {
                Ok(c) => {
                    client = Some(c);
                    down_backoff = Duration::from_millis(250);
                }
                Err(e) => {
                    tracing::warn!(
                        "SMSC unavailable ({e:#}); {} message(s) wait {down_backoff:?}",
                        rows.len()
                    );
                    let until = proxy.now_ms() + down_backoff.as_millis() as i64;
                    let ids: Vec<(String, i64)> = rows.into_iter().map(|r| (r.id, until)).collect();
                    if let Err(e) = proxy
                        .store
                        .defer(&proxy.config.owner, &ids, proxy.now_ms())
                        .await
                    {
                        tracing::warn!("SMS outbox defer: {e:#}");
                    }
                    tokio::time::sleep(down_backoff).await;
                    down_backoff = (down_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let results = send_batch(&proxy, &mut client, &cfg, rows, &mut reference).await;
        let t0 = std::time::Instant::now();
        if let Err(e) = proxy.finish(results).await {
            tracing::warn!("SMS outbox record: {e:#}");
        }
        add(&t.record_us, t0);
    }
}

/// Composes and submits one claimed batch, a window at a time, recording each window's
/// outcomes; returns the outcomes of rows that did not go out. A broken connection leaves
/// `client` empty.
async fn send_batch(
    proxy: &Proxy,
    client: &mut Option<Client>,
    cfg: &SmppConfig,
    rows: Vec<Claimed>,
    reference: &mut u16,
) -> Vec<(Claimed, Outcome)> {
    let timings = proxy.sms_timings.clone();
    let add = |counter: &std::sync::atomic::AtomicU64, since: std::time::Instant| {
        counter.fetch_add(
            since.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    };
    let t0 = std::time::Instant::now();
    let mut out = Vec::with_capacity(rows.len());
    let mut ready: Vec<(Claimed, Vec<Sm>)> = Vec::with_capacity(rows.len());
    for row in rows {
        let composed = async {
            let records = proxy.records(&row.event_id).await?;
            let f =
                form(&row.form).ok_or_else(|| anyhow::anyhow!("unknown form {:?}", row.form))?;
            *reference = reference.wrapping_add(1);
            let seg = compose(
                &records,
                f,
                ConcatRef::Sixteen(*reference),
                *reference as u8,
            )?;
            to_smpp(&cfg.number, &row.address, &seg, true)
        }
        .await;
        match composed {
            Ok(sms) => ready.push((row, sms)),
            Err(e) => out.push((
                row,
                Outcome::Permanent {
                    error: format!("compose: {e:#}"),
                },
            )),
        }
    }
    add(&timings.compose_us, t0);
    let window = cfg.window.max(1);
    let mut ready = ready.into_iter().peekable();
    while ready.peek().is_some() {
        let Some(c) = client.as_mut() else {
            // The connection broke: what was not handed over waits for the next bind.
            for (row, _) in ready.by_ref() {
                out.push((
                    row,
                    Outcome::Transient {
                        error: "SMPP connection lost before sending".into(),
                    },
                ));
            }
            break;
        };
        let mut chunk: Vec<(Claimed, usize, usize)> = Vec::new();
        let mut messages: Vec<Sm> = Vec::new();
        while messages.len() < window
            && let Some((row, sms)) = ready.next()
        {
            chunk.push((row, messages.len(), sms.len()));
            messages.extend(sms);
        }
        let ids: Vec<String> = chunk.iter().map(|(r, _, _)| r.id.clone()).collect();
        let t0 = std::time::Instant::now();
        let marked = proxy
            .store
            .mark_handed_over(&proxy.config.owner, &ids, proxy.now_ms())
            .await;
        add(&timings.mark_us, t0);
        let t0 = std::time::Instant::now();
        if let Err(e) = marked {
            tracing::warn!("SMS outbox: {e:#}");
            for (row, _, _) in chunk {
                out.push((
                    row,
                    Outcome::Transient {
                        error: format!("outbox: {e:#}"),
                    },
                ));
            }
            continue;
        }
        let submitted = c.submit_many(messages).await;
        add(&timings.submit_us, t0);
        let mut done = Vec::with_capacity(chunk.len());
        match submitted {
            Ok(results) => {
                for (row, first, n) in chunk {
                    let parts = results.get(first..first + n).unwrap_or(&[]);
                    done.push((row, part_outcome(parts)));
                }
            }
            Err(e) => {
                tracing::warn!("SMPP connection lost: {e:#}");
                *client = None;
                for (row, _, _) in chunk {
                    done.push((
                        row,
                        Outcome::Unconfirmed {
                            error: format!("connection lost after sending: {e:#}"),
                        },
                    ));
                }
            }
        }
        // Recorded per window, so a crash leaves at most one window handed over but unrecorded.
        let t0 = std::time::Instant::now();
        if let Err(e) = proxy.finish(done).await {
            tracing::warn!("SMS outbox record: {e:#}");
        }
        add(&timings.record_us, t0);
    }
    out
}

/// One row's outcome from its parts' results: accepted when every part was, with the last
/// part's message id (its receipt marks the row delivered).
fn part_outcome(parts: &[Result<String, SubmitError>]) -> Outcome {
    if parts.is_empty() {
        return Outcome::Transient {
            error: "no answer".into(),
        };
    }
    for p in parts {
        match p {
            Ok(_) => {}
            Err(SubmitError::Refused(s))
                if matches!(
                    *s,
                    status::INVALID_DEST | status::INVALID_SOURCE | status::INVALID_MSG_LENGTH
                ) =>
            {
                return Outcome::Permanent {
                    error: format!("SMSC refused: command_status 0x{s:08X}"),
                };
            }
            Err(SubmitError::Refused(s)) => {
                return Outcome::Transient {
                    error: format!("SMSC refused: command_status 0x{s:08X}"),
                };
            }
            Err(e @ (SubmitError::TimedOut | SubmitError::Unconfirmed)) => {
                return Outcome::Unconfirmed {
                    error: e.to_string(),
                };
            }
        }
    }
    Outcome::Accepted {
        message_id: parts.last().and_then(|p| p.clone().ok()),
    }
}

/// Binds as receiver on the proxy's number and handles what arrives, reconnecting forever.
pub async fn run_receiver(proxy: Proxy) {
    let Some(cfg) = proxy.config.smpp.clone() else {
        return;
    };
    let opts = options(&cfg, BindKind::Receiver);
    let mut backoff = Duration::from_millis(500);
    loop {
        match Client::connect(&opts).await {
            Ok(mut client) => {
                backoff = Duration::from_millis(500);
                loop {
                    match client.recv(None).await {
                        Ok(Some(sm)) => {
                            if let Err(e) = handle_deliver(&proxy, &cfg, &sm).await {
                                tracing::warn!("SMPP deliver_sm: {e:#}");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("SMPP receiver: {e:#}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("SMPP receiver bind: {e:#}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// A number as the outbox writes it: `+` and digits for an international one (TON 1).
fn number_of(a: &vshare_smpp::pdu::SmeAddress) -> String {
    if a.ton == 1 {
        format!("+{}", a.addr)
    } else {
        a.addr.clone()
    }
}

/// The start of a receipt's `YYMMDDhhmm` minute (SMPP v3.4 Appendix B "submit date"; the
/// SMSC's clock, taken as UTC), ms since the Unix epoch.
pub fn receipt_minute_ms(date: &str) -> Option<i64> {
    if date.len() != 10 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(&format!("20{date}"), "%Y%m%d%H%M")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

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

async fn handle_deliver(proxy: &Proxy, cfg: &SmppConfig, sm: &Sm) -> anyhow::Result<()> {
    if sm.esm_class & esm::DELIVERY_RECEIPT != 0 {
        let text = String::from_utf8_lossy(sm.payload()).into_owned();
        let parsed = Receipt::parse(&text);
        let id = sm
            .tlv(tag::RECEIPTED_MESSAGE_ID)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .or_else(|| parsed.as_ref().map(|r| r.id.clone()))
            .ok_or_else(|| anyhow::anyhow!("delivery receipt without a message id: {text:?}"))?;
        let delivered = match sm.tlv(tag::MESSAGE_STATE) {
            Some([2]) => true,
            Some(_) => false,
            None => parsed.as_ref().is_some_and(|r| r.stat == "DELIVRD"),
        };
        // The receipt comes from the original destination (SMPP v3.4 Appendix B).
        let origin = parsed
            .as_ref()
            .and_then(|r| receipt_minute_ms(&r.submit_date))
            .map(|submitted_at_ms| ReceiptOrigin {
                address: number_of(&sm.source),
                submitted_at_ms,
            });
        proxy
            .store
            .receipt_from(&id, delivered, origin.as_ref(), proxy.now_ms())
            .await?;
        return Ok(());
    }
    let from = number_of(&sm.source);
    let text = sm_text(sm);
    tracing::info!(from = %from, text = %text, "MO SMS");
    let reply = match parse_keyword(&text) {
        Keyword::Subscribe { source, form } => {
            if !proxy.source_exists(&source).await? {
                format!("vshare: no source named {source}.")
            } else {
                let channel = if form.as_deref().is_some_and(|f| f.starts_with("wap")) {
                    Channel::Wap
                } else {
                    Channel::Sms
                };
                match proxy
                    .store
                    .subscribe(
                        &NewSubscription {
                            source: source.clone(),
                            channel,
                            address: from.clone(),
                            form,
                        },
                        proxy.now_ms(),
                    )
                    .await
                {
                    Ok(s) if s.state == SubState::Active => {
                        format!("vshare: you already get {source}'s videos. STOP to end.")
                    }
                    Ok(s) => format!(
                        "vshare: reply YES {} to get {source}'s videos by SMS.",
                        s.code.unwrap_or_default()
                    ),
                    Err(e) => format!("vshare: {e}"),
                }
            }
        }
        Keyword::Confirm { code } => {
            let done = proxy.store.confirm(&from, &code, proxy.now_ms()).await?;
            if done.is_empty() {
                "vshare: that code matches no pending subscription.".to_string()
            } else {
                let names: Vec<&str> = done.iter().map(|s| s.source.as_str()).collect();
                format!("vshare: subscribed to {}. STOP to end.", names.join(", "))
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
    send_text(cfg, &from, &reply).await
}

/// Sends one plain text SMS from the proxy's number (confirmation codes, replies). Not
/// queued: a lost reply is asked for again by the user.
pub async fn send_text(cfg: &SmppConfig, to: &str, text: &str) -> anyhow::Result<()> {
    let seg = vshare_sms::split::split_text(text, None, ConcatRef::Eight(rand::random()))?;
    let sms = to_smpp(&cfg.number, to, &seg, false)?;
    let (results, _client) =
        Client::submit_with_reconnect(&options(cfg, BindKind::Transmitter), sms, 1).await?;
    for r in results {
        r.map_err(|e| anyhow::anyhow!("reply to {to}: {e}"))?;
    }
    Ok(())
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
    fn outcomes_from_parts() {
        assert_eq!(
            part_outcome(&[Ok("1".into()), Ok("2".into())]),
            Outcome::Accepted {
                message_id: Some("2".into())
            }
        );
        assert!(matches!(
            part_outcome(&[Err(SubmitError::Refused(status::THROTTLED))]),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            part_outcome(&[Err(SubmitError::Refused(status::INVALID_DEST))]),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            part_outcome(&[Ok("1".into()), Err(SubmitError::Unconfirmed)]),
            Outcome::Unconfirmed { .. }
        ));
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
