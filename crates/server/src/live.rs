//! The streaming live server role: receives the packaged live stream from the video server and
//! publishes it over HTTP as LL-HLS.
//!
//! [`LiveMessage`] is the one boundary between the two roles. In one process it travels over a
//! channel; between processes the same messages cross TCP (`vshare-handoff`, pushed by
//! [`crate::live_push`], received by [`crate::live_listen`]), as the patent's live server
//! receives its stream. Each stream's state is a sans-IO [`LiveWindow`] (the parts not
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

/// What the video server tells the live server about one stream; over TCP it is the hand-off
/// protocol's message (`docs/live-handoff.md`).
pub use vshare_handoff::LiveMessage;

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

    /// Forgets one stream (exactly this name).
    pub fn forget(&self, stream: &str) {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
    }

    /// The messages that bring a live server with nothing to the state of this one: every
    /// stream's window ([`LiveWindow::snapshot`]) and multivariant playlist.
    pub fn snapshot(&self) -> Vec<LiveMessage> {
        let streams: Vec<(String, Arc<LiveStream>)> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Vec::new();
        for (id, stream) in streams {
            let (updates, multivariant) =
                stream.with(|s| (s.window.snapshot(), s.multivariant.clone()));
            out.extend(updates.into_iter().map(|u| to_message(&id, u)));
            if let Some(playlist) = multivariant {
                out.push(LiveMessage::Multivariant {
                    stream: id.clone(),
                    playlist,
                });
            }
        }
        out
    }

    /// Applies one message.
    pub fn apply(&self, msg: LiveMessage) {
        let id = msg.stream().to_string();
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
                LiveMessage::StoredSegment {
                    msn,
                    part_lengths,
                    playlist,
                    ..
                } => WindowUpdate::StoredSegment {
                    msn,
                    part_lengths,
                    playlist,
                },
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

/// A window update as the message about stream `stream` that makes it.
fn to_message(stream: &str, u: WindowUpdate) -> LiveMessage {
    let stream = stream.to_string();
    match u {
        WindowUpdate::Init { name, bytes } => LiveMessage::Init {
            stream,
            name,
            init: bytes,
        },
        WindowUpdate::Part {
            msn,
            index,
            bytes,
            playlist,
        } => LiveMessage::Part {
            stream,
            msn,
            index,
            bytes,
            playlist,
        },
        WindowUpdate::Segment { msn, playlist } => LiveMessage::Segment {
            stream,
            msn,
            playlist,
        },
        WindowUpdate::Stored { msn } => LiveMessage::Stored { stream, msn },
        WindowUpdate::End { playlist } => LiveMessage::End { stream, playlist },
        WindowUpdate::StoredSegment {
            msn,
            part_lengths,
            playlist,
        } => LiveMessage::StoredSegment {
            stream,
            msn,
            part_lengths,
            playlist,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(stream: &str, msn: u64, index: u32) -> LiveMessage {
        LiveMessage::Part {
            stream: stream.into(),
            msn,
            index,
            bytes: Bytes::from(format!("[{msn}.{index}]")),
            playlist: Arc::from(format!("{stream} p{msn}.{index}")),
        }
    }

    #[test]
    fn a_snapshot_gives_a_fresh_live_server_every_stream() {
        let a = LiveServer::new();
        for stream in ["v", "v/480p"] {
            a.apply(LiveMessage::Init {
                stream: stream.into(),
                name: "init.mp4".into(),
                init: Bytes::from_static(b"init"),
            });
            for msn in 0..3 {
                for i in 0..2 {
                    a.apply(part(stream, msn, i));
                }
                a.apply(LiveMessage::Segment {
                    stream: stream.into(),
                    msn,
                    playlist: Arc::from(format!("{stream} s{msn}")),
                });
            }
            a.apply(LiveMessage::Stored {
                stream: stream.into(),
                msn: 0,
            });
            a.apply(part(stream, 3, 0));
        }
        a.apply(LiveMessage::Multivariant {
            stream: "v".into(),
            playlist: Arc::from("master"),
        });
        let b = LiveServer::new();
        for msg in a.snapshot() {
            b.apply(msg);
        }
        for stream in ["v", "v/480p"] {
            let (sa, sb) = (a.stream(stream).unwrap(), b.stream(stream).unwrap());
            assert_eq!(sb.playlist(), sa.playlist());
            assert_eq!(sb.init("init.mp4"), sa.init("init.mp4"));
            for msn in 0..4 {
                assert_eq!(sb.segment(msn), sa.segment(msn));
                for i in 0..3 {
                    assert_eq!(sb.part(msn, i), sa.part(msn, i), "{stream} {msn}.{i}");
                }
            }
            assert_eq!(sb.next_expected(), sa.next_expected());
        }
        assert_eq!(
            b.stream("v").unwrap().multivariant().as_deref(),
            Some("master")
        );
        assert_eq!(
            b.stream("v").unwrap().part(0, 1),
            PartBytes::Stored { offset: 5, len: 5 }
        );
    }

    fn part_of_s(msn: u64, index: u32) -> LiveMessage {
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
        live.apply(part_of_s(0, 0));
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
        live.apply(part_of_s(0, 1));
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
