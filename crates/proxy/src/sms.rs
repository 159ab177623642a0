//! SMS and WAP Push subscribers over SMPP: the dispatcher (transmitter bind, through
//! `vshare_messaging::smpp_client` and `compose`), and the receiver bind on the proxy's own
//! number that takes delivery receipts (SMPP v3.4 Appendix B) and mobile-originated keywords
//! (handled in [`crate::mo`]).

pub use crate::mo::{Keyword, parse_keyword};

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vshare_messaging::compose::{Extent, compose_message, parse_form_name, primary, to_smpp};
use vshare_messaging::smpp_client::{Client, ClientOptions, SubmitError};
use vshare_smpp::pdu::{Sm, esm, tag};
use vshare_smpp::receipt::Receipt;
use vshare_smpp::{BindKind, Config, Event, Session, status};
use vshare_sms::split::ConcatRef;

use crate::dispatcher::Outcome;
use crate::store::{Channel, Claimed, IncomingReceipt, ReceiptOrigin, ReceiptStatus};
use crate::{Proxy, SmppConfig};

/// registered_delivery (SMPP v3.4 §5.2.17): a final receipt on success or failure (bits 1–0 =
/// 01) …
pub const REGISTERED_FINAL: u8 = 0x01;
/// … and the intermediate notification (bit 4).
pub const REGISTERED_INTERMEDIATE: u8 = 0x10;
/// esm_class message types of a deliver_sm (§5.2.12, bits 5–2).
const ESM_TYPE_MASK: u8 = 0x3C;
/// An intermediate delivery notification (xx1000xx); `esm::DELIVERY_RECEIPT` is xx0001xx.
const ESM_INTERMEDIATE: u8 = 0x20;

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

/// What a row's message carries: the compact one-SMS form on a short link under the
/// configured base (else the origin of the record's own URL), or every record.
fn extent(
    link_base: Option<&str>,
    full: bool,
    records: &[vshare_attributes::AttributeRecord],
) -> Extent {
    if full {
        return Extent::Full;
    }
    let link_base = match link_base {
        Some(b) => b.to_string(),
        None => primary(records).map(|r| origin(&r.url)).unwrap_or_default(),
    };
    Extent::Compact { link_base }
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.to_string(),
    }
}

/// Claims SMS and WAP rows, submits them over one transmitter bind, records the outcomes,
/// until the runtime stops. While the SMSC cannot be reached, rows wait in the outbox without
/// spending attempts.
///
/// Exactly-once across crashes: just before a chunk (at most one window) is written to the
/// SMSC its rows are marked handed over in the store. A dispatcher that dies leaves its rows
/// `sending`; when their lease runs out, rows never handed over are sent again, and rows handed
/// over become `unconfirmed`. Each message asks for receipts, the intermediate one included
/// (registered_delivery 0x11), so a message the SMSC took produces a receipt, which settles its
/// unconfirmed row ([`crate::store::Store::receipts`]); rows without one after
/// [`crate::dispatcher::Policy::unconfirmed_grace_ms`] never reached the SMSC and are queued
/// again.
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
    let mut last_sweep = std::time::Instant::now();
    loop {
        if let Some(grace) = proxy.config.policy.unconfirmed_grace_ms
            && let Err(e) = proxy
                .store
                .requeue_unconfirmed(grace, proxy.config.policy.max_attempts, proxy.now_ms())
                .await
        {
            tracing::warn!("SMS outbox: unconfirmed rows: {e:#}");
        }
        // Receipts and records that crossed each other leave a receipt waiting; once a second
        // such receipts are applied.
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = std::time::Instant::now();
            if let Err(e) = proxy.store.apply_waiting_receipts(proxy.now_ms()).await {
                tracing::warn!("SMS outbox: waiting receipts: {e:#}");
            }
        }
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
            let payload = proxy.payload(&row.event_id).await?;
            let records = &payload.records;
            let (f, full) = parse_form_name(&row.form)
                .ok_or_else(|| anyhow::anyhow!("unknown form {:?}", row.form))?;
            *reference = reference.wrapping_add(1);
            let seg = compose_message(
                records,
                f,
                &extent(proxy.config.link_base.as_deref(), full, records),
                ConcatRef::Sixteen(*reference),
                *reference as u8,
            )?;
            let mut sms = to_smpp(&cfg.number, &row.address, &seg, true)?;
            // Receipts for the last part only (its id is the row's): the final one, and the
            // intermediate one the SMSC sends when it has stored the message.
            let last = sms.len().saturating_sub(1);
            for (i, sm) in sms.iter_mut().enumerate() {
                sm.registered_delivery = if i == last {
                    REGISTERED_FINAL | REGISTERED_INTERMEDIATE
                } else {
                    0
                };
            }
            Ok::<_, anyhow::Error>(sms)
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
        if let Err(e) = receive(&proxy, &cfg, &opts, &mut backoff).await {
            tracing::warn!("SMPP receiver: {e:#}");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One receiver session. Written on [`Session`] rather than the messaging client because the
/// client acknowledges each deliver_sm as it arrives, and a receipt acknowledged before it is
/// recorded is lost to a crash (and with it the only proof that an unconfirmed message reached
/// the SMSC). Here the deliver_sm_resp of what one read brought go out after it is committed;
/// if the proxy dies first, the SMSC sends those PDUs again (applying a receipt twice changes
/// nothing).
async fn receive(
    proxy: &Proxy,
    cfg: &SmppConfig,
    opts: &ClientOptions,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let stream = tokio::time::timeout(opts.bind_timeout, TcpStream::connect(&opts.addr))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to the SMSC at {}: timed out", opts.addr))?
        .with_context(|| format!("connecting to the SMSC at {}", opts.addr))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut session = Session::esme(opts.config.clone());
    session.bind(
        BindKind::Receiver,
        &opts.system_id,
        &opts.password,
        &opts.address_range,
        Instant::now(),
    );
    let bind_deadline = Instant::now() + opts.bind_timeout;
    let mut bound = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            wr.write_all(&bytes).await.context("writing to the SMSC")?;
        }
        let wake = [session.poll_timeout(), (!bound).then_some(bind_deadline)]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = r.context("reading from the SMSC")?;
                if n == 0 {
                    anyhow::bail!("the SMSC at {} closed the connection", opts.addr);
                }
                session.handle_input(&buf[..n], Instant::now())?;
            }
            _ = sleep => session.handle_timeout(Instant::now()),
        }
        if !bound && Instant::now() >= bind_deadline {
            anyhow::bail!(
                "the SMSC at {} did not answer the bind within {:?}",
                opts.addr,
                opts.bind_timeout
            );
        }
        let mut arrived = Vec::new();
        while let Some(e) = session.poll_event() {
            match e {
                Event::Bound { system_id, .. } => {
                    tracing::info!("receiver bound to {} ({system_id})", opts.addr);
                    bound = true;
                    *backoff = Duration::from_millis(500);
                }
                Event::BindFailed { status } => anyhow::bail!(
                    "the SMSC at {} refused the receiver bind: command_status 0x{status:08X}",
                    opts.addr
                ),
                Event::Deliver { sm } => arrived.push(sm),
                Event::LinkDead => anyhow::bail!("the SMSC stopped answering enquire_link"),
                Event::Unbound => anyhow::bail!("the SMSC unbound"),
                Event::BadPdu { error } => tracing::warn!("bad PDU from the SMSC: {error}"),
                _ => {}
            }
        }
        if !arrived.is_empty() {
            // An error here leaves them unacknowledged: the connection closes and the SMSC
            // delivers them again.
            handle_delivered(proxy, cfg, arrived).await?;
        }
    }
}

/// Records the receipts among `arrived` (one transaction), then acts on the mobile-originated
/// messages.
async fn handle_delivered(proxy: &Proxy, cfg: &SmppConfig, arrived: Vec<Sm>) -> anyhow::Result<()> {
    let mut receipts = Vec::new();
    let mut mo = Vec::new();
    for sm in arrived {
        match parse_receipt(&sm) {
            Some(Ok(r)) => receipts.push(r),
            Some(Err(e)) => tracing::warn!("SMPP deliver_sm: {e:#}"),
            None => mo.push(sm),
        }
    }
    proxy
        .store
        .receipts(&receipts, proxy.now_ms())
        .await
        .context("recording delivery receipts")?;
    for sm in &mo {
        if let Err(e) = crate::mo::handle_mo(proxy, cfg, sm).await {
            tracing::warn!("SMPP deliver_sm: {e:#}");
        }
    }
    Ok(())
}

/// What a receipt's `stat` says (SMPP v3.4 Appendix B, and `ENROUTE` as SMSCs write the
/// message_state name in intermediate notifications).
fn status_of_stat(stat: &str) -> Option<ReceiptStatus> {
    Some(match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => ReceiptStatus::Delivered,
        "EXPIRED" | "DELETED" | "UNDELIV" | "UNDELIVERABLE" | "REJECTD" | "REJECTED" => {
            ReceiptStatus::Failed
        }
        "ENROUTE" | "ACCEPTD" | "ACCEPTED" | "UNKNOWN" => ReceiptStatus::Accepted,
        _ => return None,
    })
}

/// A delivery receipt (esm_class message type xx0001xx) or intermediate notification
/// (xx1000xx) read from a deliver_sm; `None` when the deliver_sm is neither (a
/// mobile-originated message).
pub fn parse_receipt(sm: &Sm) -> Option<anyhow::Result<IncomingReceipt>> {
    let kind = sm.esm_class & ESM_TYPE_MASK;
    if kind != esm::DELIVERY_RECEIPT && kind != ESM_INTERMEDIATE {
        return None;
    }
    let text = String::from_utf8_lossy(sm.payload()).into_owned();
    let parsed = Receipt::parse(&text);
    let id = sm
        .tlv(tag::RECEIPTED_MESSAGE_ID)
        .map(|v| {
            String::from_utf8_lossy(v)
                .trim_end_matches('\0')
                .to_string()
        })
        .filter(|id| !id.is_empty())
        .or_else(|| parsed.as_ref().map(|r| r.id.clone()));
    let Some(message_id) = id else {
        return Some(Err(anyhow::anyhow!(
            "delivery receipt without a message id: {text:?}"
        )));
    };
    // message_state (§5.2.28): 1 ENROUTE, 2 DELIVERED, 3 EXPIRED, 4 DELETED, 5 UNDELIVERABLE,
    // 6 ACCEPTED, 7 UNKNOWN, 8 REJECTED.
    let by_tlv = match sm.tlv(tag::MESSAGE_STATE) {
        Some([2]) => Some(ReceiptStatus::Delivered),
        Some([3 | 4 | 5 | 8]) => Some(ReceiptStatus::Failed),
        Some([1 | 6 | 7]) => Some(ReceiptStatus::Accepted),
        _ => None,
    };
    let status = by_tlv
        .or_else(|| parsed.as_ref().and_then(|r| status_of_stat(&r.stat)))
        .unwrap_or(if kind == ESM_INTERMEDIATE {
            ReceiptStatus::Accepted
        } else {
            ReceiptStatus::Failed
        });
    // The receipt comes from the original destination (SMPP v3.4 Appendix B).
    let origin = parsed
        .as_ref()
        .and_then(|r| receipt_minute_ms(&r.submit_date))
        .map(|submitted_at_ms| ReceiptOrigin {
            address: number_of(&sm.source),
            submitted_at_ms,
        });
    Some(Ok(IncomingReceipt {
        message_id,
        status,
        origin,
    }))
}

/// A number as the outbox writes it: `+` and digits for an international one (TON 1).
pub(crate) fn number_of(a: &vshare_smpp::pdu::SmeAddress) -> String {
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
    fn short_links_default_to_the_records_origin() {
        assert_eq!(
            origin("https://h.example:8443/vod/a/video.mp4?x=1"),
            "https://h.example:8443"
        );
        let mut r = vshare_attributes::AttributeRecord::blank(vshare_attributes::Kind::Live);
        r.url = "http://h:8080/live/a/index.m3u8".into();
        assert_eq!(
            extent(None, false, std::slice::from_ref(&r)),
            Extent::Compact {
                link_base: "http://h:8080".into()
            }
        );
        assert_eq!(
            extent(Some("https://v.example"), false, std::slice::from_ref(&r)),
            Extent::Compact {
                link_base: "https://v.example".into()
            }
        );
        assert_eq!(extent(None, true, &[r]), Extent::Full);
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
    fn receipts_final_and_intermediate() {
        use vshare_smpp::pdu::Tlv;
        let text = |stat: &str| {
            format!(
                "id:0A sub:001 dlvrd:000 submit date:2611250730 done date:2611250731 stat:{stat} err:000 text:vshare"
            )
        };
        let receipt = |esm_class: u8, stat: &str, state: Option<u8>| {
            let mut sm = Sm::text("+4410", "+10000", text(stat).as_bytes());
            sm.source.ton = 1;
            sm.esm_class = esm_class;
            if let Some(v) = state {
                sm.tlvs.push(Tlv {
                    tag: tag::MESSAGE_STATE,
                    value: vec![v],
                });
                sm.tlvs.push(Tlv {
                    tag: tag::RECEIPTED_MESSAGE_ID,
                    value: b"0B\0".to_vec(),
                });
            }
            parse_receipt(&sm).expect("a receipt").expect("parsed")
        };
        let r = receipt(ESM_INTERMEDIATE, "ENROUTE", None);
        assert_eq!(
            (r.message_id.as_str(), r.status),
            ("0A", ReceiptStatus::Accepted)
        );
        let o = r.origin.expect("origin");
        assert_eq!(o.address, "+4410");
        assert_eq!(o.submitted_at_ms, 1_795_591_800_000);
        assert_eq!(
            receipt(esm::DELIVERY_RECEIPT, "ACCEPTD", None).status,
            ReceiptStatus::Accepted
        );
        assert_eq!(
            receipt(esm::DELIVERY_RECEIPT, "DELIVRD", None).status,
            ReceiptStatus::Delivered
        );
        assert_eq!(
            receipt(esm::DELIVERY_RECEIPT, "EXPIRED", None).status,
            ReceiptStatus::Failed
        );
        // The TLVs win over the text.
        let r = receipt(ESM_INTERMEDIATE, "DELIVRD", Some(1));
        assert_eq!(
            (r.message_id.as_str(), r.status),
            ("0B", ReceiptStatus::Accepted)
        );
        assert_eq!(
            receipt(esm::DELIVERY_RECEIPT, "ENROUTE", Some(5)).status,
            ReceiptStatus::Failed
        );
        // A mobile-originated message (and its UDHI bit) is no receipt.
        let mut mo = Sm::text("+4410", "+10000", b"SUB alice");
        assert!(parse_receipt(&mo).is_none());
        mo.esm_class = esm::UDHI;
        assert!(parse_receipt(&mo).is_none());
        // A receipt without an id is an error, not a panic.
        let mut bad = Sm::text("+4410", "+10000", b"stat:DELIVRD");
        bad.esm_class = esm::DELIVERY_RECEIPT;
        assert!(parse_receipt(&bad).expect("a receipt").is_err());
    }
}
