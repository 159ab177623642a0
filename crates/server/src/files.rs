//! VOD files in other container families (WebM, 3GP), each written by its own thread from the
//! source's events. They never hold up the live stream or the MP4/HLS VOD: their records are
//! added to the video when they are done.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use vshare_media::{AacConfig, AvcConfig, MediaEvent};
use vshare_transcode::{FileSpec, FileSummary, FileWriter};

/// A file being written.
pub struct FileJob {
    pub spec: FileSpec,
    pub path: PathBuf,
    tx: Option<Input>,
    thread: JoinHandle<anyhow::Result<FileSummary>>,
}

/// The writer's queue: unbounded for a live source (which is paced by its camera), bounded
/// for a recorded one read faster than real time (the backfill's rebuild).
enum Input {
    Live(mpsc::Sender<MediaEvent>),
    Paced(mpsc::SyncSender<MediaEvent>),
}

impl FileJob {
    /// Starts writing `spec` to `path` from a source with these configurations.
    pub fn start(
        spec: FileSpec,
        path: PathBuf,
        video: Option<AvcConfig>,
        audio: Option<AacConfig>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<MediaEvent>();
        Self::spawn(spec, path, video, audio, Input::Live(tx), rx)
    }

    /// Like [`start`](Self::start) with a queue of `capacity` events: [`offer`](Self::offer)
    /// gives an event back while it is full.
    pub fn start_paced(
        spec: FileSpec,
        path: PathBuf,
        video: Option<AvcConfig>,
        audio: Option<AacConfig>,
        capacity: usize,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<MediaEvent>(capacity.max(1));
        Self::spawn(spec, path, video, audio, Input::Paced(tx), rx)
    }

    fn spawn(
        spec: FileSpec,
        path: PathBuf,
        video: Option<AvcConfig>,
        audio: Option<AacConfig>,
        tx: Input,
        rx: mpsc::Receiver<MediaEvent>,
    ) -> anyhow::Result<Self> {
        let (s, p) = (spec.clone(), path.clone());
        let thread = std::thread::Builder::new()
            .name(format!("vshare-{}", spec.format.name()))
            .spawn(move || {
                let mut writer = FileWriter::new(&s, &p, video.as_ref(), audio.as_ref())?;
                for event in rx {
                    writer.push_event(&event)?;
                }
                Ok(writer.finish()?)
            })?;
        Ok(FileJob {
            spec,
            path,
            tx: Some(tx),
            thread,
        })
    }

    /// Hands the writer one source event (never blocks; a paced job drops it when full).
    pub fn push(&mut self, event: &MediaEvent) {
        let _ = self.offer(event.clone());
    }

    /// Hands the writer one source event; a paced job gives it back while its queue is full.
    pub fn offer(&mut self, event: MediaEvent) -> Result<(), MediaEvent> {
        // A closed channel means the writer stopped with an error; finish() reports it.
        let closed = match &self.tx {
            None => false,
            Some(Input::Live(tx)) => tx.send(event).is_err(),
            Some(Input::Paced(tx)) => match tx.try_send(event) {
                Ok(()) => false,
                Err(mpsc::TrySendError::Full(e)) => return Err(e),
                Err(mpsc::TrySendError::Disconnected(_)) => true,
            },
        };
        if closed {
            self.tx = None;
        }
        Ok(())
    }

    /// Ends the input and waits for the file (blocking: call from spawn_blocking).
    pub fn finish(mut self) -> anyhow::Result<FileSummary> {
        self.tx = None;
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("{} writer panicked", self.spec.format.name()),
        }
    }
}
