//! What every handler shares: the roles and services of the server, passed explicitly.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::accounts::Accounts;
use crate::db::Db;
use crate::live::LiveServer;
use crate::share::Sharing;
use crate::storage::Storage;
use crate::video::VideoServer;

pub struct AppState {
    pub db: Db,
    pub storage: Storage,
    pub live: LiveServer,
    pub videos: Arc<VideoServer>,
    pub metrics: PrometheusHandle,
    pub segment_target: Duration,
    /// The part target: how long live playlists may be cached.
    pub part_target: Duration,
    /// Requests held per stream for parts not made yet (`[live] max_held_part_requests`).
    pub max_held_parts: usize,
    pub admin_token: Option<String>,
    pub rtmp_url: String,
    /// `rtmps://host:port/live` when RTMPS ingest is on.
    pub rtmps_url: Option<String>,
    /// Accounts, sessions, signed links and their limits.
    pub accounts: Arc<Accounts>,
    /// Sharing by SMS: the SMSC and each user's message limit.
    pub sharing: Arc<Sharing>,
    /// `[live] dvr_window_s`: how far back `/vod/{id}/dvr.m3u8` lists, 0 for none.
    pub dvr_window_s: u64,
    /// Who is watching each video (`[watching]`).
    pub watching: std::sync::Mutex<crate::watching::WatchCounter>,
    /// How often a watch page sends its beacon, s.
    pub watching_beacon_s: u64,
    /// The media handlers' metric handles and playlist cache header, made once.
    pub media_metrics: super::media::MediaMetrics,
    /// WHEP playback over WebRTC, when `[webrtc] enabled`.
    pub whep: Option<Arc<crate::whep::Whep>>,
}

impl AppState {
    /// Watch pages open on `id` now.
    pub fn watching_now(&self, id: &str) -> usize {
        self.watching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count(id, std::time::Instant::now())
    }
}

/// The extractor handlers take the state with.
pub type AppStateRef = State<Arc<AppState>>;
