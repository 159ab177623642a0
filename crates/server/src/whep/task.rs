//! The task that owns the UDP socket and every WebRTC session (WHEP viewers, WHIP publishers).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use vshare_webrtc::{Ingest, IngestEvent, Viewer};

use super::send::Sender;
use super::{Command, Whep};

pub(super) struct Session {
    stream: Arc<str>,
    viewer: Box<Viewer>,
    started: Instant,
    errors_logged: bool,
}

/// A WHIP publisher in the task.
pub(super) struct Publishing {
    video: Arc<str>,
    ingest: Box<Ingest>,
    sink: mpsc::Sender<IngestEvent>,
    started: Instant,
    /// Events the forwarder had no room for.
    dropped: u64,
}

/// The task that owns the socket and every viewer.
pub(super) struct Task {
    pub(super) whep: std::sync::Weak<Whep>,
    /// The shared socket.
    pub(super) out: Sender,
    /// The announced address: the destination str0m matches incoming datagrams against.
    pub(super) local: SocketAddr,
    pub(super) viewers: HashMap<String, Session>,
    pub(super) ingests: HashMap<String, Publishing>,
    /// Remote address → the session that took a datagram from it (found by ICE credentials
    /// once, then looked up instead of asking every session).
    pub(super) peers: HashMap<SocketAddr, String>,
    pub(super) connect_timeout: Duration,
    /// When [`Self::reap`] last looked.
    pub(super) reaped: Instant,
}

/// How often the task looks for sessions to drop.
const REAP_INTERVAL: Duration = Duration::from_millis(250);

impl Task {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let next = self
                .viewers
                .values()
                .map(|s| s.viewer.peer().timeout())
                .chain(self.ingests.values().map(|p| p.ingest.peer().timeout()))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
                .max(Instant::now());
            tokio::select! {
                r = self.out.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.datagram(from, &buf[..n]).await,
                    Err(e) => debug!("WebRTC socket: {e}"),
                },
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                _ = tokio::time::sleep_until(next.into()) => self.tick().await,
            }
            self.reap();
        }
    }

    async fn datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        // Media, RTCP and DTLS from an address a session took before go to that session; STUN
        // (first byte 0 or 1, RFC 7983) is matched by its credentials, so that a new session
        // from a reused address is found.
        let known = self
            .peers
            .get(&from)
            .filter(|_| data.first().is_some_and(|b| *b > 1))
            .cloned();
        let viewer = match &known {
            Some(id) if self.viewers.contains_key(id) => Some(id.clone()),
            Some(_) => None,
            None => self
                .viewers
                .iter()
                .find(|(_, s)| s.viewer.peer().accepts(now, from, self.local, data))
                .map(|(id, _)| id.clone()),
        };
        if let Some(id) = viewer {
            self.peers.entry(from).or_insert_with(|| id.clone());
            if let Some(s) = self.viewers.get_mut(&id) {
                s.viewer.receive(now, from, self.local, data);
                self.out.flush(s.viewer.peer_mut()).await;
                if s.viewer.take_keyframe_request() {
                    let stream = s.stream.clone();
                    self.keyframe_for(&stream, now).await;
                }
            }
            return;
        }
        let publisher = match known {
            Some(id) if self.ingests.contains_key(&id) => Some(id),
            _ => self
                .ingests
                .iter()
                .find(|(_, p)| p.ingest.peer().accepts(now, from, self.local, data))
                .map(|(id, _)| id.clone()),
        };
        if let Some(id) = &publisher {
            self.peers.entry(from).or_insert_with(|| id.clone());
        }
        if let Some(p) = publisher.and_then(|id| self.ingests.get_mut(&id)) {
            p.ingest.receive(now, from, self.local, data);
            p.pump(&mut self.out, now).await;
        }
    }

    /// Asks the source of `video` for a keyframe: its WHIP publisher, or the upload-protocol
    /// sender registered for it.
    async fn keyframe_for(&mut self, video: &str, now: Instant) {
        for p in self.ingests.values_mut().filter(|p| &*p.video == video) {
            p.ingest.request_keyframe(now);
            p.pump(&mut self.out, now).await;
        }
        if let Some(whep) = self.whep.upgrade() {
            whep.request_keyframe(video, now);
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add {
                id,
                stream,
                ip,
                viewer,
            } => {
                // Deleted between its answer and now: never started.
                let known = self.whep.upgrade().is_some_and(|w| {
                    w.sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains_key(&id)
                });
                if !known {
                    return;
                }
                info!(video = %stream, session = %id, %ip, "WHEP session");
                self.viewers.insert(
                    id,
                    Session {
                        stream,
                        viewer,
                        started: Instant::now(),
                        errors_logged: false,
                    },
                );
            }
            Command::Publish {
                id,
                video,
                ingest,
                sink,
            } => {
                self.ingests.insert(
                    id,
                    Publishing {
                        video,
                        ingest,
                        sink,
                        started: Instant::now(),
                        dropped: 0,
                    },
                );
            }
            Command::Unpublish(id) => {
                if let Some(mut p) = self.ingests.remove(&id) {
                    p.ingest.peer_mut().close();
                    p.pump(&mut self.out, Instant::now()).await;
                    info!(video = %p.video, session = %id, stats = ?p.ingest.stats(), "WHIP session deleted");
                }
                if let Some(w) = self.whep.upgrade() {
                    w.forget_publisher(&id);
                }
                self.prune_peers();
            }
            Command::Remove(id) => {
                if let Some(mut s) = self.viewers.remove(&id) {
                    s.viewer.peer_mut().close();
                    self.out.flush(s.viewer.peer_mut()).await;
                    info!(video = %s.stream, session = %id, stats = ?s.viewer.stats(), "WHEP session deleted");
                }
                self.prune_peers();
            }
            Command::Sample(stream, sample) => {
                let now = Instant::now();
                for s in self.viewers.values_mut().filter(|s| s.stream == stream) {
                    s.viewer.write(&sample, now);
                    if let Some(e) = s.viewer.peer_mut().take_error()
                        && !s.errors_logged
                    {
                        s.errors_logged = true;
                        warn!(video = %s.stream, "WebRTC: {e}");
                    }
                    self.out.flush(s.viewer.peer_mut()).await;
                }
            }
            Command::StreamEnded(stream) => {
                for s in self.viewers.values_mut().filter(|s| s.stream == stream) {
                    s.viewer.peer_mut().close();
                }
            }
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let mut wanted = Vec::new();
        for s in self.viewers.values_mut() {
            if s.viewer.peer().timeout() <= now {
                s.viewer.tick(now);
                self.out.flush(s.viewer.peer_mut()).await;
                if s.viewer.take_keyframe_request() {
                    wanted.push(s.stream.clone());
                }
            }
        }
        for p in self.ingests.values_mut() {
            if p.ingest.peer().timeout() <= now {
                p.ingest.tick(now);
                p.pump(&mut self.out, now).await;
            }
        }
        for stream in wanted {
            self.keyframe_for(&stream, now).await;
        }
    }

    /// Drops sessions whose player left or never connected (looked for every 250 ms, not
    /// on every datagram).
    fn reap(&mut self) {
        let now = Instant::now();
        if now.saturating_duration_since(self.reaped) < REAP_INTERVAL {
            return;
        }
        self.reaped = now;
        let timeout = self.connect_timeout;
        let gone: Vec<String> = self
            .viewers
            .iter()
            .filter(|(_, s)| {
                !s.viewer.peer().is_alive()
                    || (!s.viewer.peer().is_connected() && s.started.elapsed() > timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(s) = self.viewers.remove(&id) {
                info!(video = %s.stream, session = %id, stats = ?s.viewer.stats(), "WHEP session ended");
            }
            if let Some(w) = self.whep.upgrade() {
                w.forget(&id);
            }
        }
        // Publishers gone, never connected, or whose video session has ended.
        let gone: Vec<String> = self
            .ingests
            .iter()
            .filter(|(_, p)| {
                !p.ingest.peer().is_alive()
                    || p.sink.is_closed()
                    || (!p.ingest.peer().is_connected() && p.started.elapsed() > timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(mut p) = self.ingests.remove(&id) {
                p.ingest.peer_mut().close();
                info!(video = %p.video, session = %id, stats = ?p.ingest.stats(), dropped = p.dropped, "WHIP session ended");
            }
            if let Some(w) = self.whep.upgrade() {
                w.forget_publisher(&id);
            }
        }
        self.prune_peers();
    }

    /// Forgets the addresses of sessions that are gone.
    fn prune_peers(&mut self) {
        if self.peers.len() > self.viewers.len() + self.ingests.len() {
            let (viewers, ingests) = (&self.viewers, &self.ingests);
            self.peers
                .retain(|_, id| viewers.contains_key(id) || ingests.contains_key(id));
        }
    }
}

impl Publishing {
    /// Sends what the session has queued and hands its events to the forwarder; an event
    /// without room makes video wait for the next keyframe (asked for at once).
    async fn pump(&mut self, out: &mut Sender, now: Instant) {
        out.flush(self.ingest.peer_mut()).await;
        if let Some(e) = self.ingest.peer_mut().take_error() {
            debug!(video = %self.video, "WHIP: {e}");
        }
        let mut lost = false;
        while let Some(event) = self.ingest.poll_event() {
            match self.sink.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.dropped += 1;
                    lost = true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        if lost {
            if self.dropped.is_power_of_two() {
                warn!(video = %self.video, dropped = self.dropped, "WHIP: the video session is behind; events dropped");
            }
            self.ingest.resync(now);
            out.flush(self.ingest.peer_mut()).await;
        }
    }
}
