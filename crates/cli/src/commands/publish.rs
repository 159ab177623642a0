//! `vshare publish`: the source phone on the command line. A file or the test pattern becomes
//! timestamped FLV tags (vshare-source, on its own thread), sent in real time over RTMP
//! (vshare-rtmp's client over a tokio socket); the attribute data the server returns is polled
//! from its HTTP API and printed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use vshare_rtmp::{ClientConnection, ClientEvent, RtmpUrl};
use vshare_source::{Input, SourceInfo, SourceOptions, Tag, TagKind};

#[derive(clap::Args)]
pub struct Args {
    /// Where to publish: rtmp://HOST[:PORT]/APP/STREAM_KEY; with `--protocol upload` the
    /// server's HTTP address, http://HOST:PORT.
    pub url: String,
    /// `rtmp`, or `upload`: the upload protocol over WebSocket, adapting bitrate, frame rate
    /// and picture size to the network (docs/upload-protocol.md).
    #[arg(long, default_value = "rtmp", value_parser = ["rtmp", "upload"])]
    pub protocol: String,
    /// The stream key (or an upload token) for `--protocol upload`.
    #[arg(long, env = "VSHARE_STREAM_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Highest total bitrate the upload may climb to (`--protocol upload`).
    #[arg(long, default_value = "2500k", value_parser = vshare_source::parse_bitrate)]
    pub max_bitrate: u64,
    /// Title of the video (`--protocol upload`).
    #[arg(long, default_value = "")]
    pub title: String,
    /// Media file to publish (remuxed if H.264/AAC, otherwise encoded).
    #[arg(long, conflicts_with = "test_pattern")]
    pub file: Option<PathBuf>,
    /// Publish a generated test pattern (clock, frame counter, 440 Hz tone).
    #[arg(long)]
    pub test_pattern: bool,
    /// Stop after this much media time (30s, 2m, 500ms). Default: the whole file; the test
    /// pattern runs until Ctrl-C.
    #[arg(long, value_parser = vshare_source::parse_duration_ms)]
    pub duration: Option<i64>,
    /// Picture size when encoding, WIDTHxHEIGHT [test pattern: 640x360].
    #[arg(long, value_parser = vshare_source::parse_size)]
    pub size: Option<(u32, u32)>,
    /// Frame rate when encoding [test pattern: 30].
    #[arg(long)]
    pub fps: Option<u32>,
    /// Video bitrate when encoding (1M, 800k).
    #[arg(long, default_value = "1M", value_parser = vshare_source::parse_bitrate)]
    pub bitrate: u64,
    /// Start the file again at its end, with continuous timestamps.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Encode even a file that could be remuxed.
    #[arg(long)]
    pub encode: bool,
    /// The server's HTTP API, polled for the attribute data [default: http://HOST:8080].
    #[arg(long)]
    pub http: Option<String>,
    /// Do not poll the HTTP API.
    #[arg(long, conflicts_with = "http")]
    pub no_status: bool,
    /// Seconds to wait for the VOD records after the stream ends (at most 15).
    #[arg(long, default_value_t = 15)]
    pub vod_wait: u64,
    /// Print one JSON object on stdout at the end (publish statistics, live and VOD video).
    #[arg(long)]
    pub json: bool,
}

/// Counters of one publish.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PublishStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    /// Media time sent, ms.
    pub media_ms: i64,
    /// Largest delay of a tag behind its real-time deadline, ms.
    pub max_lag_ms: f64,
    pub wall_ms: u64,
}

/// An RTMP connection that has reached `NetStream.Publish.Start`.
pub struct Published {
    pub conn: ClientConnection,
    pub reader: OwnedReadHalf,
    pub writer: OwnedWriteHalf,
}

impl Published {
    /// Writes everything the connection has queued.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(b) = self.conn.poll_transmit() {
            self.writer
                .write_all(&b)
                .await
                .context("writing to the RTMP server")?;
        }
        Ok(())
    }

    /// Feeds bytes read from the server; a rejection or an error status ends the publish.
    pub fn input(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.conn.handle_input(bytes)?;
        while let Some(ev) = self.conn.poll_event() {
            if let ClientEvent::Rejected { code, description } = ev {
                bail!("the server stopped the stream: {code}: {description}");
            }
        }
        Ok(())
    }

    /// Sends one tag (queued; call [`Published::flush`]).
    pub fn send(&mut self, t: &Tag, offset_ms: i64) -> anyhow::Result<()> {
        match t.kind {
            TagKind::Video => self.conn.send_video(t.timestamp_ms + offset_ms, &t.body)?,
            TagKind::Audio => self.conn.send_audio(t.timestamp_ms + offset_ms, &t.body)?,
        }
        Ok(())
    }
}

/// Connects, handshakes and publishes `stream_key` on `url`'s application, sending chunks of
/// `chunk_size` bytes.
pub async fn connect_and_publish(
    url: &RtmpUrl,
    stream_key: &str,
    limit: Duration,
    chunk_size: u32,
) -> anyhow::Result<Published> {
    let addr = format!("{}:{}", url.host, url.port);
    let sock = tokio::time::timeout(limit, TcpStream::connect(&addr))
        .await
        .map_err(|_| anyhow!("connecting to {addr}: no answer within {limit:?}"))?
        .with_context(|| format!("connecting to {addr}"))?;
    sock.set_nodelay(true)?;
    let (reader, writer) = sock.into_split();
    let conn =
        ClientConnection::new(&url.app, stream_key, &url.tc_url()).with_chunk_size(chunk_size);
    let mut p = Published {
        conn,
        reader,
        writer,
    };
    let mut buf = vec![0u8; 16 * 1024];
    let handshake = async {
        loop {
            p.flush().await?;
            while let Some(ev) = p.conn.poll_event() {
                match ev {
                    ClientEvent::Published => return Ok(()),
                    ClientEvent::Rejected { code, description } => {
                        bail!("the server rejected the publish: {code}: {description}")
                    }
                    _ => {}
                }
            }
            let n = p
                .reader
                .read(&mut buf)
                .await
                .context("reading from the RTMP server")?;
            if n == 0 {
                bail!(
                    "the server closed the connection before the publish started (wrong stream key or application?)"
                );
            }
            p.conn.handle_input(&buf[..n])?;
        }
    };
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| anyhow!("RTMP connect/publish to {addr} did not finish within {limit:?}"))??;
    Ok(p)
}

/// One line of progress: plain lines when stderr is not a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            bar,
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, s: &PublishStats, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let msg = format!(
            "sent {:.1} s, {:.2} Mbit/s, {} video + {} audio frames, max lag {:.0} ms",
            s.media_ms as f64 / 1000.0,
            s.bytes as f64 * 8.0 / secs / 1e6,
            s.video_frames,
            s.audio_frames,
            s.max_lag_ms
        );
        match &self.bar {
            Some(b) => b.set_message(msg),
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                eprintln!("{msg}");
            }
            None => {}
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.protocol == "upload" {
        return run_upload(args).await;
    }
    let url = RtmpUrl::parse(&args.url).map_err(|e| anyhow!(e))?;
    let Some(key) = url.stream_key.clone() else {
        bail!(
            "{} has no stream key: use rtmp://HOST/APP/STREAM_KEY",
            args.url
        );
    };
    let input = input_of(&args)?;
    let options = SourceOptions {
        size: args.size,
        fps: args.fps,
        video_bitrate: args.bitrate,
        duration_ms: args.duration,
        looping: args.looping,
        force_encode: args.encode,
        ..SourceOptions::default()
    };
    let http = if args.no_status {
        None
    } else {
        Some(
            args.http
                .clone()
                .unwrap_or_else(|| format!("http://{}:8080", url.host)),
        )
    };

    let (info, tags) = start_source(input, options).await?;
    let status = http
        .as_ref()
        .map(|h| StatusClient::new(h, &key))
        .transpose()?;

    let mut published = connect_and_publish(&url, &key, Duration::from_secs(10), 4096).await?;
    if !args.json {
        println!(
            "publishing {}x{} {:.2} fps ({}) to {}",
            info.width,
            info.height,
            info.fps,
            match info.mode {
                vshare_source::Mode::Remux => "remuxed",
                vshare_source::Mode::Encode => "encoded",
                vshare_source::Mode::TestPattern => "test pattern",
            },
            url.tc_url()
        );
    }
    let progress = Progress::new();
    let (stats, live) = stream(
        &mut published,
        &info,
        tags,
        status.as_ref(),
        progress,
        args.json,
    )
    .await?;

    published.conn.finish();
    let _ = published.flush().await;
    let _ = published.writer.shutdown().await;

    let mut vod = None;
    if let Some(s) = &status {
        vod = s
            .wait_for_vod(Duration::from_secs(args.vod_wait.min(15)), args.json)
            .await;
    }
    if args.json {
        let out = serde_json::json!({ "published": stats, "live": live, "vod": vod });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "sent {:.1} s of media: {} video and {} audio frames, {:.2} MB, max lag {:.0} ms",
            stats.media_ms as f64 / 1000.0,
            stats.video_frames,
            stats.audio_frames,
            stats.bytes as f64 / 1e6,
            stats.max_lag_ms
        );
    }
    Ok(())
}

fn input_of(args: &Args) -> anyhow::Result<Input> {
    Ok(match (&args.file, args.test_pattern) {
        (Some(f), false) => Input::File(f.clone()),
        (None, true) => Input::TestPattern,
        _ => bail!("say what to publish: --file PATH or --test-pattern"),
    })
}

async fn run_upload(args: Args) -> anyhow::Result<()> {
    let Some(token) = args.key.clone().filter(|k| !k.is_empty()) else {
        bail!("--protocol upload needs --key STREAM_KEY (or VSHARE_STREAM_KEY)");
    };
    let input = input_of(&args)?;
    let kbps = |b: u64| u32::try_from(b / 1000).unwrap_or(u32::MAX);
    let stats = super::upload::run(super::upload::UploadArgs {
        server: args.url.clone(),
        token,
        input,
        size: args.size.unwrap_or((640, 360)),
        start_kbps: kbps(args.bitrate),
        max_kbps: kbps(args.max_bitrate).max(kbps(args.bitrate)),
        duration_ms: args.duration,
        title: args.title.clone(),
        json: args.json,
        vod_wait: Duration::from_secs(args.vod_wait),
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        println!(
            "sent {:.1} s of media: {} video frames ({} dropped) and {} audio frames, {:.2} MB of media in {:.2} MB on the wire, {} reconnects",
            stats.media_ms as f64 / 1000.0,
            stats.video_frames,
            stats.dropped_frames,
            stats.audio_frames,
            stats.media_bytes as f64 / 1e6,
            stats.wire_bytes as f64 / 1e6,
            stats.reconnects
        );
    }
    Ok(())
}

type TagReceiver = tokio::sync::mpsc::Receiver<Result<Tag, String>>;

/// Opens the source on its own thread (FFmpeg's work is blocking); tags arrive on a bounded
/// channel, so the thread runs at most a few dozen tags ahead of the network.
async fn start_source(
    input: Input,
    options: SourceOptions,
) -> anyhow::Result<(SourceInfo, TagReceiver)> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let (info_tx, info_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("vshare-source".into())
        .spawn(move || {
            let source = match vshare_source::Source::open(&input, &options) {
                Ok(s) => {
                    let _ = info_tx.send(Ok(s.info().clone()));
                    s
                }
                Err(e) => {
                    let _ = info_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for t in source {
                let failed = t.is_err();
                if tx.blocking_send(t.map_err(|e| e.to_string())).is_err() || failed {
                    break;
                }
            }
        })?;
    let info = info_rx
        .await
        .map_err(|_| anyhow!("the source thread ended early"))?
        .map_err(|e| anyhow!(e))?;
    Ok((info, rx))
}

/// Sends tags in real time: each at `start + timestamp`. Returns the counters and the live
/// video record if the server published one.
async fn stream(
    p: &mut Published,
    info: &SourceInfo,
    mut tags: TagReceiver,
    status: Option<&StatusClient>,
    mut progress: Progress,
    quiet: bool,
) -> anyhow::Result<(PublishStats, Option<serde_json::Value>)> {
    p.conn.send_metadata(&info.metadata())?;
    p.flush().await?;
    let mut stats = PublishStats::default();
    let start = Instant::now();
    let mut pending: Option<Tag> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    let mut live: Option<serde_json::Value> = None;
    let mut warned = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let deadline = pending
            .as_ref()
            .map(|t| start + Duration::from_millis(t.timestamp_ms.max(0) as u64));
        tokio::select! {
            biased;
            _ = &mut ctrl_c => {
                progress.println("interrupted: ending the stream");
                break;
            }
            r = p.reader.read(&mut buf) => {
                let n = r.context("reading from the RTMP server")?;
                if n == 0 {
                    bail!("the server closed the connection after {:.1} s", stats.media_ms as f64 / 1000.0);
                }
                p.input(&buf[..n])?;
                p.flush().await?;
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let Some(t) = pending.take() else { continue };
                if let Some(d) = deadline {
                    let lag = Instant::now().saturating_duration_since(d).as_secs_f64() * 1000.0;
                    stats.max_lag_ms = stats.max_lag_ms.max(lag);
                }
                p.send(&t, 0)?;
                p.flush().await?;
                if !t.config {
                    match t.kind {
                        TagKind::Video => stats.video_frames += 1,
                        TagKind::Audio => stats.audio_frames += 1,
                    }
                }
                stats.bytes += t.body.len() as u64;
                stats.media_ms = stats.media_ms.max(t.timestamp_ms);
            }
            t = tags.recv(), if pending.is_none() => match t {
                Some(Ok(t)) => pending = Some(t),
                Some(Err(e)) => bail!("source: {e}"),
                None => break,
            },
            _ = tick.tick() => progress.update(&stats, start),
            _ = poll.tick(), if status.is_some() && live.is_none() => {
                if let Some(s) = status {
                    match s.fetch().await {
                        Ok(Some(v)) if has_record(&v, "live") => {
                            for line in describe(&v, "live") {
                                progress.println(&line);
                            }
                            live = Some(v);
                        }
                        Ok(_) => {}
                        Err(e) if !warned => {
                            warned = true;
                            if !quiet {
                                progress.println(&format!("attribute data not available yet: {e:#}"));
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
    progress.finish();
    stats.wall_ms = start.elapsed().as_millis() as u64;
    Ok((stats, live))
}

/// Polls `GET {http}/api/v1/publish/status` with the stream key as bearer token.
struct StatusClient {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl StatusClient {
    fn new(http: &str, key: &str) -> anyhow::Result<Self> {
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

    /// The Video of this key's current or latest stream; `None` while the server has none.
    async fn fetch(&self) -> anyhow::Result<Option<serde_json::Value>> {
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

    /// Waits up to `limit` for the VOD records of the stream just ended.
    async fn wait_for_vod(&self, limit: Duration, quiet: bool) -> Option<serde_json::Value> {
        let until = Instant::now() + limit;
        let mut last_error = None;
        while Instant::now() < until {
            match self.fetch().await {
                Ok(Some(v)) if has_record(&v, "vod") => {
                    if !quiet {
                        for line in describe(&v, "vod") {
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

fn records<'a>(
    video: &'a serde_json::Value,
    kind: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> {
    video["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |r| r["kind"].as_str() == Some(kind))
}

fn has_record(video: &serde_json::Value, kind: &str) -> bool {
    records(video, kind).next().is_some()
}

/// Human-readable lines for a video's records of one kind.
fn describe(video: &serde_json::Value, kind: &str) -> Vec<String> {
    let mut lines = vec![format!(
        "{kind}: video {} ({})",
        video["id"].as_str().unwrap_or("?"),
        video["state"].as_str().unwrap_or("?")
    )];
    for r in records(video, kind) {
        match serde_json::from_value::<vshare_attributes::AttributeRecord>(r.clone()) {
            Ok(a) => lines.push(format!(
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
            )),
            Err(_) => lines.push(format!("  {r}")),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    //! `vshare publish` against an in-test RTMP server built on vshare-rtmp's ServerConnection;
    //! the received tags are written to FLV and checked by ffprobe (Debian package `ffmpeg`).

    use super::*;
    use tokio::net::TcpListener;
    use vshare_media::flv::TagDemuxer;
    use vshare_media::{MediaEvent, TrackConfig, TrackKind};
    use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};

    struct Got {
        video: Vec<(i64, bytes::Bytes)>,
        audio: Vec<(i64, bytes::Bytes)>,
        metadata: bool,
        finished: bool,
    }

    async fn serve(listener: TcpListener, accept: bool) -> Got {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut conn = ServerConnection::new(ServerLimits::default());
        let mut got = Got {
            video: vec![],
            audio: vec![],
            metadata: false,
            finished: false,
        };
        let mut buf = vec![0u8; 65536];
        loop {
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if n == 0 || conn.handle_input(&buf[..n]).is_err() {
                return got;
            }
            let mut close = false;
            while let Some(ev) = conn.poll_event() {
                match ev {
                    ServerEvent::PublishRequested { request_id, .. } if accept => {
                        conn.accept_publish(request_id).expect("accept")
                    }
                    ServerEvent::PublishRequested { request_id, .. } => {
                        conn.reject_publish(request_id, "NetStream.Publish.BadName", "no such key")
                            .expect("reject");
                        close = true;
                    }
                    ServerEvent::Video { timestamp_ms, body } => {
                        got.video.push((timestamp_ms, body))
                    }
                    ServerEvent::Audio { timestamp_ms, body } => {
                        got.audio.push((timestamp_ms, body))
                    }
                    ServerEvent::Metadata(_) => got.metadata = true,
                    ServerEvent::PublishFinished => got.finished = true,
                    _ => {}
                }
            }
            while let Some(b) = conn.poll_transmit() {
                let _ = sock.write_all(&b).await;
            }
            if close {
                return got;
            }
        }
    }

    fn args(url: String) -> Args {
        Args {
            url,
            protocol: "rtmp".into(),
            key: None,
            max_bitrate: 2_500_000,
            title: String::new(),
            file: None,
            test_pattern: true,
            duration: Some(3000),
            size: Some((426, 240)),
            fps: Some(24),
            bitrate: 600_000,
            looping: false,
            encode: false,
            http: None,
            no_status: true,
            vod_wait: 0,
            json: true,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_pattern_arrives_in_real_time_and_decodes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, true));
        let started = std::time::Instant::now();
        run(args(format!("rtmp://127.0.0.1:{port}/live/k1")))
            .await
            .expect("publish");
        let wall = started.elapsed().as_secs_f64();
        assert!(
            (2.8..6.0).contains(&wall),
            "3 s of media must take about 3 s, took {wall}"
        );
        let got = server.await.expect("server");
        assert!(got.metadata && got.finished);

        let mut demux = TagDemuxer::new();
        let mut avc = None;
        let mut frames = 0;
        for (ts, body) in &got.video {
            match demux.video(*ts, body.clone()).expect("video tag") {
                Some(MediaEvent::Config(TrackConfig::Avc(c))) => avc = Some(c),
                Some(MediaEvent::Frame(f)) if f.track == TrackKind::Video => frames += 1,
                _ => {}
            }
        }
        let avc = avc.expect("AVC sequence header");
        assert_eq!(
            (avc.width, avc.height, avc.frame_rate),
            (426, 240, Some(24.0))
        );
        assert_eq!(frames, 72, "3 s at 24 fps");

        // ffprobe decodes what the server received.
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("got.flv");
        let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let mut all: Vec<(u8, i64, &bytes::Bytes)> =
            got.video.iter().map(|(t, b)| (9, *t, b)).collect();
        all.extend(got.audio.iter().map(|(t, b)| (8, *t, b)));
        all.sort_by_key(|(_, t, _)| *t);
        for (ty, ts, body) in all {
            let n = body.len() as u32;
            flv.push(ty);
            flv.extend_from_slice(&n.to_be_bytes()[1..]);
            flv.extend_from_slice(&(ts as u32).to_be_bytes()[1..]);
            flv.extend_from_slice(&[0, 0, 0, 0]);
            flv.extend_from_slice(body);
            flv.extend_from_slice(&(n + 11).to_be_bytes());
        }
        std::fs::write(&path, flv).expect("write");
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
            ])
            .args([
                "stream=codec_name,width,height,r_frame_rate,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .expect("the ffprobe binary is needed for this test (apt-get install ffmpeg)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "h264,426,240,24/1,72"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mpeg4_mp3_file_arrives_as_h264_and_aac() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("legacy.avi");
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=20:duration=2",
            ])
            .args(["-f", "lavfi", "-i", "sine=sample_rate=22050:duration=2"])
            .args(["-c:v", "mpeg4", "-c:a", "libmp3lame"])
            .arg(&file)
            .output()
            .expect("the ffmpeg binary is needed for this test (apt-get install ffmpeg)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, true));
        let mut a = args(format!("rtmp://127.0.0.1:{port}/live/k2"));
        a.test_pattern = false;
        a.file = Some(file);
        a.duration = None;
        a.size = None;
        a.fps = None;
        run(a).await.expect("publish");
        let got = server.await.expect("server");
        let mut demux = TagDemuxer::new();
        let (mut avc, mut aac, mut video, mut audio) = (None, None, 0, 0);
        for (ts, body) in &got.video {
            match demux.video(*ts, body.clone()).expect("video tag") {
                Some(MediaEvent::Config(TrackConfig::Avc(c))) => avc = Some(c),
                Some(MediaEvent::Frame(_)) => video += 1,
                _ => {}
            }
        }
        for (ts, body) in &got.audio {
            match demux.audio(*ts, body.clone()).expect("audio tag: AAC") {
                Some(MediaEvent::Config(TrackConfig::Aac(c))) => aac = Some(c),
                Some(MediaEvent::Frame(_)) => audio += 1,
                _ => {}
            }
        }
        let avc = avc.expect("H.264 sequence header");
        assert_eq!(
            (avc.width, avc.height, avc.frame_rate),
            (320, 240, Some(20.0))
        );
        assert_eq!(aac.expect("AAC sequence header").sample_rate, 48_000);
        assert!((39..=41).contains(&video), "{video}");
        assert!((90..=98).contains(&audio), "{audio}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rejected_publish_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, false));
        let e = run(args(format!("rtmp://127.0.0.1:{port}/live/wrong")))
            .await
            .expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "the server rejected the publish: NetStream.Publish.BadName: no such key"
        );
        let got = server.await.expect("server");
        assert!(got.video.is_empty());
    }
}
