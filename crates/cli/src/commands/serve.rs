use std::net::SocketAddr;
use std::path::PathBuf;

use vshare_server::Config;
use vshare_server::config::{Role, TlsMode, WebhookConfig};
use vshare_transcode::{FileFormat, FileSpec};

/// Flags override the config file; each flag can also come from its VSHARE_* variable.
#[derive(clap::Args)]
pub struct Args {
    /// TOML config file (see docs/configuration.md); flags and environment override it.
    #[arg(long, env = "VSHARE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory for the SQLite database and the recordings [default: ./data].
    #[arg(long, env = "VSHARE_DATA")]
    pub data: Option<PathBuf>,
    /// RTMP listen address [default: 0.0.0.0:1935].
    #[arg(long, env = "VSHARE_RTMP_LISTEN")]
    pub rtmp: Option<SocketAddr>,
    /// HTTP listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "VSHARE_HTTP_LISTEN")]
    pub http: Option<SocketAddr>,
    /// Base URL phones use to reach the HTTP address (goes into every attribute record).
    #[arg(long, env = "VSHARE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Database URL: sqlite://PATH or postgres://… [default: sqlite://DATA/vshare.db].
    #[arg(long, env = "VSHARE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Object storage for recordings: s3://bucket/prefix or file:///dir [default: DATA/media].
    #[arg(long, env = "VSHARE_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// URL that receives a signed POST when a stream goes live and when a VOD is ready.
    #[arg(long, env = "VSHARE_WEBHOOK_URL", requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 secret for the webhook signature header.
    #[arg(long, env = "VSHARE_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// LL-HLS partial segment target, ms [default: 333].
    #[arg(long, env = "VSHARE_PART_TARGET_MS")]
    pub part_target_ms: Option<u64>,
    /// LL-HLS segment target, ms [default: 2000].
    #[arg(long, env = "VSHARE_SEGMENT_TARGET_MS")]
    pub segment_target_ms: Option<u64>,
    /// Renditions made from every stream: default (source + 720p/480p/240p where smaller than
    /// the source), phone, or none (no transcoding) [default: default].
    #[arg(long, env = "VSHARE_LADDER")]
    pub ladder: Option<String>,
    /// VOD files in other formats, besides MP4 and HLS per rendition: a comma list of webm
    /// (VP9 + Opus) and 3gp (H.263 + AAC, for old phones) [default: none].
    #[arg(long, env = "VSHARE_VOD_FORMATS", value_delimiter = ',')]
    pub vod_formats: Option<Vec<String>>,
    /// SMSC (host:port, SMPP v3.4) through which the proxy role sends SMS and WAP Push to
    /// subscribers, and receives their SUB/YES/STOP messages.
    #[arg(long, env = "VSHARE_SMSC")]
    pub smsc: Option<String>,
    /// system_id for the SMSC bind [default: vshare].
    #[arg(long, env = "VSHARE_SMSC_SYSTEM_ID")]
    pub smsc_system_id: Option<String>,
    /// Password for the SMSC bind.
    #[arg(long, env = "VSHARE_SMSC_PASSWORD", hide_env_values = true)]
    pub smsc_password: Option<String>,
    /// The proxy's own number (sender of its SMS; subscribers text SUB <source> to it).
    #[arg(long, env = "VSHARE_PROXY_NUMBER")]
    pub proxy_number: Option<String>,
    /// Bearer token that opens the admin endpoints (creating stream keys, the proxy's
    /// subscription admin); unset, they stay closed.
    #[arg(long, env = "VSHARE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Async worker threads for ingest, packaging and HTTP [default: one per CPU core].
    /// One thread avoids cross-thread wake-ups (less CPU per publisher); more serve more
    /// viewers. Transcoding, file writers and the database have threads of their own.
    #[arg(long, env = "VSHARE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Run without the communication proxy role (no subscriptions).
    #[arg(long)]
    pub no_proxy: bool,
    /// Seconds of silence after which a publisher is disconnected [default: 10].
    #[arg(long, env = "VSHARE_RTMP_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// TLS on the HTTP address: off, files (--tls-cert, --tls-key), self-signed (made on first
    /// run for --tls-name, localhost and the public URL's host) or acme [default: off].
    #[arg(long, env = "VSHARE_TLS")]
    pub tls: Option<TlsMode>,
    /// PEM certificate chain (--tls files).
    #[arg(long, env = "VSHARE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (--tls files).
    #[arg(long, env = "VSHARE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Host names and IP addresses for the certificate, comma separated (self-signed, acme).
    #[arg(long, env = "VSHARE_TLS_NAMES", value_delimiter = ',')]
    pub tls_name: Option<Vec<String>>,
    /// Plain-HTTP address that redirects to https (and answers ACME challenges), e.g. 0.0.0.0:80.
    #[arg(long, env = "VSHARE_HTTP_REDIRECT")]
    pub http_redirect: Option<SocketAddr>,
    /// RTMPS (RTMP over TLS) ingest address, e.g. 0.0.0.0:443 [default: none].
    #[arg(long, env = "VSHARE_RTMPS_LISTEN")]
    pub rtmps: Option<SocketAddr>,
    /// ACME directory URL [default: Let's Encrypt].
    #[arg(long, env = "VSHARE_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// ACME account contact, e.g. mailto:admin@example.com.
    #[arg(long, env = "VSHARE_ACME_CONTACT")]
    pub acme_contact: Option<String>,
    /// PEM root for the ACME directory's own https certificate (a test CA).
    #[arg(long, env = "VSHARE_ACME_CA")]
    pub acme_ca: Option<PathBuf>,
    /// The roles this process runs, comma separated: video, live, proxy [default: all three].
    #[arg(long, env = "VSHARE_ROLES", value_delimiter = ',')]
    pub roles: Option<Vec<Role>>,
    /// Live role: accept video servers' hand-off connections on this address.
    #[arg(long, env = "VSHARE_LIVE_LISTEN")]
    pub live_listen: Option<SocketAddr>,
    /// Video role: push every stream to these live servers (tcp://HOST:PORT, comma separated).
    #[arg(long, env = "VSHARE_LIVE_PUSH", value_delimiter = ',')]
    pub live_push: Option<Vec<String>>,
    /// Base URL of the live servers: what live attribute records name [default: --public-url].
    #[arg(long, env = "VSHARE_LIVE_PUBLIC_URL")]
    pub live_public_url: Option<String>,
    /// The live hand-off's shared secret (at least 16 bytes) [default: from
    /// --live-handoff-secret-file, else DATA/live-handoff.secret].
    #[arg(long, env = "VSHARE_LIVE_HANDOFF_SECRET", hide_env_values = true)]
    pub live_handoff_secret: Option<String>,
    /// File holding the live hand-off's shared secret (readable by its owner only).
    #[arg(long, env = "VSHARE_LIVE_HANDOFF_SECRET_FILE")]
    pub live_handoff_secret_file: Option<PathBuf>,
}

impl Args {
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.data {
            c.data_dir = v;
        }
        if let Some(v) = self.rtmp {
            c.rtmp_listen = v;
        }
        if let Some(v) = self.http {
            c.http_listen = v;
        }
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        if self.database_url.is_some() {
            c.database_url = self.database_url;
        }
        if self.storage_url.is_some() {
            c.storage_url = self.storage_url;
        }
        if let Some(v) = self.workers {
            c.workers = v.into();
        }
        if self.admin_token.is_some() {
            c.admin_token = self.admin_token;
        }
        if let (Some(url), Some(secret)) = (self.webhook_url, self.webhook_secret) {
            c.webhook = Some(WebhookConfig {
                url,
                secret,
                max_attempts: 8,
            });
        }
        if let Some(v) = self.part_target_ms {
            anyhow::ensure!(
                (100..=2000).contains(&v),
                "--part-target-ms must be 100..=2000, got {v}"
            );
            c.live.part_target_ms = v;
        }
        if let Some(v) = self.segment_target_ms {
            anyhow::ensure!(
                (500..=10000).contains(&v),
                "--segment-target-ms must be 500..=10000, got {v}"
            );
            c.live.segment_target_ms = v;
        }
        if let Some(v) = self.ladder {
            c.transcode.ladder = v;
            c.transcode.renditions = None;
        }
        c.transcode.ladder()?;
        if self.smsc.is_some() {
            c.proxy.smsc = self.smsc;
        }
        if let Some(v) = self.smsc_system_id {
            c.proxy.smsc_system_id = v;
        }
        if let Some(v) = self.smsc_password {
            c.proxy.smsc_password = v;
        }
        if let Some(v) = self.proxy_number {
            c.proxy.number = v;
        }
        if self.no_proxy {
            c.proxy.enabled = false;
        }
        if let Some(formats) = self.vod_formats {
            c.transcode.files = formats
                .iter()
                .filter(|f| !f.trim().is_empty())
                .map(|f| match f.trim() {
                    "webm" => Ok(FileSpec::new(FileFormat::Webm)),
                    "3gp" => Ok(FileSpec::new(FileFormat::ThreeGp)),
                    other => Err(anyhow::anyhow!(
                        "--vod-formats: unknown format {other:?} (webm, 3gp)"
                    )),
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(v) = self.idle_timeout {
            anyhow::ensure!(v > 0, "--idle-timeout must be at least 1 second");
            c.limits.rtmp_idle_timeout_s = v;
        }
        if let Some(v) = self.tls {
            c.tls.mode = v;
        }
        if self.tls_cert.is_some() {
            c.tls.cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.tls.key = self.tls_key;
        }
        if let Some(v) = self.tls_name {
            c.tls.names = v.into_iter().filter(|n| !n.trim().is_empty()).collect();
        }
        if self.http_redirect.is_some() {
            c.tls.redirect_listen = self.http_redirect;
        }
        if self.rtmps.is_some() {
            c.tls.rtmps_listen = self.rtmps;
        }
        if let Some(v) = self.acme_directory {
            c.tls.acme_directory = v;
        }
        if let Some(v) = self.acme_contact {
            c.tls.acme_contact = vec![v];
        }
        if self.acme_ca.is_some() {
            c.tls.acme_ca_file = self.acme_ca;
        }
        if let Some(v) = self.roles {
            c.roles = v;
        }
        if self.live_listen.is_some() {
            c.live.handoff_listen = self.live_listen;
        }
        if let Some(v) = self.live_push {
            c.live.handoff_push = v.into_iter().filter(|u| !u.trim().is_empty()).collect();
        }
        if self.live_public_url.is_some() {
            c.live.public_url = self.live_public_url;
        }
        if self.live_handoff_secret.is_some() {
            c.live.handoff_secret = self.live_handoff_secret;
        }
        if self.live_handoff_secret_file.is_some() {
            c.live.handoff_secret_file = self.live_handoff_secret_file;
        }
        Ok(c)
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let data = config.data_dir.clone();
    vshare_server::serve(config, |r| {
        let host = url_host(&r.public_url);
        println!("vshare is serving.");
        let roles: Vec<&str> = r.roles.iter().map(|r| match r {
            Role::Video => "video",
            Role::Live => "live",
            Role::Proxy => "proxy",
        }).collect();
        println!("  roles:   {}", roles.join(","));
        if let Some(rtmp) = r.rtmp {
            println!("  publish: rtmp://{host}:{}/live/<stream key>   (make a key: vshare keys create --data {})", rtmp.port(), data.display());
        }
        if let Some(h) = r.handoff {
            println!("  hand-off: video servers push to tcp://{h}");
        }
        if let Some(rtmps) = r.rtmps {
            println!("  publish over TLS: rtmps://{host}:{}/live/<stream key>", rtmps.port());
        }
        println!("  watch:   {}/   (live: /live/<video>/index.m3u8, VOD: /vod/<video>/video.mp4)", r.public_url);
        println!("  API:     {}/api/v1/videos   metrics: {}/metrics", r.public_url, r.public_url);
        if let Some(redirect) = r.redirect {
            println!("  redirect: http on port {} answers 308 to {}/", redirect.port(), r.public_url);
        }
        if let Some(fp) = &r.tls_fingerprint {
            println!("  certificate SHA-256: {fp}");
        }
        if r.public_url.starts_with("https://") {
            let studio = format!("{}/studio", r.public_url);
            println!("  studio:  {studio}   (scan with a phone on the same network)");
            if let Some(qr) = qr_text(&studio) {
                println!("{qr}");
            }
        }
    })
    .await
}

/// The host of a URL as it appears in it (an IPv6 address keeps its brackets).
fn url_host(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => {
            h.to_string()
        }
        _ => authority.to_string(),
    }
}

/// A QR code of `text` drawn with Unicode half blocks, two modules a character.
fn qr_text(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}
