//! The video server's side of the live hand-off (docs/live-handoff.md): every [`LiveMessage`]
//! is applied to this process's own [`LiveServer`] (the window a resync is made from) and
//! queued for each live server in `[live] handoff_push`, one task per live server.
//!
//! A live server never slows a session: its queue is bounded in bytes, and a message that does
//! not fit drops the queue, which the live server then gets as a resync (the snapshot of every
//! window) instead. Every connect starts with a resync, so a live server that restarted has
//! every stream again before the next part.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{info, warn};
use vshare_handoff::{HandoffError, Limits, Session};

use crate::config::Config;
use crate::live::{LiveMessage, LiveServer};

/// What one live server's task is to send next.
#[derive(Default)]
struct Queue {
    messages: VecDeque<LiveMessage>,
    bytes: usize,
    /// The queue lost messages (or the link is new): send a snapshot first.
    resync: bool,
    /// A handshake succeeded and the link is up; while it is down nothing is queued.
    connected: bool,
    /// A batch was taken and is being written.
    sending: bool,
}

/// Enqueueing as a sans-IO rule: a message is queued only on an up link and within the byte
/// budget; otherwise the queue is dropped and a resync is due.
fn enqueue(q: &mut Queue, msg: &LiveMessage, max_bytes: usize) {
    if !q.connected {
        q.resync = true;
        return;
    }
    let w = msg.weight();
    if q.resync || q.bytes + w > max_bytes {
        q.messages.clear();
        q.bytes = 0;
        q.resync = true;
        return;
    }
    q.bytes += w;
    q.messages.push_back(msg.clone());
}

struct Target {
    url: String,
    addr: String,
    queue: Mutex<Queue>,
    wake: Notify,
}

/// The fan-out to the live servers. See the module docs.
pub struct LivePush {
    live: LiveServer,
    targets: Vec<Arc<Target>>,
    /// Held while a message is applied and queued, and while a snapshot is taken: a snapshot
    /// and the messages queued after it never overlap or leave a gap.
    order: Mutex<()>,
    max_queue: usize,
    /// The video server is stopping: each link closes once it has written its queue.
    closing: std::sync::atomic::AtomicBool,
}

/// `tcp://host:port` → `host:port`.
pub fn push_addr(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("tcp://")
        .with_context(|| format!("live server {url:?}: use tcp://HOST:PORT"))?;
    let rest = rest.trim_end_matches('/');
    anyhow::ensure!(
        rest.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
        "live server {url:?}: use tcp://HOST:PORT"
    );
    Ok(rest.to_string())
}

impl LivePush {
    /// Starts the application task and one task per live server; returns the sender the
    /// video server's sessions and recorders use, and what flushes it at a stop.
    pub fn start(
        live: LiveServer,
        config: &Config,
        secret: Vec<u8>,
    ) -> anyhow::Result<(mpsc::UnboundedSender<LiveMessage>, Flusher)> {
        let targets = config
            .live
            .handoff_push
            .iter()
            .map(|url| {
                Ok(Arc::new(Target {
                    url: url.clone(),
                    addr: push_addr(url)?,
                    queue: Mutex::default(),
                    wake: Notify::new(),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let push = Arc::new(LivePush {
            live,
            targets,
            order: Mutex::new(()),
            max_queue: config.live.handoff_queue_bytes.max(1 << 20),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        let link = Link {
            secret: Arc::new(secret),
            limits: config.live.handoff_limits(),
            keepalive: Duration::from_millis(config.live.handoff_keepalive_ms.max(50)),
            handshake: Duration::from_millis(config.live.handoff_handshake_timeout_ms.max(100)),
            backoff_max: Duration::from_millis(config.live.handoff_reconnect_max_ms.max(100)),
        };
        for t in &push.targets {
            tokio::spawn(push.clone().run(t.clone(), link.clone()));
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<LiveMessage>();
        let (flush_tx, mut flush_rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
        let flusher = Flusher {
            push: push.clone(),
            requests: flush_tx,
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(msg) => push.publish(msg),
                        None => return,
                    },
                    Some(done) = flush_rx.recv() => {
                        // Everything sent before the request is in the channel by now.
                        while let Ok(msg) = rx.try_recv() {
                            push.publish(msg);
                        }
                        let _ = done.send(());
                    }
                }
            }
        });
        Ok((tx, flusher))
    }

    /// Whether live server `t`, if connected, has been sent all that is queued for it.
    fn drained(t: &Target) -> bool {
        let q = t.queue.lock().unwrap_or_else(|e| e.into_inner());
        !q.connected || (q.messages.is_empty() && !q.resync && !q.sending)
    }

    fn publish(&self, msg: LiveMessage) {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        for t in &self.targets {
            let mut q = t.queue.lock().unwrap_or_else(|e| e.into_inner());
            let was_due = q.resync;
            enqueue(&mut q, &msg, self.max_queue);
            if q.connected && q.resync && !was_due {
                metrics::counter!("vshare_live_handoff_overflows_total", "live_server" => t.url.clone())
                    .increment(1);
            }
            drop(q);
            t.wake.notify_one();
        }
        self.live.apply(msg);
    }

    /// What `t` sends next: a snapshot when one is due (the queue restarts behind it), else
    /// what is queued.
    fn next_batch(&self, t: &Target) -> (Vec<LiveMessage>, bool) {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let mut q = t.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.bytes = 0;
        q.sending = true;
        if q.resync {
            q.resync = false;
            q.messages.clear();
            drop(q);
            return (self.live.snapshot(), true);
        }
        (q.messages.drain(..).collect(), false)
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The batch `next_batch` gave is written.
    fn batch_sent(&self, t: &Target) {
        t.queue.lock().unwrap_or_else(|e| e.into_inner()).sending = false;
    }

    fn sent_bytes(&self, t: &Target, n: usize) {
        if n > 0 {
            metrics::counter!("vshare_live_handoff_bytes_total", "live_server" => t.url.clone())
                .increment(n as u64);
        }
    }

    fn set_connected(&self, t: &Target, up: bool) {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let mut q = t.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.connected = up;
        q.sending = false;
        q.resync = true;
        q.messages.clear();
        q.bytes = 0;
    }

    /// Connects, sends, reconnects with backoff; forever.
    async fn run(self: Arc<Self>, t: Arc<Target>, link: Link) {
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            match link.connect(&t.addr).await {
                Ok((sock, session)) => {
                    backoff = Duration::from_millis(100);
                    failures = 0;
                    info!(live_server = %t.url, "live hand-off connected");
                    self.set_connected(&t, true);
                    let why = self.stream(&t, &link, sock, session).await;
                    self.set_connected(&t, false);
                    if self.is_closing() {
                        info!(live_server = %t.url, "live hand-off closed: {why:#}");
                        return;
                    }
                    warn!(live_server = %t.url, "live hand-off lost: {why:#}");
                }
                Err(e) => {
                    failures += 1;
                    // The first failure and then every 32nd: a live server that is down for
                    // long does not fill the log.
                    if failures == 1 || failures.is_multiple_of(32) {
                        warn!(live_server = %t.url, failures, "live hand-off: {e:#}");
                    }
                }
            }
            if self.is_closing() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(link.backoff_max);
        }
    }

    /// Sends batches until the link fails; returns why.
    async fn stream(
        &self,
        t: &Target,
        link: &Link,
        mut sock: TcpStream,
        mut session: Session,
    ) -> anyhow::Error {
        let mut buf = vec![0u8; 4096];
        let mut ping = tokio::time::interval(link.keepalive);
        let mut token = 0u64;
        let mut heard = tokio::time::Instant::now();
        let silent = link.keepalive * 3;
        loop {
            let (batch, resync) = self.next_batch(t);
            if resync {
                metrics::counter!("vshare_live_handoff_resyncs_total", "live_server" => t.url.clone())
                    .increment(1);
                let streams: std::collections::HashSet<&str> =
                    batch.iter().map(LiveMessage::stream).collect();
                info!(live_server = %t.url, streams = streams.len(), messages = batch.len(), "live hand-off: resync");
            }
            for msg in &batch {
                if let Err(e) = session.send(msg) {
                    // Over a limit (a frame too large): that stream's message cannot cross.
                    warn!(live_server = %t.url, stream = msg.stream(), "live hand-off: {e}");
                }
            }
            let sent = session.pending_output();
            if let Err(e) = flush(&mut sock, &mut session, silent).await {
                return e;
            }
            self.batch_sent(t);
            self.sent_bytes(t, sent);
            if self.is_closing() && Self::drained(t) {
                return close(&mut sock, silent).await;
            }
            tokio::select! {
                _ = t.wake.notified() => {}
                _ = ping.tick() => {
                    if heard.elapsed() > silent {
                        return anyhow::anyhow!("no answer for {} ms", silent.as_millis());
                    }
                    token += 1;
                    let _ = session.ping(token);
                }
                read = sock.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return anyhow::anyhow!("closed by the live server"),
                        Ok(n) => n,
                        Err(e) => return e.into(),
                    };
                    if let Err(e) = session.handle_input(&buf[..n]) {
                        return e.into();
                    }
                    heard = tokio::time::Instant::now();
                    while session.poll_event().is_some() {}
                }
            }
        }
    }
}

/// Flushes the hand-off when the video server stops.
pub struct Flusher {
    push: Arc<LivePush>,
    requests: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl Flusher {
    /// Returns once every message sent before the call has been written to every live server
    /// connected now (one that is down gets the state in its resync when it connects, if this
    /// process still runs); the caller bounds the wait. Returns how many live servers are
    /// connected.
    pub async fn flush(&self) -> usize {
        let (done_tx, done) = oneshot::channel();
        if self.requests.send(done_tx).is_ok() {
            let _ = done.await;
        }
        let connected = |push: &LivePush| {
            push.targets
                .iter()
                .filter(|t| t.queue.lock().unwrap_or_else(|e| e.into_inner()).connected)
                .count()
        };
        let links = connected(&self.push);
        // Each link writes what is queued, then closes (FIN, and the live server's FIN read:
        // nothing written is lost to a reset). Poll until all are closed.
        self.push
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for t in &self.push.targets {
            t.wake.notify_one();
        }
        while connected(&self.push) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        links
    }
}

/// How to reach a live server.
#[derive(Clone)]
struct Link {
    secret: Arc<Vec<u8>>,
    limits: Limits,
    keepalive: Duration,
    handshake: Duration,
    backoff_max: Duration,
}

impl Link {
    /// TCP connect and the handshake, within the handshake timeout.
    async fn connect(&self, addr: &str) -> anyhow::Result<(TcpStream, Session)> {
        let work = async {
            let mut sock = TcpStream::connect(addr)
                .await
                .with_context(|| format!("connect {addr}"))?;
            sock.set_nodelay(true)?;
            let mut session = Session::client(&self.secret, rand::random(), self.limits);
            let mut buf = [0u8; 512];
            loop {
                flush(&mut sock, &mut session, self.handshake).await?;
                if session.is_ready() {
                    while session.poll_event().is_some() {}
                    return Ok((sock, session));
                }
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    anyhow::bail!("the live server closed the connection in the handshake");
                }
                match session.handle_input(&buf[..n]) {
                    Ok(()) => {}
                    Err(e @ HandoffError::WrongSecret { .. })
                    | Err(e @ HandoffError::Refused(_)) => {
                        anyhow::bail!("refused: {e} (is [live] handoff_secret the same on both?)")
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        tokio::time::timeout(self.handshake, work)
            .await
            .map_err(|_| anyhow::anyhow!("handshake with {addr} timed out"))?
    }
}

/// Closes a link whose queue is written: our FIN, then the live server's (read within
/// `wait`), so the kernel never resets the connection over bytes still unread.
async fn close(sock: &mut TcpStream, wait: Duration) -> anyhow::Error {
    let _ = sock.shutdown().await;
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(wait, async {
        while let Ok(n) = sock.read(&mut buf).await
            && n > 0
        {}
    })
    .await;
    anyhow::anyhow!("the video server is stopping")
}

/// Writes what the session has for the peer; a write that makes no progress for `stall` fails.
pub(crate) async fn flush(
    sock: &mut TcpStream,
    session: &mut Session,
    stall: Duration,
) -> anyhow::Result<()> {
    while let Some(bytes) = session.poll_transmit() {
        tokio::time::timeout(stall, sock.write_all(&bytes))
            .await
            .map_err(|_| anyhow::anyhow!("write stalled for {} ms", stall.as_millis()))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc as StdArc;

    use super::*;

    fn part(n: usize) -> LiveMessage {
        LiveMessage::Part {
            stream: "v".into(),
            msn: 0,
            index: 0,
            bytes: vec![0; n].into(),
            playlist: StdArc::from(""),
        }
    }

    #[test]
    fn a_full_or_down_queue_turns_into_a_resync() {
        let mut q = Queue::default();
        enqueue(&mut q, &part(10), 1000);
        assert!(q.messages.is_empty() && q.resync, "down: nothing queued");
        q.connected = true;
        q.resync = false;
        enqueue(&mut q, &part(500), 1000);
        assert_eq!(q.messages.len(), 1);
        enqueue(&mut q, &part(500), 1000);
        assert!(
            q.messages.is_empty() && q.resync && q.bytes == 0,
            "over budget: dropped"
        );
        enqueue(&mut q, &part(10), 1000);
        assert!(
            q.messages.is_empty(),
            "nothing queues behind a due resync: the snapshot covers it"
        );
    }

    #[test]
    fn push_urls() {
        assert_eq!(push_addr("tcp://10.0.0.2:7070").unwrap(), "10.0.0.2:7070");
        assert_eq!(push_addr("tcp://live-1:7070/").unwrap(), "live-1:7070");
        assert!(push_addr("http://live-1:7070").is_err());
        assert!(push_addr("tcp://live-1").is_err());
        assert!(push_addr("tcp://:80").is_err());
    }
}
