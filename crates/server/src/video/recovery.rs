//! Recovery at start-up: recordings that this server (its `instance_id`) left live when it
//! stopped become a playable MP4 and HLS VOD from whatever segments reached storage, marked
//! partial; other video servers' live recordings on a shared database are left alone. Finished
//! videos are handed to the proxy again in case the stop came before their hand-off. Live
//! servers fed over the hand-off still hold the interrupted stream's stalled window: each is
//! sent its end, an ended playlist over the recovered segments, so players stop waiting.

use tracing::{info, warn};
use vshare_proxy::EventKind;

use super::VideoServer;
use super::measured::{Measured, RecordingSizes, vod_records};
use super::recorder::{rebuild, write_mp4};
use crate::db::{SegmentRow, Video, VideoState, now_rfc3339};
use crate::live::LiveMessage;

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
        self.end_interrupted_stream(&v.id, &recording.segments);
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

impl VideoServer {
    /// Ends an interrupted live stream on every live server (and here): its playlist becomes
    /// the recovered segments, read from the VOD (`/live/<id>/` → `../../vod/<id>/`), with
    /// EXT-X-ENDLIST. A live server that is not connected yet gets it in its first resync.
    /// Transcoded renditions are not recovered; live servers forget them after
    /// `handoff_orphan_s`.
    fn end_interrupted_stream(&self, id: &str, segments: &[SegmentRow]) {
        let vod = format!("../../vod/{id}/");
        let list: Vec<vshare_package::VodSegment> = segments
            .iter()
            .map(|s| vshare_package::VodSegment {
                uri: format!("{vod}seg{}.m4s", s.msn),
                duration_us: s.duration_us,
                init_uri: format!("{vod}{}", s.init_name),
            })
            .collect();
        let playlist = vshare_package::vod_playlist_segments(&list, true);
        let _ = self.live_tx.send(LiveMessage::End {
            stream: id.to_string(),
            playlist: playlist.into(),
        });
        // As for a stream that ended while running: kept a while for players still on it.
        let live = self.live.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            live.remove(&id);
        });
    }
}
