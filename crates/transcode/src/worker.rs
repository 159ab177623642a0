//! A [`Transcoder`] on its own OS thread. Ingest hands it events with [`TranscodeWorker::push`],
//! which never blocks: the queue is bounded, and when it is full the worker's renditions lose
//! frames until the next source keyframe, where they recover cleanly ([`KeyframeGate`], the
//! policy the HEVC converter uses too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vshare_media::{MediaEvent, TrackKind};

use crate::gate::{DropCounters, KeyframeGate};
use crate::{RenditionInfo, Transcoder};

/// Counters of one worker, for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerStats {
    /// Events accepted into the queue.
    pub events_in: u64,
    /// Source frames dropped because the queue was full (or while waiting for a keyframe).
    pub frames_dropped: u64,
    /// Times the worker fell behind (each ended at a source keyframe).
    pub drop_episodes: u64,
    /// Events the worker delivered to the sink.
    pub events_out: u64,
    /// Source frames the decoders refused.
    pub decode_errors: u64,
    /// The renditions and their state (failed ones say why).
    pub renditions: Vec<RenditionInfo>,
}

#[derive(Default)]
struct Shared {
    events_in: AtomicU64,
    drops: DropCounters,
    events_out: AtomicU64,
    decode_errors: AtomicU64,
    renditions: Mutex<Vec<RenditionInfo>>,
}

/// Moves a transcoder to its thread.
struct Owned(Transcoder);

// SAFETY: FFmpeg's codec, scaler and filter contexts are not tied to the thread that made them;
// they may be used from another thread as long as one thread at a time does. The transcoder is
// moved into the worker thread whole and only that thread touches it afterwards.
unsafe impl Send for Owned {}

/// Runs a [`Transcoder`] on its own thread; outputs go to a sink closure on that thread
/// (for example a `tokio::sync::mpsc::UnboundedSender::send`).
pub struct TranscodeWorker {
    tx: Option<SyncSender<MediaEvent>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    gate: KeyframeGate,
    /// Configuration events that found the queue full: sent before the next keyframe.
    held_configs: Vec<MediaEvent>,
}

impl TranscodeWorker {
    /// Starts the thread. `capacity`: events the queue holds (a second or two of frames, e.g.
    /// 128). `sink` receives `(rendition index, event)` in order.
    pub fn spawn<F>(transcoder: Transcoder, capacity: usize, mut sink: F) -> Self
    where
        F: FnMut(usize, MediaEvent) + Send + 'static,
    {
        let owned = Owned(transcoder);
        let (tx, rx) = sync_channel::<MediaEvent>(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        if let Ok(mut r) = s.renditions.lock() {
            *r = owned.0.renditions();
        }
        let thread = std::thread::Builder::new()
            .name("vshare-transcode".into())
            .spawn(move || {
                let owned = owned;
                let mut transcoder = owned.0;
                let mut deliver = |out: Vec<(usize, MediaEvent)>, s: &Shared| {
                    s.events_out.fetch_add(out.len() as u64, Ordering::Relaxed);
                    for (i, e) in out {
                        sink(i, e);
                    }
                };
                while let Ok(event) = rx.recv() {
                    match transcoder.push_event(&event) {
                        Ok(out) => deliver(out, &s),
                        Err(e) => tracing::warn!("transcoder: {e}"),
                    }
                    s.decode_errors
                        .store(transcoder.decode_errors(), Ordering::Relaxed);
                    if let Ok(mut r) = s.renditions.lock() {
                        *r = transcoder.renditions();
                    }
                }
                match transcoder.finish() {
                    Ok(out) => deliver(out, &s),
                    Err(e) => tracing::warn!("transcoder finish: {e}"),
                }
                if let Ok(mut r) = s.renditions.lock() {
                    *r = transcoder.renditions();
                }
            })
            .ok();
        if thread.is_none() {
            tracing::error!("could not start the transcoder thread");
        }
        TranscodeWorker {
            tx: Some(tx),
            thread,
            shared,
            gate: KeyframeGate::new("transcoder"),
            held_configs: Vec::new(),
        }
    }

    fn try_send(&mut self, event: MediaEvent) -> Result<(), MediaEvent> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(event);
        };
        match tx.try_send(event) {
            Ok(()) => {
                self.shared.events_in.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => Err(e),
        }
    }

    /// Offers one ingest event; never blocks. `false` when it was dropped.
    pub fn push(&mut self, event: &MediaEvent) -> bool {
        match event {
            MediaEvent::Config(_) => {
                if !self.held_configs.is_empty() {
                    self.held_configs.push(event.clone());
                    return false;
                }
                if let Err(e) = self.try_send(event.clone()) {
                    // It goes before the next keyframe; video waits for that keyframe.
                    self.held_configs.push(e);
                    self.gate.until_keyframe(&self.shared.drops);
                    return false;
                }
                true
            }
            MediaEvent::Frame(f) => {
                let is_video = f.track == TrackKind::Video;
                if is_video && !self.gate.admits(f.key) {
                    self.gate.dropped(&self.shared.drops);
                    return false;
                }
                if is_video && f.key {
                    while !self.held_configs.is_empty() {
                        let c = self.held_configs.remove(0);
                        if let Err(c) = self.try_send(c) {
                            self.held_configs.insert(0, c);
                            self.gate.dropped(&self.shared.drops);
                            return false;
                        }
                    }
                }
                match self.try_send(event.clone()) {
                    Ok(()) => {
                        if is_video {
                            self.gate.passed();
                        }
                        true
                    }
                    Err(_) => {
                        self.gate.dropped(&self.shared.drops);
                        false
                    }
                }
            }
        }
    }

    /// Hands over one event if the queue has room, and gives it back when the queue is full:
    /// for a caller that must lose nothing (the backfill's rebuild, which reads a recorded
    /// stream faster than real time) and waits for room instead.
    pub fn offer(&mut self, event: MediaEvent) -> Result<(), MediaEvent> {
        self.try_send(event)
    }

    /// The counters now.
    pub fn stats(&self) -> WorkerStats {
        let s = &self.shared;
        WorkerStats {
            events_in: s.events_in.load(Ordering::Relaxed),
            frames_dropped: s.drops.frames_dropped(),
            drop_episodes: s.drops.drop_episodes(),
            events_out: s.events_out.load(Ordering::Relaxed),
            decode_errors: s.decode_errors.load(Ordering::Relaxed),
            renditions: s.renditions.lock().map(|r| r.clone()).unwrap_or_default(),
        }
    }

    /// End of stream: the worker drains what is queued, flushes the encoders into the sink and
    /// stops. Blocks until it has (call it from a blocking context).
    pub fn finish(mut self) -> WorkerStats {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stats()
    }
}

impl Drop for TranscodeWorker {
    fn drop(&mut self) {
        // Closing the queue ends the thread after it has flushed; it is not waited for here.
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    /// The server keeps a worker in a tokio task: it must be Send.
    #[test]
    fn worker_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::TranscodeWorker>();
        check::<super::WorkerStats>();
    }
}
