//! RTMP ingest: a thin tokio adapter around the sans-IO [`vshare_rtmp::ServerConnection`].
//! Authenticates the stream key, turns FLV tags into frames and hands them to the video server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};
use vshare_media::flv::TagDemuxer;
use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};

use crate::db::Db;
use crate::video::{IngestMessage, Publisher, StartError, VideoServer};

pub struct Ingest {
    pub db: Db,
    pub videos: Arc<VideoServer>,
    pub idle_timeout: Duration,
    pub max_message_size: usize,
}

impl Ingest {
    /// Accepts RTMP connections until the process ends.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((socket, peer)) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.connection(socket, peer).await {
                            warn!(%peer, "rtmp: {e:#}");
                        }
                    });
                }
                Err(e) => {
                    warn!("rtmp accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(&self, mut socket: TcpStream, peer: SocketAddr) -> anyhow::Result<()> {
        let _ = socket.set_nodelay(true);
        let mut conn = ServerConnection::new(ServerLimits {
            max_message_size: self.max_message_size,
            ..ServerLimits::default()
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut publisher: Option<Publisher> = None;
        let mut demuxer = TagDemuxer::new();
        let bytes_in = metrics::counter!("vshare_bytes_in_total");
        let result = async {
            loop {
                let n = match tokio::time::timeout(self.idle_timeout, socket.read(&mut buf)).await {
                    Err(_) => anyhow::bail!("no data for {:?}; closing", self.idle_timeout),
                    Ok(r) => r?,
                };
                if n == 0 {
                    return Ok(());
                }
                bytes_in.increment(n as u64);
                conn.handle_input(&buf[..n])?;
                while let Some(event) = conn.poll_event() {
                    match event {
                        ServerEvent::PublishRequested {
                            request_id,
                            app,
                            stream_key,
                        } => {
                            if publisher.is_some() {
                                conn.reject_publish(
                                    request_id,
                                    "NetStream.Publish.BadName",
                                    "this connection is already publishing",
                                )?;
                                continue;
                            }
                            match self.authorize(&app, &stream_key).await {
                                Ok(p) => {
                                    info!(%peer, %app, video = %p.video_id, "publish accepted");
                                    conn.accept_publish(request_id)?;
                                    publisher = Some(p);
                                }
                                Err(reason) => {
                                    warn!(%peer, %app, "publish refused: {reason}");
                                    conn.reject_publish(
                                        request_id,
                                        "NetStream.Publish.BadName",
                                        &reason,
                                    )?;
                                    flush(&mut conn, &mut socket).await?;
                                    return Ok(());
                                }
                            }
                        }
                        ServerEvent::Video { timestamp_ms, body } => {
                            let p = publisher
                                .as_ref()
                                .ok_or_else(|| anyhow::anyhow!("video before publish"))?;
                            let arrival = chrono::Utc::now().timestamp_micros();
                            if let Some(ev) = demuxer.video(timestamp_ms, body)? {
                                send(p, IngestMessage::Media(ev, arrival)).await?;
                            }
                        }
                        ServerEvent::Audio { timestamp_ms, body } => {
                            let p = publisher
                                .as_ref()
                                .ok_or_else(|| anyhow::anyhow!("audio before publish"))?;
                            let arrival = chrono::Utc::now().timestamp_micros();
                            if let Some(ev) = demuxer.audio(timestamp_ms, body)? {
                                send(p, IngestMessage::Media(ev, arrival)).await?;
                            }
                        }
                        ServerEvent::PublishFinished => {
                            if let Some(p) = publisher.take() {
                                info!(%peer, video = %p.video_id, "publisher stopped");
                                let _ = p.tx.send(IngestMessage::End).await;
                            }
                        }
                        #[allow(unreachable_patterns)]
                        _ => {}
                    }
                }
                flush(&mut conn, &mut socket).await?;
            }
        }
        .await;
        // A dropped connection ends the stream like a clean stop: the VOD is finished.
        if let Some(p) = publisher.take() {
            info!(%peer, video = %p.video_id, "publisher disconnected");
            let _ = p.tx.send(IngestMessage::End).await;
        }
        result
    }

    async fn authorize(&self, app: &str, stream_key: &str) -> Result<Publisher, String> {
        if app != "live" {
            return Err(format!(
                "unknown application {app:?}; publish to rtmp://HOST/live/KEY"
            ));
        }
        let key = match self.db.find_key(stream_key).await {
            Ok(Some(k)) => k,
            Ok(None) => return Err("unknown or revoked stream key".to_string()),
            Err(e) => return Err(format!("key lookup failed: {e}")),
        };
        self.videos
            .start(&key, "")
            .await
            .map_err(|e: StartError| e.to_string())
    }
}

async fn send(p: &Publisher, msg: IngestMessage) -> anyhow::Result<()> {
    p.tx.send(msg)
        .await
        .map_err(|_| anyhow::anyhow!("session of video {} has ended", p.video_id))
}

async fn flush(conn: &mut ServerConnection, socket: &mut TcpStream) -> anyhow::Result<()> {
    while let Some(bytes) = conn.poll_transmit() {
        socket.write_all(&bytes).await?;
    }
    Ok(())
}
