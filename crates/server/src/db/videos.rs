//! Videos: creation and updates (with the webhook queued in the same transaction), listings,
//! who may watch them, and deletion.

use sqlx::Row;
use vshare_attributes::AttributeRecord;

use super::{
    Db, MarkDeleted, VIDEO_COLUMNS, Video, VideoAccess, VideoState, Visibility, now_rfc3339,
    video_from_row,
};

impl Db {
    /// The videos published with a user's keys, newest first.
    pub async fn user_videos(&self, user_id: &str) -> anyhow::Result<Vec<Video>> {
        let rows = sqlx::query(self.sql(
            "SELECT v.id, v.key_id, v.title, v.state, v.created_at, v.ended_at, v.attributes, v.visibility, v.instance_id \
             FROM videos v JOIN stream_keys k ON k.id = v.key_id \
             WHERE k.user_id = ? AND v.deleted_at IS NULL ORDER BY v.created_at DESC",
        ))
        .bind(user_id)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(video_from_row).collect()
    }

    /// Visibility, owner and state of a video that exists and is not being deleted.
    pub async fn video_access(&self, id: &str) -> anyhow::Result<Option<VideoAccess>> {
        let row = sqlx::query(self.sql(
            "SELECT v.visibility, v.state, k.user_id FROM videos v LEFT JOIN stream_keys k ON k.id = v.key_id \
             WHERE v.id = ? AND v.deleted_at IS NULL",
        ))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| {
            let visibility: String = r.try_get("visibility")?;
            let state: String = r.try_get("state")?;
            Ok(VideoAccess {
                visibility: Visibility::parse(&visibility).ok_or_else(|| {
                    anyhow::anyhow!("unknown visibility {visibility:?} in the database")
                })?,
                owner: r.try_get("user_id")?,
                state: VideoState::parse(&state)?,
            })
        })
        .transpose()
    }

    pub async fn set_visibility(&self, id: &str, visibility: Visibility) -> anyhow::Result<bool> {
        let _writer = self.database.writer().await;
        let done = sqlx::query(
            self.sql("UPDATE videos SET visibility = ? WHERE id = ? AND deleted_at IS NULL"),
        )
        .bind(visibility.as_str())
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// First step of a deletion: from this statement on, the video is gone for every reader.
    /// Refused while the video is live or finishing (its objects are still being written).
    pub async fn mark_deleted(&self, id: &str) -> anyhow::Result<MarkDeleted> {
        let _writer = self.database.writer().await;
        let done = sqlx::query(self.sql(
            "UPDATE videos SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL \
             AND state <> 'live' AND state <> 'finishing'",
        ))
        .bind(now_rfc3339())
        .bind(id)
        .execute(self.database.pool())
        .await?;
        if done.rows_affected() > 0 {
            return Ok(MarkDeleted::Marked);
        }
        Ok(match self.video_access(id).await? {
            Some(a) => MarkDeleted::Busy(a.state),
            None => MarkDeleted::NotFound,
        })
    }

    /// Videos marked deleted whose objects and rows may still be there.
    pub async fn deleted_videos(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM videos WHERE deleted_at IS NOT NULL")
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Last step of a deletion (its objects are gone): the video's rows, in one transaction.
    pub async fn purge_video(&self, id: &str) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(self.sql("DELETE FROM rendition_segments WHERE video_id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql("DELETE FROM videos WHERE id = ? AND deleted_at IS NOT NULL"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_video(&self, v: &Video) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        sqlx::query(self.sql(
            "INSERT INTO videos (id, key_id, title, state, created_at, ended_at, attributes, visibility, instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&v.id)
        .bind(&v.key_id)
        .bind(&v.title)
        .bind(v.state.as_str())
        .bind(&v.created_at)
        .bind(v.ended_at.clone())
        .bind(serde_json::to_string(&v.attributes)?)
        .bind(v.visibility.as_str())
        .bind(&v.instance_id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Updates a video; with `hook`, queues the webhook about it in the same transaction (in
    /// the proxy's outbox), so the hand-off is never lost between the two.
    pub async fn update_video(
        &self,
        id: &str,
        state: VideoState,
        attributes: &[AttributeRecord],
        ended_at: Option<&str>,
        hook: Option<crate::webhook::Hook>,
    ) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(
            self.sql("UPDATE videos SET state = ?, attributes = ?, ended_at = ? WHERE id = ?"),
        )
        .bind(state.as_str())
        .bind(serde_json::to_string(attributes)?)
        .bind(ended_at.map(str::to_string))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(hook) = hook {
            let row = sqlx::query(self.sql(&format!("{VIDEO_COLUMNS} WHERE id = ?")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let video = video_from_row(&row)?;
            let body = serde_json::json!({ "event": hook.event, "video": video }).to_string();
            let message = hook.message(&video.key_id, id, body);
            vshare_proxy::direct::queue_on(
                &mut tx,
                &self.database,
                &message,
                chrono::Utc::now().timestamp_millis(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A video, unless it does not exist or is being deleted.
    pub async fn get_video(&self, id: &str) -> anyhow::Result<Option<Video>> {
        let row = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE id = ? AND deleted_at IS NULL"
        )))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| video_from_row(&r)).transpose()
    }

    /// Videos (public and private), newest first; only those in `state` when given.
    pub async fn list_videos(&self, state: Option<VideoState>) -> anyhow::Result<Vec<Video>> {
        self.list_where(state, "").await
    }

    /// Public videos, newest first; only those in `state` when given.
    pub async fn list_public_videos(
        &self,
        state: Option<VideoState>,
    ) -> anyhow::Result<Vec<Video>> {
        self.list_where(state, " AND visibility = 'public'").await
    }

    async fn list_where(
        &self,
        state: Option<VideoState>,
        and: &'static str,
    ) -> anyhow::Result<Vec<Video>> {
        let rows = match state {
            Some(s) => {
                sqlx::query(self.sql(&format!(
                    "{VIDEO_COLUMNS} WHERE deleted_at IS NULL AND state = ?{and} ORDER BY created_at DESC"
                )))
                .bind(s.as_str())
                .fetch_all(self.database.pool())
                .await?
            }
            None => {
                sqlx::query(self.sql(&format!(
                    "{VIDEO_COLUMNS} WHERE deleted_at IS NULL{and} ORDER BY created_at DESC"
                )))
                .fetch_all(self.database.pool())
                .await?
            }
        };
        rows.iter().map(video_from_row).collect()
    }

    /// Live and finishing videos that the video server `instance_id` left unfinished, and those
    /// of rows older than the instance column: what its recovery may finish. Other video
    /// servers' recordings on a shared database are theirs.
    pub async fn unfinished_videos(&self, instance_id: &str) -> anyhow::Result<Vec<Video>> {
        let rows = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE deleted_at IS NULL AND state IN ('live', 'finishing') \
             AND (instance_id = ? OR instance_id = '') ORDER BY created_at"
        )))
        .bind(instance_id)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(video_from_row).collect()
    }

    /// Videos in `state` that ended at or after `since` (RFC 3339, as stored).
    pub async fn videos_ended_since(
        &self,
        state: VideoState,
        since: &str,
    ) -> anyhow::Result<Vec<Video>> {
        let rows = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE state = ? AND ended_at >= ? AND deleted_at IS NULL ORDER BY created_at"
        )))
        .bind(state.as_str())
        .bind(since)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(video_from_row).collect()
    }

    pub async fn latest_video_for_key(&self, key_id: &str) -> anyhow::Result<Option<Video>> {
        let row = sqlx::query(self.sql(&format!(
            "{VIDEO_COLUMNS} WHERE key_id = ? AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(key_id)
        .fetch_optional(self.database.pool())
        .await?;
        row.map(|r| video_from_row(&r)).transpose()
    }
}
