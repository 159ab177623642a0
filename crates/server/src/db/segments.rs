//! Recorded segments: one row per stored segment of a rendition, in order.

use sqlx::Row;

use super::{Db, SegmentRow};

impl Db {
    /// Records a stored segment of a rendition (`""` is the source as received).
    pub async fn add_segment(
        &self,
        video_id: &str,
        rendition: &str,
        seg: &SegmentRow,
    ) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        sqlx::query(self.sql(INSERT_SEGMENT))
            .bind(video_id)
            .bind(rendition)
            .bind(seg.msn)
            .bind(seg.duration_us)
            .bind(seg.size)
            .bind(&seg.init_name)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    pub async fn segments(
        &self,
        video_id: &str,
        rendition: &str,
    ) -> anyhow::Result<Vec<SegmentRow>> {
        let rows = sqlx::query(self.sql(
            "SELECT msn, duration_us, size, init_name FROM rendition_segments WHERE video_id = ? AND rendition = ? ORDER BY msn",
        ))
        .bind(video_id)
        .bind(rendition)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentRow {
                    msn: r.try_get("msn")?,
                    duration_us: r.try_get("duration_us")?,
                    size: r.try_get("size")?,
                    init_name: r.try_get("init_name")?,
                })
            })
            .collect()
    }

    /// Replaces a rendition's segment list (used when a recording is recovered from storage).
    pub async fn replace_segments(
        &self,
        video_id: &str,
        rendition: &str,
        segs: &[SegmentRow],
    ) -> anyhow::Result<()> {
        let _writer = self.database.writer().await;
        let mut tx = self.database.pool().begin().await?;
        sqlx::query(
            self.sql("DELETE FROM rendition_segments WHERE video_id = ? AND rendition = ?"),
        )
        .bind(video_id)
        .bind(rendition)
        .execute(&mut *tx)
        .await?;
        for seg in segs {
            sqlx::query(self.sql(INSERT_SEGMENT))
                .bind(video_id)
                .bind(rendition)
                .bind(seg.msn)
                .bind(seg.duration_us)
                .bind(seg.size)
                .bind(&seg.init_name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One recorded segment's row (add_segment, replace_segments).
const INSERT_SEGMENT: &str = "INSERT INTO rendition_segments (video_id, rendition, msn, duration_us, size, init_name) VALUES (?, ?, ?, ?, ?, ?)";
