//! The streaming live server role: receives the packaged live stream from the video server and
//! publishes it over HTTP as LL-HLS.
//!
//! [`LiveMessage`] is the one boundary between the two roles. In one process it travels over a
//! channel; its network form would carry the same messages over TCP, as the patent's live
//! server receives its stream. Each stream's state is a sans-IO [`LiveWindow`] (the parts not
//! yet in the recording, the playlist, the blocking-reload condition of RFC 8216bis §6.2.5.2);
//! this module adds the locks and the wake-ups of blocked playlist requests. Stored segments,
//! and the parts of them the playlist still lists (byte ranges), are read back from the
//! recording's storage by the HTTP layer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use vshare_package::{LiveWindow, PartBytes, SegmentBytes, WindowUpdate};

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
    /// A segment is complete (its parts went before it; its bytes are in the recording);
    /// `playlist` lists it.
    Segment {
        stream: String,
        msn: u64,
        playlist: Arc<str>,
    },
    /// The recording stored segment `msn`: its parts may leave memory (they are byte ranges
    /// of the stored segment).
    Stored { stream: String, msn: u64 },
    /// The publisher stopped; the final playlist carries EXT-X-ENDLIST.
    End { stream: String, playlist: Arc<str> },
    /// The multivariant playlist of a video with several renditions (each rendition is its own
    /// stream, named `<video>/<rendition>`; the source is `<video>`).
    Multivariant { stream: String, playlist: Arc<str> },
}

#[derive(Default)]
struct StreamState {
    window: LiveWindow,
    multivariant: Option<Arc<str>>,
}

/// One stream's published state, with a version that bumps on every change.
pub struct LiveStream {
    state: RwLock<StreamState>,
    version: watch::Sender<u64>,
    /// Requests held for parts not made yet (see [`LiveStream::hold_for_part`]).
    held_parts: AtomicUsize,
}

/// What became of a request for a part that did not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartHold {
    /// The part, or a later one, is listed now: look the part up again.
    Listed,
    /// Too far ahead to be the preload-hinted part, or the stream ended: not held.
    NotHeld,
    /// The stream already holds as many requests as it may.
    Full,
    /// Nothing came within the wait.
    TimedOut,
}

/// Counts one held request while it lives.
struct HeldGuard<'a>(&'a AtomicUsize);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
            held_parts: AtomicUsize::new(0),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&StreamState) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    pub fn playlist(&self) -> Option<Arc<str>> {
        self.with(|s| s.window.playlist())
    }

    pub fn multivariant(&self) -> Option<Arc<str>> {
        self.with(|s| s.multivariant.clone())
    }

    /// An init segment by name (`init.mp4`, `init{msn}.mp4`).
    pub fn init(&self, name: &str) -> Option<Bytes> {
        self.with(|s| s.window.init(name))
    }

    /// Where a part is: in memory, or a byte range of its stored segment.
    pub fn part(&self, msn: u64, index: u32) -> PartBytes {
        self.with(|s| s.window.part(msn, index))
    }

    /// Where segment `msn` is: in memory, or only in the recording.
    pub fn segment(&self, msn: u64) -> SegmentBytes {
        self.with(|s| s.window.segment(msn))
    }

    /// True when the playlist already satisfies `req` (see [`LiveWindow::satisfies`]).
    pub fn satisfies(&self, req: BlockingRequest) -> bool {
        self.with(|s| s.window.satisfies(req.msn, req.part))
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

    /// Holds a request for part (`msn`, `index`) that is not listed yet until it is, as
    /// RFC 8216bis §6.2.6 wants for the preload-hinted part: only for a part of the segment in
    /// progress or the next one (the hint is one of them), at most `cap` at once per stream,
    /// for at most `timeout`.
    pub async fn hold_for_part(
        &self,
        msn: u64,
        index: u32,
        cap: usize,
        timeout: Duration,
    ) -> PartHold {
        let req = BlockingRequest {
            msn,
            part: Some(index),
        };
        let (holdable, listed) = self.with(|s| {
            let (last_msn, _) = s.window.next_expected();
            (
                !s.window.is_ended() && msn <= last_msn + 1,
                s.window.satisfies(msn, Some(index)),
            )
        });
        if listed {
            return PartHold::Listed;
        }
        if !holdable || cap == 0 {
            return PartHold::NotHeld;
        }
        if self.held_parts.fetch_add(1, Ordering::Relaxed) >= cap {
            self.held_parts.fetch_sub(1, Ordering::Relaxed);
            return PartHold::Full;
        }
        let _held = HeldGuard(&self.held_parts);
        metrics::counter!("vshare_live_held_part_requests_total").increment(1);
        if self.wait_for(req, timeout).await {
            PartHold::Listed
        } else {
            PartHold::TimedOut
        }
    }

    /// The msn and part a client may legitimately block for: at most one segment ahead of
    /// what exists, so a request far in the future is refused instead of held.
    pub fn next_expected(&self) -> (u64, u32) {
        self.with(|s| s.window.next_expected())
    }
}

/// The live server: every stream currently published, and the ones that just ended.
#[derive(Clone, Default)]
pub struct LiveServer {
    streams: Arc<RwLock<HashMap<String, Arc<LiveStream>>>>,
}

impl LiveServer {
    pub fn new() -> Self {
        LiveServer {
            streams: Arc::default(),
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
            | LiveMessage::Stored { stream, .. }
            | LiveMessage::End { stream, .. }
            | LiveMessage::Multivariant { stream, .. } => stream.clone(),
        };
        let stream = if let LiveMessage::Stored { .. } = &msg {
            // Only for a stream still held: a late confirmation does not bring one back.
            match self.stream(&id) {
                Some(s) => s,
                None => return,
            }
        } else {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            streams
                .entry(id)
                .or_insert_with(|| Arc::new(LiveStream::new()))
                .clone()
        };
        {
            let mut s = stream.state.write().unwrap_or_else(|e| e.into_inner());
            let update = match msg {
                LiveMessage::Init { name, init, .. } => WindowUpdate::Init { name, bytes: init },
                LiveMessage::Part {
                    msn,
                    index,
                    bytes,
                    playlist,
                    ..
                } => WindowUpdate::Part {
                    msn,
                    index,
                    bytes,
                    playlist,
                },
                LiveMessage::Segment { msn, playlist, .. } => {
                    WindowUpdate::Segment { msn, playlist }
                }
                LiveMessage::Stored { msn, .. } => WindowUpdate::Stored { msn },
                LiveMessage::End { playlist, .. } => WindowUpdate::End { playlist },
                LiveMessage::Multivariant { playlist, .. } => {
                    s.multivariant = Some(playlist);
                    drop(s);
                    stream.version.send_modify(|v| *v += 1);
                    return;
                }
            };
            s.window.apply(update);
        }
        stream.version.send_modify(|v| *v += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(msn: u64, index: u32) -> LiveMessage {
        LiveMessage::Part {
            stream: "s".into(),
            msn,
            index,
            bytes: Bytes::from(format!("[{msn}.{index}]")),
            playlist: Arc::from(format!("p{msn}.{index}")),
        }
    }

    #[tokio::test]
    async fn a_request_for_the_next_part_is_held_until_it_is_listed() {
        let live = LiveServer::new();
        live.apply(part(0, 0));
        let stream = live.stream("s").expect("stream");
        let long = Duration::from_secs(3600);
        // Listed already: no wait.
        assert_eq!(stream.hold_for_part(0, 0, 1, long).await, PartHold::Listed);
        // Two segments ahead: refused at once, whatever the cap.
        assert_eq!(stream.hold_for_part(2, 0, 1, long).await, PartHold::NotHeld);
        // The hinted part is held; with a cap of one, a second request is refused.
        let held = {
            let stream = stream.clone();
            tokio::spawn(async move { stream.hold_for_part(0, 1, 1, long).await })
        };
        while stream.held_parts.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(stream.hold_for_part(1, 0, 1, long).await, PartHold::Full);
        live.apply(part(0, 1));
        assert_eq!(held.await.expect("join"), PartHold::Listed);
        assert_eq!(stream.held_parts.load(Ordering::Relaxed), 0);
        assert_eq!(
            stream.part(0, 1),
            PartBytes::InMemory(Bytes::from_static(b"[0.1]"))
        );
        // Nothing comes: the wait ends.
        assert_eq!(
            stream
                .hold_for_part(1, 0, 1, Duration::from_millis(1))
                .await,
            PartHold::TimedOut
        );
        // An ended stream holds nothing.
        live.apply(LiveMessage::End {
            stream: "s".into(),
            playlist: Arc::from("end"),
        });
        assert_eq!(stream.hold_for_part(0, 2, 1, long).await, PartHold::Listed);
    }
}
