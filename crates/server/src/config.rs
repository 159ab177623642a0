//! Server configuration: embedded defaults, a TOML file, then flags and environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `vshare serve` can be told. Every field has a default that runs on one machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Local data directory: the SQLite database and the recordings live here by default.
    pub data_dir: PathBuf,
    /// RTMP ingest address.
    pub rtmp_listen: SocketAddr,
    /// HTTP address (LL-HLS, VOD, API, metrics).
    pub http_listen: SocketAddr,
    /// Base URL that phones use to reach the HTTP address; the URLs in attribute records start
    /// with it. Default: `http://<http_listen>` with 127.0.0.1 for an unspecified address.
    pub public_url: Option<String>,
    /// `sqlite://…` (default `sqlite://<data_dir>/vshare.db`) or `postgres://…`.
    pub database_url: Option<String>,
    /// Object storage for recordings: a local directory (default `<data_dir>/media`) or an
    /// `s3://bucket/prefix` URL (credentials from the usual AWS_* variables).
    pub storage_url: Option<String>,
    /// Bearer token of the admin endpoints (`POST /api/v1/keys`, the proxy's subscription
    /// admin); none: those endpoints are closed. Better given as VSHARE_ADMIN_TOKEN than
    /// written in a file.
    pub admin_token: Option<String>,
    /// Threads of the async runtime that serves every connection (ingest, packaging, HTTP);
    /// 0: one per CPU core.
    pub workers: usize,
    /// The roles this process runs: `video` (ingest, packaging, recording), `live` (LL-HLS
    /// to players), `proxy` (subscriptions and their messages). Default: all three.
    pub roles: Vec<Role>,
    /// This server's name among the video servers sharing one database: the live videos it
    /// records carry it, and the recovery at start-up finishes only its own. Default: an id
    /// made once and kept in `<data_dir>/instance-id`; set it when the data directory does not
    /// outlive the machine (each video server needs its own).
    pub instance_id: Option<String>,
    pub live: LiveConfig,
    pub limits: Limits,
    pub webhook: Option<WebhookConfig>,
    pub transcode: TranscodeConfig,
    pub posters: PostersConfig,
    pub proxy: ProxyRoleConfig,
    pub accounts: AccountsConfig,
    pub sms: SmsConfig,
    pub tls: TlsConfig,
    pub watching: WatchingConfig,
    pub webrtc: WebrtcConfig,
}

/// One role of `vshare serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Video,
    Live,
    Proxy,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "video" => Ok(Role::Video),
            "live" => Ok(Role::Live),
            "proxy" => Ok(Role::Proxy),
            other => Err(format!("unknown role {other:?} (video, live, proxy)")),
        }
    }
}

/// How `vshare serve` terminates TLS on the HTTP address and the RTMPS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain HTTP and RTMP only.
    Off,
    /// A certificate chain and key from PEM files (`cert`, `key`).
    Files,
    /// A certificate for `names` made on first run and kept in `<data_dir>/tls/`.
    SelfSigned,
    /// A certificate for `names` from an ACME (RFC 8555) CA, renewed automatically.
    Acme,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(TlsMode::Off),
            "files" => Ok(TlsMode::Files),
            "self-signed" => Ok(TlsMode::SelfSigned),
            "acme" => Ok(TlsMode::Acme),
            other => Err(format!(
                "unknown TLS mode {other:?} (off, files, self-signed, acme)"
            )),
        }
    }
}

/// TLS: https on `http_listen`, a plain-HTTP redirect listener, RTMPS ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// PEM certificate chain (`files` mode).
    pub cert: Option<PathBuf>,
    /// PEM private key (`files` mode).
    pub key: Option<PathBuf>,
    /// Host names and IP addresses the certificate is for (`self-signed`: besides localhost,
    /// 127.0.0.1, ::1 and the public URL's host; `acme`: the DNS names to obtain it for,
    /// default the public URL's host).
    pub names: Vec<String>,
    /// A plain-HTTP listener that answers 308 to the https address (and ACME HTTP-01
    /// challenges); none: no plain HTTP at all.
    pub redirect_listen: Option<SocketAddr>,
    /// RTMPS (RTMP over TLS) ingest address; none: no RTMPS.
    pub rtmps_listen: Option<SocketAddr>,
    /// `Strict-Transport-Security: max-age=…` on every https response, s; 0: no header.
    pub hsts_max_age_s: u64,
    /// A TLS handshake (https or RTMPS) not finished in this time is closed, s.
    pub handshake_timeout_s: u64,
    /// ACME directory URL.
    pub acme_directory: String,
    /// Contacts for the ACME account, e.g. `mailto:admin@example.com`.
    pub acme_contact: Vec<String>,
    /// PEM root that the ACME directory's own https certificate chains to (a test CA); none:
    /// the system's roots.
    pub acme_ca_file: Option<PathBuf>,
    /// An ACME certificate is renewed when this many days or fewer remain.
    pub acme_renew_days: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Off,
            cert: None,
            key: None,
            names: Vec::new(),
            redirect_listen: None,
            rtmps_listen: None,
            hsts_max_age_s: 180 * 24 * 3600,
            handshake_timeout_s: 10,
            acme_directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_contact: Vec::new(),
            acme_ca_file: None,
            acme_renew_days: 30,
        }
    }
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Off
    }
}

/// Who may create an account: `"open"` (anyone, limited per client address), `"invite"` (with
/// an invite code an administrator made), `"closed"`. `true` and `false` are read as open and
/// closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    Open,
    Invite,
    Closed,
}

impl<'de> Deserialize<'de> for SignupMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SignupMode, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(SignupMode::Open),
            Raw::Bool(false) => Ok(SignupMode::Closed),
            Raw::Text(t) => match t.as_str() {
                "open" => Ok(SignupMode::Open),
                "invite" => Ok(SignupMode::Invite),
                "closed" => Ok(SignupMode::Closed),
                other => Err(serde::de::Error::custom(format!(
                    "signup = {other:?}: use \"open\", \"invite\" or \"closed\""
                ))),
            },
        }
    }
}

/// The SMS guard: limits on every SMS the server originates (confirmation codes, keyword
/// replies, shares, subscribers' notifications). A count of 0 is no limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// SMS that others can cause to one number (codes, replies, shares) per
    /// `per_number_window_s`; subscribers' notifications are not counted here.
    pub per_number: usize,
    pub per_number_window_s: u64,
    /// SMS one client address can cause (codes, shares) per `per_client_window_s`.
    pub per_client: usize,
    pub per_client_window_s: u64,
    /// Every SMS of the server, notifications included, per minute.
    pub per_minute: usize,
    /// Every SMS of the server, notifications included, per hour: the operator's budget.
    /// Notifications over it wait; requests over it get 429.
    pub per_hour: usize,
    /// How long a confirmation code is valid, s.
    pub code_ttl_s: u64,
    /// Wrong codes a pending subscription survives; then it is dead until the code expires.
    pub code_attempts: u32,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            per_number: 3,
            per_number_window_s: 3600,
            per_client: 10,
            per_client_window_s: 3600,
            per_minute: 120,
            per_hour: 1000,
            code_ttl_s: 600,
            code_attempts: 5,
        }
    }
}

impl SmsConfig {
    /// The guard's figures.
    pub fn limits(&self) -> vshare_proxy::guard::SmsLimits {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        vshare_proxy::guard::SmsLimits {
            per_number: self.per_number,
            per_number_window_ms: ms(self.per_number_window_s.max(1)),
            per_client: self.per_client,
            per_client_window_ms: ms(self.per_client_window_s.max(1)),
            per_minute: self.per_minute,
            per_hour: self.per_hour,
        }
    }
}

/// User accounts, sessions and the limits on what a signed-in user may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// Who may create an account (`POST /api/v1/accounts`): `"open"`, `"invite"` (an invite
    /// code from `POST /api/v1/invites` is needed) or `"closed"`; `true`/`false` = open/closed.
    pub signup: SignupMode,
    /// Accounts one client address may create per `signup_window_s`.
    pub signup_per_ip: usize,
    pub signup_window_s: u64,
    /// How long a session cookie lasts, days.
    pub session_days: u64,
    /// Failed sign-ins allowed per username and client address in `signin_window_s` (an
    /// outsider's failures do not lock the owner out from the owner's own address).
    pub signin_failures_per_user: usize,
    /// Failed sign-ins allowed per username from all addresses together in `signin_window_s`:
    /// the slow global backstop against guessing from many addresses.
    pub signin_failures_per_user_global: usize,
    /// Sign-in attempts allowed per client address in `signin_window_s`.
    pub signin_attempts_per_ip: usize,
    pub signin_window_s: u64,
    /// SMS (one per recipient number) a user may send in `share_window_s`.
    pub share_messages: usize,
    pub share_window_s: u64,
    /// How long the signed links in a shared private video's message stay valid, s.
    pub share_link_ttl_s: u64,
    /// How long a share request waits for the SMSC to take its messages before it answers
    /// (202, still queued, if it has not), ms.
    pub share_wait_ms: u64,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            signup: SignupMode::Open,
            signup_per_ip: 5,
            signup_window_s: 3600,
            session_days: 30,
            signin_failures_per_user: 5,
            signin_failures_per_user_global: 100,
            signin_attempts_per_ip: 30,
            signin_window_s: 600,
            share_messages: 30,
            share_window_s: 600,
            share_link_ttl_s: 7 * 24 * 3600,
            share_wait_ms: 5000,
        }
    }
}

/// The communication proxy role: subscriptions, and durable push of every new video.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyRoleConfig {
    pub enabled: bool,
    /// SMSC (`host:port`, SMPP v3.4) for SMS and WAP Push subscribers; none: those wait.
    pub smsc: Option<String>,
    pub smsc_system_id: String,
    pub smsc_password: String,
    /// The proxy's own number: sender of its SMS, where MO keywords (SUB/YES/STOP) arrive.
    pub number: String,
    /// submit_sm outstanding at once.
    pub window: usize,
    /// No SMS between these local times, e.g. `22:00-07:00`.
    pub quiet_hours: Option<String>,
    /// VAPID contact for Web Push (RFC 8292).
    pub vapid_contact: String,
    /// An SMS handed to the SMSC whose submit_sm_resp was lost (a crash) is sent again when no
    /// receipt for it arrives within this many seconds; 0: never sent again (at most once).
    pub unconfirmed_grace_s: u64,
    /// Subscribers' webhooks and Web Push endpoints may be at loopback, private, link-local
    /// and other special addresses (and Web Push over plain http). Off in service: those are
    /// requests into the server's own network.
    pub allow_private_destinations: bool,
    /// Special ranges allowed all the same, as CIDRs (`["10.20.0.0/16"]`).
    pub allowed_destinations: Vec<String>,
}

impl Default for ProxyRoleConfig {
    fn default() -> Self {
        ProxyRoleConfig {
            enabled: true,
            smsc: None,
            smsc_system_id: "vshare".into(),
            smsc_password: String::new(),
            number: "10690000".into(),
            window: 64,
            quiet_hours: None,
            vapid_contact: "mailto:admin@localhost".into(),
            unconfirmed_grace_s: 300,
            allow_private_destinations: false,
            allowed_destinations: Vec::new(),
        }
    }
}

/// Format conversion: the ladder of renditions made from every live stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodeConfig {
    /// A named ladder: `default` (source + 720p/480p/240p where smaller than the source),
    /// `phone`, or `none` (the source only, no transcoding).
    pub ladder: String,
    /// An explicit ladder instead of a named one.
    pub renditions: Option<Vec<vshare_transcode::RenditionSpec>>,
    /// VOD files in other formats, made from the source as it arrives (WebM, 3GP).
    pub files: Vec<vshare_transcode::FileSpec>,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        TranscodeConfig {
            ladder: "default".into(),
            renditions: None,
            files: Vec::new(),
        }
    }
}

impl TranscodeConfig {
    /// The ladder to run, or an error naming the unknown preset.
    pub fn ladder(&self) -> anyhow::Result<vshare_transcode::LadderConfig> {
        if let Some(renditions) = &self.renditions {
            return Ok(vshare_transcode::LadderConfig {
                renditions: renditions.clone(),
                passthrough: true,
            });
        }
        vshare_transcode::LadderConfig::preset(&self.ladder).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown ladder {:?}: use default, phone or none",
                self.ladder
            )
        })
    }
}

/// Pictures of every video: a JPEG poster decoded from a keyframe (refreshed while live, kept
/// for the VOD) and a thumbnail sprite with a WebVTT track for scrubbing the recording.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostersConfig {
    pub enabled: bool,
    /// While live, a new poster at the first keyframe this long after the last one, s.
    pub live_interval_s: f64,
    /// Widest poster, pixels (narrower sources keep their size; aspect ratio kept).
    pub max_width: u32,
    /// JPEG quantiser scale, 2 (best, largest) ..= 31.
    pub quality: u8,
    /// A sprite tile at the first keyframe this long after the last tile, s; 0: no sprite.
    pub sprite_interval_s: f64,
    /// Sprite tile width, pixels.
    pub sprite_tile_width: u32,
    /// Tiles per sprite row.
    pub sprite_columns: u32,
    /// Most tiles in a sprite: a longer video keeps every other tile at twice the interval.
    pub sprite_max_tiles: usize,
}

impl Default for PostersConfig {
    fn default() -> Self {
        PostersConfig {
            enabled: true,
            live_interval_s: 5.0,
            max_width: 640,
            quality: 5,
            sprite_interval_s: 2.0,
            sprite_tile_width: 160,
            sprite_columns: 10,
            sprite_max_tiles: 400,
        }
    }
}

impl PostersConfig {
    /// The maker's settings; None when posters are off.
    pub fn settings(&self) -> Option<vshare_transcode::PosterSettings> {
        let us = |s: f64| (s.max(0.0) * 1e6).min(1e12) as i64;
        self.enabled.then(|| vshare_transcode::PosterSettings {
            max_width: self.max_width.clamp(16, 4096),
            interval_us: us(self.live_interval_s).max(100_000),
            quality: self.quality.clamp(2, 31),
            sprite: (self.sprite_interval_s > 0.0).then(|| vshare_transcode::SpriteSettings {
                interval_us: us(self.sprite_interval_s).max(100_000),
                tile_width: self.sprite_tile_width.clamp(16, 640),
                columns: self.sprite_columns.clamp(1, 50),
                max_tiles: self.sprite_max_tiles.clamp(2, 2000),
            }),
        })
    }

    /// `Cache-Control` max-age of a live poster: it changes every `live_interval_s`.
    pub fn live_max_age_s(&self) -> u64 {
        (self.live_interval_s.max(1.0) as u64).min(60)
    }
}

/// LL-HLS timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Partial segment target duration, ms.
    pub part_target_ms: u64,
    /// Segment target duration, ms (segments start at keyframes after this much).
    pub segment_target_ms: u64,
    /// Segments kept in the live playlist.
    pub window_segments: usize,
    /// The DVR window, s: while a stream is live, `/vod/{id}/dvr.m3u8` lists its recorded
    /// segments of this long back (the watch page rewinds over it), and the live record says
    /// so (`dvr`). 0: no DVR playlist.
    pub dvr_window_s: u64,
    /// Publishing RTMP sockets are read together at ticks this many ms apart, what arrived
    /// meanwhile in one read ("merged read"): far fewer wake-ups and system calls per
    /// publisher, for at most one tick more latency. 0: each socket is read as data arrives.
    pub merged_read_ms: u64,
    /// Base URL of the live servers (`https://live.example`): what live attribute records
    /// name for `/live/…`. Default: `public_url`.
    pub public_url: Option<String>,
    /// Live role: accept hand-off connections from video servers here (docs/live-handoff.md).
    pub handoff_listen: Option<SocketAddr>,
    /// Video role: push every stream to each of these live servers (`tcp://host:port`).
    pub handoff_push: Vec<String>,
    /// The hand-off's shared secret (at least 16 bytes). Better given as
    /// VSHARE_LIVE_HANDOFF_SECRET or in `handoff_secret_file` than written here.
    pub handoff_secret: Option<String>,
    /// File holding the shared secret; default `<data_dir>/live-handoff.secret`, made (0600)
    /// on first use when no secret is given.
    pub handoff_secret_file: Option<PathBuf>,
    /// Bytes of messages queued for one live server; past it the queue is dropped and the live
    /// server gets a resync instead.
    pub handoff_queue_bytes: usize,
    /// Largest hand-off frame accepted or sent, bytes.
    pub handoff_max_frame_bytes: u32,
    /// Longest stream name on the hand-off, bytes.
    pub handoff_max_stream_name: u16,
    /// Each end pings this often; a connection silent for three times this is closed, ms.
    pub handoff_keepalive_ms: u64,
    /// The longest wait between reconnect attempts (from 100 ms, doubling), ms.
    pub handoff_reconnect_max_ms: u64,
    /// A hand-off connection must finish its handshake within this long, ms.
    pub handoff_handshake_timeout_ms: u64,
    /// A live server forgets a stream this long after the connection that fed it closed, if no
    /// connection fed it since, s.
    pub handoff_orphan_s: u64,
    /// Hand-off connections a live server accepts at once (in all, and per address).
    pub handoff_max_connections: usize,
    /// Requests for a stream's next part (the preload hint) made before it exists are held
    /// until it does, for at most three part targets; at most this many at once per stream,
    /// more get 503. 0: none held (404 at once).
    pub max_held_part_requests: usize,
}

impl LiveConfig {
    /// The hand-off's decoding limits.
    pub fn handoff_limits(&self) -> vshare_handoff::Limits {
        vshare_handoff::Limits {
            max_frame_bytes: self.handoff_max_frame_bytes.max(4096),
            max_stream_name: self.handoff_max_stream_name.max(16),
            ..vshare_handoff::Limits::default()
        }
    }
}

/// Who is watching: watch pages send a beacon every `beacon_s`; a page counts for `window_s`
/// after its last one. Every table is bounded (see `crate::watching`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchingConfig {
    /// How often a watch page says it is open, s (the API tells the page).
    pub beacon_s: u64,
    /// A page counts this long after its last beacon, s (at least twice `beacon_s`).
    pub window_s: u64,
    /// Pages counted per video.
    pub max_per_video: usize,
    /// Pages counted over all videos.
    pub max_tabs: usize,
    /// Videos with counted pages.
    pub max_videos: usize,
    /// Beacons one client address may send per `window_s`.
    pub beacons_per_ip: u32,
    /// Client addresses tracked per `window_s` for that limit.
    pub max_ips: usize,
}

impl Default for WatchingConfig {
    fn default() -> Self {
        WatchingConfig {
            beacon_s: 10,
            window_s: 30,
            max_per_video: 100_000,
            max_tabs: 200_000,
            max_videos: 10_000,
            beacons_per_ip: 100,
            max_ips: 100_000,
        }
    }
}

impl WatchingConfig {
    pub fn limits(&self) -> crate::watching::WatchLimits {
        let beacon = self.beacon_s.max(1);
        crate::watching::WatchLimits {
            window: std::time::Duration::from_secs(self.window_s.max(2 * beacon)),
            max_per_video: self.max_per_video,
            max_tabs: self.max_tabs,
            max_videos: self.max_videos,
            beacons_per_ip: self.beacons_per_ip,
            max_ips: self.max_ips,
        }
    }
}

/// WHEP playback over WebRTC (docs/webrtc.md): one UDP port shared by every session.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    /// Serve `POST /whep/{id}` and open the UDP port. Off by default: it opens a port.
    pub enabled: bool,
    /// The UDP port of every WebRTC session (0: any free port, for tests).
    pub udp_port: u16,
    /// The address players are told to send to (the ICE host candidate): the public address
    /// of a server behind NAT. Default: the HTTP listen address, 127.0.0.1 if unspecified.
    pub public_ip: Option<std::net::IpAddr>,
    /// WebRTC sessions over all streams.
    pub max_sessions: usize,
    /// WebRTC sessions from one client address.
    pub max_sessions_per_ip: usize,
    /// A session whose player has not connected (ICE and DTLS) by then is dropped, s.
    pub connect_timeout_s: u64,
    /// Opus bitrate of the audio transcoded from AAC once per stream, bits/s.
    pub opus_bitrate: u64,
    /// Send a session's same-size datagrams in one system call the kernel segments (UDP GSO)
    /// where the kernel can; off: one call each.
    pub udp_gso: bool,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            enabled: false,
            udp_port: 8189,
            public_ip: None,
            max_sessions: 1000,
            max_sessions_per_ip: 8,
            connect_timeout_s: 15,
            opus_bitrate: 64_000,
            udp_gso: true,
        }
    }
}

/// Limits that protect the server from one bad peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent publishers accepted.
    pub max_publishers: usize,
    /// A publisher that sends nothing for this long is disconnected, s.
    pub rtmp_idle_timeout_s: u64,
    /// Largest RTMP message accepted, bytes.
    pub rtmp_max_message_size: usize,
    /// Largest RTMP message other than audio/video (commands, metadata), and of any kind before
    /// a publish is accepted, bytes.
    pub rtmp_max_command_size: usize,
    /// The RTMP handshake, `connect` and an accepted `publish` must all be done within this
    /// long of the connection, however the bytes trickle in, s.
    pub rtmp_handshake_timeout_s: u64,
    /// Open connections per listener (HTTP and RTMP each); more are closed at once.
    pub max_connections: usize,
    /// Open connections per client address (an IPv6 client's /64) per listener.
    pub max_connections_per_ip: usize,
    /// An HTTP request's headers must arrive within this long, and a connection with no
    /// request in progress is closed after this long, s.
    pub http_header_timeout_s: u64,
    /// An HTTP or WebSocket connection whose writes make no progress for this long (the client
    /// stopped reading) is closed, s.
    pub http_write_stall_timeout_s: u64,
    /// How often a publish in progress checks that its stream key (or upload token) still
    /// stands; a revoked or rotated key ends the publish within this many seconds.
    pub key_check_s: u64,
    /// On SIGTERM or SIGINT, how long `serve` may take to stop gracefully (end every stream,
    /// finish its VOD, flush the live hand-off, let HTTP responses finish) before it exits
    /// anyway.
    pub shutdown_grace_s: u64,
    /// Grant the upload protocol's `backfill` feature: frames a sender dropped from the live
    /// send come late, for the recording only (docs/upload-protocol.md, *Backfill*).
    pub upload_backfill: bool,
    /// Late frames one upload session may promise in all.
    pub upload_backfill_max_frames: u32,
    /// Late frame payload bytes one upload session may send in all (held in memory until the
    /// VOD is rebuilt).
    pub upload_backfill_max_bytes: u64,
    /// How long after `end` the server waits for the late frames still owed; then the VOD
    /// stays as it is, s.
    pub upload_backfill_wait_s: u64,
}

/// The hand-off to the communication proxy: a signed POST for every live stream and VOD file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC-SHA256 key; the signature goes in `X-Vshare-Signature: sha256=<hex>`.
    pub secret: String,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    8
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            rtmp_listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            public_url: None,
            database_url: None,
            storage_url: None,
            admin_token: None,
            workers: 0,
            roles: vec![Role::Video, Role::Live, Role::Proxy],
            instance_id: None,
            live: LiveConfig::default(),
            limits: Limits::default(),
            webhook: None,
            transcode: TranscodeConfig::default(),
            posters: PostersConfig::default(),
            proxy: ProxyRoleConfig::default(),
            accounts: AccountsConfig::default(),
            sms: SmsConfig::default(),
            tls: TlsConfig::default(),
            watching: WatchingConfig::default(),
            webrtc: WebrtcConfig::default(),
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            part_target_ms: 333,
            segment_target_ms: 2000,
            window_segments: 12,
            dvr_window_s: 7200,
            merged_read_ms: 50,
            public_url: None,
            handoff_listen: None,
            handoff_push: Vec::new(),
            handoff_secret: None,
            handoff_secret_file: None,
            handoff_queue_bytes: 8 << 20,
            handoff_max_frame_bytes: 16 << 20,
            handoff_max_stream_name: 128,
            handoff_keepalive_ms: 1000,
            handoff_reconnect_max_ms: 2000,
            handoff_handshake_timeout_ms: 5000,
            handoff_orphan_s: 60,
            handoff_max_connections: 64,
            max_held_part_requests: 10_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_publishers: 500,
            rtmp_idle_timeout_s: 10,
            rtmp_max_message_size: 8 << 20,
            rtmp_max_command_size: 64 << 10,
            rtmp_handshake_timeout_s: 10,
            max_connections: 4096,
            max_connections_per_ip: 64,
            http_header_timeout_s: 10,
            http_write_stall_timeout_s: 60,
            key_check_s: 5,
            shutdown_grace_s: 10,
            upload_backfill: true,
            upload_backfill_max_frames: 20_000,
            upload_backfill_max_bytes: 64 << 20,
            upload_backfill_wait_s: 120,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are an error so a typo does not pass silently.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("vshare.db").display()
            )
        })
    }

    /// The instance id once `serve` has settled it (config, else `<data_dir>/instance-id`).
    pub fn instance_id(&self) -> &str {
        self.instance_id.as_deref().unwrap_or("")
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Where players reach `/live/…`: the live servers' URL, else this server's.
    pub fn live_public_url(&self) -> String {
        match &self.live.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self.public_url(),
        }
    }

    pub fn public_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        self.default_public_url(self.http_listen)
    }

    /// The public URL when none is configured, for the HTTP address `addr`: https with TLS on
    /// (with an ACME certificate, its first name), 127.0.0.1 for an unspecified address.
    pub fn default_public_url(&self, mut addr: SocketAddr) -> String {
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        if !self.tls.enabled() {
            return format!("http://{addr}");
        }
        match self.tls.names.first() {
            Some(name) if self.tls.mode == TlsMode::Acme => match addr.port() {
                443 => format!("https://{name}"),
                port => format!("https://{name}:{port}"),
            },
            _ => format!("https://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_the_live_tier_from_a_file() {
        let c: Config = toml::from_str(
            "roles = [\"video\", \"proxy\"]\n[live]\npublic_url = \"https://live.example/\"\n\
             handoff_push = [\"tcp://10.0.0.5:7070\"]\nhandoff_secret_file = \"/etc/s\"\n\
             handoff_queue_bytes = 1024\n",
        )
        .unwrap();
        assert!(c.has_role(Role::Video) && c.has_role(Role::Proxy) && !c.has_role(Role::Live));
        assert_eq!(c.live_public_url(), "https://live.example");
        assert_eq!(c.live.handoff_push, ["tcp://10.0.0.5:7070"]);
        assert_eq!(c.live.handoff_keepalive_ms, 1000);
        let d = Config::default();
        assert_eq!(d.roles, [Role::Video, Role::Live, Role::Proxy]);
        assert!(d.live.handoff_listen.is_none() && d.live.handoff_push.is_empty());
        assert!(toml::from_str::<Config>("roles = [\"edge\"]").is_err());
        let i: Config = toml::from_str("instance_id = \"video-a\"").unwrap();
        assert_eq!(i.instance_id(), "video-a");
        assert!(toml::from_str::<Config>("[live]\nhandoff_secrett = \"x\"").is_err());
    }

    #[test]
    fn posters_default_on_and_their_settings_are_clamped() {
        let d = Config::default().posters.settings().unwrap();
        assert_eq!((d.max_width, d.interval_us, d.quality), (640, 5_000_000, 5));
        assert_eq!(d.sprite.map(|s| s.interval_us), Some(2_000_000));
        let c: Config = toml::from_str(
            "[posters]\nlive_interval_s = 0\nquality = 99\nsprite_interval_s = 0\nmax_width = 1\n",
        )
        .unwrap();
        let s = c.posters.settings().unwrap();
        assert_eq!((s.interval_us, s.quality, s.max_width), (100_000, 31, 16));
        assert!(s.sprite.is_none());
        assert_eq!(c.posters.live_max_age_s(), 1);
        let off: Config = toml::from_str("[posters]\nenabled = false\n").unwrap();
        assert!(off.posters.settings().is_none());
        assert!(toml::from_str::<Config>("[posters]\nintervall = 1\n").is_err());
    }
}
