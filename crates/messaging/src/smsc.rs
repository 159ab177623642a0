//! `vshare smsc`: a development SMSC. An SMPP v3.4 server that accepts binds, takes submit_sm,
//! forwards each message as deliver_sm to the receiver bound for its destination number (bind
//! `address_range`, or `system_id` when that is empty), keeps messages for numbers nobody is
//! bound for until someone binds, and sends delivery receipts (Appendix B) to the sender when
//! asked (registered_delivery bit 0). Everything is in memory.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use vshare_smpp::pdu::{Sm, Tlv, esm, tag};
use vshare_smpp::receipt::Receipt;
use vshare_smpp::{Config, Event, Session, status};

/// How the SMSC behaves.
#[derive(Debug, Clone)]
pub struct SmscOptions {
    /// system_id in bind responses.
    pub system_id: String,
    /// Required password; `None` accepts any.
    pub password: Option<String>,
    pub config: Config,
    /// Answer every Nth submit_sm with ESME_RTHROTTLED (0x58), to exercise clients' backoff.
    pub throttle_every: Option<u64>,
}

impl Default for SmscOptions {
    fn default() -> SmscOptions {
        SmscOptions {
            system_id: "vshare-smsc".into(),
            password: None,
            config: Config {
                window: 64,
                ..Config::default()
            },
            throttle_every: None,
        }
    }
}

/// registered_delivery (SMPP v3.4 §5.2.17) bits 1–0: which final receipts are wanted.
const RECEIPT_MASK: u8 = 0x03;
const RECEIPT_ALWAYS: u8 = 0x01;
const RECEIPT_ON_FAILURE: u8 = 0x02;
/// registered_delivery bit 4: intermediate notification requested.
pub const REGISTERED_INTERMEDIATE: u8 = 0x10;
/// esm_class (§5.2.12) message type of a deliver_sm carrying an intermediate delivery
/// notification (xx1000xx).
pub const ESM_INTERMEDIATE: u8 = 0x20;

/// What a receipt reports (message_state values of §5.2.28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    /// Stored, on its way (intermediate): message_state 1 ENROUTE.
    Enroute,
    /// message_state 2 DELIVERED.
    Delivered,
    /// message_state 5 UNDELIVERABLE.
    Undeliverable,
}

#[derive(Debug, Clone)]
struct ReceiptTo {
    conn: Option<mpsc::UnboundedSender<Cmd>>,
    message_id: String,
    submitted: String,
    original: Sm,
    /// registered_delivery of the submit_sm.
    wanted: u8,
}

#[derive(Debug)]
enum Cmd {
    Deliver { sm: Sm, receipt: Option<ReceiptTo> },
}

#[derive(Default)]
struct Router {
    receivers: HashMap<String, Vec<(u64, mpsc::UnboundedSender<Cmd>)>>,
    stored: HashMap<String, VecDeque<(Sm, Option<ReceiptTo>)>>,
    next_id: u64,
    submits: u64,
    /// When each submit_sm arrived, per destination (`+` removed), in order.
    arrivals: HashMap<String, Vec<Instant>>,
}

/// Counters, for logs and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub submitted: u64,
    pub stored: usize,
}

/// A running SMSC.
#[derive(Clone)]
pub struct Smsc {
    router: Arc<Mutex<Router>>,
    opts: Arc<SmscOptions>,
}

fn key(addr: &str) -> String {
    addr.trim_start_matches('+').to_string()
}

/// `YYMMDDhhmm` in UTC (the receipt's date format).
fn receipt_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        y % 100,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60
    )
}

impl Smsc {
    pub fn new(opts: SmscOptions) -> Smsc {
        Smsc {
            router: Arc::new(Mutex::new(Router::default())),
            opts: Arc::new(opts),
        }
    }

    pub fn stats(&self) -> Stats {
        let r = self.router.lock().unwrap_or_else(|e| e.into_inner());
        Stats {
            submitted: r.submits,
            stored: r.stored.values().map(VecDeque::len).sum(),
        }
    }

    /// How many messages are held per destination number (`+` removed) for want of a bound
    /// receiver: subscribers' messages, and receipts for a sender whose receiver is away.
    pub fn stored_per_destination(&self) -> HashMap<String, usize> {
        let r = self.router.lock().unwrap_or_else(|e| e.into_inner());
        r.stored
            .iter()
            .map(|(k, q)| (k.clone(), q.len()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// When each submit_sm for `number` (`+` ignored) arrived, oldest first: the times a
    /// sender's rate limits are seen from outside, free of any poller's delay.
    pub fn arrivals_for(&self, number: &str) -> Vec<Instant> {
        let r = self.router.lock().unwrap_or_else(|e| e.into_inner());
        r.arrivals.get(&key(number)).cloned().unwrap_or_default()
    }

    /// The messages held for `number` (`+` ignored), oldest first.
    pub fn stored_for(&self, number: &str) -> Vec<Sm> {
        let r = self.router.lock().unwrap_or_else(|e| e.into_inner());
        r.stored
            .get(&key(number))
            .map(|q| q.iter().map(|(sm, _)| sm.clone()).collect())
            .unwrap_or_default()
    }

    /// Binds `addr` and serves until the task is dropped; returns the bound address.
    pub async fn spawn(
        self,
        addr: &str,
    ) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let handle = tokio::spawn(async move {
            if let Err(e) = self.serve(listener).await {
                tracing::error!("SMSC stopped: {e}");
            }
        });
        Ok((local, handle))
    }

    /// Accepts connections forever.
    pub async fn serve(self, listener: TcpListener) -> anyhow::Result<()> {
        let mut conn_id = 0u64;
        loop {
            let (stream, peer) = listener.accept().await?;
            conn_id += 1;
            let me = self.clone();
            let id = conn_id;
            tokio::spawn(async move {
                match me.connection(stream, peer, id).await {
                    Ok(()) => tracing::info!("SMPP {peer} (#{id}) closed"),
                    Err(e) => tracing::warn!("SMPP {peer} (#{id}): {e}"),
                }
            });
        }
    }

    fn route(&self, sm: Sm, receipt: Option<ReceiptTo>) {
        let k = key(&sm.dest.addr);
        let mut r = self.router.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = r.receivers.get_mut(&k) {
            list.retain(|(_, tx)| !tx.is_closed());
            if let Some((_, tx)) = list.first() {
                match tx.send(Cmd::Deliver { sm, receipt }) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(Cmd::Deliver { sm, receipt })) => {
                        r.stored.entry(k).or_default().push_back((sm, receipt));
                        return;
                    }
                }
            }
        }
        tracing::info!("no receiver bound for {k}; message stored");
        r.stored.entry(k).or_default().push_back((sm, receipt));
    }

    /// Sends the receipt `stat` for a message to its sender, if its registered_delivery asks
    /// for that kind.
    fn receipt(&self, to: &ReceiptTo, stat: Stat) {
        let wanted = match stat {
            Stat::Enroute => to.wanted & REGISTERED_INTERMEDIATE != 0,
            Stat::Delivered => to.wanted & RECEIPT_MASK == RECEIPT_ALWAYS,
            Stat::Undeliverable => matches!(
                to.wanted & RECEIPT_MASK,
                RECEIPT_ALWAYS | RECEIPT_ON_FAILURE
            ),
        };
        if !wanted {
            return;
        }
        let text = String::from_utf8_lossy(&to.original.short_message)
            .chars()
            .take(20)
            .collect::<String>();
        let (word, state, esm_class, err) = match stat {
            Stat::Enroute => ("ENROUTE", 1, ESM_INTERMEDIATE, "000"),
            Stat::Delivered => ("DELIVRD", 2, esm::DELIVERY_RECEIPT, "000"),
            Stat::Undeliverable => ("UNDELIV", 5, esm::DELIVERY_RECEIPT, "001"),
        };
        let r = Receipt {
            id: to.message_id.clone(),
            submitted: 1,
            delivered: u32::from(stat == Stat::Delivered),
            submit_date: to.submitted.clone(),
            done_date: receipt_date(SystemTime::now()),
            stat: word.into(),
            err: err.into(),
            text,
        };
        let sm = Sm {
            source: to.original.dest.clone(),
            dest: to.original.source.clone(),
            esm_class,
            short_message: r.to_text().into_bytes(),
            tlvs: vec![
                Tlv {
                    tag: tag::RECEIPTED_MESSAGE_ID,
                    value: [to.message_id.as_bytes(), b"\0"].concat(),
                },
                Tlv {
                    tag: tag::MESSAGE_STATE,
                    value: vec![state],
                },
            ],
            ..Sm::default()
        };
        // To the connection that submitted, if it can receive; else by the sender's number.
        if let Some(conn) = &to.conn
            && conn
                .send(Cmd::Deliver {
                    sm: sm.clone(),
                    receipt: None,
                })
                .is_ok()
        {
            return;
        }
        self.route(sm, None);
    }

    async fn connection(&self, stream: TcpStream, peer: SocketAddr, id: u64) -> anyhow::Result<()> {
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let mut session = Session::smsc(self.opts.config.clone());
        let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
        let mut buf = vec![0u8; 64 * 1024];
        let mut next_tag = 0u64;
        let mut receipts: HashMap<u64, (Sm, Option<ReceiptTo>)> = HashMap::new();
        let mut my_key: Option<String> = None;
        let mut can_receive = false;
        let result: anyhow::Result<()> = async {
            loop {
                while let Some(bytes) = session.poll_transmit() {
                    wr.write_all(&bytes).await?;
                }
                let wake = session.poll_timeout();
                let sleep = async {
                    match wake {
                        Some(t) => {
                            tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = rd.read(&mut buf) => {
                        let n = r?;
                        if n == 0 {
                            return Ok(());
                        }
                        session.handle_input(&buf[..n], Instant::now())?;
                    }
                    Some(Cmd::Deliver { sm, receipt }) = rx.recv() => {
                        next_tag += 1;
                        receipts.insert(next_tag, (sm.clone(), receipt));
                        session.submit(next_tag, sm, Instant::now());
                    }
                    _ = sleep => session.handle_timeout(Instant::now()),
                }
                while let Some(e) = session.poll_event() {
                    match e {
                        Event::BindRequest {
                            sequence,
                            kind,
                            bind,
                        } => {
                            if self
                                .opts
                                .password
                                .as_ref()
                                .is_some_and(|p| *p != bind.password)
                            {
                                tracing::warn!(
                                    "SMPP {peer}: bind as {:?} refused (password)",
                                    bind.system_id
                                );
                                session.reject_bind(sequence, status::INVALID_PASSWORD);
                                continue;
                            }
                            session.accept_bind(sequence, &self.opts.system_id);
                            let k = key(if bind.address_range.is_empty() {
                                &bind.system_id
                            } else {
                                &bind.address_range
                            });
                            tracing::info!(
                                "SMPP {peer} (#{id}) bound as {:?} {kind:?} for {k}",
                                bind.system_id
                            );
                            if kind.receives() {
                                can_receive = true;
                                let mut r = self.router.lock().unwrap_or_else(|e| e.into_inner());
                                r.receivers
                                    .entry(k.clone())
                                    .or_default()
                                    .push((id, tx.clone()));
                                if let Some(q) = r.stored.remove(&k) {
                                    tracing::info!(
                                        "forwarding {} stored message(s) to {k}",
                                        q.len()
                                    );
                                    for (sm, receipt) in q {
                                        let _ = tx.send(Cmd::Deliver { sm, receipt });
                                    }
                                }
                            }
                            my_key = Some(k);
                        }
                        Event::Submit { sequence, sm } => {
                            let (n, message_id) = {
                                let mut r = self.router.lock().unwrap_or_else(|e| e.into_inner());
                                r.arrivals
                                    .entry(key(&sm.dest.addr))
                                    .or_default()
                                    .push(Instant::now());
                                r.submits += 1;
                                r.next_id += 1;
                                (r.submits, format!("{:08X}", r.next_id))
                            };
                            if self
                                .opts
                                .throttle_every
                                .is_some_and(|k| k > 0 && n % k == 0)
                            {
                                session.respond_submit(sequence, status::THROTTLED, "");
                                continue;
                            }
                            if sm.dest.addr.is_empty() {
                                session.respond_submit(sequence, status::INVALID_DEST, "");
                                continue;
                            }
                            session.respond_submit(sequence, status::OK, &message_id);
                            tracing::debug!(
                                "submit_sm {} → {} id {message_id} ({} octets)",
                                sm.source.display(),
                                sm.dest.display(),
                                sm.short_message.len()
                            );
                            let receipt = (sm.registered_delivery
                                & (RECEIPT_MASK | REGISTERED_INTERMEDIATE)
                                != 0)
                                .then(|| ReceiptTo {
                                    conn: can_receive.then(|| tx.clone()),
                                    message_id: message_id.clone(),
                                    submitted: receipt_date(SystemTime::now()),
                                    original: sm.clone(),
                                    wanted: sm.registered_delivery,
                                });
                            // Accepted and stored (or on its way to a bound phone): the
                            // intermediate notification, before any final receipt.
                            if let Some(to) = &receipt {
                                self.receipt(to, Stat::Enroute);
                            }
                            let mut deliver = sm;
                            deliver.registered_delivery = 0;
                            deliver.schedule_delivery_time.clear();
                            deliver.validity_period.clear();
                            self.route(deliver, receipt);
                        }
                        Event::Submitted { tag, .. } => {
                            if let Some((_, Some(to))) = receipts.remove(&tag) {
                                self.receipt(&to, Stat::Delivered);
                            }
                        }
                        Event::Failed { tag, status } => {
                            tracing::warn!(
                                "deliver_sm to {} refused: 0x{status:08X}",
                                my_key.as_deref().unwrap_or("?")
                            );
                            if let Some((_, Some(to))) = receipts.remove(&tag) {
                                self.receipt(&to, Stat::Undeliverable);
                            }
                        }
                        Event::TimedOut { tag } => {
                            if let Some((sm, receipt)) = receipts.remove(&tag) {
                                self.route(sm, receipt);
                            }
                        }
                        Event::Unbound | Event::LinkDead => return Ok(()),
                        Event::BadPdu { error } => tracing::warn!("SMPP {peer}: {error}"),
                        _ => {}
                    }
                }
            }
        }
        .await;
        // Unregister, and keep what this receiver did not acknowledge.
        {
            let mut r = self.router.lock().unwrap_or_else(|e| e.into_inner());
            for list in r.receivers.values_mut() {
                list.retain(|(cid, _)| *cid != id);
            }
        }
        rx.close();
        let mut leftovers: Vec<(Sm, Option<ReceiptTo>)> = receipts.into_values().collect();
        while let Ok(Cmd::Deliver { sm, receipt }) = rx.try_recv() {
            leftovers.push((sm, receipt));
        }
        for (sm, receipt) in leftovers {
            self.route(sm, receipt);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::smpp_client::{Client, ClientOptions};
    use std::time::Duration;
    use vshare_smpp::BindKind;

    async fn bind(addr: &str, kind: BindKind, number: &str) -> Client {
        let mut o = ClientOptions::new(addr, kind, number, "pw");
        o.address_range = number.trim_start_matches('+').into();
        Client::connect(&o).await.expect("bind")
    }

    async fn next(c: &mut Client, wait_ms: u64) -> Option<Sm> {
        c.recv(Some(Instant::now() + Duration::from_millis(wait_ms)))
            .await
            .expect("recv")
    }

    fn state(sm: &Sm) -> Option<u8> {
        sm.tlv(tag::MESSAGE_STATE).and_then(|v| v.first().copied())
    }

    /// registered_delivery 0x11: ENROUTE (esm_class 0x20, message_state 1) when the message
    /// is stored, DELIVRD (0x04, 2) when the phone took it; 0x01: only DELIVRD; 0x02 (failure
    /// only): nothing for a delivered message.
    #[tokio::test]
    async fn intermediate_and_final_receipts_as_asked() {
        let smsc = Smsc::new(SmscOptions::default());
        let (addr, _h) = smsc.clone().spawn("127.0.0.1:0").await.expect("smsc");
        let addr = addr.to_string();
        let mut sender = bind(&addr, BindKind::Transceiver, "+111").await;
        let mut messages = Vec::new();
        for (to, rd) in [("+222", 0x11), ("+333", 0x01), ("+444", 0x02)] {
            let mut sm = Sm::text("+111", to, b"hello");
            sm.registered_delivery = rd;
            messages.push(sm);
        }
        let ids: Vec<String> = sender
            .submit_many(messages)
            .await
            .expect("submit")
            .into_iter()
            .map(|r| r.expect("accepted"))
            .collect();
        let enroute = next(&mut sender, 1000).await.expect("intermediate receipt");
        assert_eq!(enroute.esm_class, ESM_INTERMEDIATE);
        assert_eq!(state(&enroute), Some(1));
        let r = Receipt::parse(&String::from_utf8_lossy(&enroute.short_message)).expect("text");
        assert_eq!(
            (r.id.as_str(), r.stat.as_str(), r.delivered),
            (ids[0].as_str(), "ENROUTE", 0)
        );
        assert_eq!(enroute.source.addr, "222");
        assert!(
            next(&mut sender, 300).await.is_none(),
            "one intermediate only"
        );
        let per = smsc.stored_per_destination();
        assert_eq!(
            (per.get("222"), per.get("333"), per.get("444")),
            (Some(&1), Some(&1), Some(&1))
        );
        assert_eq!(smsc.stored_for("+222")[0].short_message, b"hello");
        let mut phones = Vec::new();
        for n in ["+222", "+333", "+444"] {
            let mut p = bind(&addr, BindKind::Receiver, n).await;
            assert!(next(&mut p, 1000).await.is_some(), "{n} got its message");
            phones.push(p);
        }
        let mut finals = Vec::new();
        while let Some(sm) = next(&mut sender, 500).await {
            finals.push(sm);
        }
        assert_eq!(
            finals.len(),
            2,
            "DELIVRD for 0x11 and 0x01, nothing for 0x02"
        );
        for sm in &finals {
            assert_eq!(sm.esm_class, esm::DELIVERY_RECEIPT);
            assert_eq!(state(sm), Some(2));
            let r = Receipt::parse(&String::from_utf8_lossy(&sm.short_message)).expect("text");
            assert_eq!(r.stat, "DELIVRD");
            assert!(r.id == ids[0] || r.id == ids[1], "{r:?}");
        }
        assert!(smsc.stored_per_destination().is_empty());
    }

    #[test]
    fn receipt_dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_591_800); // 2026-11-25 07:30 UTC
        assert_eq!(receipt_date(t), "2611250730");
        assert_eq!(receipt_date(UNIX_EPOCH), "7001010000");
    }
}
