//! What `vshare publish` asks the server's HTTP API about its own stream:
//! `GET /api/v1/publish/status` with the stream key as bearer token, read into the API's own
//! [`Video`] type, and the lines printed about its attribute records.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;
use vshare_attributes::{AttributeRecord, Kind};
use vshare_server::db::Video;

/// Polls the publish status of one stream key.
pub struct StatusClient {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl StatusClient {
    pub fn new(http: &str, key: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/api/v1/publish/status", http.trim_end_matches('/'));
        Ok(Self {
            client,
            url,
            key: key.to_string(),
        })
    }

    /// The video of this key's current or latest stream; `None` while the server has none.
    pub async fn fetch(&self) -> anyhow::Result<Option<Video>> {
        let r = self
            .client
            .get(&self.url)
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("GET {}", self.url))?;
        match r.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                r.json()
                    .await
                    .with_context(|| format!("GET {}: body", self.url))?,
            )),
            s => bail!("GET {}: HTTP {s}", self.url),
        }
    }

    /// Asks every second until the stream's live record is there; `warn` hears the first
    /// failure (the API may not be up yet, or not reachable at all: not fatal).
    pub async fn wait_for_live(&self, mut warn: impl FnMut(&anyhow::Error)) -> Video {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut warned = false;
        loop {
            every.tick().await;
            match self.fetch().await {
                Ok(Some(v)) if has_record(&v, Kind::Live) => return v,
                Ok(_) => {}
                Err(e) if !warned => {
                    warned = true;
                    warn(&e);
                }
                Err(_) => {}
            }
        }
    }

    /// Waits up to `limit` for the VOD records of the stream just ended.
    pub async fn wait_for_vod(&self, limit: Duration, quiet: bool) -> Option<Video> {
        let until = Instant::now() + limit;
        let mut last_error = None;
        while Instant::now() < until {
            match self.fetch().await {
                Ok(Some(v)) if has_record(&v, Kind::Vod) => {
                    if !quiet {
                        for line in describe(&v, Kind::Vod) {
                            println!("{line}");
                        }
                    }
                    return Some(v);
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !quiet {
            match last_error {
                Some(e) => eprintln!("no VOD records: {e:#}"),
                None => eprintln!("no VOD records within {limit:?}"),
            }
        }
        None
    }
}

fn records(video: &Video, kind: Kind) -> impl Iterator<Item = &AttributeRecord> {
    video.attributes.iter().filter(move |r| r.kind == kind)
}

fn has_record(video: &Video, kind: Kind) -> bool {
    records(video, kind).next().is_some()
}

/// Human-readable lines for a video's records of one kind.
pub fn describe(video: &Video, kind: Kind) -> Vec<String> {
    let name = match kind {
        Kind::Live => "live",
        Kind::Vod => "vod",
    };
    let mut lines = vec![format!(
        "{name}: video {} ({})",
        video.id,
        video.state.as_str()
    )];
    for a in records(video, kind) {
        lines.push(format!(
            "  {:<7} {}  {}x{} {:.2} fps {:.2} Mbit/s {} {}{}",
            a.format,
            a.url,
            a.width,
            a.height,
            a.frame_rate,
            a.bitrate as f64 / 1e6,
            a.codecs,
            if a.size > 0 {
                format!("{:.2} MB ", a.size as f64 / 1e6)
            } else {
                String::new()
            },
            if a.duration_ms > 0 {
                format!("{:.1} s", a.duration_ms as f64 / 1000.0)
            } else {
                String::new()
            },
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `GET /api/v1/publish/status` answered for a finished stream (abridged URLs).
    const READY: &str = r#"{
        "id": "v1", "title": "", "state": "ready", "created_at": "2026-01-01T00:00:00Z",
        "ended_at": "2026-01-01T00:00:04Z", "visibility": "public",
        "attributes": [{
            "kind": "vod", "video_id": "v1", "url": "http://h/vod/v1/video.mp4", "format": "mp4",
            "codecs": "avc1.64001E,mp4a.40.2", "width": 426, "height": 240, "frame_rate": 25.0,
            "bitrate": 650000, "size": 325000, "duration_ms": 4000, "audio_sample_rate": 48000,
            "audio_channels": 2, "title": ""
        }]
    }"#;

    #[test]
    fn the_api_answer_reads_into_the_servers_type_and_prints() {
        let v: Video = serde_json::from_str(READY).expect("the API's Video");
        assert!(has_record(&v, Kind::Vod) && !has_record(&v, Kind::Live));
        assert_eq!(
            describe(&v, Kind::Vod),
            vec![
                "vod: video v1 (ready)".to_string(),
                "  mp4     http://h/vod/v1/video.mp4  426x240 25.00 fps 0.65 Mbit/s \
                 avc1.64001E,mp4a.40.2 0.33 MB 4.0 s"
                    .to_string(),
            ]
        );
        // `--json` prints it as the server did.
        let again: serde_json::Value = serde_json::to_value(&v).expect("json");
        let server: serde_json::Value = serde_json::from_str(READY).expect("json");
        assert_eq!(again, server);
    }
}
