//! RTMP ingest: a thin tokio adapter around the sans-IO [`vshare_rtmp::ServerConnection`].
//! Authenticates the stream key, turns FLV tags into frames and hands them to the video server.
//! HEVC (Enhanced RTMP) goes through a [`ConvertWorker`] that makes it H.264 on its own thread;
//! from then on the whole stream (audio too, to keep its order) takes that path, so the video
//! server sees an ordinary H.264 source.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};
use vshare_media::MediaEvent;
use vshare_media::flv::{DemuxedVideo, TagDemuxer};
use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};
use vshare_transcode::{ConvertSettings, ConvertWorker};

use crate::conn_limit::ConnLimiter;
use crate::db::Db;
use crate::merged_read::{self, TickRead};
use crate::shutdown::Stopping;
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
    /// Ticks at which publishing sockets are read together; zero: read as data arrives.
    pub merged_read: Duration,
    /// How often a publish in progress checks that its key still stands (revoked or rotated:
    /// the publish ends).
    pub key_check: Duration,
    /// Set when the server stops: no more connections, and every publish ends as if its
    /// publisher had stopped.
    pub stopping: Stopping,
}

impl Ingest {
    /// Accepts RTMP connections until the server stops.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        self.accept_loop(listener, None).await
    }

    /// Accepts RTMPS connections until the server stops: the TLS handshake within its
    /// deadline, then the same RTMP connection as on the plain listener.
    pub async fn run_tls(self: Arc<Self>, listener: TcpListener, tls: crate::tls::Tls) {
        self.accept_loop(listener, Some(tls)).await
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, tls: Option<crate::tls::Tls>) {
        let name = if tls.is_some() { "rtmps" } else { "rtmp" };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.stopping.wait() => {
                    info!("{name}: no longer accepting connections (stopping)");
                    return;
                }
            };
            match accepted {
                Ok((socket, peer)) => {
                    // The cap counts a connection from accept on, TLS handshake included.
                    let guard = match self.connections.admit(peer.ip()) {
                        Ok(g) => g,
                        Err(why) => {
                            metrics::counter!("vshare_connections_refused_total", "listener" => name)
                                .increment(1);
                            debug!(%peer, "{name}: refused, {why}");
                            continue;
                        }
                    };
                    let (me, tls) = (self.clone(), tls.clone());
                    tokio::spawn(async move {
                        let _guard = guard;
                        let _ = socket.set_nodelay(true);
                        let result = match tls {
                            None => me.connection(socket, peer).await,
                            Some(tls) => match tls.accept_rtmps(socket).await {
                                Ok(stream) => me.connection(stream, peer).await,
                                Err(e) => Err(anyhow::anyhow!("TLS handshake: {e}")),
                            },
                        };
                        if let Err(e) = result {
                            warn!(%peer, "{name}: {e:#}");
                        }
                    });
                }
                Err(e) => {
                    warn!("{name} accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection<S: IngestStream>(
        &self,
        mut socket: S,
        peer: SocketAddr,
    ) -> anyhow::Result<()> {
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
        // The key a publish is made with, and when it was last found valid.
        let mut published_with: Option<(String, std::time::Instant)> = None;
        let mut last_data = std::time::Instant::now();
        let mut demuxer = TagDemuxer::new();
        // Made at the first HEVC configuration; carries the rest of the stream.
        let mut converter: Option<ConvertWorker> = None;
        let bytes_in = metrics::counter!("vshare_bytes_in_total");
        let converter_dropped = metrics::counter!("vshare_ingest_convert_dropped_frames_total");
        let mut ticks = TickState::default();
        let work = async {
            loop {
                if let Some((key, checked)) = &mut published_with
                    && checked.elapsed() >= self.key_check
                {
                    match self.db.find_key(key).await {
                        Ok(Some(_)) => *checked = std::time::Instant::now(),
                        Ok(None) => {
                            info!(%peer, "stream key revoked or rotated; ending the publish");
                            return Ok(());
                        }
                        Err(e) => warn!(%peer, "stream key check: {e:#}"),
                    }
                }
                let tick_socket = socket.plain().filter(|_| publisher.is_some());
                // Out of tick mode (the publish ended, the connection goes on): the kernel
                // must wake the runtime for small arrivals again.
                if ticks.quiet
                    && tick_socket.is_none()
                    && let Some(tcp) = socket.plain()
                {
                    merged_read::wake_on_every_arrival(tcp);
                    ticks.quiet = false;
                }
                let n = if let Some(tcp) = tick_socket.filter(|_| !self.merged_read.is_zero()) {
                    match self.read_at_tick(tcp, &mut buf, &mut ticks).await? {
                        Some(n) => n,
                        None if last_data.elapsed() >= self.idle_timeout => {
                            anyhow::bail!("no data for {:?}; closing", self.idle_timeout)
                        }
                        None => continue,
                    }
                } else {
                    let now = tokio::time::Instant::now();
                    let idle = now + self.idle_timeout.saturating_sub(last_data.elapsed());
                    let mut until = if authenticated {
                        idle
                    } else {
                        idle.min(deadline)
                    };
                    if published_with.is_some() {
                        until = until.min(now + self.key_check);
                    }
                    match tokio::time::timeout_at(until, socket.read(&mut buf)).await {
                        Err(_) if !authenticated && until == deadline => anyhow::bail!(
                            "handshake, connect and publish not done within {:?}; closing",
                            self.handshake_timeout
                        ),
                        Err(_) if last_data.elapsed() >= self.idle_timeout => {
                            anyhow::bail!("no data for {:?}; closing", self.idle_timeout)
                        }
                        // The key check is due.
                        Err(_) => continue,
                        Ok(r) => r?,
                    }
                };
                if n == 0 {
                    return Ok(());
                }
                last_data = std::time::Instant::now();
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
                                    published_with =
                                        Some((stream_key.clone(), std::time::Instant::now()));
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
        };
        // A stopping server ends the publish here: what arrived so far is the stream.
        let result = tokio::select! {
            r = work => r,
            _ = self.stopping.wait() => Ok(()),
        };
        // A dropped connection ends the stream like a clean stop: the VOD is finished.
        if let Some(p) = publisher.take() {
            match self.stopping.is_set() {
                true => info!(%peer, video = %p.video_id, "server stopping; ending the publish"),
                false => info!(%peer, video = %p.video_id, "publisher disconnected"),
            }
            finish_converter(&p, converter.take()).await;
            let _ = p.tx.send(IngestMessage::End).await;
        }
        result
    }

    /// The next read of a publishing connection in merged-read mode: what waits at the next
    /// tick (at once when the last read filled the buffer), Some(0) when the peer closed, None
    /// when nothing has come since the last tick.
    async fn read_at_tick(
        &self,
        socket: &TcpStream,
        buf: &mut [u8],
        ticks: &mut TickState,
    ) -> anyhow::Result<Option<usize>> {
        if !ticks.quiet {
            merged_read::quiet_until_tick(socket);
            ticks.quiet = true;
        }
        if !ticks.more_waiting {
            tokio::time::sleep_until(merged_read::next_tick(self.merged_read)).await;
        }
        Ok(match merged_read::read_waiting(socket, buf)? {
            TickRead::Data(n) => {
                ticks.more_waiting = n == buf.len();
                Some(n)
            }
            TickRead::Closed => Some(0),
            TickRead::Nothing => {
                ticks.more_waiting = false;
                None
            }
        })
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

/// Where a publishing connection is in merged-read mode.
#[derive(Default)]
struct TickState {
    /// The kernel was told to stay quiet for small arrivals.
    quiet: bool,
    /// The last read filled the buffer: read again before the next tick.
    more_waiting: bool,
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

/// A connection's bytes: plain TCP, or TCP inside TLS (RTMPS).
pub trait IngestStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The socket itself where reads may bypass the runtime (merged read); None under TLS,
    /// whose records must go through the TLS layer.
    fn plain(&self) -> Option<&TcpStream>;
}

impl IngestStream for TcpStream {
    fn plain(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl IngestStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn plain(&self) -> Option<&TcpStream> {
        None
    }
}

async fn flush<S: IngestStream>(conn: &mut ServerConnection, socket: &mut S) -> anyhow::Result<()> {
    while let Some(bytes) = conn.poll_transmit() {
        socket.write_all(&bytes).await?;
    }
    Ok(())
}
