//! What the API, tests and metrics read of the outbox: notification rows per video, source or
//! event, and row counts per state.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Channel, Store, StoreError};
use crate::dispatcher::State;

/// A notification as the API shows it: who, how, and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotificationView {
    pub id: String,
    pub event_id: String,
    pub video_id: String,
    pub source: String,
    pub channel: Channel,
    pub address: String,
    pub form: String,
    pub state: State,
    pub attempts: u32,
    pub smsc_message_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at_ms: i64,
}

impl Store {
    /// Who got (or is getting) a video's notifications, and in what state.
    pub async fn notifications(
        &self,
        video_id: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<NotificationView>, StoreError> {
        const COLS: &str = NOTIFICATION_COLUMNS;
        let rows = match (video_id, source) {
            (Some(v), _) => {
                sqlx::query(self.sql(&format!("{COLS} WHERE video_id = ? ORDER BY id")))
                    .bind(v)
                    .fetch_all(self.database.pool())
                    .await?
            }
            (None, Some(s)) => {
                sqlx::query(self.sql(&format!("{COLS} WHERE source = ? ORDER BY id")))
                    .bind(s)
                    .fetch_all(self.database.pool())
                    .await?
            }
            (None, None) => {
                sqlx::query(self.sql(&format!("{COLS} ORDER BY id")))
                    .fetch_all(self.database.pool())
                    .await?
            }
        };
        rows.iter().map(notification_from_row).collect()
    }

    /// The rows of one event (a share's numbers), by id.
    pub async fn notifications_of(
        &self,
        event_id: &str,
    ) -> Result<Vec<NotificationView>, StoreError> {
        sqlx::query(self.sql(&format!(
            "{NOTIFICATION_COLUMNS} WHERE event_id = ? ORDER BY id"
        )))
        .bind(event_id)
        .fetch_all(self.database.pool())
        .await?
        .iter()
        .map(notification_from_row)
        .collect()
    }

    /// Rows per state (for tests, benchmarks and metrics).
    pub async fn state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM proxy_notifications GROUP BY state ORDER BY state",
        )
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

const NOTIFICATION_COLUMNS: &str = "SELECT id, event_id, video_id, source, channel, address, form, state, attempts, smsc_message_id, last_error, updated_at FROM proxy_notifications";

fn notification_from_row(r: &AnyRow) -> Result<NotificationView, StoreError> {
    Ok(NotificationView {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        video_id: r.try_get(2)?,
        source: r.try_get(3)?,
        channel: Channel::parse(&r.try_get::<String, _>(4)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        address: r.try_get(5)?,
        form: r.try_get(6)?,
        state: r
            .try_get::<String, _>(7)?
            .parse()
            .map_err(StoreError::Corrupt)?,
        attempts: r.try_get::<i64, _>(8)? as u32,
        smsc_message_id: r.try_get(9)?,
        last_error: r.try_get(10)?,
        updated_at_ms: r.try_get(11)?,
    })
}
