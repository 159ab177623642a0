//! SMSC delivery receipts (SMPP v3.4 Appendix B): matched to rows by message id, or — for a
//! row whose submit_sm_resp was lost (`unconfirmed`) — by destination and submit time; receipts
//! that come before their row is known wait in `proxy_receipts`.

use sqlx::Row;

use super::{Store, StoreError};

/// Where and when the message of a delivery receipt went: the receipt's source address (the
/// original destination) and its "submit date" (SMPP v3.4 Appendix B, `YYMMDDhhmm`, UTC here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptOrigin {
    pub address: String,
    /// The start of the submit minute, ms since the Unix epoch.
    pub submitted_at_ms: i64,
}

/// What a delivery receipt reports (SMPP v3.4 §5.2.28 message_state, or the Appendix B `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Final: DELIVERED / `DELIVRD`.
    Delivered,
    /// Final: UNDELIVERABLE, EXPIRED, DELETED, REJECTED.
    Failed,
    /// Intermediate: ENROUTE, ACCEPTED, UNKNOWN — the SMSC holds the message (it arrived
    /// there), its fate is not known yet.
    Accepted,
}

impl ReceiptStatus {
    /// The row state a receipt settles a row in.
    fn row_state(self) -> &'static str {
        match self {
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Failed => "failed",
            ReceiptStatus::Accepted => "sent",
        }
    }

    /// As `proxy_receipts.delivered` holds it: 1 delivered, 0 failed, 2 intermediate.
    fn code(self) -> i64 {
        match self {
            ReceiptStatus::Delivered => 1,
            ReceiptStatus::Failed => 0,
            ReceiptStatus::Accepted => 2,
        }
    }

    fn from_code(code: i64) -> ReceiptStatus {
        match code {
            1 => ReceiptStatus::Delivered,
            2 => ReceiptStatus::Accepted,
            _ => ReceiptStatus::Failed,
        }
    }
}

/// One delivery receipt as the receiver bind took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingReceipt {
    /// The SMSC's id of the message (`receipted_message_id`, or the text's `id:`).
    pub message_id: String,
    pub status: ReceiptStatus,
    /// Where and when the message went, when the receipt says so.
    pub origin: Option<ReceiptOrigin>,
}

/// How far before the receipt's submit minute a hand-over may lie and still match (clocks of
/// the SMSC and of the proxy differ a little).
pub const RECEIPT_MATCH_BEFORE_MS: i64 = 60_000;
/// How far after the start of the submit minute (the minute itself, and slack).
pub const RECEIPT_MATCH_AFTER_MS: i64 = 120_000;

impl Store {
    /// An SMSC delivery receipt (SMPP v3.4 Appendix B) for `message_id`.
    pub async fn receipt(
        &self,
        message_id: &str,
        delivered: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.receipt_from(message_id, delivered, None, now_ms).await
    }

    /// A final SMSC delivery receipt for `message_id`, with where and when its message went
    /// (`origin`); see [`Store::receipts`].
    pub async fn receipt_from(
        &self,
        message_id: &str,
        delivered: bool,
        origin: Option<&ReceiptOrigin>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.receipts(
            &[IncomingReceipt {
                message_id: message_id.to_string(),
                status: if delivered {
                    ReceiptStatus::Delivered
                } else {
                    ReceiptStatus::Failed
                },
                origin: origin.cloned(),
            }],
            now_ms,
        )
        .await
    }

    /// Applies delivery receipts, in one transaction (the receiver bind acknowledges them to
    /// the SMSC only after this returns, so a crash makes the SMSC send them again; a receipt
    /// applied twice changes nothing).
    ///
    /// - A final receipt moves the `sent` row with its message id to `delivered` / `failed`.
    /// - A receipt whose id a row already has is done (a repeat, or an intermediate receipt
    ///   for a row that is `sent`).
    /// - Otherwise it settles the `unconfirmed` SMS/WAP row of its destination handed over
    ///   nearest its submit time (within [`RECEIPT_MATCH_BEFORE_MS`]…[`RECEIPT_MATCH_AFTER_MS`]):
    ///   an intermediate receipt makes it `sent` (the SMSC has the message), a final one
    ///   `delivered` / `failed` — unless a message to that number is in flight right now (its
    ///   row `sending`, handed over), whose receipt this may be;
    /// - else it waits in `proxy_receipts`, for a row that is still being sent or not yet
    ///   known to be unconfirmed.
    pub async fn receipts(
        &self,
        receipts: &[IncomingReceipt],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        // Read outside the transaction, which must start with a write on SQLite (a read
        // transaction cannot always be upgraded): the ids rows already have, and whether any
        // row is unconfirmed at all (if one turns unconfirmed meanwhile, the receipt waits and
        // is matched when the row's grace ends, see `requeue_unconfirmed`).
        let mut known = std::collections::HashSet::new();
        for chunk in receipts.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT smsc_message_id FROM proxy_notifications WHERE smsc_message_id IN ({marks})"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for r in chunk {
                q = q.bind(&r.message_id);
            }
            for row in q.fetch_all(self.database.pool()).await? {
                known.insert(row.try_get::<String, _>(0)?);
            }
        }
        let unconfirmed = sqlx::query(
            "SELECT 1 FROM proxy_notifications WHERE state = 'unconfirmed' AND channel IN ('sms', 'wap') LIMIT 1",
        )
        .fetch_optional(self.database.pool())
        .await?
        .is_some();
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        // To wait, one per message (a final receipt over an intermediate one).
        let mut wait: Vec<&IncomingReceipt> = Vec::new();
        for r in receipts {
            if r.status != ReceiptStatus::Accepted {
                let u = sqlx::query(self.sql(
                    "UPDATE proxy_notifications SET state = ?, updated_at = ? WHERE smsc_message_id = ? AND state = 'sent'",
                ))
                .bind(r.status.row_state())
                .bind(now_ms)
                .bind(&r.message_id)
                .execute(&mut *tx)
                .await?;
                if u.rows_affected() > 0 {
                    continue;
                }
            }
            if known.contains(&r.message_id) {
                continue;
            }
            if unconfirmed
                && let Some(o) = &r.origin
                && self
                    .settle_unconfirmed(&mut tx, &r.message_id, r.status, o, now_ms)
                    .await?
            {
                continue;
            }
            match wait.iter_mut().find(|w| w.message_id == r.message_id) {
                Some(w) if w.status == ReceiptStatus::Accepted => *w = r,
                Some(_) => {}
                None => wait.push(r),
            }
        }
        for chunk in wait.chunks(100) {
            let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            // A final receipt replaces a waiting intermediate one of the same message.
            let sql = format!(
                "INSERT INTO proxy_receipts (message_id, delivered, received_at, address, submitted_at) VALUES {rows} \
                 ON CONFLICT (message_id) DO UPDATE SET delivered = excluded.delivered WHERE proxy_receipts.delivered = 2"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for r in chunk {
                q = q
                    .bind(&r.message_id)
                    .bind(r.status.code())
                    .bind(now_ms)
                    .bind(r.origin.as_ref().map(|o| o.address.clone()))
                    .bind(r.origin.as_ref().map(|o| o.submitted_at_ms));
            }
            q.execute(&mut *tx).await?;
        }
        // A row may have been recorded since the ids were read.
        let ids: Vec<&str> = wait.iter().map(|r| r.message_id.as_str()).collect();
        self.apply_waiting_for(&mut tx, &ids, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Settles the `unconfirmed` SMS/WAP row of `origin.address` handed over nearest
    /// `origin.submitted_at_ms` with this receipt; false when there is none in the window, when
    /// a row already has this message id, or when another message to the number is in flight.
    async fn settle_unconfirmed(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        message_id: &str,
        status: ReceiptStatus,
        origin: &ReceiptOrigin,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        // Without a lease a row's hand-over time is gone; its `updated_at` is then the time its
        // send was recorded as unconfirmed (right after it was written to the SMSC).
        let r = sqlx::query(self.sql(
            "UPDATE proxy_notifications SET state = ?, smsc_message_id = ?, updated_at = ?, handed_over_at = NULL, \
             last_error = ? \
             WHERE id = (SELECT id FROM proxy_notifications WHERE state = 'unconfirmed' \
               AND smsc_message_id IS NULL AND channel IN ('sms', 'wap') AND address = ? \
               AND COALESCE(handed_over_at, updated_at) BETWEEN ? AND ? \
               ORDER BY ABS(COALESCE(handed_over_at, updated_at) - ?), id LIMIT 1) \
             AND NOT EXISTS (SELECT 1 FROM proxy_notifications k WHERE k.smsc_message_id = ?) \
             AND NOT EXISTS (SELECT 1 FROM proxy_notifications f WHERE f.state = 'sending' \
               AND f.address = ? AND f.handed_over_at IS NOT NULL AND f.channel IN ('sms', 'wap'))",
        ))
        .bind(status.row_state())
        .bind(message_id)
        .bind(now_ms)
        .bind(match status {
            ReceiptStatus::Accepted => {
                "the SMSC has it: settled by an intermediate receipt matched on destination and submit time"
            }
            _ => "settled by a delivery receipt matched on destination and submit time",
        })
        .bind(&origin.address)
        .bind(origin.submitted_at_ms - RECEIPT_MATCH_BEFORE_MS)
        .bind(origin.submitted_at_ms + RECEIPT_MATCH_AFTER_MS)
        .bind(origin.submitted_at_ms)
        .bind(message_id)
        .bind(&origin.address)
        .execute(&mut **tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Settles `unconfirmed` rows with receipts that arrived (and waited) before the rows were
    /// known to be unconfirmed: a restarted dispatcher can hear receipts for the dead one's
    /// messages before the dead one's leases run out. Returns how many rows were settled.
    pub async fn settle_unconfirmed_with_waiting_receipts(
        &self,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let waiting = sqlx::query(
            "SELECT message_id, delivered, address, submitted_at FROM proxy_receipts WHERE address IS NOT NULL AND submitted_at IS NOT NULL ORDER BY submitted_at",
        )
        .fetch_all(self.database.pool())
        .await?;
        let mut settled = 0;
        for w in &waiting {
            let message_id: String = w.try_get(0)?;
            let origin = ReceiptOrigin {
                address: w.try_get(2)?,
                submitted_at_ms: w.try_get(3)?,
            };
            let status = ReceiptStatus::from_code(w.try_get::<i64, _>(1)?);
            let _w = self.writer().await;
            let mut tx = self.database.pool().begin().await?;
            if self
                .settle_unconfirmed(&mut tx, &message_id, status, &origin, now_ms)
                .await?
            {
                sqlx::query(self.sql("DELETE FROM proxy_receipts WHERE message_id = ?"))
                    .bind(&message_id)
                    .execute(&mut *tx)
                    .await?;
                settled += 1;
            }
            tx.commit().await?;
        }
        Ok(settled)
    }

    /// Queues again the `unconfirmed` SMS/WAP rows that no receipt settled within `grace_ms`
    /// of becoming unconfirmed (the SMSC most likely never got them: a message it accepted
    /// produces a receipt), after a last look at the receipts waiting; a row that has
    /// `max_attempts` behind it is `dead` instead. Returns how many rows were queued or dead.
    pub async fn requeue_unconfirmed(
        &self,
        grace_ms: i64,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let cutoff = now_ms - grace_ms;
        let stale: i64 = sqlx::query(self.sql(
            "SELECT COUNT(*) FROM proxy_notifications WHERE state = 'unconfirmed' AND channel IN ('sms', 'wap') AND updated_at <= ?",
        ))
        .bind(cutoff)
        .fetch_one(self.database.pool())
        .await?
        .try_get(0)?;
        if stale == 0 {
            return Ok(0);
        }
        // Receipts of messages whose rows are known by id are not for these rows.
        self.apply_waiting_receipts(now_ms).await?;
        self.settle_unconfirmed_with_waiting_receipts(now_ms)
            .await?;
        let w = self.writer().await;
        let r = sqlx::query(self.sql(
            "UPDATE proxy_notifications SET state = CASE WHEN attempts >= ? THEN 'dead' ELSE 'queued' END, \
             next_attempt_at = ?, handed_over_at = NULL, lease_owner = NULL, lease_until = 0, updated_at = ?, \
             last_error = CASE WHEN attempts >= ? THEN 'no receipt for it and no attempts left' \
               ELSE 'no receipt within the grace period: the SMSC never got it; sent again' END \
             WHERE state = 'unconfirmed' AND channel IN ('sms', 'wap') AND updated_at <= ?",
        ))
        .bind(i64::from(max_attempts))
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(max_attempts))
        .bind(cutoff)
        .execute(self.database.pool())
        .await?;
        drop(w);
        if r.rows_affected() > 0 {
            tracing::warn!(
                rows = r.rows_affected(),
                "unconfirmed SMS without a receipt after {grace_ms} ms: queued again"
            );
        }
        Ok(r.rows_affected())
    }

    /// Applies the waiting receipts of the messages `ids` (just recorded, or just stored
    /// waiting): finals settle their `sent` rows; receipts whose row is known are removed.
    pub(super) async fn apply_waiting_for(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ids: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Often there is none: look before joining.
        let waiting: i64 = sqlx::query("SELECT COUNT(*) FROM proxy_receipts")
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        if waiting == 0 {
            return Ok(());
        }
        for chunk in ids.chunks(200) {
            let marks = vec!["?"; chunk.len()].join(", ");
            // (Intermediate receipts, code 2, change nothing for a `sent` row.)
            for (delivered, state) in [(1i64, "delivered"), (0, "failed")] {
                let sql = format!(
                    "UPDATE proxy_notifications SET state = ?, updated_at = ? WHERE state = 'sent' AND smsc_message_id IN \
                     (SELECT message_id FROM proxy_receipts WHERE delivered = ? AND message_id IN ({marks}))"
                );
                let mut q = sqlx::query(self.sql(&sql))
                    .bind(state)
                    .bind(now_ms)
                    .bind(delivered);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut **tx).await?;
            }
            let sql = format!(
                "DELETE FROM proxy_receipts WHERE message_id IN ({marks}) AND EXISTS (SELECT 1 FROM proxy_notifications n \
                 WHERE n.smsc_message_id = proxy_receipts.message_id AND (n.state IN ('delivered', 'failed') OR proxy_receipts.delivered = 2))"
            );
            let mut q = sqlx::query(self.sql(&sql));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Applies every waiting receipt whose row is now known by its message id, and removes
    /// those that are done with; a sweep for receipts and records that crossed (each saw the
    /// other not yet committed). Returns how many rows were settled.
    pub async fn apply_waiting_receipts(&self, now_ms: i64) -> Result<u64, StoreError> {
        let waiting: i64 = sqlx::query("SELECT COUNT(*) FROM proxy_receipts")
            .fetch_one(self.database.pool())
            .await?
            .try_get(0)?;
        if waiting == 0 {
            return Ok(0);
        }
        let _w = self.writer().await;
        let mut tx = self.database.pool().begin().await?;
        let mut settled = 0;
        for (delivered, state) in [(1i64, "delivered"), (0, "failed")] {
            settled += sqlx::query(self.sql(
                "UPDATE proxy_notifications SET state = ?, updated_at = ? WHERE state = 'sent' AND smsc_message_id IN (SELECT message_id FROM proxy_receipts WHERE delivered = ?)",
            ))
            .bind(state)
            .bind(now_ms)
            .bind(delivered)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query(
            "DELETE FROM proxy_receipts WHERE EXISTS (SELECT 1 FROM proxy_notifications n WHERE n.smsc_message_id = proxy_receipts.message_id AND (n.state IN ('delivered', 'failed') OR proxy_receipts.delivered = 2))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(settled)
    }
}
