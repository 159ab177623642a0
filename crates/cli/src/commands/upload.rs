//! `vshare publish --protocol upload`: the source phone over the upload protocol
//! (`docs/upload-protocol.md`). An adaptive source (vshare-source) captures in real time on its
//! own thread; this side runs the protocol's sender core and rate controller over a WebSocket,
//! drops video until a key frame when the backlog grows, changes bitrate and quality step on
//! the server's feedback, and resumes the session after a dropped connection. With the
//! protocol's `backfill` feature it keeps the video it dropped (in memory, within
//! `--backfill-max-bytes`) and sends it late when the rate controller has room, or after the
//! stop, so the recording holds every frame.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_source::adaptive::{AdaptiveOptions, AdaptiveSource, CAPTURE_FPS, Control};
use vshare_source::{Input, Pace, Pacer};
use vshare_upload::wire::PROTOCOL;
use vshare_upload::{SenderRate, ServerMessage, TrackInfo, UploadSender, WireMessage};

const VIDEO_TRACK: u8 = 0;
const AUDIO_TRACK: u8 = 1;
const AUDIO_KBPS: u32 = 64;

/// What the upload run saw, for `--json` and the impairment test.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct UploadStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub dropped_frames: u64,
    pub media_bytes: u64,
    /// WebSocket message payloads sent (headers, JSON, frames sent again).
    pub wire_bytes: u64,
    /// WebSocket frame headers around them (RFC 6455 §5.2: 2 bytes, +2 or +8 for the
    /// length, +4 for the client's mask).
    pub ws_header_bytes: u64,
    pub resent_frames: u64,
    pub reconnects: u64,
    /// `backfill`: dropped video frames kept and sent late, and those not kept (a bound).
    pub backfill_frames: u64,
    pub backfill_lost: u64,
    /// Key frames the server asked for (`keyframe`: a WebRTC player joined or lost one).
    pub keyframe_requests: u64,
    /// From the stop (the source's end) to the server's close after the complete VOD, ms.
    pub stop_to_vod_ms: Option<u64>,
    /// Media time sent, ms.
    pub media_ms: i64,
    /// Wall time from the first frame to the server's last acknowledgement, ms.
    pub wall_ms: u64,
    /// Largest age of the oldest unacknowledged frame (capture to now), ms: how far behind
    /// real time the upload fell.
    pub max_lag_ms: u64,
    /// (seconds since start, step, target kbit/s, width, height, fps) at each change.
    pub steps: Vec<(f64, usize, u32, u32, u32, u32)>,
    /// (seconds since start, target kbit/s, queue delay ms, receive kbit/s) per feedback.
    pub feedback: Vec<(f64, u32, u32, u32)>,
}

pub struct UploadArgs {
    pub server: String,
    pub token: String,
    pub input: Input,
    pub size: (u32, u32),
    pub start_kbps: u32,
    pub max_kbps: u32,
    pub duration_ms: Option<i64>,
    pub title: String,
    pub json: bool,
    pub vod_wait: Duration,
    /// Dropped frames kept for the backfill at most, bytes; 0: none (no `backfill`).
    pub backfill_max_bytes: u64,
}

enum FromSource {
    Events(Vec<MediaEvent>),
    Failed(String),
}

/// The capture thread: one picture every 1/30 s of wall time, encoded as controlled.
fn spawn_source(
    opts: AdaptiveOptions,
    controls: std::sync::mpsc::Receiver<Control>,
    out: tokio::sync::mpsc::UnboundedSender<FromSource>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("vshare-capture".into())
        .spawn(move || {
            let mut source = match AdaptiveSource::open(&opts) {
                Ok(s) => s,
                Err(e) => {
                    let _ = out.send(FromSource::Failed(e.to_string()));
                    return;
                }
            };
            let mut pacer = Pacer::new();
            let mut index: u64 = 0;
            loop {
                while let Ok(c) = controls.try_recv() {
                    if let Err(e) = source.control(c) {
                        let _ = out.send(FromSource::Failed(e.to_string()));
                        return;
                    }
                }
                let capture_ms = (index * 1000 / u64::from(CAPTURE_FPS)) as i64;
                if let Pace::Wait { until } = pacer.pace(capture_ms, std::time::Instant::now()) {
                    std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
                }
                index += 1;
                match source.next_events() {
                    Ok(Some(events)) => {
                        if out.send(FromSource::Events(events)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = out.send(FromSource::Failed(e.to_string()));
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

fn track_info(config: &TrackConfig) -> TrackInfo {
    match config {
        TrackConfig::Avc(c) => TrackInfo {
            track: VIDEO_TRACK,
            kind: Some("video".into()),
            codec: config.codec_string(),
            description: Some(TrackInfo::encode_description(&c.record)),
            sample_rate: None,
            channels: None,
        },
        TrackConfig::Aac(c) => TrackInfo {
            track: AUDIO_TRACK,
            kind: Some("audio".into()),
            codec: "mp4a.40.2".into(),
            description: Some(TrackInfo::encode_description(&c.asc)),
            sample_rate: Some(c.output_sample_rate),
            channels: Some(c.channels),
        },
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn upload_url(server: &str) -> anyhow::Result<String> {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        bail!("{server}: give the server as http://HOST:PORT");
    };
    Ok(if ws.ends_with("/api/v1/upload") {
        ws
    } else {
        format!("{ws}/api/v1/upload")
    })
}

async fn connect(url: &str) -> anyhow::Result<Socket> {
    let mut request = url
        .into_client_request()
        .with_context(|| format!("upload URL {url}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        PROTOCOL.parse().context("protocol header")?,
    );
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| anyhow!("connecting to {url} timed out"))?
    .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

async fn write(ws: &mut Socket, m: WireMessage) -> anyhow::Result<()> {
    let msg = match m {
        WireMessage::Text(t) => Message::text(t),
        WireMessage::Binary(b) => Message::binary(b),
    };
    ws.send(msg).await.context("sending")
}

/// The server refused the upload (an `error` message or a 4xxx close): trying again would not
/// help, unlike a line that dropped.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server refused the upload: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The reason and code of a close frame, and whether the code is one of the protocol's
/// refusals (4000–4999).
fn close_reason(f: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> (String, bool) {
    match f {
        Some(f) => {
            let code = u16::from(f.code);
            (
                format!("{} ({code})", f.reason),
                (4000..5000).contains(&code),
            )
        }
        None => (String::new(), false),
    }
}

/// Sends hello and waits for welcome (or the server's error).
async fn handshake(
    ws: &mut Socket,
    sender: &mut UploadSender,
    hello: WireMessage,
) -> anyhow::Result<ServerMessage> {
    write(ws, hello).await?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| anyhow!("no welcome within 10 s"))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let m = sender.handle_text(t.as_str())?;
                match m {
                    ServerMessage::Welcome { .. } => return Ok(m),
                    ServerMessage::Error { code, message } => {
                        return Err(Refused(format!("{message} ({code})")).into());
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                let (why, refused) = close_reason(f);
                if refused {
                    return Err(Refused(why).into());
                }
                bail!("the server closed the upload: {why}")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("upload connection: {e}"),
            None => bail!("the server closed the connection before welcome"),
        }
    }
}

pub async fn run(a: UploadArgs) -> anyhow::Result<UploadStats> {
    let url = upload_url(&a.server)?;
    let (control_tx, control_rx) = std::sync::mpsc::channel();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut rate = SenderRate::new(a.size.0, a.size.1, AUDIO_KBPS, a.start_kbps, a.max_kbps);
    let (w, h) = rate.step_size(rate.step());
    spawn_source(
        AdaptiveOptions {
            input: a.input.clone(),
            capture: a.size,
            video_kbps: rate.video_kbps(),
            audio_kbps: AUDIO_KBPS,
            duration_us: a.duration_ms.map(|d| d * 1000),
        },
        control_rx,
        events_tx,
    )?;
    if rate.step() != 0 {
        let _ = control_tx.send(Control::Step {
            width: w,
            height: h,
            fps: rate.step_fps(rate.step()),
        });
    }
    // The first batch carries both configurations.
    let mut first = match events.recv().await {
        Some(FromSource::Events(e)) => e,
        Some(FromSource::Failed(e)) => bail!("source: {e}"),
        None => bail!("the source ended before it started"),
    };
    let mut tracks = Vec::new();
    first.retain(|e| match e {
        MediaEvent::Config(c)
            if !tracks
                .iter()
                .any(|t: &TrackInfo| t.track == track_info(c).track) =>
        {
            tracks.push(track_info(c));
            false
        }
        _ => true,
    });
    let mut sender = UploadSender::new();
    if a.backfill_max_bytes > 0 {
        sender = sender.with_backfill(a.backfill_max_bytes);
    }
    let hello = sender.hello(
        &a.token,
        &a.title,
        tracks.clone(),
        rate.target_kbps(),
        a.max_kbps,
    );
    let mut ws = connect(&url).await?;
    let welcome = handshake(&mut ws, &mut sender, hello).await?;
    let (grace, watch) = match &welcome {
        ServerMessage::Welcome {
            resume_grace_ms,
            watch_url,
            ..
        } => (Duration::from_millis(*resume_grace_ms), watch_url.clone()),
        _ => (Duration::from_secs(10), String::new()),
    };
    if !a.json {
        println!("uploading to {url}; watch: {watch}");
    }

    let started = Instant::now();
    let mut stats = UploadStats::default();
    let mut dropping = false;
    // Whether the run of dropped frames is still being kept for the backfill (a frame not
    // kept ends it: the next ones would not decode without it).
    let mut keeping = false;
    let mut stopped_at: Option<Instant> = None;
    let mut outage_allowance: u64 = 0;
    let mut resumed_at_us: Option<i64> = None;
    let mut source_done = false;
    let mut connected = true;
    let mut pending = vec![FromSource::Events(first)];
    let mut ended_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        // Take what the capture thread made.
        for item in pending.drain(..) {
            let batch = match item {
                FromSource::Events(b) => b,
                FromSource::Failed(e) => bail!("source: {e}"),
            };
            for e in batch {
                match e {
                    MediaEvent::Config(c) => {
                        sender.push_config(track_info(&c));
                    }
                    MediaEvent::Frame(f) => {
                        stats.media_ms = stats.media_ms.max(f.dts / 1000);
                        if f.track == TrackKind::Audio {
                            stats.audio_frames += 1;
                            sender.push_frame(AUDIO_TRACK, true, f.pts, f.dts, f.data);
                            continue;
                        }
                        // While the line is down every frame is kept, so the resume leaves
                        // no hole; on a live but slow line the backlog is bounded.
                        // What an outage left behind (frames captured before the resume) is
                        // not counted against the line: the allowance is the backlog when the
                        // first new frame comes, and shrinks to the lowest backlog seen since.
                        let backlog = sender.backlog_bytes();
                        match resumed_at_us {
                            Some(r) if f.dts < r => outage_allowance = u64::MAX,
                            Some(_) => {
                                resumed_at_us = None;
                                outage_allowance = backlog;
                            }
                            None => {}
                        }
                        outage_allowance = outage_allowance.min(backlog);
                        if connected
                            && !f.key
                            && !dropping
                            && rate.backlog_too_big(backlog - outage_allowance)
                        {
                            dropping = true;
                            keeping = sender.backfill();
                            let _ = control_tx.send(Control::KeyFrame);
                        }
                        if dropping && !f.key {
                            stats.dropped_frames += 1;
                            keeping = keeping
                                && sender.keep_late(VIDEO_TRACK, false, f.pts, f.dts, f.data);
                            if keeping {
                                stats.backfill_frames += 1;
                            } else if sender.backfill() {
                                stats.backfill_lost += 1;
                            }
                            continue;
                        }
                        dropping = false;
                        stats.video_frames += 1;
                        sender.push_frame(VIDEO_TRACK, f.key, f.pts, f.dts, f.data);
                    }
                }
            }
        }
        if let Some(dts) = sender.oldest_unacked_dts() {
            // The capture clock started with the capture thread, just before `started`.
            let lag = (started.elapsed().as_micros() as i64 - dts).max(0) / 1000;
            stats.max_lag_ms = stats.max_lag_ms.max(lag as u64);
        }
        // Late frames go when the live send leaves room, and all of them after the stop.
        if connected && sender.backfill() {
            let budget = match source_done {
                true => u64::MAX,
                false => rate.late_room(sender.backlog_bytes()),
            };
            sender.release_late(budget);
        }
        // At most 64 KiB per turn, so feedback and capture are handled between writes.
        let mut more = false;
        if connected {
            let mut failed = None;
            let mut written = 0;
            while written < 64 << 10 {
                let Some(m) = sender.poll_transmit() else {
                    break;
                };
                let len = match &m {
                    WireMessage::Text(t) => t.len(),
                    WireMessage::Binary(b) => b.len(),
                };
                written += len;
                stats.ws_header_bytes += ws_header_len(len);
                if let Err(e) = write(&mut ws, m).await {
                    failed = Some(e);
                    break;
                }
            }
            more = written >= 64 << 10;
            if let Some(e) = failed {
                if !a.json {
                    println!("upload connection lost ({e:#}); resuming");
                }
                connected = false;
            }
        }
        if !connected {
            ws = reconnect(&url, &mut sender, &a, &tracks, rate.target_kbps(), grace).await?;
            resumed_at_us = Some(started.elapsed().as_micros() as i64);
            stats.reconnects += 1;
            connected = true;
            continue;
        }
        if sender.finished() && ended_at.is_none() {
            ended_at = Some(Instant::now());
            stats.wall_ms = started.elapsed().as_millis() as u64;
        }
        // The server closes after the last VOD file's record; stop waiting at `vod_wait`.
        if let Some(t) = ended_at
            && t.elapsed() > a.vod_wait
        {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut ctrl_c, if !source_done => {
                source_done = true;
                stopped_at = Some(Instant::now());
                sender.end();
            }
            item = events.recv(), if !source_done => match item {
                Some(i) => pending.push(i),
                None => {
                    source_done = true;
                    stopped_at = Some(Instant::now());
                    sender.end();
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let m = sender.handle_text(t.as_str())?;
                    let now_s = started.elapsed().as_secs_f64();
                    match m {
                        ServerMessage::Feedback { suggested_kbps, queue_delay_ms, receive_kbps } => {
                            let now_us = started.elapsed().as_micros() as i64;
                            if let Some(step) = rate.on_feedback(now_us, suggested_kbps) {
                                let (width, height) = rate.step_size(step);
                                let fps = rate.step_fps(step);
                                let _ = control_tx.send(Control::Step { width, height, fps });
                                stats.steps.push((now_s, step, rate.target_kbps(), width, height, fps));
                                if !a.json {
                                    println!("{now_s:6.1} s  quality step {step}: {width}x{height} {fps} fps at {} kbit/s", rate.target_kbps());
                                }
                            }
                            let _ = control_tx.send(Control::Bitrate(rate.video_kbps()));
                            stats.feedback.push((now_s, rate.target_kbps(), queue_delay_ms, receive_kbps));
                        }
                        ServerMessage::Attributes { kind, text, .. } if !a.json => {
                            println!("{kind}: {}", text.trim_end().replace('\n', "  "));
                        }
                        ServerMessage::Error { code, message } => bail!("the server closed the upload: {message} ({code})"),
                        ServerMessage::Keyframe => {
                            stats.keyframe_requests += 1;
                            let _ = control_tx.send(Control::KeyFrame);
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    if sender.finished() {
                        // The server closes once the VOD is complete.
                        stats.stop_to_vod_ms = stopped_at.map(|t| t.elapsed().as_millis() as u64);
                        break;
                    }
                    let (why, refused) = close_reason(f);
                    if refused {
                        return Err(Refused(why).into());
                    }
                    connected = false;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if sender.finished() {
                        break;
                    }
                    connected = false;
                }
            },
            _ = tick.tick() => {}
            _ = std::future::ready(()), if more => {}
        }
    }
    let s = sender.stats();
    stats.media_bytes = s.media_bytes;
    stats.wire_bytes = s.wire_bytes;
    stats.resent_frames = s.resent_frames;
    if stats.wall_ms == 0 {
        stats.wall_ms = started.elapsed().as_millis() as u64;
    }
    let _ = ws.close(None).await;
    Ok(stats)
}

/// Bytes of the header of a masked (client) WebSocket frame carrying `len` payload bytes.
fn ws_header_len(len: usize) -> u64 {
    let extended = match len {
        0..=125 => 0,
        126..=65535 => 2,
        _ => 8,
    };
    2 + extended + 4
}

/// Connects again and resumes the session, retrying until the server's grace period is over.
async fn reconnect(
    url: &str,
    sender: &mut UploadSender,
    a: &UploadArgs,
    tracks: &[TrackInfo],
    kbps: u32,
    grace: Duration,
) -> anyhow::Result<Socket> {
    let until = Instant::now() + grace;
    let mut last = anyhow!("no attempt");
    while Instant::now() < until {
        match connect(url).await {
            Ok(mut ws) => {
                let hello = sender.hello(&a.token, &a.title, tracks.to_vec(), kbps, a.max_kbps);
                match handshake(&mut ws, sender, hello).await {
                    Ok(_) => return Ok(ws),
                    Err(e) => {
                        if e.downcast_ref::<Refused>().is_some() {
                            return Err(e);
                        }
                        last = e;
                    }
                }
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last.context("could not resume the upload within the server's grace period"))
}
