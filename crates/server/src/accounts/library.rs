//! The owner's library: deleting a video.
//!
//! In two steps, so that no reader ever sees half a video: first the video is marked deleted
//! (one statement; from then on every path answers 404), then its objects are removed from
//! storage and, last, its rows in one transaction. Each step can be repeated; a server stopped
//! between them finishes the job at its next start ([`purge_deleted`]). Deleting rows first
//! would leave objects nothing points at if the server stopped; deleting objects first would
//! leave a listed video whose files are gone.

use tracing::{info, warn};

use crate::db::{Db, MarkDeleted, VideoState};
use crate::storage::Storage;

/// How far a deletion got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Marked, objects and rows removed.
    Purged,
    /// Marked (gone for readers); its objects are removed at the server's next start.
    ObjectsLeft,
}

/// Why a video was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("video not found")]
    NotFound,
    #[error("video {id} {}", busy_reason(*.state))]
    Busy { id: String, state: VideoState },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn busy_reason(state: VideoState) -> &'static str {
    match state {
        VideoState::Live => "is live: stop publishing first",
        _ => "is still being finished: try again in a few seconds",
    }
}

/// The first step: marks video `id` deleted, so that every path answers 404 from now on.
pub(super) async fn mark_deleted(db: &Db, id: &str) -> Result<(), DeleteError> {
    match db.mark_deleted(id).await? {
        MarkDeleted::Marked => Ok(()),
        MarkDeleted::NotFound => Err(DeleteError::NotFound),
        MarkDeleted::Busy(state) => Err(DeleteError::Busy {
            id: id.to_string(),
            state,
        }),
    }
}

/// The second step: removes a marked video's objects, then its rows; what is left is for
/// [`purge_deleted`] at the next start.
pub(super) async fn purge_marked(db: &Db, storage: &Storage, id: &str) -> Deleted {
    match purge(db, storage, id).await {
        Ok(n) => {
            info!(video = %id, objects = n, "video purged");
            Deleted::Purged
        }
        Err(e) => {
            warn!(video = %id, "objects of a deleted video not removed yet: {e:#}");
            Deleted::ObjectsLeft
        }
    }
}

/// Removes a deleted video's objects, then its rows.
async fn purge(db: &Db, storage: &Storage, id: &str) -> anyhow::Result<usize> {
    let n = storage.delete_video(id).await?;
    db.purge_video(id).await?;
    Ok(n)
}

/// Finishes deletions that a stopped server left half done.
pub async fn purge_deleted(db: Db, storage: Storage) {
    let ids = match db.deleted_videos().await {
        Ok(ids) => ids,
        Err(e) => {
            warn!("deleted videos: {e:#}");
            return;
        }
    };
    for id in ids {
        match purge(&db, &storage, &id).await {
            Ok(n) => info!(video = %id, objects = n, "deleted video purged"),
            Err(e) => warn!(video = %id, "deleted video not purged: {e:#}"),
        }
    }
}
