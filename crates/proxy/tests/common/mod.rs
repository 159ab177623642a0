//! Helpers shared by the proxy's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use vshare_attributes::{AttributeRecord, Kind};
use vshare_proxy::dispatcher::Policy;
use vshare_proxy::{Event, EventKind, ProxyConfig, SmppConfig};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn record(video_id: &str) -> AttributeRecord {
    AttributeRecord {
        kind: Kind::Live,
        video_id: video_id.into(),
        url: format!("http://127.0.0.1:8080/live/{video_id}/index.m3u8"),
        poster: String::new(),
        format: "ll-hls".into(),
        codecs: "avc1.42c01e,mp4a.40.2".into(),
        width: 640,
        height: 360,
        frame_rate: 30.0,
        bitrate: 800_000,
        size: 0,
        duration_ms: 0,
        dvr: 0,
        frames_coming: 0,
        audio_sample_rate: 44_100,
        audio_channels: 2,
        title: "test".into(),
    }
}

pub fn live_event(video_id: &str, source: &str) -> Event {
    Event::new(
        EventKind::Live,
        video_id,
        &format!("id-{source}"),
        Some(source),
        vec![record(video_id)],
    )
}

pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    vshare_testkit::db::sqlite_url(dir.path(), "proxy.db")
}

/// A fresh database on the test PostgreSQL (`VSHARE_TEST_POSTGRES_URL`, from
/// `scripts/postgres.sh`). Panics with a clear message when it is not set.
pub async fn fresh_postgres() -> String {
    vshare_testkit::db::fresh_postgres("vshare_proxy_test")
        .await
        .expect(
            "VSHARE_TEST_POSTGRES_URL is not set: run `export VSHARE_TEST_POSTGRES_URL=$(scripts/postgres.sh)`",
        )
}

/// Fast retries for tests.
pub fn fast_policy() -> Policy {
    Policy {
        max_attempts: 4,
        backoff_initial_ms: 100,
        backoff_max_ms: 1_000,
        jitter: 0.2,
        // An unconfirmed SMS waits 3 s for a receipt before it goes again.
        unconfirmed_grace_ms: Some(3_000),
        ..Policy::default()
    }
}

pub fn config(url: &str, smsc: Option<&str>) -> ProxyConfig {
    let mut c = ProxyConfig::new(url);
    c.policy = fast_policy();
    c.webhook_secret = "s3cret".into();
    c.webhook_timeout = Duration::from_millis(500);
    c.lease = Duration::from_secs(2);
    // The test receivers and push services listen on loopback.
    c.egress.allow_private = true;
    c.smpp = smsc.map(|addr| SmppConfig {
        addr: addr.into(),
        system_id: "proxy".into(),
        password: "pw".into(),
        number: "+10000".into(),
        window: 64,
    });
    c
}

/// Code rules for tests: ten minutes, five attempts.
pub const RULES: vshare_proxy::store::CodeRules = vshare_proxy::store::CodeRules {
    ttl_ms: 600_000,
    attempts: 5,
};

/// [`Store::subscribe`](vshare_proxy::Store::subscribe) without an SMS guard, for tests: the new
/// subscription, or an error when it exists already.
pub trait SubscribeForTest {
    async fn subscribe_test(
        &self,
        req: &vshare_proxy::NewSubscription,
        now_ms: i64,
    ) -> Result<vshare_proxy::Subscription, vshare_proxy::StoreError>;
}

impl SubscribeForTest for vshare_proxy::Store {
    async fn subscribe_test(
        &self,
        req: &vshare_proxy::NewSubscription,
        now_ms: i64,
    ) -> Result<vshare_proxy::Subscription, vshare_proxy::StoreError> {
        match self.subscribe(req, now_ms, RULES, |_| Ok(())).await? {
            vshare_proxy::store::Subscribed::Created(s) => Ok(s),
            vshare_proxy::store::Subscribed::Exists => Err(vshare_proxy::StoreError::Invalid(
                "subscribed already".into(),
            )),
        }
    }
}
