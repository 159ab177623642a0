//! WebRTC: the adapter around [`vshare_webrtc`]'s sans-IO viewer, feed and ingest.
//!
//! One task owns the UDP socket (one port for every session, docs/webrtc.md), every WHEP
//! [`Viewer`] and every WHIP [`Ingest`]; the HTTP handlers hand it new sessions and deletions,
//! and each live stream's [`StreamFeed`] (in the video session's adapter) hands it the stream's
//! samples. Datagrams go to the session whose ICE credentials or nominated address they match
//! (str0m's `accepts`). A viewer's keyframe request reaches the stream's source where it can take
//! one: a WHIP publisher (RTCP PLI) or an upload-protocol sender ([`KeyframeSource`]); what a
//! publisher receives goes to its forwarder ([`crate::whip`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tracing::info;
use vshare_webrtc::{Feed, Host, Ingest, IngestEvent, OfferError, Sample, Viewer};

use crate::config::WebrtcConfig;

mod feed;
mod send;
mod task;

use crate::db::random_id;
pub use feed::StreamFeed;
use task::Task;

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
    /// Where players send (the host candidate) and the DTLS certificate of every session.
    host: Host,
    tx: mpsc::Sender<Command>,
    streams: Mutex<HashMap<String, Arc<StreamEntry>>>,
    /// Session id → (stream, client address), for the limits and DELETE.
    sessions: Mutex<HashMap<String, (Arc<str>, IpAddr)>>,
    /// WHIP session id → (video, publisher address).
    publishers: Mutex<HashMap<String, (Arc<str>, IpAddr)>>,
    /// Video → the source outside WebRTC that takes keyframe requests.
    keyframe_sources: Mutex<HashMap<String, Asked>>,
}

/// A source's keyframe requests, and when it was last asked.
type Asked = (Arc<Notify>, Option<Instant>);

/// A source outside WebRTC (an upload-protocol sender) that makes a keyframe when asked:
/// `requests` is notified when a player of its video needs one, at most every
/// [`vshare_webrtc::KEYFRAME_REQUEST_INTERVAL`]. Dropping it ends the registration.
pub struct KeyframeSource {
    whep: Weak<Whep>,
    video: String,
    pub requests: Arc<Notify>,
}

impl Drop for KeyframeSource {
    fn drop(&mut self) {
        if let Some(whep) = self.whep.upgrade() {
            let mut sources = whep
                .keyframe_sources
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Only its own: a newer source of the same video may have taken the place.
            if sources
                .get(&self.video)
                .is_some_and(|(n, _)| Arc::ptr_eq(n, &self.requests))
            {
                sources.remove(&self.video);
            }
        }
    }
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
            host: Host::new(candidate).map_err(|e| anyhow::anyhow!("WebRTC: {e}"))?,
            tx,
            streams: Mutex::default(),
            sessions: Mutex::default(),
            publishers: Mutex::default(),
            keyframe_sources: Mutex::default(),
        });
        let task = Task {
            whep: Arc::downgrade(&whep),
            out: send::Sender::new(socket, config.udp_gso)?,
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
        self.host.candidate
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
        let profile = entry.profile_level_id.load(Ordering::Relaxed) as u32;
        let (viewer, answer) = match Viewer::answer(offer, &self.host, profile, Instant::now()) {
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
        match Ingest::answer(offer, &self.host, keyframe_interval, Instant::now()) {
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

    /// Registers the source of `video` as one that makes keyframes on request.
    pub fn keyframe_source(self: &Arc<Self>, video: &str) -> KeyframeSource {
        let requests = Arc::new(Notify::new());
        self.keyframe_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(video.to_string(), (requests.clone(), None));
        KeyframeSource {
            whep: Arc::downgrade(self),
            video: video.to_string(),
            requests,
        }
    }

    /// Asks the registered source of `video`, if there is one, for a keyframe (at most every
    /// [`vshare_webrtc::KEYFRAME_REQUEST_INTERVAL`]: a player cannot make it send only
    /// keyframes).
    fn request_keyframe(&self, video: &str, now: Instant) {
        let mut sources = self
            .keyframe_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((requests, last)) = sources.get_mut(video)
            && last
                .is_none_or(|t| now.duration_since(t) >= vshare_webrtc::KEYFRAME_REQUEST_INTERVAL)
        {
            *last = Some(now);
            requests.notify_one();
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
            own_opus: false,
            dropped: 0,
        }
    }
}
