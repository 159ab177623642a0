//! The live server's side of the live hand-off (docs/live-handoff.md): accepts video servers'
//! connections on `[live] handoff_listen`, authenticates them with the shared secret, and
//! applies what they send to this process's [`LiveServer`]. Stored segments are read from the
//! recording's storage by the HTTP layer, as in one process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};
use vshare_handoff::{Event, Limits, Session};

use crate::conn_limit::ConnLimiter;
use crate::live::{LiveMessage, LiveServer};
use crate::live_push::flush;
use crate::shutdown::Stopping;

/// How long an ended stream stays for players still on it (as in one process).
const ENDED_KEPT: Duration = Duration::from_secs(60);

/// The listener's settings.
pub struct Listen {
    pub live: LiveServer,
    pub secret: Arc<Vec<u8>>,
    pub limits: Limits,
    pub keepalive: Duration,
    pub handshake: Duration,
    pub orphan: Duration,
    pub connections: ConnLimiter,
    /// Stream → the connection that fed it last.
    fed_by: Arc<Mutex<HashMap<String, u64>>>,
}

impl Listen {
    pub fn new(
        live: LiveServer,
        secret: Vec<u8>,
        config: &crate::config::LiveConfig,
    ) -> Arc<Listen> {
        Arc::new(Listen {
            live,
            secret: Arc::new(secret),
            limits: config.handoff_limits(),
            keepalive: Duration::from_millis(config.handoff_keepalive_ms.max(50)),
            handshake: Duration::from_millis(config.handoff_handshake_timeout_ms.max(100)),
            orphan: Duration::from_secs(config.handoff_orphan_s),
            connections: ConnLimiter::new(
                config.handoff_max_connections.max(1),
                config.handoff_max_connections.max(1),
            ),
            fed_by: Arc::default(),
        })
    }

    /// Accepts connections until the server stops.
    pub async fn run(self: Arc<Self>, listener: TcpListener, stopping: Stopping) {
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopping.wait() => {
                    info!("live hand-off: no longer accepting connections (stopping)");
                    return;
                }
            };
            let (sock, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!("live hand-off accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let guard = match self.connections.admit(peer.ip()) {
                Ok(g) => g,
                Err(e) => {
                    warn!(%peer, "live hand-off refused: {e}");
                    continue;
                }
            };
            next_id += 1;
            let id = next_id;
            let me = self.clone();
            tokio::spawn(async move {
                let _guard = guard;
                match me.serve(sock, peer, id).await {
                    Ok(()) => info!(%peer, "live hand-off closed by the video server"),
                    Err(e) => warn!(%peer, "live hand-off: {e:#}"),
                }
                me.orphan_later(id);
            });
        }
    }

    async fn serve(&self, mut sock: TcpStream, peer: SocketAddr, id: u64) -> anyhow::Result<()> {
        sock.set_nodelay(true)?;
        let mut session = Session::server(&self.secret, rand::random(), self.limits);
        let mut buf = vec![0u8; 64 << 10];
        let handshake = async {
            while !session.is_ready() {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    anyhow::bail!("closed in the handshake");
                }
                let result = session.handle_input(&buf[..n]);
                // A refusal is sent before the error closes the connection.
                flush(&mut sock, &mut session, self.handshake).await?;
                if let Err(e) = result {
                    metrics::counter!("vshare_live_handoff_refused_total").increment(1);
                    anyhow::bail!("refused: {e}");
                }
            }
            Ok(())
        };
        tokio::time::timeout(self.handshake, handshake)
            .await
            .map_err(|_| anyhow::anyhow!("handshake timed out"))??;
        info!(%peer, "live hand-off: a video server connected");
        let mut ping = tokio::time::interval(self.keepalive);
        let silent = self.keepalive * 3;
        let mut heard = tokio::time::Instant::now();
        let mut token = 0u64;
        loop {
            while let Some(event) = session.poll_event() {
                if let Event::Message(msg) = event {
                    self.apply(msg, id);
                }
            }
            flush(&mut sock, &mut session, silent).await?;
            tokio::select! {
                read = sock.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        session.finish()?;
                        return Ok(());
                    }
                    heard = tokio::time::Instant::now();
                    session.handle_input(&buf[..n])?;
                }
                _ = ping.tick() => {
                    if heard.elapsed() > silent {
                        anyhow::bail!("silent for {} ms", silent.as_millis());
                    }
                    token += 1;
                    session.ping(token)?;
                }
            }
        }
    }

    fn apply(&self, msg: LiveMessage, conn: u64) {
        let stream = msg.stream().to_string();
        let ended = matches!(msg, LiveMessage::End { .. });
        self.live.apply(msg);
        self.fed_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.clone(), conn);
        if ended {
            let live = self.live.clone();
            let fed_by = self.fed_by.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ENDED_KEPT).await;
                live.forget(&stream);
                fed_by
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&stream);
            });
        }
    }

    /// After `orphan`, forgets the streams connection `conn` fed last and no other fed since.
    fn orphan_later(self: Arc<Self>, conn: u64) {
        tokio::spawn(async move {
            tokio::time::sleep(self.orphan).await;
            let gone: Vec<String> = {
                let mut fed = self.fed_by.lock().unwrap_or_else(|e| e.into_inner());
                let gone = fed
                    .iter()
                    .filter(|(_, c)| **c == conn)
                    .map(|(s, _)| s.clone())
                    .collect::<Vec<_>>();
                for s in &gone {
                    fed.remove(s);
                }
                gone
            };
            for s in &gone {
                self.live.forget(s);
            }
            if !gone.is_empty() {
                info!(
                    streams = gone.len(),
                    "live hand-off: forgot streams no video server feeds"
                );
            }
        });
    }
}
