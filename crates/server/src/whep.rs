//! WebRTC: the adapter around [`vshare_webrtc`]'s sans-IO viewer, feed and ingest.
//!
//! One task owns the UDP socket (one port for every session, docs/webrtc.md), every WHEP
//! [`Viewer`] and every WHIP [`Ingest`]; the HTTP handlers hand it new sessions and deletions,
//! and each live stream's [`StreamFeed`] (in the video session's adapter) hands it the stream's
//! samples. Datagrams go to the session whose ICE credentials or nominated address they match
//! (str0m's `accepts`). A viewer's keyframe request reaches the stream's WHIP publisher, when it
//! has one; what a publisher receives goes to its forwarder ([`crate::whip`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_transcode::AacToOpus;
use vshare_webrtc::{
    Feed, FeedNote, Ingest, IngestEvent, OfferError, Sample, Viewer, ViewerConfig,
};

use crate::config::WebrtcConfig;
use crate::db::random_id;

/// Why a WHEP offer got no session.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error("no live stream {0}")]
    NoStream(String),
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("the server is at its limit of {0} WebRTC sessions")]
    TooMany(usize),
    #[error("this address is at its limit of {0} WebRTC sessions")]
    TooManyFromIp(usize),
    #[error("the WebRTC task has stopped")]
    Stopped,
}

/// What a live stream offers its WebRTC viewers.
struct StreamEntry {
    /// Sessions of this stream (the feed does no work without them).
    viewers: AtomicUsize,
    /// `profile-level-id` of the source's H.264.
    profile_level_id: AtomicUsize,
}

enum Command {
    Add {
        id: String,
        stream: Arc<str>,
        ip: IpAddr,
        viewer: Box<Viewer>,
    },
    Remove(String),
    Publish {
        id: String,
        video: Arc<str>,
        ingest: Box<Ingest>,
        sink: mpsc::Sender<IngestEvent>,
    },
    Unpublish(String),
    Sample(Arc<str>, Sample),
    StreamEnded(Arc<str>),
}

/// The WHEP sessions of this server.
pub struct Whep {
    config: WebrtcConfig,
    /// Where players send (the host candidate).
    candidate: SocketAddr,
    tx: mpsc::Sender<Command>,
    streams: Mutex<HashMap<String, Arc<StreamEntry>>>,
    /// Session id → (stream, client address), for the limits and DELETE.
    sessions: Mutex<HashMap<String, (Arc<str>, IpAddr)>>,
    /// WHIP session id → (video, publisher address).
    publishers: Mutex<HashMap<String, (Arc<str>, IpAddr)>>,
}

impl Whep {
    /// Binds the UDP port and starts the task. `listen_ip` is the HTTP listen address, the
    /// default announced address.
    pub async fn start(config: &WebrtcConfig, listen_ip: IpAddr) -> anyhow::Result<Arc<Whep>> {
        let ip = config.public_ip.unwrap_or(if listen_ip.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            listen_ip
        });
        // Without a public address the socket is bound to the announced one, so that answers
        // leave from the address the peer's ICE checks went to (a peer checks that they do);
        // behind NAT it takes every address (the public one is not local).
        let bind_ip = match config.public_ip {
            Some(_) => IpAddr::from([0, 0, 0, 0]),
            None => ip,
        };
        let socket = UdpSocket::bind(SocketAddr::new(bind_ip, config.udp_port))
            .await
            .map_err(|e| anyhow::anyhow!("[webrtc] udp_port {}: {e}", config.udp_port))?;
        let port = socket.local_addr()?.port();
        let candidate = SocketAddr::new(ip, port);
        // Samples of every stream pass here: room for a few seconds of a few streams; when full,
        // samples are dropped (counted) rather than holding up the video session.
        let (tx, rx) = mpsc::channel(8192);
        let whep = Arc::new(Whep {
            config: config.clone(),
            candidate,
            tx,
            streams: Mutex::default(),
            sessions: Mutex::default(),
            publishers: Mutex::default(),
        });
        let task = Task {
            whep: Arc::downgrade(&whep),
            socket,
            local: candidate,
            viewers: HashMap::new(),
            ingests: HashMap::new(),
            peers: HashMap::new(),
            reaped: Instant::now(),
            connect_timeout: Duration::from_secs(config.connect_timeout_s.max(1)),
        };
        tokio::spawn(task.run(rx));
        info!(%candidate, "WebRTC (WHEP, WHIP) on UDP");
        Ok(whep)
    }

    /// The UDP address announced to players.
    pub fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    /// Answers a player's offer for live stream `stream`: the session id and the SDP answer.
    pub async fn offer(
        &self,
        stream: &str,
        offer: &str,
        ip: IpAddr,
    ) -> Result<(String, String), WhepError> {
        let entry = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .cloned()
            .ok_or_else(|| WhepError::NoStream(stream.to_string()))?;
        let id = random_id(16);
        let stream: Arc<str> = stream.into();
        // The limits first and the place taken: answering costs a DTLS certificate.
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if sessions.len() >= self.config.max_sessions {
                return Err(WhepError::TooMany(self.config.max_sessions));
            }
            if sessions.values().filter(|(_, i)| *i == ip).count()
                >= self.config.max_sessions_per_ip
            {
                return Err(WhepError::TooManyFromIp(self.config.max_sessions_per_ip));
            }
            sessions.insert(id.clone(), (stream.clone(), ip));
        }
        entry.viewers.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("vshare_whep_sessions").increment(1.0);
        let config = ViewerConfig {
            candidate: self.candidate,
            h264_profile_level_id: entry.profile_level_id.load(Ordering::Relaxed) as u32,
        };
        let (viewer, answer) = match Viewer::answer(offer, &config, Instant::now()) {
            Ok(answered) => answered,
            Err(e) => {
                self.forget(&id);
                return Err(e.into());
            }
        };
        let add = Command::Add {
            id: id.clone(),
            stream,
            ip,
            viewer: Box::new(viewer),
        };
        if self.tx.send(add).await.is_err() {
            self.forget(&id);
            return Err(WhepError::Stopped);
        }
        Ok((id, answer))
    }

    /// Ends session `session` of `stream`; false if there is none.
    pub async fn delete(&self, stream: &str, session: &str) -> bool {
        let known = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .is_some_and(|(s, _)| &**s == stream);
        if known {
            self.forget(session);
            let _ = self.tx.send(Command::Remove(session.to_string())).await;
        }
        known
    }

    /// Answers a WHIP publisher's offer (its stream key already checked): the session, not yet
    /// running, and the SDP answer. Publishers count in the same limits as viewers.
    /// `keyframe_interval`: the live segment target (WebRTC encoders send keyframes when asked).
    /// The place in the limits is taken here (the session id, returned first); give it back
    /// with [`Self::forget_publisher`] if the publish does not start.
    pub fn answer_publisher(
        &self,
        offer: &str,
        ip: IpAddr,
        keyframe_interval: Duration,
    ) -> Result<(String, Ingest, String), WhepError> {
        let id = random_id(16);
        {
            let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let mut publishers = self.publishers.lock().unwrap_or_else(|e| e.into_inner());
            if sessions.len() + publishers.len() >= self.config.max_sessions {
                return Err(WhepError::TooMany(self.config.max_sessions));
            }
            let from_ip = sessions.values().chain(publishers.values());
            if from_ip.filter(|(_, i)| *i == ip).count() >= self.config.max_sessions_per_ip {
                return Err(WhepError::TooManyFromIp(self.config.max_sessions_per_ip));
            }
            // No video yet: named in add_publisher.
            publishers.insert(id.clone(), ("".into(), ip));
        }
        metrics::gauge!("vshare_whip_sessions").increment(1.0);
        match Ingest::answer(offer, self.candidate, keyframe_interval, Instant::now()) {
            Ok((ingest, answer)) => Ok((id, ingest, answer)),
            Err(e) => {
                self.forget_publisher(&id);
                Err(e.into())
            }
        }
    }

    /// Starts answered session `id` for `video`; its events go to `sink`.
    pub async fn add_publisher(
        &self,
        id: &str,
        video: &str,
        ingest: Ingest,
        sink: mpsc::Sender<IngestEvent>,
    ) -> Result<(), WhepError> {
        let video: Arc<str> = video.into();
        if let Some(entry) = self
            .publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            entry.0 = video.clone();
        }
        let publish = Command::Publish {
            id: id.to_string(),
            video,
            ingest: Box::new(ingest),
            sink,
        };
        if self.tx.send(publish).await.is_err() {
            self.forget_publisher(id);
            return Err(WhepError::Stopped);
        }
        Ok(())
    }

    /// Ends WHIP session `session` of `video`; false if there is none.
    pub async fn delete_publisher(&self, video: &str, session: &str) -> bool {
        let known = self
            .publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .is_some_and(|(v, _)| &**v == video);
        if known {
            let _ = self.tx.send(Command::Unpublish(session.to_string())).await;
        }
        known
    }

    /// Drops a WHIP session from the counts (once).
    pub fn forget_publisher(&self, session: &str) {
        let removed = self
            .publishers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
        if removed.is_some() {
            metrics::gauge!("vshare_whip_sessions").decrement(1.0);
        }
    }

    /// Sessions now (all streams).
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Drops a session from the counts (once; later calls do nothing).
    fn forget(&self, session: &str) {
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
        if let Some((stream, _)) = removed {
            metrics::gauge!("vshare_whep_sessions").decrement(1.0);
            if let Some(e) = self
                .streams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&*stream)
            {
                e.viewers.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// The feed of a live stream that starts now.
    pub fn feed(self: &Arc<Self>, stream: &str) -> StreamFeed {
        let entry = Arc::new(StreamEntry {
            viewers: AtomicUsize::new(0),
            profile_level_id: AtomicUsize::new(vshare_webrtc::h264_profile_level_id(None) as usize),
        });
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.to_string(), entry.clone());
        StreamFeed {
            whep: self.clone(),
            stream: stream.into(),
            entry,
            feed: Feed::new(),
            aac: None,
            opus: None,
            opus_failed: false,
            dropped: 0,
        }
    }
}

/// One live stream's samples for its WebRTC viewers, made in the video session's adapter: H.264
/// passed through, AAC transcoded to Opus once for all viewers (only while it has some).
pub struct StreamFeed {
    whep: Arc<Whep>,
    stream: Arc<str>,
    entry: Arc<StreamEntry>,
    feed: Feed,
    aac: Option<vshare_media::AacConfig>,
    opus: Option<AacToOpus>,
    opus_failed: bool,
    dropped: u64,
}

impl StreamFeed {
    /// A source event after the timestamp discipline.
    pub fn push(&mut self, event: &MediaEvent) {
        let now = Instant::now();
        match event {
            MediaEvent::Config(TrackConfig::Avc(_)) => self.offer_profile(),
            MediaEvent::Config(TrackConfig::Aac(c)) => {
                self.aac = Some(c.clone());
                self.opus = None;
                self.opus_failed = false;
            }
            _ => {}
        }
        let watched = self.entry.viewers.load(Ordering::Relaxed) > 0;
        match event {
            MediaEvent::Frame(f) if f.track == TrackKind::Audio => {
                if watched {
                    self.audio(f, now);
                } else {
                    // A fresh encoder for the next viewer: no stale samples in its delay line.
                    self.opus = None;
                }
            }
            MediaEvent::Frame(_) if !watched => {}
            _ => {
                if let Some(sample) = self.feed.push(event, now) {
                    self.send(sample);
                }
            }
        }
        self.notes();
    }

    /// An event of the ladder's top rung (sent in the source's place once it has B-frames).
    pub fn push_rung(&mut self, event: &MediaEvent) {
        let watched = self.entry.viewers.load(Ordering::Relaxed) > 0;
        if matches!(event, MediaEvent::Frame(_)) && !watched {
            return;
        }
        if let Some(sample) = self.feed.push_rung(event, Instant::now()) {
            self.send(sample);
        }
        if matches!(event, MediaEvent::Config(_)) {
            self.offer_profile();
        }
        self.notes();
    }

    /// Answers offer the profile of the video sent.
    fn offer_profile(&self) {
        let id = vshare_webrtc::h264_profile_level_id(self.feed.avc());
        self.entry
            .profile_level_id
            .store(id as usize, Ordering::Relaxed);
    }

    fn notes(&mut self) {
        for note in self.feed.take_notes() {
            match note {
                FeedNote::VideoWithheld(why) => {
                    warn!(video = %self.stream, "WebRTC: {why}");
                    self.offer_profile();
                }
                FeedNote::VideoFromRung => {
                    info!(video = %self.stream, "WebRTC: video from the ladder's top rung")
                }
                FeedNote::Skipped(why) => debug!(video = %self.stream, "WebRTC: {why}"),
            }
        }
    }

    fn audio(&mut self, f: &vshare_media::Frame, now: Instant) {
        if self.opus.is_none() && !self.opus_failed {
            let Some(aac) = &self.aac else { return };
            match AacToOpus::new(aac, self.whep.config.opus_bitrate) {
                Ok(t) => self.opus = Some(t),
                Err(e) => {
                    self.opus_failed = true;
                    warn!(video = %self.stream, "WebRTC: no Opus audio: {e}");
                }
            }
        }
        let Some(opus) = self.opus.as_mut() else {
            return;
        };
        match opus.push(f.pts, &f.data) {
            Ok(packets) => {
                for p in packets {
                    let sample = self.feed.opus(p.pts, &p.data, now);
                    self.send(sample);
                }
            }
            Err(e) => debug!(video = %self.stream, "WebRTC: AAC to Opus: {e}"),
        }
    }

    fn send(&mut self, sample: Sample) {
        if self
            .whep
            .tx
            .try_send(Command::Sample(self.stream.clone(), sample))
            .is_err()
        {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                warn!(video = %self.stream, dropped = self.dropped, "WebRTC: samples dropped (the WebRTC task is behind)");
            }
        }
    }
}

impl Drop for StreamFeed {
    fn drop(&mut self) {
        self.whep
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&*self.stream);
        let _ = self
            .whep
            .tx
            .try_send(Command::StreamEnded(self.stream.clone()));
    }
}

struct Session {
    stream: Arc<str>,
    viewer: Box<Viewer>,
    started: Instant,
    errors_logged: bool,
}

/// A WHIP publisher in the task.
struct Publishing {
    video: Arc<str>,
    ingest: Box<Ingest>,
    sink: mpsc::Sender<IngestEvent>,
    started: Instant,
    /// Events the forwarder had no room for.
    dropped: u64,
}

/// The task that owns the socket and every viewer.
struct Task {
    whep: std::sync::Weak<Whep>,
    socket: UdpSocket,
    /// The announced address: the destination str0m matches incoming datagrams against.
    local: SocketAddr,
    viewers: HashMap<String, Session>,
    ingests: HashMap<String, Publishing>,
    /// Remote address → the session that took a datagram from it (found by ICE credentials
    /// once, then looked up instead of asking every session).
    peers: HashMap<SocketAddr, String>,
    connect_timeout: Duration,
    /// When [`Self::reap`] last looked.
    reaped: Instant,
}

/// How often the task looks for sessions to drop.
const REAP_INTERVAL: Duration = Duration::from_millis(250);

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let next = self
                .viewers
                .values()
                .map(|s| s.viewer.timeout())
                .chain(self.ingests.values().map(|p| p.ingest.timeout()))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
                .max(Instant::now());
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
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
                .find(|(_, s)| s.viewer.accepts(now, from, self.local, data))
                .map(|(id, _)| id.clone()),
        };
        if let Some(id) = viewer {
            self.peers.entry(from).or_insert_with(|| id.clone());
            if let Some(s) = self.viewers.get_mut(&id) {
                s.viewer.receive(now, from, self.local, data);
                flush(&self.socket, &mut s.viewer).await;
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
                .find(|(_, p)| p.ingest.accepts(now, from, self.local, data))
                .map(|(id, _)| id.clone()),
        };
        if let Some(id) = &publisher {
            self.peers.entry(from).or_insert_with(|| id.clone());
        }
        if let Some(p) = publisher.and_then(|id| self.ingests.get_mut(&id)) {
            p.ingest.receive(now, from, self.local, data);
            p.pump(&self.socket, now).await;
        }
    }

    /// Asks the WHIP publisher of `video`, if it has one, for a keyframe.
    async fn keyframe_for(&mut self, video: &str, now: Instant) {
        for p in self.ingests.values_mut().filter(|p| &*p.video == video) {
            p.ingest.request_keyframe(now);
            p.pump(&self.socket, now).await;
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
                    p.ingest.close();
                    p.pump(&self.socket, Instant::now()).await;
                    info!(video = %p.video, session = %id, stats = ?p.ingest.stats(), "WHIP session deleted");
                }
                if let Some(w) = self.whep.upgrade() {
                    w.forget_publisher(&id);
                }
                self.prune_peers();
            }
            Command::Remove(id) => {
                if let Some(mut s) = self.viewers.remove(&id) {
                    s.viewer.close();
                    flush(&self.socket, &mut s.viewer).await;
                    info!(video = %s.stream, session = %id, stats = ?s.viewer.stats(), "WHEP session deleted");
                }
                self.prune_peers();
            }
            Command::Sample(stream, sample) => {
                let now = Instant::now();
                for s in self.viewers.values_mut().filter(|s| s.stream == stream) {
                    s.viewer.write(&sample, now);
                    if let Some(e) = s.viewer.take_error()
                        && !s.errors_logged
                    {
                        s.errors_logged = true;
                        warn!(video = %s.stream, "WebRTC: {e}");
                    }
                    flush(&self.socket, &mut s.viewer).await;
                }
            }
            Command::StreamEnded(stream) => {
                for s in self.viewers.values_mut().filter(|s| s.stream == stream) {
                    s.viewer.close();
                }
            }
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let mut wanted = Vec::new();
        for s in self.viewers.values_mut() {
            if s.viewer.timeout() <= now {
                s.viewer.tick(now);
                flush(&self.socket, &mut s.viewer).await;
                if s.viewer.take_keyframe_request() {
                    wanted.push(s.stream.clone());
                }
            }
        }
        for p in self.ingests.values_mut() {
            if p.ingest.timeout() <= now {
                p.ingest.tick(now);
                p.pump(&self.socket, now).await;
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
                !s.viewer.is_alive() || (!s.viewer.is_connected() && s.started.elapsed() > timeout)
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
                !p.ingest.is_alive()
                    || p.sink.is_closed()
                    || (!p.ingest.is_connected() && p.started.elapsed() > timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(mut p) = self.ingests.remove(&id) {
                p.ingest.close();
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
    async fn pump(&mut self, socket: &UdpSocket, now: Instant) {
        while let Some((to, data)) = self.ingest.poll_transmit() {
            if let Err(e) = socket.send_to(&data, to).await {
                debug!(%to, "WebRTC send: {e}");
            }
        }
        if let Some(e) = self.ingest.take_error() {
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
            while let Some((to, data)) = self.ingest.poll_transmit() {
                let _ = socket.send_to(&data, to).await;
            }
        }
    }
}

/// Sends what a viewer has queued.
async fn flush(socket: &UdpSocket, viewer: &mut Viewer) {
    while let Some((to, data)) = viewer.poll_transmit() {
        if let Err(e) = socket.send_to(&data, to).await {
            debug!(%to, "WebRTC send: {e}");
        }
    }
}
