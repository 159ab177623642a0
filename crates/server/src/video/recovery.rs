//! Recovery at start-up: recordings that this server (its `instance_id`) left live when it
//! stopped become a playable MP4 and HLS VOD from whatever segments reached storage, marked
//! partial; other video servers' live recordings on a shared database are left alone. Finished
//! videos are handed to the proxy again in case the stop came before their hand-off.

use tracing::{info, warn};
use vshare_proxy::EventKind;

use super::VideoServer;
use super::measured::{Measured, RecordingSizes, vod_records};
use super::recorder::{rebuild, write_mp4};
use crate::db::{Video, VideoState, now_rfc3339};

impl VideoServer {
    /// Finishes recordings that a stopped server left live: whatever segments reached storage
    /// become a playable MP4 and HLS VOD, marked partial.
    pub async fn recover(&self) -> anyhow::Result<()> {
        // Only this server's: another video server on the database records its own.
        let pending = self.db.unfinished_videos(self.config.instance_id()).await?;
        for v in pending {
            match self.recover_one(&v).await {
                Ok(n) => {
                    info!(video = %v.id, segments = n, "recovered interrupted recording");
                    if let Ok(Some(done)) = self.db.get_video(&v.id).await {
                        self.notify_subscribers(
                            EventKind::Ready,
                            &v.id,
                            &v.key_id,
                            done.attributes,
                        )
                        .await;
                    }
                }
                Err(e) => {
                    warn!(video = %v.id, "recovery failed: {e:#}");
                    self.db
                        .update_video(&v.id, VideoState::Partial, &[], Some(&now_rfc3339()), None)
                        .await?;
                }
            }
        }
        // A stop between a video's last update and its hand-off to the proxy would lose the
        // notification: hand the last day's finished videos over again (repeats add nothing).
        if self.proxy.is_some() {
            let since = (chrono::Utc::now() - chrono::Duration::hours(24))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            for v in self
                .db
                .videos_ended_since(VideoState::Ready, &since)
                .await?
            {
                self.notify_subscribers(EventKind::Ready, &v.id, &v.key_id, v.attributes)
                    .await;
            }
        }
        Ok(())
    }

    async fn recover_one(&self, v: &Video) -> anyhow::Result<usize> {
        // The source's recording; transcoded renditions are not recovered (they are made again
        // from the source by whoever needs them).
        let recording = rebuild(&self.storage, &v.id).await?;
        let Some(builder) = &recording.builder else {
            anyhow::bail!("no init segment");
        };
        self.db
            .replace_segments(&v.id, "", &recording.segments)
            .await?;
        let mp4 = write_mp4(&self.storage, &v.id, "", builder, &recording.segments).await?;
        let sizes = RecordingSizes {
            mp4,
            hls: recording.hls_size(),
            duration_us: builder.duration_us(),
        };
        // Picture and sound facts were measured while live and stored with the live record.
        let template = v
            .attributes
            .first()
            .cloned()
            .unwrap_or_else(|| Measured::default().vod_template(&v.id, &v.title));
        let base = format!("{}/vod/{}/", self.public_url, v.id);
        let records = vod_records(&template, &base, sizes);
        self.db
            .update_video(
                &v.id,
                VideoState::Partial,
                &records,
                Some(&now_rfc3339()),
                self.webhooks.hook("video.ready"),
            )
            .await?;
        Ok(recording.segments.len())
    }
}
