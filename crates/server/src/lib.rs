//! `vshare serve`: the video server, the streaming live server and the HTTP API in one process.
//!
//! Data path: RTMP [`ingest`] → frames → [`video`] server session (package into LL-HLS parts and
//! segments, record segments to [`storage`], measure attributes) → [`live`] server (publishes
//! LL-HLS over [`api`]) and, when the publisher stops, the fast-start MP4 and HLS VOD, whose
//! attribute records go to the source (API) and the communication proxy ([`webhook`]).

pub mod accounts;
pub mod acme;
pub mod api;
pub mod config;
pub mod conn_limit;
pub mod db;
pub mod files;
pub mod http_serve;
pub mod ingest;
pub mod live;
pub mod live_listen;
pub mod live_push;
pub mod merged_read;
pub mod share;
pub mod shutdown;
pub mod storage;
pub mod tls;
pub mod upload;
pub mod video;
pub mod watching;
pub mod web;
pub mod webhook;
pub mod whep;
pub mod whip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tracing::info;

pub use config::Config;
use config::Role;

/// Addresses a started server listens on.
pub struct Running {
    /// RTMP ingest (the video role only).
    pub rtmp: Option<SocketAddr>,
    /// Where video servers' hand-off connections are accepted (`[live] handoff_listen`).
    pub handoff: Option<SocketAddr>,
    /// The roles this process runs.
    pub roles: Vec<Role>,
    pub http: SocketAddr,
    pub public_url: String,
    /// RTMPS ingest, when configured.
    pub rtmps: Option<SocketAddr>,
    /// The plain-HTTP listener that redirects to https, when configured.
    pub redirect: Option<SocketAddr>,
    /// SHA-256 of the certificate presented now (none with TLS off, or before ACME has one).
    pub tls_fingerprint: Option<String>,
}

/// Part publish latency buckets: 10 ms steps around the part duration, so the benchmark can
/// read p50/p99 off the histogram.
const LATENCY_BUCKETS: [f64; 34] = [
    0.05, 0.1, 0.15, 0.2, 0.25, 0.26, 0.27, 0.28, 0.29, 0.3, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36,
    0.37, 0.38, 0.39, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49, 0.5, 0.6, 0.8,
    1.0, 2.0,
];

fn metrics_handle() -> PrometheusHandle {
    let builder = || {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("vshare_part_publish_latency_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("vshare_vod_ready_seconds".into()),
                    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0],
                )
            })
    };
    match builder().and_then(|b| b.install_recorder()) {
        Ok(handle) => handle,
        // A recorder is already installed (a second server in one process): keep a private one.
        Err(_) => PrometheusBuilder::new().build_recorder().handle(),
    }
}

/// A secret kept in the data directory: read it, or make and store one the first time. The
/// file is readable by its owner only (0600), an older one too.
fn stored_secret(path: &std::path::Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => {
            owner_only(path)?;
            Ok(s.trim().to_string())
        }
        _ => {
            let secret = make();
            write_secret(path, &secret)?;
            Ok(secret)
        }
    }
}

/// The live hand-off's shared secret: `[live] handoff_secret`, else the file
/// `handoff_secret_file` (which only its owner may read), else `<data_dir>/live-handoff.secret`,
/// made the first time.
fn handoff_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    let secret = match (
        &config.live.handoff_secret,
        &config.live.handoff_secret_file,
    ) {
        (Some(s), _) => s.trim().to_string(),
        (None, Some(path)) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                    .permissions()
                    .mode();
                anyhow::ensure!(
                    mode & 0o077 == 0,
                    "{}: others may read the hand-off secret (chmod 600 it)",
                    path.display()
                );
            }
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                .trim()
                .to_string()
        }
        (None, None) => stored_secret(&config.data_dir.join("live-handoff.secret"), || {
            db::random_id(43)
        })?,
    };
    anyhow::ensure!(
        secret.len() >= 16,
        "[live] handoff_secret must be at least 16 bytes"
    );
    Ok(secret.into_bytes())
}

/// Writes a secret file created with mode 0600 (on Unix).
pub fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut f = open
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    owner_only(path)
}

/// Makes a file readable by its owner only (on Unix).
fn owner_only(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The proxy's outbox on the server's database, and what runs it: the communication proxy role
/// with every dispatcher (`[proxy] enabled`), or only the webhook dispatcher for the server's
/// own webhook. Returns the role (None when disabled) and the webhook.
async fn start_outbox(
    config: &Config,
    db: &db::Db,
) -> anyhow::Result<(Option<vshare_proxy::Proxy>, webhook::Webhooks)> {
    let role = &config.proxy;
    let store = vshare_proxy::Store::on(db.database().clone())
        .await
        .map_err(|e| anyhow::anyhow!("proxy tables: {e}"))?;
    let mut pc = vshare_proxy::ProxyConfig::new(&config.database_url());
    pc.sms_limits = config.sms.limits();
    pc.code_ttl_ms = i64::try_from(config.sms.code_ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    pc.code_attempts = config.sms.code_attempts.max(1);
    pc.link_base = Some(config.public_url());
    if let Some(addr) = &role.smsc {
        pc.smpp = Some(vshare_proxy::SmppConfig {
            addr: addr.clone(),
            system_id: role.smsc_system_id.clone(),
            password: role.smsc_password.clone(),
            number: role.number.clone(),
            window: role.window.max(1),
        });
    }
    pc.webhook_secret = match &config.webhook {
        Some(w) => w.secret.clone(),
        None => stored_secret(&config.data_dir.join("proxy-webhook.secret"), || {
            db::random_id(32)
        })?,
    };
    if let Some(w) = &config.webhook {
        pc.policy.webhook_max_attempts = Some(w.max_attempts.max(1));
    }
    pc.egress = vshare_proxy::egress::EgressPolicy::new(
        role.allow_private_destinations,
        &role.allowed_destinations,
    )
    .map_err(|e| anyhow::anyhow!("[proxy] allowed_destinations: {e}"))?;
    // The operator's own webhook goes where the operator says.
    pc.egress.trusted_urls = config.webhook.iter().map(|w| w.url.clone()).collect();
    if !role.enabled {
        let Some(w) = &config.webhook else {
            return Ok((None, webhook::Webhooks::default()));
        };
        let proxy = vshare_proxy::Proxy::on(store, pc);
        tokio::spawn(vshare_proxy::ip::run_webhooks(proxy.clone()));
        return Ok((None, webhook::Webhooks::new(Some(w.clone()), Some(proxy))));
    }
    let vapid_path = config.data_dir.join("vapid.key");
    let vapid = match std::fs::read_to_string(&vapid_path) {
        Ok(k) if !k.trim().is_empty() => {
            owner_only(&vapid_path)?;
            vshare_proxy::webpush::Vapid::from_private(k.trim(), &role.vapid_contact)?
        }
        _ => {
            let (vapid, private) = vshare_proxy::webpush::Vapid::generate(&role.vapid_contact);
            write_secret(&vapid_path, &private)?;
            vapid
        }
    };
    pc.vapid = Some(vapid);
    pc.policy.unconfirmed_grace_ms =
        (role.unconfirmed_grace_s > 0).then(|| role.unconfirmed_grace_s as i64 * 1000);
    if let Some(q) = &role.quiet_hours {
        pc.policy.quiet_hours =
            Some(vshare_proxy::dispatcher::QuietHours::parse(q).map_err(anyhow::Error::msg)?);
    }
    let keys = db.clone();
    let proxy =
        vshare_proxy::Proxy::on(store, pc).with_source_check(Arc::new(move |source: String| {
            let keys = keys.clone();
            Box::pin(async move {
                Ok(keys
                    .list_keys()
                    .await?
                    .iter()
                    .any(|k| !k.revoked && (k.id == source || k.name == source)))
            })
        }));
    proxy.spawn();
    let webhooks = webhook::Webhooks::new(config.webhook.clone(), Some(proxy.clone()));
    Ok((Some(proxy), webhooks))
}

/// Opens the database and storage, recovers interrupted recordings, binds the listeners and
/// serves until the process ends.
pub async fn serve(mut config: Config, on_ready: impl FnOnce(&Running)) -> anyhow::Result<()> {
    if config.tls.mode == config::TlsMode::Acme {
        acme::check(&config)?;
    }
    let video_role = config.has_role(Role::Video);
    if !config.has_role(Role::Proxy) {
        config.proxy.enabled = false;
    }
    anyhow::ensure!(
        config.live.handoff_listen.is_none() || config.has_role(Role::Live),
        "[live] handoff_listen needs the live role"
    );
    anyhow::ensure!(
        config.live.handoff_push.is_empty() || video_role,
        "[live] handoff_push needs the video role"
    );
    anyhow::ensure!(!config.roles.is_empty(), "roles: name at least one role");
    anyhow::ensure!(
        video_role || !config.has_role(Role::Live) || config.live.handoff_listen.is_some(),
        "a live server without the video role needs [live] handoff_listen (--live-listen)"
    );
    let rtmp_listener = match video_role {
        true => Some(
            TcpListener::bind(config.rtmp_listen)
                .await
                .map_err(|e| anyhow::anyhow!("RTMP listen on {}: {e}", config.rtmp_listen))?,
        ),
        false => None,
    };
    let handoff_listener = match config.live.handoff_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("[live] handoff_listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| anyhow::anyhow!("HTTP listen on {}: {e}", config.http_listen))?;
    let rtmps_listener = match video_role {
        true => bind_tls_only(&config, config.tls.rtmps_listen, "rtmps_listen").await?,
        false => None,
    };
    let redirect_listener =
        bind_tls_only(&config, config.tls.redirect_listen, "redirect_listen").await?;
    let rtmp_addr = match &rtmp_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let handoff_addr = match &handoff_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let http_addr = http_listener.local_addr()?;
    if config.public_url.is_none() {
        // With port 0 the real port is known only now; URLs in attribute records need it.
        config.public_url = Some(config.default_public_url(http_addr));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("data directory {}: {e}", config.data_dir.display()))?;
    if config.instance_id.is_none() {
        // Made once per data directory: a restarted video server recovers its own recordings.
        config.instance_id = Some(stored_secret(&config.data_dir.join("instance-id"), || {
            db::random_id(16)
        })?);
    }
    anyhow::ensure!(
        !config.instance_id().is_empty() && config.instance_id().len() <= 64,
        "instance_id must be 1 to 64 bytes"
    );
    let tls = tls::Tls::from_config(&config)?;
    if tls.is_some() && config.public_url().starts_with("http://") {
        tracing::warn!(
            public_url = %config.public_url(),
            "TLS is on but public_url is http://: attribute records and links will not use https"
        );
    }
    let config = Arc::new(config);
    let metrics = metrics_handle();
    let db = db::Db::open(&config.database_url()).await?;
    let storage = storage::Storage::open(
        config.storage_url.as_deref(),
        &config.data_dir.join("media"),
    )?;
    let live = live::LiveServer::new();
    let secret = match handoff_listener.is_some() || !config.live.handoff_push.is_empty() {
        true => Some(handoff_secret(&config)?),
        false => None,
    };
    // Set at SIGTERM/SIGINT: publishers' listeners stop accepting and every publish ends.
    let (stop, stopping) = shutdown::flag();
    // Set once the streams are ended: the HTTP listeners stop accepting and drain.
    let (stop_http, http_stopping) = shutdown::flag();
    // With live servers to push to, messages are applied here and queued for each of them.
    let (live_tx, flusher) = match &secret {
        Some(secret) if !config.live.handoff_push.is_empty() => {
            let (tx, flusher) = live_push::LivePush::start(live.clone(), &config, secret.clone())?;
            (tx, Some(flusher))
        }
        _ => (live.spawn(), None),
    };
    if let (Some(l), Some(secret)) = (handoff_listener, &secret) {
        let listen = live_listen::Listen::new(live.clone(), secret.clone(), &config.live);
        tokio::spawn(listen.run(l, stopping.clone()));
    }
    let ladder = config.transcode.ladder()?;
    let (proxy, webhooks) = start_outbox(&config, &db).await?;
    let whep = match config.webrtc.enabled {
        true => Some(whep::Whep::start(&config.webrtc, http_addr.ip()).await?),
        false => None,
    };
    let videos = video::VideoServer::new(
        db.clone(),
        storage.clone(),
        (live.clone(), live_tx),
        webhooks.clone(),
        config.clone(),
        ladder,
        proxy.clone(),
    )
    .with_whep(whep.clone());
    // Recovery and the deletion purge are the video role's: a live server sharing the
    // database must not finish recordings a video server is still making.
    if video_role {
        videos.recover().await?;
        tokio::spawn(accounts::purge_deleted(db.clone(), storage.clone()));
    }
    let accounts = Arc::new(accounts::Accounts::new(&db, &config).await?);
    let sharing = Arc::new(share::Sharing::new(&config, proxy.clone()));

    let public_url = config.public_url();
    let rtmp_host = url::Url::parse(&public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "127.0.0.1".into());
    let rtmp_url = match rtmp_addr {
        Some(a) => format!("rtmp://{rtmp_host}:{}/live", a.port()),
        None => String::new(),
    };
    let rtmps_addr = match &rtmps_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let rtmps_url = rtmps_addr.map(|a| format!("rtmps://{rtmp_host}:{}/live", a.port()));

    let ingest = Arc::new(ingest::Ingest {
        db: db.clone(),
        videos: videos.clone(),
        idle_timeout: Duration::from_secs(config.limits.rtmp_idle_timeout_s),
        handshake_timeout: Duration::from_secs(config.limits.rtmp_handshake_timeout_s.max(1)),
        max_message_size: config.limits.rtmp_max_message_size,
        merged_read: Duration::from_millis(config.live.merged_read_ms),
        max_command_size: config.limits.rtmp_max_command_size,
        connections: conn_limit::ConnLimiter::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        key_check: Duration::from_secs(config.limits.key_check_s.max(1)),
        stopping: stopping.clone(),
    });
    // Source logs of upload backfills a stopped server left: their sessions are over.
    let _ = std::fs::remove_dir_all(videos.backfill_dir());
    let uploads = upload::Uploads::new(
        db.clone(),
        videos.clone(),
        public_url.clone(),
        Duration::from_secs(config.limits.rtmp_idle_timeout_s),
        Duration::from_secs(config.limits.key_check_s.max(1)),
        config
            .limits
            .upload_backfill
            .then_some(vshare_upload::BackfillLimits {
                max_frames: config.limits.upload_backfill_max_frames,
                max_bytes: config.limits.upload_backfill_max_bytes,
                wait_ms: config.limits.upload_backfill_wait_s.saturating_mul(1000),
            }),
        stopping.clone(),
    );
    let videos_at_stop = videos.clone();
    let uploads_at_stop = uploads.clone();
    let state = Arc::new(api::AppState {
        db,
        storage,
        live,
        videos,
        metrics,
        segment_target: Duration::from_millis(config.live.segment_target_ms),
        part_target: Duration::from_millis(config.live.part_target_ms),
        max_held_parts: config.live.max_held_part_requests,
        admin_token: config.admin_token.clone().filter(|t| !t.is_empty()),
        rtmp_url: rtmp_url.clone(),
        rtmps_url,
        accounts,
        sharing,
        dvr_window_s: config.live.dvr_window_s,
        watching: std::sync::Mutex::new(watching::WatchCounter::new(config.watching.limits())),
        watching_beacon_s: config.watching.beacon_s.max(1),
        media_metrics: api::MediaMetrics::new(Duration::from_millis(config.live.part_target_ms)),
        whep,
    });
    if let Some(l) = rtmp_listener {
        tokio::spawn(ingest.clone().run(l));
    }
    if let (Some(l), Some(t)) = (rtmps_listener, &tls) {
        tokio::spawn(ingest.run_tls(l, t.clone()));
    }
    let challenges = acme::Challenges::default();
    let mut redirect_addr = None;
    if let Some(l) = redirect_listener {
        redirect_addr = Some(l.local_addr()?);
        let router = tls::redirect_router(public_url.clone(), challenges.clone());
        let limits = http_limits(&config);
        tokio::spawn(http_serve::serve(
            l,
            router,
            limits,
            None,
            http_stopping.clone(),
        ));
    }
    if let Some(t) = &tls
        && config.tls.mode == config::TlsMode::Acme
    {
        tokio::spawn(acme::run(config.clone(), t.certs.clone(), challenges));
    }
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    info!(rtmp = %rtmp_url, http = %public_url, roles = ?config.roles, workers, "vshare serving");
    on_ready(&Running {
        rtmp: rtmp_addr,
        handoff: handoff_addr,
        roles: config.roles.clone(),
        http: http_addr,
        public_url,
        rtmps: rtmps_addr,
        redirect: redirect_addr,
        tls_fingerprint: tls.as_ref().and_then(|t| t.certs.fingerprint()),
    });
    let mut app = api::router(state.clone());
    if video_role {
        app = app.merge(
            axum::Router::new()
                .route("/api/v1/upload", axum::routing::get(upload::upgrade))
                .with_state(uploads),
        );
    }
    app = app.merge(web::router());
    if let Some(p) = &proxy {
        app = app.merge(p.router(config.admin_token.clone().filter(|t| !t.is_empty())));
    }
    // Cookie sessions: cross-site state changes are refused on every route.
    app = app.layer(axum::middleware::from_fn_with_state(
        config.public_url(),
        api::same_origin,
    ));
    let hsts = tls
        .as_ref()
        .and_then(|_| tls::hsts_header(config.tls.hsts_max_age_s));
    if let Some(hsts) = hsts.clone() {
        app = app.layer(axum::middleware::map_response(
            move |mut r: axum::response::Response| {
                let hsts = hsts.clone();
                async move {
                    r.headers_mut()
                        .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, hsts);
                    r
                }
            },
        ));
    }
    let app = api::LiveFirst::new(app, state, hsts);
    let mut signals = shutdown::Signals::new();
    let http = tokio::spawn(http_serve::serve(
        http_listener,
        app,
        http_limits(&config),
        tls,
        http_stopping,
    ));
    let signal = signals.next().await;
    let grace = Duration::from_secs(config.limits.shutdown_grace_s);
    info!(
        signal,
        grace_s = grace.as_secs(),
        "stopping: no new publishers; ending every stream"
    );
    // A second signal: out at once.
    tokio::spawn(async move {
        let signal = signals.next().await;
        tracing::warn!(signal, "second signal: exiting now");
        std::process::exit(1);
    });
    let started = tokio::time::Instant::now();
    let stopped = async {
        stop.pull();
        let streams = match video_role {
            true => videos_at_stop.close().await,
            false => 0,
        };
        // Each upload connection sends its sender the VOD records, then closes.
        uploads_at_stop.closed().await;
        let ended_ms = started.elapsed().as_millis() as u64;
        let live_servers = match &flusher {
            Some(f) => f.flush().await,
            None => 0,
        };
        stop_http.pull();
        let _ = http.await;
        (streams, ended_ms, live_servers)
    };
    match tokio::time::timeout(grace, stopped).await {
        Ok((streams, ended_ms, live_servers)) => {
            info!(
                streams,
                streams_ended_ms = ended_ms,
                live_servers_flushed = live_servers,
                took_ms = started.elapsed().as_millis() as u64,
                "stopped"
            );
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "[limits] shutdown_grace_s passed before the stop was done: exiting now \
                 (recovery at the next start finishes unfinished recordings)"
            );
            std::process::exit(1);
        }
    }
}

/// The limits of every HTTP listener (the https address and the redirect listener).
fn http_limits(config: &Config) -> http_serve::HttpLimits {
    http_serve::HttpLimits {
        connections: conn_limit::ConnLimiter::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        header_timeout: Duration::from_secs(config.limits.http_header_timeout_s.max(1)),
        write_stall_timeout: Duration::from_secs(config.limits.http_write_stall_timeout_s.max(1)),
    }
}

/// Binds a listener that only TLS mode has (RTMPS, the redirect); an error with TLS off.
async fn bind_tls_only(
    config: &Config,
    addr: Option<SocketAddr>,
    key: &str,
) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    anyhow::ensure!(
        config.tls.enabled(),
        "[tls] {key} needs TLS on ([tls] mode or --tls)"
    );
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{key} on {addr}: {e}"))?;
    Ok(Some(l))
}
