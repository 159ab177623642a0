//! The outputs derived from the source while it is live: the transcoded ladder (its rungs are
//! packaged beside the source) and the VOD files in other container families.


use tokio::sync::mpsc;
use tracing::{info, warn};
use vshare_media::{AacConfig, AvcConfig, MediaEvent};
use vshare_transcode::{TranscodeWorker, Transcoder};

use super::VideoServer;
use crate::files::FileJob;
use crate::storage::object_path;

/// Starts the transcoder for the configured ladder from the source's configurations: the
/// worker and its rungs' names, in its order. None when the ladder is empty or cannot start.
pub(super) fn start_ladder(
    server: &VideoServer,
    id: &str,
    video: Option<&AvcConfig>,
    audio: Option<&AacConfig>,
    tc_tx: &mpsc::UnboundedSender<(usize, MediaEvent)>,
) -> Option<(TranscodeWorker, Vec<String>)> {
    if server.ladder.renditions.is_empty() {
        return None;
    }
    let transcoder = match Transcoder::new(&server.ladder, video, audio) {
        Ok(t) => t,
        Err(e) => {
            warn!(video = %id, "transcoding off for this stream: {e}");
            return None;
        }
    };
    let rungs = transcoder.renditions();
    if rungs.is_empty() {
        return None;
    }
    for rung in &rungs {
        info!(video = %id, rendition = %rung.name, width = rung.width, height = rung.height, "rendition");
    }
    let tx = tc_tx.clone();
    let worker = TranscodeWorker::spawn(transcoder, 256, move |index, event| {
        let _ = tx.send((index, event));
    });
    Some((worker, rungs.into_iter().map(|r| r.name).collect()))
}

impl VideoServer {
    /// Starts the configured other-format VOD files from the source's configurations; `paced`:
    /// a queue of that many events for a recorded source (the rebuild), written beside the
    /// live ones.
    pub(super) fn start_files(
        &self,
        id: &str,
        video: Option<AvcConfig>,
        audio: Option<AacConfig>,
        paced: Option<usize>,
    ) -> Vec<FileJob> {
        let dir = self.config.data_dir.join("tmp");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(video = %id, "no directory for VOD files: {e}");
            return Vec::new();
        }
        let mut jobs = Vec::new();
        for spec in &self.config.transcode.files {
            let tag = if paced.is_some() { ".rebuild" } else { "" };
            let path = dir.join(format!("{id}{tag}.{}", spec.format.name()));
            let (v, a) = (video.clone(), audio.clone());
            let job = match paced {
                None => FileJob::start(spec.clone(), path, v, a),
                Some(n) => FileJob::start_paced(spec.clone(), path, v, a, n),
            };
            match job {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    warn!(video = %id, format = spec.format.name(), "VOD file not started: {e:#}")
                }
            }
        }
        jobs
    }

    /// Waits for the other-format files, stores them and adds their records to the video.
    pub(super) async fn finish_files(
        &self,
        id: &str,
        title: &str,
        jobs: Vec<FileJob>,
        frames_coming: u64,
    ) -> anyhow::Result<()> {
        let mut added = Vec::new();
        let mut stored_names = Vec::new();
        // The recording's poster, when it has one, goes into these records too.
        let poster_path = object_path(id, super::pictures::POSTER);
        let poster = match self.storage.size(&poster_path).await {
            Ok(Some(_)) => format!("{}/vod/{id}/{}", self.public_url, super::pictures::POSTER),
            _ => String::new(),
        };
        for job in jobs {
            let name = format!("video.{}", job.spec.format.name());
            let path = job.path.clone();
            let result = tokio::task::spawn_blocking(move || job.finish()).await?;
            let summary = match result {
                Ok(s) => s,
                Err(e) => {
                    warn!(video = %id, file = %name, "not written: {e:#}");
                    let _ = tokio::fs::remove_file(&path).await;
                    continue;
                }
            };
            let stored = self.storage.put_file(&object_path(id, &name), &path).await;
            let _ = tokio::fs::remove_file(&path).await;
            stored?;
            let url = format!("{}/vod/{id}/{name}", self.public_url);
            let mut record = summary.attribute_record(id, &url, title);
            record.poster = poster.clone();
            record.frames_coming = frames_coming;
            added.push(record);
            stored_names.push(name);
        }
        if added.is_empty() {
            return Ok(());
        }
        let Some(v) = self.db.get_video(id).await? else {
            // Deleted while these were written: its purge may have listed the video's objects
            // before they existed, so they are removed here.
            for name in &stored_names {
                self.storage.delete(&object_path(id, name)).await?;
            }
            return Ok(());
        };
        // A rebuild's files replace the records of the first ones.
        let mut records: Vec<_> = v
            .attributes
            .into_iter()
            .filter(|r| !added.iter().any(|a| a.url == r.url))
            .collect();
        records.extend(added);
        self.db
            .update_video(
                id,
                v.state,
                &records,
                v.ended_at.as_deref(),
                self.webhooks.hook("video.formats"),
            )
            .await?;
        self.webhooks.wake();
        info!(video = %id, "other VOD formats ready");
        Ok(())
    }
}
