//! The streaming live server role: receives the packaged live stream from the video server and
//! publishes it over HTTP as LL-HLS.
//!
//! [`LiveMessage`] is the one boundary between the two roles. In one process it travels over a
//! channel; its network form would carry the same messages over TCP, as the patent's live
//! server receives its stream. The live server keeps a window of parts and segments per stream
//! and answers blocking playlist reloads (RFC 8216bis §6.2.5.2).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

/// What the video server tells the live server about one stream.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    /// A new init segment (`init.mp4` first, `init{msn}.mp4` after a codec change).
    Init {
        stream: String,
        name: String,
        init: Bytes,
    },
    /// A partial segment is ready; `playlist` lists it.
    Part {
        stream: String,
        msn: u64,
        index: u32,
        bytes: Bytes,
        playlist: Arc<str>,
    },
    /// A segment is complete; `playlist` lists it.
    Segment {
        stream: String,
        msn: u64,
        bytes: Bytes,
        playlist: Arc<str>,
    },
    /// The publisher stopped; the final playlist carries EXT-X-ENDLIST.
    End { stream: String, playlist: Arc<str> },
    /// The multivariant playlist of a video with several renditions (each rendition is its own
    /// stream, named `<video>/<rendition>`; the source is `<video>`).
    Multivariant { stream: String, playlist: Arc<str> },
}

#[derive(Default)]
struct StreamState {
    /// Every init segment of the stream by name: segments still in the window may have been
    /// packaged under an older one (a stream changes configuration a handful of times).
    inits: BTreeMap<String, Bytes>,
    playlist: Option<Arc<str>>,
    multivariant: Option<Arc<str>>,
    parts: BTreeMap<(u64, u32), Bytes>,
    segments: BTreeMap<u64, Bytes>,
    /// Highest part listed, as (msn, index).
    last_part: Option<(u64, u32)>,
    /// Highest complete segment listed.
    last_segment: Option<u64>,
    ended: bool,
}

/// One stream's published state, with a version that bumps on every change.
pub struct LiveStream {
    state: RwLock<StreamState>,
    version: watch::Sender<u64>,
}

/// What a playlist request waits for.
#[derive(Debug, Clone, Copy)]
pub struct BlockingRequest {
    pub msn: u64,
    pub part: Option<u32>,
}

impl LiveStream {
    fn new() -> Self {
        LiveStream {
            state: RwLock::new(StreamState::default()),
            version: watch::channel(0).0,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&StreamState) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    pub fn playlist(&self) -> Option<Arc<str>> {
        self.with(|s| s.playlist.clone())
    }

    pub fn multivariant(&self) -> Option<Arc<str>> {
        self.with(|s| s.multivariant.clone())
    }

    /// An init segment by name (`init.mp4`, `init{msn}.mp4`).
    pub fn init(&self, name: &str) -> Option<Bytes> {
        self.with(|s| s.inits.get(name).cloned())
    }

    pub fn part(&self, msn: u64, index: u32) -> Option<Bytes> {
        self.with(|s| s.parts.get(&(msn, index)).cloned())
    }

    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.with(|s| s.segments.get(&msn).cloned())
    }

    /// True when the playlist already satisfies `req`: the part (msn, part) or a later one is
    /// listed, or — without a part — segment msn is complete. An ended stream satisfies all.
    pub fn satisfies(&self, req: BlockingRequest) -> bool {
        self.with(|s| {
            if s.ended {
                return true;
            }
            match req.part {
                Some(p) => s.last_part.is_some_and(|last| last >= (req.msn, p)),
                None => s.last_segment.is_some_and(|last| last >= req.msn),
            }
        })
    }

    /// Waits until `req` is satisfied or `timeout` passes; returns whether it was satisfied.
    pub async fn wait_for(&self, req: BlockingRequest, timeout: Duration) -> bool {
        let mut rx = self.version.subscribe();
        let wait = async {
            loop {
                if self.satisfies(req) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return self.satisfies(req);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The msn and part a client may legitimately block for: at most one segment ahead of
    /// what exists, so a request far in the future is refused instead of held.
    pub fn next_expected(&self) -> (u64, u32) {
        self.with(|s| match s.last_part {
            Some((msn, idx)) => (msn, idx + 1),
            None => (0, 0),
        })
    }
}

/// The live server: every stream currently published, and the ones that just ended.
#[derive(Clone)]
pub struct LiveServer {
    streams: Arc<RwLock<HashMap<String, Arc<LiveStream>>>>,
    window_segments: usize,
}

impl LiveServer {
    pub fn new(window_segments: usize) -> Self {
        LiveServer {
            streams: Arc::default(),
            window_segments: window_segments.max(3),
        }
    }

    /// Starts the task that applies messages from the video server; returns its sender.
    pub fn spawn(&self) -> mpsc::UnboundedSender<LiveMessage> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                me.apply(msg);
            }
        });
        tx
    }

    pub fn stream(&self, id: &str) -> Option<Arc<LiveStream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Forgets a video's streams, its renditions' too (its VOD has taken over).
    pub fn remove(&self, id: &str) {
        let prefix = format!("{id}/");
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k != id && !k.starts_with(&prefix));
    }

    /// Applies one message.
    pub fn apply(&self, msg: LiveMessage) {
        let id = match &msg {
            LiveMessage::Init { stream, .. }
            | LiveMessage::Part { stream, .. }
            | LiveMessage::Segment { stream, .. }
            | LiveMessage::End { stream, .. }
            | LiveMessage::Multivariant { stream, .. } => stream.clone(),
        };
        let stream = {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            streams
                .entry(id)
                .or_insert_with(|| Arc::new(LiveStream::new()))
                .clone()
        };
        {
            let mut s = stream.state.write().unwrap_or_else(|e| e.into_inner());
            match msg {
                LiveMessage::Init { name, init, .. } => {
                    s.inits.insert(name, init);
                }
                LiveMessage::Part {
                    msn,
                    index,
                    bytes,
                    playlist,
                    ..
                } => {
                    s.parts.insert((msn, index), bytes);
                    s.playlist = Some(playlist);
                    s.last_part = Some((msn, index));
                }
                LiveMessage::Segment {
                    msn,
                    bytes,
                    playlist,
                    ..
                } => {
                    s.segments.insert(msn, bytes);
                    s.playlist = Some(playlist);
                    s.last_segment = Some(msn);
                    // Parts are listed for the last few segments only; segments for the window.
                    let keep_from = msn.saturating_sub(self.window_segments as u64);
                    s.segments.retain(|m, _| *m >= keep_from);
                    let parts_from = msn.saturating_sub(4);
                    s.parts.retain(|(m, _), _| *m >= parts_from);
                }
                LiveMessage::End { playlist, .. } => {
                    s.playlist = Some(playlist);
                    s.ended = true;
                }
                LiveMessage::Multivariant { playlist, .. } => s.multivariant = Some(playlist),
            }
        }
        stream.version.send_modify(|v| *v += 1);
    }
}
