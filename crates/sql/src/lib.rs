//! One SQL layer for the server's metadata and the proxy's outbox: SQLite by default,
//! PostgreSQL by URL, with the same portable statements for both.
//!
//! One [`Database`] is opened per process and shared by every role on it: one pool with one set
//! of connection options, and one writer discipline. SQLite has a single writer at a time; a
//! writer that finds the lock taken sleeps in SQLite's busy handler (1, 2, 5 … 100 ms steps), so
//! this process's writers queue on [`Database::writer`] instead, and the busy timeout only covers
//! other processes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, AssertSqlSafe};
use tokio::sync::{Mutex, MutexGuard};

/// How long a connection waits for another process's SQLite write lock before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A shared connection pool: clone it freely.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    postgres: bool,
    write: Arc<Mutex<()>>,
}

impl Database {
    /// Connects: `sqlite://path?mode=rwc` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Database, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres");
        let busy_ms = SQLITE_BUSY_TIMEOUT.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 16 } else { 4 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if !postgres {
                        // Per connection: wait for another process's lock instead of failing;
                        // in WAL mode NORMAL keeps the database consistent across crashes and
                        // spares an fsync per commit (only the last commits before a power
                        // loss may go).
                        sqlx::query(AssertSqlSafe(format!("PRAGMA busy_timeout={busy_ms}")))
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous=NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if !postgres {
            // WAL (a property of the file) lets readers go on while one connection writes.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Database {
            pool,
            postgres,
            write: Arc::default(),
        })
    }

    /// Brings one role's tables up to date. Each role keeps its own migrations in the shared
    /// `_sqlx_migrations` table (the server's from 1, the proxy's from 1001), so versions the
    /// migrator does not know are not an error.
    pub async fn migrate(&self, mut migrator: Migrator) -> Result<(), MigrateError> {
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// A statement with its `?` placeholders as the database wants them. Every statement is a
    /// constant of its module (values are always bound), hence the assertion that it is safe.
    pub fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(placeholders(sql, self.postgres).into_owned())
    }

    /// Holds this process's other SQLite writers back until the guard drops (PostgreSQL: None,
    /// its row locks are enough). Take it before a write's first statement, never twice.
    pub async fn writer(&self) -> Option<MutexGuard<'_, ()>> {
        if self.postgres {
            None
        } else {
            Some(self.write.lock().await)
        }
    }
}

/// `?` placeholders as `$1, $2 …` for PostgreSQL; unchanged for SQLite. The statements hold no
/// `?` inside string literals.
pub fn placeholders(sql: &str, postgres: bool) -> Cow<'_, str> {
    if !postgres {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A random identifier of `n` lowercase letters and digits (no 0/o, 1/l: read aloud, typed from
/// an SMS).
pub fn random_id(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Now, as the rows' RFC 3339 timestamps hold it (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgresql_only() {
        let q = "UPDATE t SET a = ?, b = ? WHERE id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        assert_eq!(placeholders(q, false), q);
        assert_eq!(
            placeholders(q, true),
            "UPDATE t SET a = $1, b = $2 WHERE id IN ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
    }

    #[test]
    fn ids_use_the_unambiguous_alphabet() {
        let id = random_id(64);
        assert_eq!(id.len(), 64);
        assert!(
            id.bytes()
                .all(|b| b"abcdefghijkmnpqrstuvwxyz23456789".contains(&b))
        );
        assert_ne!(random_id(16), random_id(16));
    }

    #[tokio::test]
    async fn one_pool_serialises_this_process_s_writers_and_sets_every_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Database::open(&url).await.expect("open");
        assert!(!db.is_postgres());
        // Every connection of the pool has the busy timeout, not only the first one.
        let mut conns = Vec::new();
        for _ in 0..4 {
            let mut c = db.pool().acquire().await.expect("acquire");
            let row: (i64,) = sqlx::query_as("PRAGMA busy_timeout")
                .fetch_one(&mut *c)
                .await
                .expect("pragma");
            assert_eq!(row.0, SQLITE_BUSY_TIMEOUT.as_millis() as i64);
            conns.push(c);
        }
        drop(conns);
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .expect("mode");
        assert_eq!(mode.0, "wal");
        let guard = db.writer().await;
        assert!(guard.is_some());
        let other = db.clone();
        let waiting = tokio::spawn(async move { other.writer().await.is_some() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a second writer went ahead");
        drop(guard);
        assert!(waiting.await.expect("join"));
    }
}
