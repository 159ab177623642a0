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

#[derive(Debug, Clone)]
struct ReceiptTo {
    conn: Option<mpsc::UnboundedSender<Cmd>>,
    message_id: String,
    submitted: String,
    original: Sm,
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

    fn receipt(&self, to: ReceiptTo, delivered: bool) {
        let text = String::from_utf8_lossy(&to.original.short_message)
            .chars()
            .take(20)
            .collect::<String>();
        let r = Receipt {
            id: to.message_id.clone(),
            submitted: 1,
            delivered: u32::from(delivered),
            submit_date: to.submitted.clone(),
            done_date: receipt_date(SystemTime::now()),
            stat: if delivered { "DELIVRD" } else { "UNDELIV" }.into(),
            err: if delivered { "000" } else { "001" }.into(),
            text,
        };
        let sm = Sm {
            source: to.original.dest.clone(),
            dest: to.original.source.clone(),
            esm_class: esm::DELIVERY_RECEIPT,
            short_message: r.to_text().into_bytes(),
            tlvs: vec![
                Tlv {
                    tag: tag::RECEIPTED_MESSAGE_ID,
                    value: [to.message_id.as_bytes(), b"\0"].concat(),
                },
                Tlv {
                    tag: tag::MESSAGE_STATE,
                    value: vec![if delivered { 2 } else { 5 }],
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
                            let receipt = (sm.registered_delivery & 1 == 1).then(|| ReceiptTo {
                                conn: can_receive.then(|| tx.clone()),
                                message_id: message_id.clone(),
                                submitted: receipt_date(SystemTime::now()),
                                original: sm.clone(),
                            });
                            let mut deliver = sm;
                            deliver.registered_delivery = 0;
                            deliver.schedule_delivery_time.clear();
                            deliver.validity_period.clear();
                            self.route(deliver, receipt);
                        }
                        Event::Submitted { tag, .. } => {
                            if let Some((_, Some(to))) = receipts.remove(&tag) {
                                self.receipt(to, true);
                            }
                        }
                        Event::Failed { tag, status } => {
                            tracing::warn!(
                                "deliver_sm to {} refused: 0x{status:08X}",
                                my_key.as_deref().unwrap_or("?")
                            );
                            if let Some((_, Some(to))) = receipts.remove(&tag) {
                                self.receipt(to, false);
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

    #[test]
    fn receipt_dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_591_800); // 2026-11-25 07:30 UTC
        assert_eq!(receipt_date(t), "2611250730");
        assert_eq!(receipt_date(UNIX_EPOCH), "7001010000");
    }
}
