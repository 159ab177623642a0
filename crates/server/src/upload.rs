//! The upload protocol's WebSocket adapter (`GET /api/v1/upload`, `docs/upload-protocol.md`):
//! a thin async shell around [`vshare_upload::UploadReceiver`]. It authorises the stream key,
//! turns upload frames into the same [`MediaEvent`]s RTMP ingest makes (Opus becomes AAC), keeps
//! a session across a dropped connection for the resume grace period, and sends the attribute
//! records back on the connection as the stream goes live and as each VOD file is ready. With
//! the `backfill` feature it keeps the session's source log and late frames, and has the VOD
//! rebuilt with them once the backfill is complete (`video::backfill`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use tracing::{info, warn};
use vshare_attributes::{AttributeRecord, Kind};
use vshare_media::{Frame, MediaEvent, TrackKind};
use vshare_upload::wire::{FEATURE_BACKFILL, FEATURE_KEYFRAME, PROTOCOL, VERSION};
use vshare_upload::{
    BackfillLimits, CloseCode, Hello, ProtocolError, ReceiverEvent, ReceiverLimits, SenderMessage,
    ServerMessage, UploadReceiver,
};

use crate::db::{Db, random_id};

#[path = "upload_backfill.rs"]
mod backfill;
#[path = "upload_media.rs"]
mod media;
use crate::shutdown::Stopping;
use crate::video::{BackfillState, IngestMessage, Publisher, SourceLog, StartError, VideoServer};
use backfill::finalize;
use media::{AudioPath, frame_events, track_config};

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the VOD is ready the connection waits for the other formats' files.
const OTHER_FILES_WAIT: Duration = Duration::from_secs(30);
/// Default and highest bitrates when the sender names none, kbit/s.
const DEFAULT_START_KBPS: u32 = 1000;
const DEFAULT_MAX_KBPS: u32 = 6000;

/// The upload role: every session, attached to a connection or waiting for its sender to resume.
pub struct Uploads {
    db: Db,
    videos: Arc<VideoServer>,
    limits: ReceiverLimits,
    /// The `backfill` feature's limits, when it is granted.
    backfill: Option<BackfillLimits>,
    grace: Duration,
    idle_timeout: Duration,
    /// How often a stream in progress checks that its token and key still stand.
    key_check: Duration,
    public_url: String,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
    /// Set when the server stops: no new uploads, and every session ends as if its sender had
    /// sent `end`.
    stopping: Stopping,
    /// Upload connections open (a stop waits for them to send their VOD records).
    open: tokio::sync::watch::Sender<usize>,
}

struct Session {
    id: String,
    key_id: String,
    video_id: String,
    receiver: UploadReceiver,
    tx: tokio::sync::mpsc::Sender<IngestMessage>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    video_track: Option<u8>,
    audio_track: Option<u8>,
    audio: AudioPath,
    /// Bumped by every connection that takes the session; an older connection stops.
    generation: u64,
    attached: bool,
    ended: bool,
    /// Attribute records already sent (by kind, format and URL).
    sent: HashSet<String>,
    /// `backfill`: the live source events so far, and the late frames.
    log: Option<SourceLog>,
    late: Vec<Frame>,
    /// When `end` came (the wait for late frames runs from here).
    ended_at: Option<tokio::time::Instant>,
    /// With WebRTC on: where players' keyframe requests arrive (sent on as `keyframe` to a
    /// sender that asked for the feature).
    keyframes: Option<crate::whep::KeyframeSource>,
}

impl Session {
    /// Late frames are still owed after `end`: the connection waits for them.
    fn awaiting_late(&self) -> bool {
        self.log.is_some() && !self.receiver.backfill_complete()
    }

    fn backfill_state(&self, state: &'static str) -> BackfillState {
        BackfillState {
            state,
            frames_owed: self.receiver.late_owed(),
            frames_received: self.receiver.late_received(),
        }
    }
}

impl Uploads {
    pub fn new(
        db: Db,
        videos: Arc<VideoServer>,
        public_url: String,
        idle_timeout: Duration,
        key_check: Duration,
        backfill: Option<BackfillLimits>,
        stopping: Stopping,
    ) -> Arc<Self> {
        let mut limits = ReceiverLimits::default();
        if let Some(b) = backfill {
            limits.max_late_frames = b.max_frames;
            limits.max_late_bytes = b.max_bytes;
        }
        Arc::new(Uploads {
            db,
            videos,
            limits,
            backfill,
            grace: Duration::from_secs(10),
            idle_timeout,
            key_check,
            public_url,
            sessions: Mutex::default(),
            stopping,
            open: tokio::sync::watch::channel(0).0,
        })
    }

    fn session(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Resolves once no upload connection is open (at a stop, after each has sent its
    /// sender the VOD records).
    pub async fn closed(&self) {
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    fn forget(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// `GET /api/v1/upload`: the WebSocket upgrade.
pub async fn upgrade(
    State(uploads): State<Arc<Uploads>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    if uploads.stopping.is_set() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping",
        )
            .into_response();
    }
    // A frame is read whole before the message limit is checked: bound both.
    let max = HEADER_SLACK + uploads.limits.max_piece_bytes as usize;
    ws.protocols([PROTOCOL])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            uploads.open.send_modify(|n| *n += 1);
            let _open = OpenGuard(uploads.clone());
            let mut conn = Connection { socket, peer };
            if let Err(e) = conn.run(&uploads).await {
                warn!(%peer, "upload closed: {e}");
                conn.close(&e).await;
            }
        })
}

/// Counts an upload connection open until dropped.
struct OpenGuard(Arc<Uploads>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Room for the piece header and JSON control messages above the largest piece.
const HEADER_SLACK: usize = 16 << 10;

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

struct Connection {
    socket: WebSocket,
    peer: std::net::SocketAddr,
}

impl Connection {
    async fn send(&mut self, msg: &ServerMessage) -> Result<(), ProtocolError> {
        self.socket
            .send(Message::Text(Utf8Bytes::from(msg.to_text())))
            .await
            .map_err(|e| ProtocolError::new(CloseCode::GoingAway, format!("sending: {e}")))
    }

    async fn close(&mut self, e: &ProtocolError) {
        if e.code != CloseCode::GoingAway {
            let _ = self.send(&e.to_message()).await;
        }
        let frame = CloseFrame {
            code: e.code.code(),
            reason: Utf8Bytes::from(truncate(&e.message, 120)),
        };
        vshare_proxy::ws::close(&mut self.socket, Some(frame)).await;
    }

    async fn run(&mut self, uploads: &Arc<Uploads>) -> Result<(), ProtocolError> {
        // A stopping server does not wait for a hello.
        let hello = tokio::select! {
            h = self.hello() => h?,
            _ = uploads.stopping.wait() => {
                return Err(ProtocolError::new(CloseCode::GoingAway, "the server is stopping"));
            }
        };
        let key = match uploads.db.find_key_for_token(&hello.token).await {
            Ok(Some(k)) => k,
            Ok(None) => {
                return Err(ProtocolError::new(
                    CloseCode::Unauthorized,
                    "unknown or revoked token",
                ));
            }
            Err(e) => {
                return Err(ProtocolError::new(
                    CloseCode::GoingAway,
                    format!("key lookup failed: {e}"),
                ));
            }
        };
        let session = match &hello.resume {
            Some(r) => {
                let s = uploads.session(&r.session).ok_or_else(|| {
                    ProtocolError::new(
                        CloseCode::UnknownSession,
                        format!("no session {} to resume (it ended or expired)", r.session),
                    )
                })?;
                if s.lock().await.key_id != key.id {
                    return Err(ProtocolError::new(
                        CloseCode::Unauthorized,
                        "that session belongs to another stream key",
                    ));
                }
                s
            }
            None => start_session(uploads, &key, &hello).await?,
        };
        let (generation, keyframes) = {
            let mut s = session.lock().await;
            let keyframes = s
                .keyframes
                .as_ref()
                .filter(|_| hello.wants(FEATURE_KEYFRAME))
                .map(|k| k.requests.clone());
            s.generation += 1;
            s.attached = true;
            s.receiver.connected(now_us());
            let welcome = ServerMessage::Welcome {
                session: s.id.clone(),
                video_id: s.video_id.clone(),
                next_seq: s.receiver.next_seq(),
                window_bytes: uploads.limits.window_bytes,
                max_piece_bytes: uploads.limits.max_piece_bytes,
                resume_grace_ms: uploads.grace.as_millis() as u64,
                watch_url: format!("{}/watch/{}", uploads.public_url, s.video_id),
                features: [
                    (s.receiver.backfill(), FEATURE_BACKFILL),
                    (keyframes.is_some(), FEATURE_KEYFRAME),
                ]
                .into_iter()
                .filter(|(granted, _)| *granted)
                .map(|(_, f)| f.to_string())
                .collect(),
                backfill: uploads.backfill.filter(|_| s.receiver.backfill()),
            };
            info!(peer = %self.peer, session = %s.id, video = %s.video_id, next_seq = s.receiver.next_seq(),
                  resumed = hello.resume.is_some(), "upload connected");
            self.send(&welcome).await?;
            (s.generation, keyframes)
        };
        let result = self
            .carry(uploads, &session, generation, &hello.token, keyframes)
            .await;
        let mut s = session.lock().await;
        match &result {
            // Ended normally: the session is over.
            Ok(()) => uploads.forget(&s.id),
            // The sender broke the protocol: no resume for it.
            Err(e) if e.code != CloseCode::GoingAway => {
                end_session(&mut s).await;
                uploads.forget(&s.id);
            }
            // The line dropped: keep the session for a resume (after `end` too, while late
            // frames are owed).
            Err(_) if s.generation == generation && (!s.ended || s.awaiting_late()) => {
                s.attached = false;
                info!(session = %s.id, grace_s = uploads.grace.as_secs(), "upload connection lost; waiting for a resume");
                let uploads = uploads.clone();
                let session = session.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(uploads.grace) => {}
                        // A stopping server does not wait for the resume.
                        _ = uploads.stopping.wait() => {}
                    }
                    let mut s = session.lock().await;
                    if s.generation == generation && !s.attached {
                        info!(session = %s.id, "no resume within the grace period; ending the stream");
                        end_session(&mut s).await;
                        uploads.forget(&s.id);
                        drop(s);
                        finalize(&uploads, &session).await;
                    }
                });
            }
            Err(_) => {}
        }
        result
    }

    async fn hello(&mut self) -> Result<Hello, ProtocolError> {
        let first = tokio::time::timeout(HELLO_TIMEOUT, self.socket.recv())
            .await
            .map_err(|_| ProtocolError::new(CloseCode::Malformed, "no hello within 10 s"))?;
        let text = match first {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => {
                return Err(ProtocolError::new(
                    CloseCode::Malformed,
                    "the first message must be a text hello",
                ));
            }
            _ => {
                return Err(ProtocolError::new(
                    CloseCode::GoingAway,
                    "closed before hello",
                ));
            }
        };
        match SenderMessage::parse(text.as_str())? {
            SenderMessage::Hello(h) if h.version == VERSION => Ok(h),
            SenderMessage::Hello(h) => Err(ProtocolError::new(
                CloseCode::Unsupported,
                format!(
                    "protocol version {} (this server speaks {VERSION})",
                    h.version
                ),
            )),
            _ => Err(ProtocolError::new(
                CloseCode::Malformed,
                "the first message must be hello",
            )),
        }
    }

    /// Carries the session on this connection until `end`, an error, or the line drops.
    async fn carry(
        &mut self,
        uploads: &Arc<Uploads>,
        session: &Arc<tokio::sync::Mutex<Session>>,
        generation: u64,
        token: &str,
        keyframes: Option<Arc<tokio::sync::Notify>>,
    ) -> Result<(), ProtocolError> {
        let mut key_checked = tokio::time::Instant::now();
        let mut attr_tick = tokio::time::interval(Duration::from_millis(250));
        attr_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_input = tokio::time::Instant::now();
        loop {
            let wake = {
                let s = session.lock().await;
                if s.generation != generation {
                    return Err(ProtocolError::new(
                        CloseCode::GoingAway,
                        "another connection resumed this session",
                    ));
                }
                let now = now_us();
                Duration::from_micros((s.receiver.next_timeout(now) - now).max(1_000) as u64)
            };
            tokio::select! {
                msg = self.socket.recv() => {
                    let msg = match msg {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return Err(ProtocolError::new(CloseCode::GoingAway, format!("receiving: {e}"))),
                        None => return Err(ProtocolError::new(CloseCode::GoingAway, "connection closed without end")),
                    };
                    last_input = tokio::time::Instant::now();
                    let mut s = session.lock().await;
                    let now = now_us();
                    match msg {
                        Message::Binary(b) => s.receiver.handle_binary(&b, now)?,
                        Message::Text(t) => s.receiver.handle_text(t.as_str(), now)?,
                        Message::Close(_) => return Err(ProtocolError::new(CloseCode::GoingAway, "closed by the sender without end")),
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                    forward_events(&uploads.videos, &mut s).await?;
                    if s.ended && !s.awaiting_late() {
                        while let Some(m) = s.receiver.poll_transmit(now_us()) {
                            self.send(&m).await?;
                        }
                        drop(s);
                        return self.finish(uploads, session).await;
                    }
                }
                _ = tokio::time::sleep(wake) => {}
                // A WebRTC player needs a keyframe (rate-limited where it is asked).
                _ = async { keyframes.as_ref()?.notified().await; Some(()) }, if keyframes.is_some() => {
                    self.send(&ServerMessage::Keyframe).await?;
                }
                _ = uploads.stopping.wait() => {
                    // As if the sender had sent `end`: the VOD is made of what arrived.
                    let mut s = session.lock().await;
                    info!(session = %s.id, video = %s.video_id, "server stopping; ending the upload");
                    end_session(&mut s).await;
                    drop(s);
                    return self.finish(uploads, session).await;
                }
                _ = attr_tick.tick() => {
                    let waited = {
                        let s = session.lock().await;
                        let wait = uploads.backfill.map_or(Duration::ZERO, |b| Duration::from_millis(b.wait_ms));
                        s.ended_at.is_some_and(|t| t.elapsed() >= wait)
                    };
                    if waited {
                        // The late frames still owed did not come in time: the VOD stays as
                        // it is, with what came.
                        let s = session.lock().await;
                        info!(session = %s.id, owed = s.receiver.late_owed(), "late frames did not all come in time");
                        drop(s);
                        return self.finish(uploads, session).await;
                    }
                    if last_input.elapsed() > uploads.idle_timeout {
                        return Err(ProtocolError::new(CloseCode::GoingAway, format!("no data for {:?}", uploads.idle_timeout)));
                    }
                    if key_checked.elapsed() >= uploads.key_check {
                        match uploads.db.find_key_for_token(token).await {
                            Ok(Some(_)) => key_checked = tokio::time::Instant::now(),
                            Ok(None) => return Err(ProtocolError::new(CloseCode::Unauthorized, "the stream key was revoked or rotated")),
                            Err(e) => warn!("upload: stream key check: {e:#}"),
                        }
                    }
                    let mut s = session.lock().await;
                    if let Some(record) = uploads.videos.live_record(&s.video_id) {
                        self.send_records(&mut s, &[record]).await?;
                    }
                }
            }
            let mut s = session.lock().await;
            while let Some(m) = s.receiver.poll_transmit(now_us()) {
                self.send(&m).await?;
            }
        }
    }

    /// After `end`: waits for the VOD, sends its records (and the other formats' as they
    /// come), then closes normally.
    async fn finish(
        &mut self,
        uploads: &Arc<Uploads>,
        session: &Arc<tokio::sync::Mutex<Session>>,
    ) -> Result<(), ProtocolError> {
        let video_id = session.lock().await.video_id.clone();
        finalize(uploads, session).await;
        let deadline = tokio::time::Instant::now() + OTHER_FILES_WAIT;
        let wanted = uploads.videos.other_file_formats();
        loop {
            let video = uploads.db.get_video(&video_id).await.map_err(|e| {
                ProtocolError::new(CloseCode::GoingAway, format!("reading the video: {e}"))
            })?;
            let records: Vec<AttributeRecord> = video
                .map(|v| v.attributes)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.kind == Kind::Vod)
                .collect();
            let complete = wanted
                .iter()
                .all(|f| records.iter().any(|r| r.format == *f));
            {
                let mut s = session.lock().await;
                self.send_records(&mut s, &records).await?;
            }
            // A stopping server makes no more files: what is ready now is all there is.
            if complete || tokio::time::Instant::now() >= deadline || uploads.stopping.is_set() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let frame = CloseFrame {
            code: CloseCode::Normal.code(),
            reason: Utf8Bytes::from_static(match uploads.stopping.is_set() {
                true => "the server is stopping; the recording is ready",
                false => "the recording is ready",
            }),
        };
        vshare_proxy::ws::close(&mut self.socket, Some(frame)).await;
        Ok(())
    }

    async fn send_records(
        &mut self,
        s: &mut Session,
        records: &[AttributeRecord],
    ) -> Result<(), ProtocolError> {
        for r in records {
            let kind = match r.kind {
                Kind::Live => "live",
                Kind::Vod => "vod",
            };
            if !s.sent.insert(format!("{kind} {} {}", r.format, r.url)) {
                continue;
            }
            let text =
                vshare_attributes::forms::encode_text(std::slice::from_ref(r)).unwrap_or_default();
            let record = serde_json::to_value(r).unwrap_or_default();
            self.send(&ServerMessage::Attributes {
                kind: kind.into(),
                record,
                text,
            })
            .await?;
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

async fn start_session(
    uploads: &Arc<Uploads>,
    key: &crate::db::StreamKey,
    hello: &Hello,
) -> Result<Arc<tokio::sync::Mutex<Session>>, ProtocolError> {
    UploadReceiver::check_tracks(&hello.tracks)?;
    let mut configs = Vec::new();
    let mut audio = AudioPath::Aac;
    for t in &hello.tracks {
        let (config, path) = track_config(t)?;
        configs.extend(config);
        if let Some(p) = path {
            audio = p;
        }
    }
    let publisher: Publisher =
        uploads
            .videos
            .start(key, &hello.title)
            .await
            .map_err(|e| match e {
                StartError::AlreadyPublishing(_) => {
                    ProtocolError::new(CloseCode::Busy, e.to_string())
                }
                _ => ProtocolError::new(CloseCode::GoingAway, e.to_string()),
            })?;
    let mut receiver = UploadReceiver::new(
        uploads.limits.clone(),
        hello.tracks.clone(),
        hello.start_kbps.unwrap_or(DEFAULT_START_KBPS),
        hello
            .max_kbps
            .unwrap_or(DEFAULT_MAX_KBPS)
            .max(hello.start_kbps.unwrap_or(DEFAULT_START_KBPS)),
    );
    let mut log = None;
    if uploads.backfill.is_some() && hello.wants(FEATURE_BACKFILL) {
        match SourceLog::create(&uploads.videos.backfill_dir(), &publisher.video_id) {
            Ok(l) => {
                receiver.enable_backfill();
                log = Some(l);
            }
            Err(e) => warn!(video = %publisher.video_id, "backfill not granted: source log: {e:#}"),
        }
    }
    for c in configs {
        let event = MediaEvent::Config(c);
        let arrival = now_us();
        if let Some(l) = &mut log
            && let Err(e) = l.append(&event, arrival)
        {
            warn!(video = %publisher.video_id, "source log: {e:#}");
        }
        let _ = publisher
            .tx
            .send(IngestMessage::Media(event, arrival))
            .await;
    }
    let id = random_id(16);
    let session = Session {
        id: id.clone(),
        key_id: key.id.clone(),
        video_id: publisher.video_id.clone(),
        receiver,
        tx: publisher.tx,
        done: Some(publisher.done),
        video_track: hello.tracks.iter().find(|t| t.is_video()).map(|t| t.track),
        audio_track: hello.tracks.iter().find(|t| !t.is_video()).map(|t| t.track),
        audio,
        generation: 0,
        attached: false,
        ended: false,
        sent: HashSet::new(),
        log,
        late: Vec::new(),
        ended_at: None,
        keyframes: uploads.videos.keyframe_source(&publisher.video_id),
    };
    let session = Arc::new(tokio::sync::Mutex::new(session));
    uploads
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, session.clone());
    Ok(session)
}

/// Hands the receiver's events to the video server session, converting audio where needed;
/// with `backfill`, logs them and keeps the late frames.
async fn forward_events(videos: &VideoServer, s: &mut Session) -> Result<(), ProtocolError> {
    while let Some(event) = s.receiver.poll_event() {
        let arrival = now_us();
        let events: Vec<MediaEvent> = match event {
            ReceiverEvent::Frame(f) => {
                if videos.feeds_webrtc()
                    && Some(f.track) == s.audio_track
                    && matches!(s.audio, AudioPath::Opus(_))
                {
                    // WebRTC players get the sender's Opus as it came.
                    let opus = IngestMessage::Opus {
                        pts: f.pts,
                        data: f.data.clone(),
                    };
                    s.tx.send(opus).await.map_err(|_| {
                        ProtocolError::new(CloseCode::GoingAway, "the video session has ended")
                    })?;
                }
                frame_events(s, f)?
            }
            ReceiverEvent::Config(info) => {
                let (config, path) = track_config(&info)?;
                if let Some(p) = path {
                    s.audio = p;
                }
                config.map(MediaEvent::Config).into_iter().collect()
            }
            ReceiverEvent::End => {
                end_session(s).await;
                Vec::new()
            }
            ReceiverEvent::LateFrame(f) => {
                // Senders drop video only; a late audio frame of a converted (Opus) track
                // would upset the converter's state, so it is not taken.
                let track = if Some(f.track) == s.video_track {
                    Some(TrackKind::Video)
                } else if Some(f.track) == s.audio_track && matches!(s.audio, AudioPath::Aac) {
                    Some(TrackKind::Audio)
                } else {
                    None
                };
                if let Some(track) = track {
                    s.late.push(Frame {
                        track,
                        pts: f.pts,
                        dts: if track == TrackKind::Audio {
                            f.pts
                        } else {
                            f.dts
                        },
                        key: f.key,
                        data: f.data,
                    });
                }
                Vec::new()
            }
            ReceiverEvent::BackfillComplete => Vec::new(),
        };
        if s.receiver.backfill() {
            videos.set_backfill_state(&s.video_id, s.backfill_state("pending"));
        }
        for e in events {
            if let Some(l) = &mut s.log
                && let Err(e) = l.append(&e, arrival)
            {
                return Err(ProtocolError::new(
                    CloseCode::GoingAway,
                    format!("source log: {e:#}"),
                ));
            }
            s.tx.send(IngestMessage::Media(e, arrival))
                .await
                .map_err(|_| {
                    ProtocolError::new(CloseCode::GoingAway, "the video session has ended")
                })?;
        }
    }
    Ok(())
}

/// Ends the video server session once (the VOD is finished from what arrived).
async fn end_session(s: &mut Session) {
    if s.ended {
        return;
    }
    s.ended = true;
    s.ended_at = Some(tokio::time::Instant::now());
    if let AudioPath::Opus(conv) = &mut s.audio {
        for f in conv.finish() {
            let event = MediaEvent::Frame(f);
            let arrival = now_us();
            if let Some(l) = &mut s.log
                && let Err(e) = l.append(&event, arrival)
            {
                warn!(video = %s.video_id, "source log: {e:#}");
            }
            let _ = s.tx.send(IngestMessage::Media(event, arrival)).await;
        }
    }
    let _ = s.tx.send(IngestMessage::End).await;
}
