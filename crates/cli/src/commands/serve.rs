use std::net::SocketAddr;
use std::path::PathBuf;

use vshare_server::Config;
use vshare_server::config::WebhookConfig;
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
    /// Async worker threads for ingest, packaging and HTTP. One thread avoids cross-thread
    /// wake-ups per frame (about 30 % less CPU per stream here); transcoding, file writers and
    /// the database have threads of their own regardless. Raise it for many HTTP viewers.
    #[arg(long, env = "VSHARE_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Bearer token that opens the admin endpoints (creating stream keys, the proxy's
    /// subscription admin); unset, they stay closed.
    #[arg(long, env = "VSHARE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Run without the communication proxy role (no subscriptions).
    #[arg(long)]
    pub no_proxy: bool,
    /// Seconds of silence after which a publisher is disconnected [default: 10].
    #[arg(long, env = "VSHARE_RTMP_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
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
        Ok(c)
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let data = config.data_dir.clone();
    vshare_server::serve(config, |r| {
        let host = r.public_url.trim_start_matches("http://").trim_start_matches("https://");
        let host = host.split(':').next().unwrap_or("127.0.0.1");
        println!("vshare is serving.");
        println!("  publish: rtmp://{host}:{}/live/<stream key>   (make a key: vshare keys create --data {})", r.rtmp.port(), data.display());
        println!("  watch:   {}/   (live: /live/<video>/index.m3u8, VOD: /vod/<video>/video.mp4)", r.public_url);
        println!("  API:     {}/api/v1/videos   metrics: {}/metrics", r.public_url, r.public_url);
    })
    .await
}
