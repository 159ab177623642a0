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
    tx: Option<mpsc::Sender<MediaEvent>>,
    thread: JoinHandle<anyhow::Result<FileSummary>>,
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

    /// Hands the writer one source event (never blocks).
    pub fn push(&mut self, event: &MediaEvent) {
        // A closed channel means the writer stopped with an error; finish() reports it.
        if self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(event.clone()).is_err())
        {
            self.tx = None;
        }
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
