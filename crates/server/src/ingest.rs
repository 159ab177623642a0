//! RTMP ingest: a thin tokio adapter around the sans-IO [`vshare_rtmp::ServerConnection`].
//! Authenticates the stream key, turns FLV tags into frames and hands them to the video server.
//! HEVC (Enhanced RTMP) goes through a [`ConvertWorker`] that makes it H.264 on its own thread;
//! from then on the whole stream (audio too, to keep its order) takes that path, so the video
//! server sees an ordinary H.264 source.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};
use vshare_media::MediaEvent;
use vshare_media::flv::{DemuxedVideo, TagDemuxer};
use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};
use vshare_transcode::{ConvertSettings, ConvertWorker};

use crate::conn_limit::ConnLimiter;
use crate::db::Db;
use crate::video::{IngestMessage, Publisher, StartError, VideoServer};

pub struct Ingest {
    pub db: Db,
    pub videos: Arc<VideoServer>,
    pub idle_timeout: Duration,
    /// Handshake, `connect` and an accepted `publish` must be done within this long.
    pub handshake_timeout: Duration,
    pub max_message_size: usize,
    pub max_command_size: usize,
    pub connections: ConnLimiter,
}

impl Ingest {
    /// Accepts RTMP connections until the process ends.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((socket, peer)) => {
                    let guard = match self.connections.admit(peer.ip()) {
                        Ok(g) => g,
                        Err(why) => {
                            metrics::counter!("vshare_connections_refused_total", "listener" => "rtmp")
                                .increment(1);
                            debug!(%peer, "rtmp: refused, {why}");
                            continue;
                        }
                    };
                    let me = self.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
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
            max_command_size: self.max_command_size,
            ..ServerLimits::default()
        });
        // Until a publish is accepted the peer is anonymous: one deadline for the handshake,
        // connect and publish, that bytes trickling in do not push back.
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let mut authenticated = false;
        let mut buf = vec![0u8; 64 * 1024];
        let mut publisher: Option<Publisher> = None;
        let mut demuxer = TagDemuxer::new();
        // Made at the first HEVC configuration; carries the rest of the stream.
        let mut converter: Option<ConvertWorker> = None;
        let bytes_in = metrics::counter!("vshare_bytes_in_total");
        let converter_dropped = metrics::counter!("vshare_ingest_convert_dropped_frames_total");
        let result = async {
            loop {
                let idle = tokio::time::Instant::now() + self.idle_timeout;
                let until = if authenticated {
                    idle
                } else {
                    idle.min(deadline)
                };
                let n = match tokio::time::timeout_at(until, socket.read(&mut buf)).await {
                    Err(_) if !authenticated && until == deadline => anyhow::bail!(
                        "handshake, connect and publish not done within {:?}; closing",
                        self.handshake_timeout
                    ),
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
                                    authenticated = true;
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
                            match demuxer.video_tag(timestamp_ms, body)? {
                                None => {}
                                Some(DemuxedVideo::Media(ev)) => {
                                    forward(p, &mut converter, ev, arrival).await?;
                                }
                                Some(DemuxedVideo::Hevc(ev)) => {
                                    let c = converter.get_or_insert_with(|| start_converter(p));
                                    if !c.push_hevc(ev, arrival) {
                                        converter_dropped.increment(1);
                                    }
                                }
                            }
                            if let Some(why) = converter.as_ref().and_then(|c| c.failed()) {
                                anyhow::bail!("HEVC source refused: {why}");
                            }
                        }
                        ServerEvent::Audio { timestamp_ms, body } => {
                            let p = publisher
                                .as_ref()
                                .ok_or_else(|| anyhow::anyhow!("audio before publish"))?;
                            let arrival = chrono::Utc::now().timestamp_micros();
                            if let Some(ev) = demuxer.audio(timestamp_ms, body)? {
                                forward(p, &mut converter, ev, arrival).await?;
                            }
                            if let Some(why) = converter.as_ref().and_then(|c| c.failed()) {
                                anyhow::bail!("HEVC source refused: {why}");
                            }
                        }
                        ServerEvent::PublishFinished => {
                            if let Some(p) = publisher.take() {
                                info!(%peer, video = %p.video_id, "publisher stopped");
                                finish_converter(&p, converter.take()).await;
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
            finish_converter(&p, converter.take()).await;
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

/// Hands an ordinary event on: straight to the session, or through the converter once the
/// stream has one (so it stays in order with the converted video).
async fn forward(
    p: &Publisher,
    converter: &mut Option<ConvertWorker>,
    ev: MediaEvent,
    arrival: i64,
) -> anyhow::Result<()> {
    match converter.as_mut() {
        Some(c) => {
            c.push_media(ev, arrival);
            Ok(())
        }
        None => send(p, IngestMessage::Media(ev, arrival)).await,
    }
}

/// Frames the converter may hold before it drops video until the next keyframe (2 s at 30 fps).
const CONVERT_QUEUE_FRAMES: usize = 60;

fn start_converter(p: &Publisher) -> ConvertWorker {
    let tx = p.tx.clone();
    // The sink runs on the converter's own thread, outside the runtime: a blocking send there
    // waits for the session without holding up this connection.
    ConvertWorker::spawn(
        ConvertSettings::default(),
        CONVERT_QUEUE_FRAMES,
        move |ev, arrival| tx.blocking_send(IngestMessage::Media(ev, arrival)).is_ok(),
    )
}

/// Lets the converter finish what it holds into the session before the stream ends.
async fn finish_converter(p: &Publisher, converter: Option<ConvertWorker>) {
    let Some(c) = converter else { return };
    match tokio::task::spawn_blocking(move || c.finish()).await {
        Ok(stats) => {
            if stats.frames_dropped > 0 {
                warn!(video = %p.video_id, dropped = stats.frames_dropped, episodes = stats.drop_episodes, "HEVC conversion fell behind");
            }
            info!(video = %p.video_id, frames_in = stats.frames_in, frames_out = stats.frames_out, decode_errors = stats.decode_errors, "HEVC conversion finished");
        }
        Err(e) => warn!(video = %p.video_id, "HEVC conversion: {e}"),
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
