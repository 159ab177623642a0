//! The upload adapter's end of a session with the protocol's `backfill`: after the stop, the
//! VOD is rebuilt with the late frames that came (`video::backfill`), its state is set, and its
//! attribute records no longer say frames are coming.

use std::sync::Arc;

use tracing::{info, warn};

use super::{Session, Uploads};
use crate::video::BackfillState;

/// After the stop: waits for the session's VOD, then, with `backfill`, rebuilds it with the
/// late frames that came and says whether the backfill is complete. Once per session.
pub(super) async fn finalize(uploads: &Uploads, session: &Arc<tokio::sync::Mutex<Session>>) {
    let (done, log, late, video_id, complete, mut state) = {
        let mut s = session.lock().await;
        let complete = s.receiver.backfill_complete();
        let state = s.backfill_state(if complete { "complete" } else { "incomplete" });
        (
            s.done.take(),
            s.log.take(),
            std::mem::take(&mut s.late),
            s.video_id.clone(),
            complete,
            state,
        )
    };
    if let Some(done) = done {
        let _ = done.await;
    }
    let Some(log) = log else { return };
    let path = log.path().to_path_buf();
    match log.finish() {
        Ok(path) if !late.is_empty() => {
            uploads.videos.set_backfill_state(
                &video_id,
                BackfillState {
                    state: "pending",
                    ..state
                },
            );
            if let Err(e) = uploads.videos.rebuild_source(&video_id, &path, late).await {
                warn!(video = %video_id, "VOD not rebuilt with the late frames: {e:#}");
                state.state = "incomplete";
            }
        }
        Ok(_) => {}
        Err(e) => {
            warn!(video = %video_id, "source log: {e:#}");
            state.state = "incomplete";
        }
    }
    let _ = std::fs::remove_file(&path);
    // Nothing more will come: records that still say frames are coming are settled.
    if let Err(e) = uploads.videos.settle_frames_coming(&video_id).await {
        warn!(video = %video_id, "attribute records not settled: {e:#}");
    }
    info!(video = %video_id, complete, late_frames = state.frames_received, owed = state.frames_owed, "backfill finished");
    uploads.videos.set_backfill_state(&video_id, state);
}
