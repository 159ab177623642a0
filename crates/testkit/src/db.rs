//! Test databases: an SQLite file in a test's directory, or a fresh database on the test
//! PostgreSQL server named by `VSHARE_TEST_POSTGRES_URL` (set by scripts/test.sh).

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AssertSqlSafe;
use sqlx::any::AnyPoolOptions;

/// What a test says when it skips its PostgreSQL half.
pub const POSTGRES_SKIPPED: &str =
    "VSHARE_TEST_POSTGRES_URL is not set: skipped (scripts/test.sh sets it)";

/// The URL of an SQLite database file `file` in `dir`, created on first use.
pub fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

/// A fresh, empty database named `<prefix>_<unique>` on the test PostgreSQL, or None when
/// `VSHARE_TEST_POSTGRES_URL` is not set.
pub async fn fresh_postgres(prefix: &str) -> Option<String> {
    let base = std::env::var("VSHARE_TEST_POSTGRES_URL").ok()?;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .expect("test postgres");
    let name = format!("{prefix}_{}", unique_suffix());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    let (server, _) = base.rsplit_once('/').expect("url with a database");
    Some(format!("{server}/{name}"))
}

/// [`fresh_postgres`] for tests that run no async runtime of their own.
pub fn fresh_postgres_blocking(prefix: &str) -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(fresh_postgres(prefix))
}

/// Unique across the test processes sharing one server: process id, clock and a counter.
fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}_{nanos}_{n}", std::process::id())
}
