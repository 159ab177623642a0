//! The video server role: one session per publisher. It packages the frames into the live
//! stream (handed to the live server), records the segments to storage as they are made,
//! measures the attribute data, and finishes the VOD files the moment the publisher stops.
//!
//! The session itself is sans-IO ([`session::Session`]); this module is its adapter: it feeds
//! the session what ingest and the transcoder send and carries out the actions it returns.
//! The recording's layout is [`recording`]'s, stored by [`recorder`]; [`recovery`] finishes what
//! a stopped server left; [`derived`] runs the ladder and the other-format files.

mod backfill;
mod derived;
mod measured;
mod pictures;
mod recorder;
mod recording;
mod recovery;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};
use vshare_attributes::AttributeRecord;
use vshare_media::timestamps::{Repair, RepairKind};
use vshare_media::{MediaEvent, TrackKind};
use vshare_package::PackagerConfig;
use vshare_proxy::{Event, EventKind, Proxy};
use vshare_transcode::{LadderConfig, TranscodeWorker};

use crate::config::Config;
use crate::db::{Db, StreamKey, Video, VideoState, now_rfc3339, random_id};
use crate::files::FileJob;
use crate::live::{LiveMessage, LiveServer};
use crate::storage::Storage;
use crate::webhook::Webhooks;
use measured::{Measured, RecordingSizes, vod_records};
use recorder::{record, rendition_prefix, write_mp4};
use recording::{RecordMessage, Recording};
use session::{Action, Session, SessionConfig};

pub use backfill::{BackfillState, SourceLog};

/// What ingest sends to a session.
#[derive(Debug)]
pub enum IngestMessage {
    /// An event and the wall-clock time it arrived, µs since the Unix epoch.
    Media(MediaEvent, i64),
    /// An Opus packet of a source whose audio is Opus (sent before its AAC conversion, as a
    /// `Media` event, follows): WebRTC players get it as it came. `pts`: µs on the source's
    /// clock, as the audio's `Media` events.
    Opus { pts: i64, data: bytes::Bytes },
    /// The publisher stopped or its connection dropped.
    End,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("this stream key is already publishing (key id {0})")]
    AlreadyPublishing(String),
    #[error("the server is at its limit of {0} publishers")]
    TooMany(usize),
    #[error("the server is stopping")]
    Stopping,
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// A publisher's handle on its session.
pub struct Publisher {
    pub video_id: String,
    pub tx: mpsc::Sender<IngestMessage>,
    /// Resolves when the session has finished the VOD files.
    pub done: tokio::sync::oneshot::Receiver<()>,
}

fn unix_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The video server.
pub struct VideoServer {
    db: Db,
    storage: Storage,
    live: LiveServer,
    live_tx: mpsc::UnboundedSender<LiveMessage>,
    webhooks: Webhooks,
    config: Arc<Config>,
    /// The renditions made from every stream (empty: the source only).
    ladder: LadderConfig,
    /// The communication proxy role: pushes every live stream and VOD to subscribers.
    proxy: Option<Proxy>,
    public_url: String,
    /// Stream key id → video id of its running session.
    active: Mutex<HashMap<String, String>>,
    /// Live attribute records, refreshed at every segment.
    live_records: RwLock<HashMap<String, AttributeRecord>>,
    /// Sessions running (their VOD not finished yet).
    running: tokio::sync::watch::Sender<usize>,
    /// No new session starts (the server is stopping).
    closed: std::sync::atomic::AtomicBool,
    /// Upload sessions with `backfill`: their state, by video id.
    backfill: RwLock<HashMap<String, BackfillState>>,
    /// WHEP playback: every live stream feeds its WebRTC viewers.
    whep: Option<Arc<crate::whep::Whep>>,
}

impl VideoServer {
    pub fn new(
        db: Db,
        storage: Storage,
        // The live server here, and where messages for it (and for pushed live servers) go.
        (live, live_tx): (LiveServer, mpsc::UnboundedSender<LiveMessage>),
        webhooks: Webhooks,
        config: Arc<Config>,
        ladder: LadderConfig,
        proxy: Option<Proxy>,
    ) -> Arc<Self> {
        Arc::new(VideoServer {
            public_url: config.public_url(),
            ladder,
            proxy,
            db,
            storage,
            live,
            live_tx,
            webhooks,
            config,
            active: Mutex::default(),
            live_records: RwLock::default(),
            running: tokio::sync::watch::channel(0).0,
            closed: std::sync::atomic::AtomicBool::new(false),
            backfill: RwLock::default(),
            whep: None,
        })
    }

    /// Live streams feed WHEP viewers through `whep` (set before the first publish).
    pub fn with_whep(mut self: Arc<Self>, whep: Option<Arc<crate::whep::Whep>>) -> Arc<Self> {
        if let Some(me) = Arc::get_mut(&mut self) {
            me.whep = whep;
        }
        self
    }

    /// Registers the source of `video` for WebRTC players' keyframe requests (None without
    /// WebRTC).
    pub fn keyframe_source(&self, video: &str) -> Option<crate::whep::KeyframeSource> {
        self.whep.as_ref().map(|w| w.keyframe_source(video))
    }

    /// Whether live streams feed WebRTC players.
    pub fn feeds_webrtc(&self) -> bool {
        self.whep.is_some()
    }

    /// The current live record of a video, if it is live.
    pub fn live_record(&self, video_id: &str) -> Option<AttributeRecord> {
        self.live_records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(video_id)
            .cloned()
    }

    /// How posters are made (and how long a live one may be cached).
    pub fn posters(&self) -> &crate::config::PostersConfig {
        &self.config.posters
    }

    /// The base of the URLs in attribute records.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The `format` of each other-format VOD file every video gets (`webm`, `3gp`).
    pub fn other_file_formats(&self) -> Vec<String> {
        self.config
            .transcode
            .files
            .iter()
            .map(|f| f.format.name().to_string())
            .collect()
    }

    /// Refuses new sessions from now on and waits until every running one has finished its
    /// VOD; returns how many were running.
    pub async fn close(&self) -> usize {
        {
            // Under the lock `start` checks and counts under: no session slips past a stop.
            let _active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut rx = self.running.subscribe();
        let was = *rx.borrow();
        let _ = rx.wait_for(|n| *n == 0).await;
        was
    }

    /// Starts a session for a publisher with a valid key.
    pub async fn start(
        self: &Arc<Self>,
        key: &StreamKey,
        title: &str,
    ) -> Result<Publisher, StartError> {
        let video_id = random_id(12);
        {
            let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StartError::Stopping);
            }
            if active.contains_key(&key.id) {
                return Err(StartError::AlreadyPublishing(key.id.clone()));
            }
            if active.len() >= self.config.limits.max_publishers {
                return Err(StartError::TooMany(self.config.limits.max_publishers));
            }
            active.insert(key.id.clone(), video_id.clone());
            self.running.send_modify(|n| *n += 1);
        }
        let mut video = Video::new_live(&video_id, &key.id, title);
        video.instance_id = self.config.instance_id().to_string();
        if key.private {
            // Private from the first frame: never listed, no `live` notification.
            video.visibility = crate::db::Visibility::Private;
        }
        if let Err(e) = self.db.insert_video(&video).await {
            self.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key.id);
            self.running.send_modify(|n| *n -= 1);
            return Err(StartError::Internal(e));
        }
        let (tx, rx) = mpsc::channel(4096);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let key_id = key.id.clone();
        metrics::gauge!("vshare_publishers").increment(1.0);
        tokio::spawn(async move {
            let id = video.id.clone();
            if let Err(e) = me.run_session(video, rx, &key_id).await {
                warn!(video = %id, "session failed: {e:#}");
                me.release_key(&key_id, &id);
            }
            me.running.send_modify(|n| *n -= 1);
            let _ = done_tx.send(());
        });
        Ok(Publisher { video_id, tx, done })
    }

    /// Where upload sessions with `backfill` keep their source logs.
    pub fn backfill_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("backfill")
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            packager: PackagerConfig {
                part_target_us: self.config.live.part_target_ms as i64 * 1000,
                segment_target_us: self.config.live.segment_target_ms as i64 * 1000,
                window_segments: self.config.live.window_segments,
            },
            public_url: self.config.live_public_url(),
            ladder: !self.ladder.renditions.is_empty(),
            derive: !self.ladder.renditions.is_empty() || !self.config.transcode.files.is_empty(),
            dvr_window_s: self.config.live.dvr_window_s,
            feed: self.whep.is_some(),
        }
    }

    /// Frees a key for its next publish (a phone reconnecting must not wait for the VOD).
    fn release_key(&self, key_id: &str, video_id: &str) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.get(key_id).is_some_and(|v| v == video_id) {
            active.remove(key_id);
            metrics::gauge!("vshare_publishers").decrement(1.0);
        }
    }

    async fn run_session(
        self: &Arc<Self>,
        video: Video,
        mut rx: mpsc::Receiver<IngestMessage>,
        key_id: &str,
    ) -> anyhow::Result<()> {
        let id = video.id.clone();
        let mut session = Session::new(&id, &video.title, self.session_config());
        // Transcoded renditions come back from the worker thread on this channel.
        let (tc_tx, mut tc_rx) = mpsc::unbounded_channel::<(usize, MediaEvent)>();
        let mut io = SessionIo::new(self, &video, tc_tx);
        io.whep = self.whep.as_ref().map(|w| w.feed(&id));
        let mut pictures = self
            .config
            .posters
            .settings()
            .map(|s| pictures::Pictures::start(self.storage.clone(), &id, s));
        if pictures.is_some() {
            io.poster_url = Some(format!("{}/vod/{id}/{}", self.public_url, pictures::POSTER));
        }
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let end = match msg {
                        Some(IngestMessage::Media(event, arrival)) => {
                            if let Some(p) = pictures.as_mut() {
                                p.push(&event);
                            }
                            session.push(event, arrival);
                            false
                        }
                        Some(IngestMessage::Opus { pts, data }) => {
                            session.push_opus(pts, data);
                            false
                        }
                        Some(IngestMessage::End) | None => {
                            session.end();
                            true
                        }
                    };
                    io.apply(&mut session).await;
                    if end {
                        break;
                    }
                }
                Some((index, event)) = tc_rx.recv() => {
                    session.push_transcoded(index, event, unix_us());
                    io.apply(&mut session).await;
                }
            }
        }
        let ended = Instant::now();
        self.release_key(key_id, &id);
        // The sprite is made while the VOD files are finished.
        let pictures = pictures.map(|p| {
            let id = id.clone();
            tokio::spawn(async move { p.finish(&id).await })
        });
        // Flush the transcoder (its thread sends what it still holds), then every packager.
        io.tc_tx = None;
        if let Some(w) = io.worker.take() {
            let stats = tokio::task::spawn_blocking(move || w.finish()).await?;
            if stats.frames_dropped > 0 {
                warn!(video = %id, dropped = stats.frames_dropped, episodes = stats.drop_episodes, "transcoder fell behind");
            }
        }
        while let Some((index, event)) = tc_rx.recv().await {
            session.push_transcoded(index, event, unix_us());
            io.apply(&mut session).await;
        }
        let closed = session.close();
        io.apply(&mut session).await;
        let poster_url = io.poster_url.take();
        let files = std::mem::take(&mut io.files);
        let recorders = std::mem::take(&mut io.recorders);
        drop(io);
        self.db
            .update_video(
                &id,
                VideoState::Finishing,
                &self.live_record(&id).into_iter().collect::<Vec<_>>(),
                None,
                None,
            )
            .await?;
        let mut records = Vec::new();
        for (rendition, recorder) in closed.into_iter().zip(recorders) {
            let name = rendition.name;
            drop(recorder.tx);
            let recorded = match recorder.task.await? {
                Ok(r) => r,
                Err(e) if name.is_some() => {
                    warn!(video = %id, rendition = name.as_deref().unwrap_or(""), "rendition not recorded: {e:#}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            records.extend(
                self.finish_vod(
                    &id,
                    name.as_deref(),
                    &recorded,
                    &rendition.measured,
                    &video.title,
                )
                .await?,
            );
        }
        let stored = match pictures {
            Some(p) => p.await.unwrap_or_default(),
            None => pictures::Stored::default(),
        };
        if let Some(url) = poster_url.filter(|_| stored.poster) {
            for r in &mut records {
                r.poster = url.clone();
            }
        }
        let coming = self.frames_coming(&id);
        for r in &mut records {
            r.frames_coming = coming;
        }
        let ended_at = now_rfc3339();
        self.db
            .update_video(
                &id,
                VideoState::Ready,
                &records,
                Some(&ended_at),
                self.webhooks.hook("video.ready"),
            )
            .await?;
        self.webhooks.wake();
        self.notify_subscribers(EventKind::Ready, &id, &video.key_id, records)
            .await;
        self.live_records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        metrics::histogram!("vshare_vod_ready_seconds").record(ended.elapsed().as_secs_f64());
        info!(video = %id, ready_ms = ended.elapsed().as_millis() as u64, "VOD ready");
        // Keep the ended live playlist a while for players still on it.
        let live = self.live.clone();
        let ended_id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            live.remove(&ended_id);
        });
        // The other formats are added when done. The session ends after them, so a backfill's
        // rebuild (which waits for the session) never races them for the same files.
        if !files.is_empty()
            && let Err(e) = self.finish_files(&id, &video.title, files, coming).await
        {
            warn!(video = %id, "other VOD formats: {e:#}");
        }
        Ok(())
    }

    /// Starts the recorder task of one rendition.
    fn spawn_recorder(&self, id: &str, name: Option<String>) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        let live = self.live_tx.clone();
        let stream = match &name {
            None => id.to_string(),
            Some(n) => format!("{id}/{n}"),
        };
        let task = tokio::spawn(record(
            self.storage.clone(),
            self.db.clone(),
            id.to_string(),
            name,
            rx,
            move |msn| {
                let _ = live.send(LiveMessage::Stored {
                    stream: stream.clone(),
                    msn,
                });
            },
        ));
        Recorder { tx, task }
    }

    /// Writes the fast-start MP4 of one rendition and returns its VOD attribute records.
    async fn finish_vod(
        &self,
        id: &str,
        rendition: Option<&str>,
        rec: &Recording,
        measured: &Measured,
        title: &str,
    ) -> anyhow::Result<Vec<AttributeRecord>> {
        let Some(builder) = &rec.builder else {
            return Ok(vec![]);
        };
        let prefix = rendition_prefix(rendition);
        let mp4 = write_mp4(&self.storage, id, &prefix, builder, &rec.segments).await?;
        let sizes = RecordingSizes {
            mp4,
            hls: rec.hls_size(),
            duration_us: builder.duration_us(),
        };
        let base = format!("{}/vod/{id}/{prefix}", self.public_url);
        Ok(vod_records(&measured.vod_template(id, title), &base, sizes))
    }

    /// Hands a live stream or a finished VOD to the proxy role for its subscribers. Repeats of
    /// the same event add nothing, so recovery may call it again.
    async fn notify_subscribers(
        &self,
        kind: EventKind,
        id: &str,
        key_id: &str,
        records: Vec<AttributeRecord>,
    ) {
        let Some(proxy) = &self.proxy else { return };
        if records.is_empty() {
            return;
        }
        // A private video is for its owner and the links they hand out, not for subscribers.
        match self.db.video_access(id).await {
            Ok(Some(a)) if a.visibility == crate::db::Visibility::Private => return,
            Ok(None) => return,
            Ok(Some(_)) => {}
            Err(e) => warn!(video = %id, "proxy: visibility lookup: {e:#}"),
        }
        let name = match self.db.key_name(key_id).await {
            Ok(n) => n,
            Err(e) => {
                warn!(video = %id, "proxy: stream key lookup: {e:#}");
                None
            }
        };
        let event = Event::new(kind, id, key_id, name.as_deref(), records);
        if let Err(e) = proxy.handle_event(&event).await {
            warn!(video = %id, "proxy: event not queued: {e:#}");
        }
    }

    /// Replaces a live video's stored attributes with the current measured record.
    pub fn with_live_record(&self, mut v: Video) -> Video {
        if let Some(rec) = self
            .live_record(&v.id)
            .filter(|_| v.state == VideoState::Live)
        {
            // With WebRTC on, the same stream over WHEP (served here, by the video server).
            let whep = self.whep.as_ref().map(|_| AttributeRecord {
                url: format!("{}/whep/{}", self.public_url, v.id),
                format: "whep".into(),
                ..rec.clone()
            });
            v.attributes = std::iter::once(rec).chain(whep).collect();
        }
        v
    }
}

/// A rendition's recorder task and its input.
struct Recorder {
    tx: mpsc::UnboundedSender<RecordMessage>,
    task: tokio::task::JoinHandle<anyhow::Result<Recording>>,
}

/// What a running session's actions are carried out with.
struct SessionIo {
    server: Arc<VideoServer>,
    video: Video,
    /// One per rendition, the source first.
    recorders: Vec<Recorder>,
    /// Where the transcoder sends the rungs' events; None once it is being flushed.
    tc_tx: Option<mpsc::UnboundedSender<(usize, MediaEvent)>>,
    worker: Option<TranscodeWorker>,
    files: Vec<FileJob>,
    /// The poster's URL, when posters are made: it goes into the live records.
    poster_url: Option<String>,
    /// The stream's samples for WHEP viewers (dropped at the end: its viewers are closed).
    whep: Option<crate::whep::StreamFeed>,
    repairs: RepairLog,
    /// Frames already counted in the metrics.
    counted: session::FrameCounts,
    // Handles looked up once, not per frame.
    video_frames: metrics::Counter,
    audio_frames: metrics::Counter,
}

impl SessionIo {
    fn new(
        server: &Arc<VideoServer>,
        video: &Video,
        tc_tx: mpsc::UnboundedSender<(usize, MediaEvent)>,
    ) -> Self {
        SessionIo {
            server: server.clone(),
            recorders: vec![server.spawn_recorder(&video.id, None)],
            video: video.clone(),
            tc_tx: Some(tc_tx),
            worker: None,
            files: Vec::new(),
            poster_url: None,
            whep: None,
            repairs: RepairLog::default(),
            counted: session::FrameCounts::default(),
            video_frames: metrics::counter!("vshare_frames_total", "track" => "video"),
            audio_frames: metrics::counter!("vshare_frames_total", "track" => "audio"),
        }
    }

    /// A live record with video names the poster (stored from its first keyframe on).
    fn with_poster(&self, record: &mut AttributeRecord) {
        if let Some(url) = self.poster_url.as_ref().filter(|_| record.width > 0) {
            record.poster = url.clone();
        }
    }

    /// Carries out every action the session has for now, in order.
    async fn apply(&mut self, session: &mut Session) {
        let id = self.video.id.as_str();
        while let Some(action) = session.poll() {
            match action {
                Action::Live(message) => {
                    let _ = self.server.live_tx.send(message);
                }
                Action::Record { rendition, message } => {
                    if let Some(r) = self.recorders.get(rendition) {
                        let _ = r.tx.send(message);
                    }
                }
                Action::StartDerived { video, audio } => {
                    if let Some(tx) = &self.tc_tx
                        && let Some((worker, rungs)) = derived::start_ladder(
                            &self.server,
                            id,
                            video.as_ref(),
                            audio.as_ref(),
                            tx,
                        )
                    {
                        for rung in &rungs {
                            self.recorders
                                .push(self.server.spawn_recorder(id, Some(rung.clone())));
                        }
                        session.add_rungs(rungs);
                        self.worker = Some(worker);
                    }
                    self.files = self.server.start_files(id, video, audio, None);
                }
                Action::Feed(event) => {
                    if let Some(f) = self.whep.as_mut() {
                        f.push(&event);
                    }
                }
                Action::FeedRung(event) => {
                    if let Some(f) = self.whep.as_mut() {
                        f.push_rung(&event);
                    }
                }
                Action::FeedOpus { pts, data } => {
                    if let Some(f) = self.whep.as_mut() {
                        f.push_opus(pts, &data);
                    }
                }
                Action::Derive(event) => {
                    if let Some(w) = self.worker.as_mut() {
                        w.push(&event);
                    }
                    for job in &mut self.files {
                        job.push(&event);
                    }
                }
                Action::LiveRecord(mut record) => {
                    self.with_poster(&mut record);
                    self.server
                        .live_records
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.to_string(), record);
                }
                Action::WentLive(mut record) => {
                    self.with_poster(&mut record);
                    info!(video = %id, url = %record.url, "live");
                    let event = self.server.webhooks.hook("stream.live");
                    match self
                        .server
                        .db
                        .update_video(
                            id,
                            VideoState::Live,
                            std::slice::from_ref(&record),
                            None,
                            event,
                        )
                        .await
                    {
                        Ok(()) => self.server.webhooks.wake(),
                        Err(e) => warn!(video = %id, "could not store live attributes: {e:#}"),
                    }
                    self.server
                        .notify_subscribers(EventKind::Live, id, &self.video.key_id, vec![record])
                        .await;
                }
                Action::PartPublished {
                    first_arrival_unix_us,
                } => {
                    metrics::counter!("vshare_parts_total").increment(1);
                    let latency = (unix_us() - first_arrival_unix_us) as f64 / 1e6;
                    metrics::histogram!("vshare_part_publish_latency_seconds").record(latency);
                }
                Action::Repairs(repairs) => self.repairs.note(id, repairs),
                Action::Rejected {
                    rendition,
                    count,
                    error,
                } => {
                    warn!(video = %id, rendition = rendition.as_deref().unwrap_or("source"), rejected = count, "frame dropped: {error}");
                }
            }
        }
        let frames = session.frames();
        self.video_frames
            .increment(frames.video - self.counted.video);
        self.audio_frames
            .increment(frames.audio - self.counted.audio);
        self.counted = frames;
    }
}

/// Counts the normaliser's repairs (Prometheus `vshare_timestamp_repairs_total{track,kind}`) and
/// logs the first of each kind and then every power of two, so a broken encoder is visible
/// without flooding the log.
#[derive(Default)]
struct RepairLog {
    /// Per track and kind: how many so far, and its counter (looked up once).
    seen: HashMap<(TrackKind, RepairKind), (u64, metrics::Counter)>,
}

impl RepairLog {
    fn note(&mut self, video: &str, repairs: Vec<Repair>) {
        for r in repairs {
            let track = match r.track {
                TrackKind::Video => "video",
                TrackKind::Audio => "audio",
            };
            let (n, counter) = self.seen.entry((r.track, r.kind)).or_insert_with(|| {
                let counter = metrics::counter!("vshare_timestamp_repairs_total", "track" => track, "kind" => r.kind.label());
                (0, counter)
            });
            counter.increment(1);
            *n += 1;
            if n.is_power_of_two() {
                info!(
                    video,
                    track,
                    kind = r.kind.label(),
                    count = *n,
                    input_dts_us = r.input_dts_us,
                    shift_us = r.shift_us,
                    "timestamps repaired"
                );
            }
        }
    }
}
