//! The async face of publishing: vshare-rtmp's sans-IO client over a tokio socket, sending the
//! tags of a [`TagFeed`] in real time as the [`Pacer`] says.
//!
//! ```no_run
//! # async fn example(url: vshare_rtmp::RtmpUrl) -> Result<(), vshare_source::PublishError> {
//! use vshare_source::{Input, Pacer, RtmpPublisher, SourceOptions, SourceThread};
//! let (info, mut tags) = SourceThread::spawn(Input::TestPattern, SourceOptions::default()).await?;
//! let mut session = RtmpPublisher::new(&url, "KEY").publish().await?;
//! session.send_metadata(&info).await?;
//! let stats = session
//!     .send_in_real_time(&mut tags, &mut Pacer::new(), std::future::pending(), |_| {})
//!     .await?;
//! session.close().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use vshare_rtmp::{ClientConnection, ClientEvent, RtmpError, RtmpUrl};

use crate::feed::TagFeed;
use crate::pacer::{Pace, Pacer};
use crate::{SourceError, SourceInfo, Tag, TagKind};

/// The chunk size `vshare publish` sends with: a chunk header every 4 KiB instead of RTMP's
/// default 128 bytes.
pub const DEFAULT_CHUNK_SIZE: u32 = 4096;

/// How long connecting, the handshake and the publish answer may take together, by default.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("connecting to {addr}: no answer within {limit:?}")]
    ConnectTimeout { addr: String, limit: Duration },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("RTMP connect/publish to {addr} did not finish within {limit:?}")]
    PublishTimeout { addr: String, limit: Duration },
    #[error("the server rejected the publish: {code}: {description}")]
    Rejected { code: String, description: String },
    #[error(
        "the server closed the connection before the publish started (wrong stream key or application?)"
    )]
    ClosedBeforePublish,
    #[error("the server stopped the stream: {code}: {description}")]
    Stopped { code: String, description: String },
    #[error("the server closed the connection after {:.1} s", *.media_ms as f64 / 1000.0)]
    Closed { media_ms: i64 },
    #[error("{what} the RTMP server: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    #[error("source: {0}")]
    Source(#[from] SourceError),
}

fn reading(source: std::io::Error) -> PublishError {
    PublishError::Io {
        what: "reading from",
        source,
    }
}

fn writing(source: std::io::Error) -> PublishError {
    PublishError::Io {
        what: "writing to",
        source,
    }
}

/// Counters of one real-time publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PublishStats {
    /// Video frames sent (sequence headers not counted).
    pub video_frames: u64,
    /// Audio frames sent (sequence headers not counted).
    pub audio_frames: u64,
    /// Tag bodies sent, sequence headers included.
    pub bytes: u64,
    /// Media time sent, ms.
    pub media_ms: i64,
    /// Largest delay of a tag behind its real-time deadline, ms.
    pub max_lag_ms: f64,
    pub wall_ms: u64,
}

impl PublishStats {
    fn count(&mut self, tag: &Tag, late: Duration) {
        if !tag.config {
            match tag.kind {
                TagKind::Video => self.video_frames += 1,
                TagKind::Audio => self.audio_frames += 1,
            }
        }
        self.bytes += tag.body.len() as u64;
        self.media_ms = self.media_ms.max(tag.timestamp_ms);
        self.max_lag_ms = self.max_lag_ms.max(late.as_secs_f64() * 1000.0);
    }
}

/// Where and how to publish; [`RtmpPublisher::publish`] connects.
#[derive(Debug, Clone)]
pub struct RtmpPublisher {
    url: RtmpUrl,
    stream_key: String,
    chunk_size: u32,
    timeout: Duration,
}

impl RtmpPublisher {
    /// Publishes `stream_key` on `url`'s application (the key in `url`, if any, is not used).
    pub fn new(url: &RtmpUrl, stream_key: &str) -> Self {
        Self {
            url: url.clone(),
            stream_key: stream_key.to_string(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    /// The RTMP chunk size to send with ([`DEFAULT_CHUNK_SIZE`]); 128 is what ffmpeg keeps.
    pub fn with_chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// How long connecting may take, and then the handshake and publish answer
    /// ([`DEFAULT_PUBLISH_TIMEOUT`]).
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Connects, handshakes and publishes: returns once the server answered
    /// `NetStream.Publish.Start`.
    pub async fn publish(self) -> Result<RtmpSession, PublishError> {
        let addr = format!("{}:{}", self.url.host, self.url.port);
        let limit = self.timeout;
        let sock = tokio::time::timeout(limit, TcpStream::connect(&addr))
            .await
            .map_err(|_| PublishError::ConnectTimeout {
                addr: addr.clone(),
                limit,
            })?
            .map_err(|source| PublishError::Connect {
                addr: addr.clone(),
                source,
            })?;
        // Tags are written when due; Nagle would hold them back.
        sock.set_nodelay(true).map_err(writing)?;
        let (reader, writer) = sock.into_split();
        let conn = ClientConnection::new(&self.url.app, &self.stream_key, &self.url.tc_url())
            .with_chunk_size(self.chunk_size);
        let mut session = RtmpSession {
            conn,
            reader,
            writer,
            buf: vec![0u8; 16 * 1024],
        };
        tokio::time::timeout(limit, session.until_published())
            .await
            .map_err(|_| PublishError::PublishTimeout { addr, limit })??;
        Ok(session)
    }
}

/// A published RTMP stream.
pub struct RtmpSession {
    conn: ClientConnection,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: Vec<u8>,
}

impl RtmpSession {
    async fn until_published(&mut self) -> Result<(), PublishError> {
        loop {
            self.flush().await?;
            while let Some(ev) = self.conn.poll_event() {
                match ev {
                    ClientEvent::Published => return Ok(()),
                    ClientEvent::Rejected { code, description } => {
                        return Err(PublishError::Rejected { code, description });
                    }
                    _ => {}
                }
            }
            let n = self.reader.read(&mut self.buf).await.map_err(reading)?;
            if n == 0 {
                return Err(PublishError::ClosedBeforePublish);
            }
            self.conn.handle_input(&self.buf[..n])?;
        }
    }

    /// Writes everything the connection has queued.
    async fn flush(&mut self) -> Result<(), PublishError> {
        while let Some(b) = self.conn.poll_transmit() {
            self.writer.write_all(&b).await.map_err(writing)?;
        }
        Ok(())
    }

    /// Reads what the server sent; a status that ends the stream is an error. Cancel-safe:
    /// the only wait is the read.
    async fn receive(&mut self, media_ms: i64) -> Result<(), PublishError> {
        let n = self.reader.read(&mut self.buf).await.map_err(reading)?;
        if n == 0 {
            return Err(PublishError::Closed { media_ms });
        }
        self.conn.handle_input(&self.buf[..n])?;
        while let Some(ev) = self.conn.poll_event() {
            if let ClientEvent::Rejected { code, description } = ev {
                return Err(PublishError::Stopped { code, description });
            }
        }
        Ok(())
    }

    fn queue(&mut self, tag: &Tag) -> Result<(), PublishError> {
        match tag.kind {
            TagKind::Video => self.conn.send_video(tag.timestamp_ms, &tag.body)?,
            TagKind::Audio => self.conn.send_audio(tag.timestamp_ms, &tag.body)?,
        }
        Ok(())
    }

    /// Sends `@setDataFrame onMetaData` with the source's properties.
    pub async fn send_metadata(&mut self, info: &SourceInfo) -> Result<(), PublishError> {
        self.conn.send_metadata(&info.metadata())?;
        self.flush().await
    }

    /// Sends tags at once, not paced: sequence headers before a paced feed.
    pub async fn send_now(&mut self, tags: &[Tag]) -> Result<(), PublishError> {
        for t in tags {
            self.queue(t)?;
        }
        self.flush().await
    }

    /// Sends the feed's tags in real time until it ends or `stop` completes, answering the
    /// server meanwhile. Every tag due at a wake-up is queued, then all are written at once.
    /// `progress` sees the counters after each write.
    pub async fn send_in_real_time(
        &mut self,
        feed: &mut impl TagFeed,
        pacer: &mut Pacer,
        stop: impl Future<Output = ()>,
        mut progress: impl FnMut(&PublishStats),
    ) -> Result<PublishStats, PublishError> {
        let started = Instant::now();
        let mut stats = PublishStats::default();
        let mut pending: Option<Tag> = None;
        let mut stop = std::pin::pin!(stop);
        loop {
            let wait = loop {
                if pending.is_none() {
                    pending = feed.ready_tag()?;
                }
                let Some(tag) = pending.take() else {
                    break None;
                };
                match pacer.pace(tag.timestamp_ms, Instant::now().into_std()) {
                    Pace::Due { late } => {
                        self.queue(&tag)?;
                        stats.count(&tag, late);
                    }
                    Pace::Wait { until } => {
                        pending = Some(tag);
                        break Some(Instant::from_std(until));
                    }
                }
            };
            self.flush().await?;
            progress(&stats);
            tokio::select! {
                biased;
                () = &mut stop => break,
                r = self.receive(stats.media_ms) => r?,
                () = tokio::time::sleep_until(wait.unwrap_or_else(Instant::now)), if wait.is_some() => {}
                t = feed.next_tag(), if pending.is_none() => match t? {
                    Some(t) => pending = Some(t),
                    None => break,
                },
            }
        }
        stats.wall_ms = started.elapsed().as_millis() as u64;
        Ok(stats)
    }

    /// Ends the stream (`FCUnpublish`, `deleteStream`) and closes the connection.
    pub async fn close(mut self) -> Result<(), PublishError> {
        self.conn.finish();
        self.flush().await?;
        self.writer.shutdown().await.map_err(writing)
    }
}
