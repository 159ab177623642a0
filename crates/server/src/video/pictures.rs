//! The pictures of a video: a poster refreshed while it is live and kept for the recording, and
//! the recording's thumbnail sprite with its WebVTT track. A [`PosterWorker`] makes them from the
//! source's keyframes on its own thread; one task stores them beside the recording's other
//! objects, in order, so the newest poster is the one that stays.

use tokio::sync::mpsc;
use tracing::{info, warn};
use vshare_media::MediaEvent;
use vshare_transcode::{Picture, PosterSettings, PosterWorker};

use crate::storage::{Storage, object_path};

/// Object names under the video (`/vod/<id>/…`).
pub const POSTER: &str = "poster.jpg";
pub const SPRITE: &str = "sprite.jpg";
pub const SPRITE_VTT: &str = "sprite.vtt";

/// What was stored by the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stored {
    pub poster: bool,
    pub sprite: bool,
}

/// A session's pictures in the making.
pub struct Pictures {
    worker: PosterWorker,
    store: tokio::task::JoinHandle<Stored>,
}

impl Pictures {
    pub fn start(storage: Storage, id: &str, settings: PosterSettings) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Picture>();
        let worker = PosterWorker::spawn(settings, move |p| {
            let _ = tx.send(p);
        });
        let id = id.to_string();
        let store = tokio::spawn(async move {
            let mut stored = Stored::default();
            while let Some(p) = rx.recv().await {
                match p {
                    Picture::Poster(p) => {
                        match storage.put(&object_path(&id, POSTER), p.jpeg).await {
                            Ok(()) => {
                                stored.poster = true;
                                metrics::counter!("vshare_posters_total").increment(1);
                            }
                            Err(e) => warn!(video = %id, "poster not stored: {e:#}"),
                        }
                    }
                    Picture::Sprite(s) => {
                        let vtt = s.vtt(SPRITE);
                        let put = async {
                            storage.put(&object_path(&id, SPRITE), s.jpeg).await?;
                            storage
                                .put(&object_path(&id, SPRITE_VTT), vtt.into_bytes().into())
                                .await
                        };
                        match put.await {
                            Ok(()) => stored.sprite = true,
                            Err(e) => warn!(video = %id, "thumbnail sprite not stored: {e:#}"),
                        }
                    }
                }
            }
            stored
        });
        Pictures { worker, store }
    }

    /// Offers a source event (never blocks; only video configurations and keyframes are kept).
    pub fn push(&mut self, event: &MediaEvent) {
        self.worker.push(event);
    }

    /// End of the source: the sprite is made and everything is stored.
    pub async fn finish(self, id: &str) -> Stored {
        let worker = self.worker;
        match tokio::task::spawn_blocking(move || worker.finish()).await {
            Ok(s) => info!(
                video = %id,
                posters = s.posters,
                tiles = s.tiles,
                errors = s.errors,
                skipped = s.skipped,
                cpu_ms = s.cpu_ms.unwrap_or(0),
                "pictures made"
            ),
            Err(e) => warn!(video = %id, "the poster thread: {e}"),
        }
        self.store.await.unwrap_or_default()
    }
}
