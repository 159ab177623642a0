//! The video server role: one session per publisher. It packages the frames into the live
//! stream (handed to the live server), records the segments to storage as they are made,
//! measures the attribute data, and finishes the VOD files the moment the publisher stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};
use vshare_attributes::{AttributeRecord, Kind};
use vshare_media::timestamps::{Repair, RepairKind, TimestampNormalizer};
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_package::multivariant::VariantMeter;
use vshare_package::{Packager, PackagerConfig, PackagerOutput, VodMp4Builder};
use vshare_proxy::{Event, EventKind, Proxy};
use vshare_transcode::{LadderConfig, TranscodeWorker, Transcoder};

use crate::config::Config;
use crate::db::{Db, SegmentRow, StreamKey, Video, VideoState, now_rfc3339, random_id};
use crate::files::FileJob;
use crate::live::{LiveMessage, LiveServer};
use crate::storage::{Storage, object_path};
use crate::webhook::Webhooks;

/// What ingest sends to a session.
#[derive(Debug)]
pub enum IngestMessage {
    /// An event and the wall-clock time it arrived, µs since the Unix epoch.
    Media(MediaEvent, i64),
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

/// Measured facts about a stream, from its configurations and the frames seen.
#[derive(Debug, Default, Clone)]
struct Measured {
    video: Option<vshare_media::AvcConfig>,
    audio: Option<vshare_media::AacConfig>,
    media_bytes: u64,
    video_frames: u64,
    first_video_dts: Option<i64>,
    last_video_dts: i64,
    first_dts: Option<i64>,
    last_dts: i64,
    /// The largest picture (by area) of every video configuration seen, as the VOD MP4's
    /// track header announces it.
    largest_picture: Option<(u32, u32)>,
}

impl Measured {
    fn observe(&mut self, event: &MediaEvent) {
        match event {
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
                if self
                    .largest_picture
                    .is_none_or(|l| area(l) < area((c.width, c.height)))
                {
                    self.largest_picture = Some((c.width, c.height));
                }
                self.video = Some(c.clone());
            }
            MediaEvent::Config(TrackConfig::Aac(c)) => self.audio = Some(c.clone()),
            MediaEvent::Frame(f) => {
                self.media_bytes += f.data.len() as u64;
                self.first_dts.get_or_insert(f.dts);
                self.last_dts = self.last_dts.max(f.dts);
                if f.track == TrackKind::Video {
                    self.video_frames += 1;
                    self.first_video_dts.get_or_insert(f.dts);
                    self.last_video_dts = f.dts;
                }
            }
        }
    }

    /// Frames per second: the SPS VUI timing when present, else counted from timestamps.
    fn frame_rate(&self) -> f64 {
        if let Some(fps) = self.video.as_ref().and_then(|v| v.frame_rate) {
            return fps;
        }
        let span = self.last_video_dts - self.first_video_dts.unwrap_or(self.last_video_dts);
        if span <= 0 || self.video_frames < 2 {
            return 0.0;
        }
        (self.video_frames - 1) as f64 * 1e6 / span as f64
    }

    fn codecs(&self) -> String {
        let mut c = Vec::new();
        if let Some(v) = &self.video {
            c.push(TrackConfig::Avc(v.clone()).codec_string());
        }
        if let Some(a) = &self.audio {
            c.push(TrackConfig::Aac(a.clone()).codec_string());
        }
        c.join(",")
    }

    fn duration_us(&self) -> i64 {
        self.last_dts - self.first_dts.unwrap_or(self.last_dts)
    }

    /// A record of the recorded file: as [`record`](Self::record), with the largest picture of
    /// a stream whose picture size changed.
    fn vod_record(
        &self,
        video_id: &str,
        url: String,
        format: &str,
        title: &str,
    ) -> AttributeRecord {
        let mut r = self.record(Kind::Vod, video_id, url, format, title);
        if let Some((w, h)) = self.largest_picture {
            (r.width, r.height) = (w, h);
        }
        r
    }

    /// A record of this stream with the measured picture and sound.
    fn record(
        &self,
        kind: Kind,
        video_id: &str,
        url: String,
        format: &str,
        title: &str,
    ) -> AttributeRecord {
        AttributeRecord {
            kind,
            video_id: video_id.to_string(),
            url,
            format: format.to_string(),
            codecs: self.codecs(),
            width: self.video.as_ref().map_or(0, |v| v.width),
            height: self.video.as_ref().map_or(0, |v| v.height),
            frame_rate: round3(self.frame_rate()),
            bitrate: 0,
            size: 0,
            duration_ms: 0,
            audio_sample_rate: self.audio.as_ref().map_or(0, |a| a.output_sample_rate),
            audio_channels: self.audio.as_ref().map_or(0, |a| a.channels),
            title: title.to_string(),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn bitrate(size: u64, duration_us: i64) -> u64 {
    if duration_us <= 0 {
        return 0;
    }
    (size as f64 * 8.0 * 1e6 / duration_us as f64).round() as u64
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
}

impl VideoServer {
    pub fn new(
        db: Db,
        storage: Storage,
        live: LiveServer,
        webhooks: Webhooks,
        config: Arc<Config>,
        ladder: LadderConfig,
        proxy: Option<Proxy>,
    ) -> Arc<Self> {
        let live_tx = live.spawn();
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
        })
    }

    /// The current live record of a video, if it is live.
    pub fn live_record(&self, video_id: &str) -> Option<AttributeRecord> {
        self.live_records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(video_id)
            .cloned()
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

    /// Starts a session for a publisher with a valid key.
    pub async fn start(
        self: &Arc<Self>,
        key: &StreamKey,
        title: &str,
    ) -> Result<Publisher, StartError> {
        let video_id = random_id(12);
        {
            let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            if active.contains_key(&key.id) {
                return Err(StartError::AlreadyPublishing(key.id.clone()));
            }
            if active.len() >= self.config.limits.max_publishers {
                return Err(StartError::TooMany(self.config.limits.max_publishers));
            }
            active.insert(key.id.clone(), video_id.clone());
        }
        let video = Video {
            id: video_id.clone(),
            key_id: key.id.clone(),
            title: title.to_string(),
            state: VideoState::Live,
            created_at: now_rfc3339(),
            ended_at: None,
            attributes: vec![],
            visibility: Default::default(),
        };
        if let Err(e) = self.db.insert_video(&video).await {
            self.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key.id);
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
            let _ = done_tx.send(());
        });
        Ok(Publisher { video_id, tx, done })
    }

    fn packager_config(&self) -> PackagerConfig {
        PackagerConfig {
            part_target_us: self.config.live.part_target_ms as i64 * 1000,
            segment_target_us: self.config.live.segment_target_ms as i64 * 1000,
            window_segments: self.config.live.window_segments,
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
        let mut renditions = vec![Rendition::new(self, &id, None)];
        // Transcoded renditions come back from the worker thread on this channel.
        let (tc_tx, mut tc_rx) = mpsc::unbounded_channel::<(usize, MediaEvent)>();
        let mut worker: Option<TranscodeWorker> = None;
        let mut files: Vec<FileJob> = Vec::new();
        let mut ladder_started = false;
        let mut went_live = false;
        // Handles looked up once, not per frame.
        let video_frames = metrics::counter!("vshare_frames_total", "track" => "video");
        let audio_frames = metrics::counter!("vshare_frames_total", "track" => "audio");
        // Every way in goes through one timestamp discipline (docs/timestamps.md).
        let mut timing = TimestampNormalizer::new();
        let mut repairs = RepairLog::default();
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let (batch, end) = match msg {
                        Some(IngestMessage::Media(event, arrival)) => (timing.push(event, arrival), false),
                        Some(IngestMessage::End) | None => (timing.finish(), true),
                    };
                    repairs.note(&id, timing.take_repairs());
                    for (event, arrival) in batch {
                        if let MediaEvent::Frame(f) = &event {
                            match f.track {
                                TrackKind::Video => video_frames.increment(1),
                                TrackKind::Audio => audio_frames.increment(1),
                            }
                            if !ladder_started {
                                ladder_started = true;
                                let source = renditions[0].measured.clone();
                                worker = self.start_ladder(&id, &source, &tc_tx, &mut renditions);
                                // One origin for every rendition: the same input time is the
                                // same media time in all of them, so players switch cleanly.
                                files = self.start_files(&id, &source);
                                let origin = f.dts.saturating_sub(vshare_package::ORIGIN_MARGIN_US);
                                for r in &mut renditions {
                                    r.packager.set_origin(origin);
                                }
                            }
                        }
                        if let Some(w) = worker.as_mut() {
                            w.push(&event);
                        }
                        for job in &mut files {
                            job.push(&event);
                        }
                        self.push_to(&id, &mut renditions, 0, event, arrival, &video, &mut went_live).await;
                    }
                    if end {
                        break;
                    }
                }
                Some((index, event)) = tc_rx.recv() => {
                    self.push_to(&id, &mut renditions, index + 1, event, unix_us(), &video, &mut went_live).await;
                }
            }
        }
        let ended = Instant::now();
        self.release_key(key_id, &id);
        // Flush the transcoder (its thread sends what it still holds), then every packager.
        drop(tc_tx);
        if let Some(w) = worker.take() {
            let stats = tokio::task::spawn_blocking(move || w.finish()).await?;
            if stats.frames_dropped > 0 {
                warn!(video = %id, dropped = stats.frames_dropped, episodes = stats.drop_episodes, "transcoder fell behind");
            }
        }
        while let Some((index, event)) = tc_rx.recv().await {
            self.push_to(
                &id,
                &mut renditions,
                index + 1,
                event,
                unix_us(),
                &video,
                &mut went_live,
            )
            .await;
        }
        let mut records = Vec::new();
        let mut finished = Vec::new();
        for mut r in renditions {
            for out in r.packager.finish() {
                self.handle_output(&id, &r, out, &video, &mut went_live)
                    .await;
            }
            if let Some(playlist) = r.packager.media_playlist() {
                let _ = self.live_tx.send(LiveMessage::End {
                    stream: r.live_stream(&id),
                    playlist: playlist.into(),
                });
            }
            drop(r.rec_tx);
            finished.push((r.name, r.measured, r.recorder));
        }
        self.db
            .update_video(
                &id,
                VideoState::Finishing,
                &video_live_attrs(self, &id),
                None,
                None,
            )
            .await?;
        for (name, measured, recorder) in finished {
            let recorded = match recorder.await? {
                Ok(r) => r,
                Err(e) if name.is_some() => {
                    warn!(video = %id, rendition = name.as_deref().unwrap_or(""), "rendition not recorded: {e:#}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            records.extend(
                self.finish_vod(&id, name.as_deref(), &recorded, &measured, &video.title)
                    .await?,
            );
        }
        let ended_at = now_rfc3339();
        self.db
            .update_video(
                &id,
                VideoState::Ready,
                &records,
                Some(&ended_at),
                self.webhooks.event("video.ready"),
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
        if !files.is_empty() {
            let me = self.clone();
            let title = video.title.clone();
            let id = id.clone();
            tokio::spawn(async move {
                if let Err(e) = me.finish_files(&id, &title, files).await {
                    warn!(video = %id, "other VOD formats: {e:#}");
                }
            });
        }
        // Keep the ended live playlist a while for players still on it.
        let live = self.live.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            live.remove(&id);
        });
        Ok(())
    }

    /// Starts the transcoder for the configured ladder once the source's configurations are
    /// known; adds one rendition per rung. None when the ladder is empty or cannot start.
    fn start_ladder(
        self: &Arc<Self>,
        id: &str,
        source: &Measured,
        tc_tx: &mpsc::UnboundedSender<(usize, MediaEvent)>,
        renditions: &mut Vec<Rendition>,
    ) -> Option<TranscodeWorker> {
        if self.ladder.renditions.is_empty() {
            return None;
        }
        let transcoder =
            match Transcoder::new(&self.ladder, source.video.as_ref(), source.audio.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    warn!(video = %id, "transcoding off for this stream: {e}");
                    return None;
                }
            };
        let rungs = transcoder.renditions();
        if rungs.is_empty() {
            return None;
        }
        for rung in &rungs {
            info!(video = %id, rendition = %rung.name, width = rung.width, height = rung.height, "rendition");
            renditions.push(Rendition::new(self, id, Some(rung.name.clone())));
        }
        let tx = tc_tx.clone();
        Some(TranscodeWorker::spawn(
            transcoder,
            256,
            move |index, event| {
                let _ = tx.send((index, event));
            },
        ))
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

    /// Starts the configured other-format VOD files from the source's configurations.
    fn start_files(&self, id: &str, source: &Measured) -> Vec<FileJob> {
        let dir = self.config.data_dir.join("tmp");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            warn!(video = %id, "no directory for VOD files: {e}");
            return Vec::new();
        }
        let mut jobs = Vec::new();
        for spec in &self.config.transcode.files {
            let path = dir.join(format!("{id}.{}", spec.format.name()));
            match FileJob::start(
                spec.clone(),
                path,
                source.video.clone(),
                source.audio.clone(),
            ) {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    warn!(video = %id, format = spec.format.name(), "VOD file not started: {e:#}")
                }
            }
        }
        jobs
    }

    /// Waits for the other-format files, stores them and adds their records to the video.
    async fn finish_files(&self, id: &str, title: &str, jobs: Vec<FileJob>) -> anyhow::Result<()> {
        let mut added = Vec::new();
        let mut stored_names = Vec::new();
        for job in jobs {
            let name = format!("video.{}", job.spec.format.name());
            let path = job.path.clone();
            let result = tokio::task::spawn_blocking(move || job.finish()).await?;
            let summary = match result {
                Ok(s) => s,
                Err(e) => {
                    warn!(video = %id, file = %name, "not written: {e:#}");
                    let _ = tokio::fs::remove_file(&path).await;
                    continue;
                }
            };
            let stored = self.storage.put_file(&object_path(id, &name), &path).await;
            let _ = tokio::fs::remove_file(&path).await;
            stored?;
            let url = format!("{}/vod/{id}/{name}", self.public_url);
            added.push(summary.attribute_record(id, &url, title));
            stored_names.push(name);
        }
        if added.is_empty() {
            return Ok(());
        }
        let Some(v) = self.db.get_video(id).await? else {
            // Deleted while these were written: its purge may have listed the video's objects
            // before they existed, so they are removed here.
            for name in &stored_names {
                self.storage.delete(&object_path(id, name)).await?;
            }
            return Ok(());
        };
        let mut records = v.attributes;
        records.extend(added);
        self.db
            .update_video(
                id,
                v.state,
                &records,
                v.ended_at.as_deref(),
                self.webhooks.event("video.formats"),
            )
            .await?;
        self.webhooks.wake();
        info!(video = %id, "other VOD formats ready");
        Ok(())
    }

    /// Feeds one event to rendition `index` and handles what its packager makes of it.
    #[allow(clippy::too_many_arguments)]
    async fn push_to(
        &self,
        id: &str,
        renditions: &mut [Rendition],
        index: usize,
        event: MediaEvent,
        arrival: i64,
        video: &Video,
        went_live: &mut bool,
    ) {
        let Some(r) = renditions.get_mut(index) else {
            return;
        };
        r.measured.observe(&event);
        r.meter.push(&event);
        let outputs = match r.packager.push(event, arrival) {
            Ok(outputs) => outputs,
            Err(e) => {
                r.rejected += 1;
                if r.rejected == 1 || r.rejected.is_power_of_two() {
                    warn!(video = %id, rendition = r.name.as_deref().unwrap_or("source"), rejected = r.rejected, "frame dropped: {e}");
                }
                return;
            }
        };
        let mut segment_done = false;
        for out in outputs {
            segment_done |= matches!(out, PackagerOutput::Segment { .. });
            self.handle_output(id, &renditions[index], out, video, went_live)
                .await;
        }
        if segment_done && renditions.len() > 1 {
            let variants: Vec<_> = renditions
                .iter()
                .filter_map(|r| r.meter.variant(&r.playlist_uri()))
                .collect();
            let _ = self.live_tx.send(LiveMessage::Multivariant {
                stream: id.to_string(),
                playlist: vshare_package::multivariant::multivariant_playlist(&variants).into(),
            });
        }
    }

    async fn handle_output(
        &self,
        id: &str,
        r: &Rendition,
        out: PackagerOutput,
        video: &Video,
        went_live: &mut bool,
    ) {
        let playlist = || -> Arc<str> { r.packager.media_playlist().unwrap_or_default().into() };
        let stream = r.live_stream(id);
        match out {
            PackagerOutput::Init { bytes, name } => {
                let _ = self.live_tx.send(LiveMessage::Init {
                    stream,
                    name,
                    init: bytes.clone(),
                });
                let _ = r.rec_tx.send(RecordMessage::Init(bytes));
            }
            PackagerOutput::Part {
                msn,
                index,
                bytes,
                first_arrival_unix_us,
                ..
            } => {
                let _ = self.live_tx.send(LiveMessage::Part {
                    stream,
                    msn,
                    index,
                    bytes,
                    playlist: playlist(),
                });
                if r.name.is_none() {
                    metrics::counter!("vshare_parts_total").increment(1);
                    let latency = (unix_us() - first_arrival_unix_us) as f64 / 1e6;
                    metrics::histogram!("vshare_part_publish_latency_seconds").record(latency);
                }
            }
            PackagerOutput::Segment {
                msn,
                duration_us,
                bytes,
                ..
            } => {
                let _ = self.live_tx.send(LiveMessage::Segment {
                    stream,
                    msn,
                    playlist: playlist(),
                });
                let _ = r.rec_tx.send(RecordMessage::Segment {
                    msn,
                    duration_us,
                    bytes,
                });
                if r.name.is_some() {
                    return;
                }
                // The live record describes the source; with a ladder its URL is the
                // multivariant playlist, which lists every rendition.
                let path = if self.ladder.renditions.is_empty() {
                    "index.m3u8"
                } else {
                    "master.m3u8"
                };
                let measured = &r.measured;
                let mut rec = measured.record(
                    Kind::Live,
                    id,
                    format!("{}/live/{id}/{path}", self.public_url),
                    "ll-hls",
                    &video.title,
                );
                let duration = measured.duration_us();
                rec.size = measured.media_bytes;
                rec.duration_ms = (duration / 1000).max(0) as u64;
                rec.bitrate = bitrate(measured.media_bytes, duration);
                self.live_records
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_string(), rec.clone());
                if !*went_live {
                    *went_live = true;
                    info!(video = %id, url = %rec.url, "live");
                    let event = self.webhooks.event("stream.live");
                    match self
                        .db
                        .update_video(id, VideoState::Live, &[rec.clone()], None, event)
                        .await
                    {
                        Ok(()) => self.webhooks.wake(),
                        Err(e) => warn!(video = %id, "could not store live attributes: {e:#}"),
                    }
                    self.notify_subscribers(EventKind::Live, id, &video.key_id, vec![rec])
                        .await;
                }
            }
        }
    }

    /// Replaces a live video's stored attributes with the current measured record.
    pub fn with_live_record(&self, mut v: Video) -> Video {
        if let Some(rec) = self
            .live_record(&v.id)
            .filter(|_| v.state == VideoState::Live)
        {
            v.attributes = vec![rec];
        }
        v
    }

    /// Writes the fast-start MP4 of one rendition and returns its VOD attribute records.
    async fn finish_vod(
        &self,
        id: &str,
        rendition: Option<&str>,
        rec: &Recorded,
        measured: &Measured,
        title: &str,
    ) -> anyhow::Result<Vec<AttributeRecord>> {
        let Some(builder) = &rec.builder else {
            return Ok(vec![]);
        };
        let prefix = rendition_prefix(rendition);
        let size = write_mp4(&self.storage, id, &prefix, builder, &rec.segments).await?;
        let duration = builder.duration_us();
        let base = format!("{}/vod/{id}/{prefix}", self.public_url);
        let mut mp4 = measured.vod_record(id, format!("{base}video.mp4"), "mp4", title);
        mp4.size = size;
        mp4.duration_ms = (duration / 1000) as u64;
        mp4.bitrate = bitrate(size, duration);
        let hls_size = rec.init_size + rec.segments.iter().map(|s| s.size as u64).sum::<u64>();
        let mut hls = measured.vod_record(id, format!("{base}index.m3u8"), "hls", title);
        hls.size = hls_size;
        hls.duration_ms = mp4.duration_ms;
        hls.bitrate = bitrate(hls_size, duration);
        Ok(vec![mp4, hls])
    }

    /// Finishes recordings that a stopped server left live: whatever segments reached storage
    /// become a playable MP4 and HLS VOD, marked partial.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let mut pending = self.db.list_videos(Some(VideoState::Live)).await?;
        pending.extend(self.db.list_videos(Some(VideoState::Finishing)).await?);
        for v in pending {
            match self.recover_one(&v).await {
                Ok(n) => {
                    info!(video = %v.id, segments = n, "recovered interrupted recording");
                    if let Ok(Some(done)) = self.db.get_video(&v.id).await {
                        self.notify_subscribers(
                            EventKind::Ready,
                            &v.id,
                            &v.key_id,
                            done.attributes,
                        )
                        .await;
                    }
                }
                Err(e) => {
                    warn!(video = %v.id, "recovery failed: {e:#}");
                    self.db
                        .update_video(&v.id, VideoState::Partial, &[], Some(&now_rfc3339()), None)
                        .await?;
                }
            }
        }
        // A stop between a video's last update and its hand-off to the proxy would lose the
        // notification: hand the last day's finished videos over again (repeats add nothing).
        if self.proxy.is_some() {
            let since = (chrono::Utc::now() - chrono::Duration::hours(24))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            for v in self
                .db
                .videos_ended_since(VideoState::Ready, &since)
                .await?
            {
                self.notify_subscribers(EventKind::Ready, &v.id, &v.key_id, v.attributes)
                    .await;
            }
        }
        Ok(())
    }

    async fn recover_one(&self, v: &Video) -> anyhow::Result<usize> {
        // The source's recording; transcoded renditions are not recovered (they are made again
        // from the source by whoever needs them).
        let Recorded {
            builder,
            segments,
            init_size,
        } = rebuild(&self.storage, &v.id).await?;
        let Some(builder) = builder else {
            anyhow::bail!("no init segment");
        };
        self.db.replace_segments(&v.id, "", &segments).await?;
        let size = write_mp4(&self.storage, &v.id, "", &builder, &segments).await?;
        let duration = builder.duration_us();
        // Picture and sound facts were measured while live and stored with the live record.
        let template = v.attributes.first().cloned();
        let mut records = Vec::new();
        for (format, url, sz) in [
            (
                "mp4",
                format!("{}/vod/{}/video.mp4", self.public_url, v.id),
                size,
            ),
            (
                "hls",
                format!("{}/vod/{}/index.m3u8", self.public_url, v.id),
                init_size + segments.iter().map(|s| s.size as u64).sum::<u64>(),
            ),
        ] {
            let mut r = template.clone().unwrap_or_else(|| {
                Measured::default().record(Kind::Vod, &v.id, String::new(), "", &v.title)
            });
            r.kind = Kind::Vod;
            r.url = url;
            r.format = format.to_string();
            r.size = sz;
            r.duration_ms = (duration / 1000) as u64;
            r.bitrate = bitrate(sz, duration);
            records.push(r);
        }
        self.db
            .update_video(
                &v.id,
                VideoState::Partial,
                &records,
                Some(&now_rfc3339()),
                self.webhooks.event("video.ready"),
            )
            .await?;
        Ok(segments.len())
    }
}

fn video_live_attrs(server: &VideoServer, id: &str) -> Vec<AttributeRecord> {
    server.live_record(id).into_iter().collect()
}

/// The source's recording read back from storage alone (after a crash): `init.mp4` and the
/// `init<msn>.mp4` of later configurations, and the segments in order, each read against the
/// latest init segment named by a number up to its own. A segment or init segment that does not
/// read (cut short by the crash) ends the recording.
async fn rebuild(storage: &Storage, id: &str) -> anyhow::Result<Recorded> {
    let names = storage.list_video(id).await?;
    let number = |name: &str, prefix: &str, suffix: &str| -> Option<u64> {
        name.strip_prefix(prefix)?
            .strip_suffix(suffix)?
            .parse()
            .ok()
    };
    let mut msns: Vec<u64> = names
        .iter()
        .filter_map(|n| number(n, "seg", ".m4s"))
        .collect();
    msns.sort_unstable();
    // Init segments of later configurations, by the first segment they apply to.
    let mut later_inits: Vec<u64> = names
        .iter()
        .filter_map(|n| number(n, "init", ".mp4"))
        .collect();
    later_inits.sort_unstable();
    let init = storage.get(&object_path(id, "init.mp4")).await?;
    let mut init_size = init.len() as u64;
    let mut builder = VodMp4Builder::new(&init)?;
    let mut current = "init.mp4".to_string();
    let mut segments = Vec::new();
    for msn in msns {
        let wanted = later_inits
            .iter()
            .rev()
            .find(|k| **k <= msn)
            .map_or_else(|| "init.mp4".to_string(), |k| init_name(false, *k));
        if wanted != current {
            let bytes = storage.get(&object_path(id, &wanted)).await?;
            if let Err(e) = builder.add_init(&bytes) {
                warn!(video = %id, msn, init = %wanted, "init segment not usable: {e}");
                break;
            }
            init_size += bytes.len() as u64;
            current = wanted;
        }
        let bytes = storage
            .get(&object_path(id, &format!("seg{msn}.m4s")))
            .await?;
        let before = builder.duration_us();
        if let Err(e) = builder.add_segment(&bytes) {
            warn!(video = %id, msn, "segment not usable: {e}");
            break;
        }
        segments.push(SegmentRow {
            msn: msn as i64,
            duration_us: builder.duration_us() - before,
            size: bytes.len() as i64,
            init_name: current.clone(),
        });
    }
    Ok(Recorded {
        builder: Some(builder),
        segments,
        init_size,
    })
}

/// Writes `video.mp4`: the fast-start header, then the sample data of every segment in order.
async fn write_mp4(
    storage: &Storage,
    id: &str,
    prefix: &str,
    builder: &VodMp4Builder,
    segments: &[SegmentRow],
) -> anyhow::Result<u64> {
    let mut out = storage
        .writer(&object_path(id, &format!("{prefix}video.mp4")))
        .await?;
    let header = builder.header();
    let mut size = header.len() as u64;
    out.write(&header);
    let mut cached: Option<(usize, Bytes)> = None;
    for (index, range) in builder.payload_ranges() {
        let bytes = match &cached {
            Some((i, b)) if *i == index => b.clone(),
            _ => {
                let seg = segments.get(index).ok_or_else(|| {
                    anyhow::anyhow!("segment #{index} of the MP4 layout was not recorded")
                })?;
                let b = storage
                    .get(&object_path(id, &format!("{prefix}seg{}.m4s", seg.msn)))
                    .await?;
                cached = Some((index, b.clone()));
                b
            }
        };
        let slice = bytes.get(range.clone()).ok_or_else(|| {
            anyhow::anyhow!(
                "segment #{index}: range {range:?} beyond its {} bytes",
                bytes.len()
            )
        })?;
        size += slice.len() as u64;
        out.write(slice);
    }
    out.finish().await?;
    Ok(size)
}

/// What the recorder task is told.
enum RecordMessage {
    Init(Bytes),
    Segment {
        msn: u64,
        duration_us: i64,
        bytes: Bytes,
    },
}

/// What the recorder stored.
struct Recorded {
    builder: Option<VodMp4Builder>,
    segments: Vec<SegmentRow>,
    /// Bytes of every init segment stored.
    init_size: u64,
}

/// The storage name of an init segment: `init.mp4` for the stream's first configuration,
/// `init<msn>.mp4` for one that a codec configuration change started at segment `msn`.
fn init_name(first: bool, msn: u64) -> String {
    if first {
        "init.mp4".to_string()
    } else {
        format!("init{msn}.mp4")
    }
}

/// Stores segments as they are made: a killed server loses at most the segment in progress.
/// The first init segment is stored as it comes (`init.mp4`), a later one just before the first
/// segment packaged under it (which names it), and each segment's row names its init segment; a configuration change mid-stream becomes a
/// new sample entry in the MP4 ([`VodMp4Builder::add_init`]) and a new `EXT-X-MAP` in the HLS VOD.
async fn record(
    storage: Storage,
    db: Db,
    id: String,
    rendition: Option<String>,
    mut rx: mpsc::UnboundedReceiver<RecordMessage>,
) -> anyhow::Result<Recorded> {
    let prefix = rendition_prefix(rendition.as_deref());
    let rendition = rendition.unwrap_or_default();
    let mut rec = Recorded {
        builder: None,
        segments: Vec::new(),
        init_size: 0,
    };
    // A later init segment, until the first segment packaged under it stores it.
    let mut pending: Option<Bytes> = None;
    // The stored init segment in force: its bytes and name.
    let mut current: Option<(Bytes, String)> = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            RecordMessage::Init(bytes) => {
                pending = None;
                if current.as_ref().is_some_and(|(b, _)| *b == bytes) {
                    continue;
                }
                if rec.segments.is_empty() {
                    // The first configuration (or one that replaced it before any segment).
                    let builder = VodMp4Builder::new(&bytes)?;
                    let name = init_name(true, 0);
                    storage
                        .put(&object_path(&id, &format!("{prefix}{name}")), bytes.clone())
                        .await?;
                    rec.init_size = bytes.len() as u64;
                    rec.builder = Some(builder);
                    current = Some((bytes, name));
                } else {
                    pending = Some(bytes);
                }
            }
            RecordMessage::Segment {
                msn,
                duration_us,
                bytes,
            } => {
                if let (Some(init), Some(builder)) = (pending.take(), rec.builder.as_mut()) {
                    let name = init_name(false, msn);
                    builder.add_init(&init)?;
                    info!(video = %id, rendition = %rendition, msn, init = %name, "codec configuration changed; recording goes on with a new init segment");
                    storage
                        .put(&object_path(&id, &format!("{prefix}{name}")), init.clone())
                        .await?;
                    rec.init_size += init.len() as u64;
                    current = Some((init, name));
                }
                let (Some(builder), Some((_, init_name))) = (rec.builder.as_mut(), &current) else {
                    warn!(video = %id, msn, "segment before init segment; not recorded");
                    continue;
                };
                storage
                    .put(
                        &object_path(&id, &format!("{prefix}seg{msn}.m4s")),
                        bytes.clone(),
                    )
                    .await?;
                let row = SegmentRow {
                    msn: msn as i64,
                    duration_us,
                    size: bytes.len() as i64,
                    init_name: init_name.clone(),
                };
                db.add_segment(&id, &rendition, &row).await?;
                builder.add_segment(&bytes)?;
                rec.segments.push(row);
            }
        }
    }
    Ok(rec)
}

/// Storage and URL prefix of a rendition: nothing for the source, `<name>/` for a rung.
fn rendition_prefix(rendition: Option<&str>) -> String {
    rendition.map(|n| format!("{n}/")).unwrap_or_default()
}

/// One packaged output of a stream: the source as received, or a transcoded rung.
struct Rendition {
    /// None for the source; the rung's name (`240p`) otherwise.
    name: Option<String>,
    packager: Packager,
    measured: Measured,
    /// Measures what the multivariant playlist declares for this rendition.
    meter: VariantMeter,
    rec_tx: mpsc::UnboundedSender<RecordMessage>,
    recorder: tokio::task::JoinHandle<anyhow::Result<Recorded>>,
    rejected: u64,
}

impl Rendition {
    fn new(server: &VideoServer, id: &str, name: Option<String>) -> Self {
        let (rec_tx, rec_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(
            server.storage.clone(),
            server.db.clone(),
            id.to_string(),
            name.clone(),
            rec_rx,
        ));
        let config = server.packager_config();
        Rendition {
            name,
            meter: VariantMeter::new(config.segment_target_us),
            packager: Packager::new(config),
            measured: Measured::default(),
            rec_tx,
            recorder,
            rejected: 0,
        }
    }

    /// The live server's name for this rendition's stream.
    fn live_stream(&self, id: &str) -> String {
        match &self.name {
            None => id.to_string(),
            Some(n) => format!("{id}/{n}"),
        }
    }

    /// Its media playlist relative to the multivariant playlist.
    fn playlist_uri(&self) -> String {
        format!("{}index.m3u8", rendition_prefix(self.name.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use vshare_media::Frame;
    use vshare_media::flv::{TagDemuxer, TagType, read_file};

    use super::*;
    use crate::db::Visibility;

    /// `seconds` of H.264 at `size` (30 fps, a key frame each second) + AAC, as an FLV made by
    /// ffmpeg; its parameter sets are only in the sequence header (global headers).
    fn clip(dir: &std::path::Path, size: &str) -> std::path::PathBuf {
        let path = dir.join(format!("{size}.flv"));
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=30"))
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=f=1000:sample_rate=44100",
                "-t",
                "3",
            ])
            .args(["-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p"])
            .args(["-c:a", "aac", "-f", "flv"])
            .arg(&path)
            .output()
            .expect("ffmpeg is required for this test (apt-get install ffmpeg)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// The clip's media events, `offset_ms` later.
    fn events(path: &std::path::Path, offset_ms: i64) -> Vec<MediaEvent> {
        let data = Bytes::from(std::fs::read(path).expect("read clip"));
        let mut demux = TagDemuxer::new();
        let mut out = Vec::new();
        for tag in read_file(data).expect("flv") {
            let ts = i64::from(tag.timestamp_ms);
            let event = match tag.tag_type {
                TagType::Video => demux.video(ts, tag.body).expect("video tag"),
                TagType::Audio => demux.audio(ts, tag.body).expect("audio tag"),
                _ => None,
            };
            out.extend(event.map(|e| match e {
                MediaEvent::Frame(f) => MediaEvent::Frame(Frame {
                    pts: f.pts + offset_ms * 1000,
                    dts: f.dts + offset_ms * 1000,
                    ..f
                }),
                other => other,
            }));
        }
        out
    }

    /// Runs of decoded pictures of one size: ((width, height), count).
    type SizeRuns = Vec<((u64, u64), usize)>;

    /// ffmpeg's decode errors (empty when clean) and the decoded pictures' sizes as runs.
    fn decode(path: &std::path::Path) -> (String, SizeRuns) {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg");
        let errors = String::from_utf8_lossy(&out.stderr).into_owned();
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-show_entries"])
            .args(["frame=width,height", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe");
        let mut runs: SizeRuns = Vec::new();
        for line in String::from_utf8_lossy(&probe.stdout).lines() {
            let mut it = line.split(',').filter_map(|v| v.trim().parse::<u64>().ok());
            let (Some(w), Some(h)) = (it.next(), it.next()) else {
                continue;
            };
            match runs.last_mut() {
                Some((size, n)) if *size == (w, h) => *n += 1,
                _ => runs.push(((w, h), 1)),
            }
        }
        (errors, runs)
    }

    /// Storage in `dir`, an SQLite database and a live video: (storage, db, video id).
    async fn recording(dir: &std::path::Path) -> (Storage, Db, String) {
        let storage = Storage::open(None, &dir.join("store")).expect("storage");
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let db = Db::open(&url).await.expect("db");
        let (key, _) = db.create_key("phone").await.expect("key");
        let id = random_id(12);
        db.insert_video(&Video {
            id: id.clone(),
            key_id: key.id,
            title: "t".into(),
            state: VideoState::Live,
            created_at: now_rfc3339(),
            ended_at: None,
            attributes: vec![],
            visibility: Visibility::Public,
        })
        .await
        .expect("video");
        (storage, db, id)
    }

    #[tokio::test]
    async fn an_init_segment_before_any_segment_replaces_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, db, id) = recording(dir.path()).await;
        let mut packager = Packager::new(PackagerConfig::default());
        let mut outputs = Vec::new();
        for (i, event) in events(&clip(dir.path(), "320x180"), 0)
            .into_iter()
            .enumerate()
        {
            outputs.extend(packager.push(event, i as i64).expect("push"));
        }
        outputs.extend(packager.finish());
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(storage.clone(), db.clone(), id.clone(), None, rx));
        // A configuration that no segment used: the publisher changed it before its first key
        // frame was packaged.
        let unused = vshare_package::fmp4::init_segment(
            None,
            Some(&vshare_media::AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc")),
        )
        .expect("init");
        tx.send(RecordMessage::Init(unused)).expect("send");
        let mut init = None;
        for out in outputs {
            match out {
                PackagerOutput::Init { bytes, .. } => {
                    init = Some(bytes.clone());
                    tx.send(RecordMessage::Init(bytes)).expect("send");
                }
                PackagerOutput::Segment {
                    msn,
                    duration_us,
                    bytes,
                    ..
                } => tx
                    .send(RecordMessage::Segment {
                        msn,
                        duration_us,
                        bytes,
                    })
                    .expect("send"),
                PackagerOutput::Part { .. } => {}
            }
        }
        drop(tx);
        let rec = recorder.await.expect("join").expect("recorded");
        let init = init.expect("init");
        assert_eq!(
            storage
                .get(&object_path(&id, "init.mp4"))
                .await
                .expect("init"),
            init
        );
        assert_eq!(rec.init_size, init.len() as u64);
        let names = storage.list_video(&id).await.expect("list");
        assert!(
            names.iter().filter(|n| n.starts_with("init")).count() == 1,
            "{names:?}"
        );
        assert!(rec.segments.iter().all(|s| s.init_name == "init.mp4"));
        write_mp4(
            &storage,
            &id,
            "",
            rec.builder.as_ref().expect("b"),
            &rec.segments,
        )
        .await
        .expect("mp4");
        let (errors, runs) = decode(&dir.path().join("store/videos").join(&id).join("video.mp4"));
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(runs, [((320, 180), 90)]);
    }

    #[tokio::test]
    async fn a_configuration_change_is_recorded_and_rebuilt_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let (storage, db, id) = recording(dir.path()).await;

        // 640x360 → 320x180 → 640x360, each step a new encoder and a new avcC.
        let (big, small) = (clip(dir.path(), "640x360"), clip(dir.path(), "320x180"));
        let mut input = events(&big, 0);
        input.extend(events(&small, 3000));
        input.extend(events(&big, 6000));
        let mut packager = Packager::new(PackagerConfig::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(storage.clone(), db.clone(), id.clone(), None, rx));
        // The init segment each segment was packaged under, as the packager said.
        let mut inits: Vec<Bytes> = Vec::new();
        let mut expected: Vec<(i64, usize)> = Vec::new();
        let mut outputs = Vec::new();
        for (i, event) in input.into_iter().enumerate() {
            outputs.extend(packager.push(event, i as i64).expect("push"));
        }
        outputs.extend(packager.finish());
        for out in outputs {
            match out {
                PackagerOutput::Init { bytes, .. } => {
                    inits.push(bytes.clone());
                    tx.send(RecordMessage::Init(bytes)).expect("send");
                }
                PackagerOutput::Segment {
                    msn,
                    duration_us,
                    bytes,
                    ..
                } => {
                    expected.push((msn as i64, inits.len() - 1));
                    tx.send(RecordMessage::Segment {
                        msn,
                        duration_us,
                        bytes,
                    })
                    .expect("send");
                }
                PackagerOutput::Part { .. } => {}
            }
        }
        drop(tx);
        let rec = recorder.await.expect("join").expect("recorded");
        assert_eq!(inits.len(), 3);

        // Each init segment is stored under the first segment that uses it; each row names it.
        let first_of = |init: usize| expected.iter().find(|(_, i)| *i == init).expect("used").0;
        let names = [
            "init.mp4".to_string(),
            format!("init{}.mp4", first_of(1)),
            format!("init{}.mp4", first_of(2)),
        ];
        for (name, bytes) in names.iter().zip(&inits) {
            let stored = storage.get(&object_path(&id, name)).await.expect(name);
            assert_eq!(&stored, bytes, "{name}");
        }
        let rows = db.segments(&id, "").await.expect("rows");
        assert_eq!(
            rows.iter()
                .map(|r| (r.msn, r.init_name.as_str()))
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|(msn, i)| (*msn, names[*i].as_str()))
                .collect::<Vec<_>>()
        );
        assert_eq!(rec.segments, rows);
        assert_eq!(
            rec.init_size,
            inits.iter().map(|b| b.len() as u64).sum::<u64>()
        );

        // The MP4 decodes whole, each picture at the size it was sent.
        let builder = rec.builder.as_ref().expect("builder");
        write_mp4(&storage, &id, "", builder, &rec.segments)
            .await
            .expect("mp4");
        let mp4 = store.join("videos").join(&id).join("video.mp4");
        let (errors, runs) = decode(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(runs, [((640, 360), 90), ((320, 180), 90), ((640, 360), 90)]);

        // After a crash, storage alone gives back the same recording.
        let rebuilt = rebuild(&storage, &id).await.expect("rebuild");
        assert_eq!(
            rebuilt
                .segments
                .iter()
                .map(|r| (r.msn, r.init_name.clone()))
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|r| (r.msn, r.init_name.clone()))
                .collect::<Vec<_>>()
        );
        assert_eq!(rebuilt.init_size, rec.init_size);
        assert_eq!(
            rebuilt.builder.as_ref().expect("builder").header(),
            builder.header()
        );

        // A crash right after the last init segment was stored, before its first segment:
        // the init segment is left unused and the recording ends at the segment before.
        let last_change = first_of(2);
        for (msn, _) in expected.iter().filter(|(m, _)| *m >= last_change) {
            storage
                .delete(&object_path(&id, &format!("seg{msn}.m4s")))
                .await
                .expect("delete");
        }
        let cut = rebuild(&storage, &id).await.expect("rebuild after crash");
        assert_eq!(
            cut.segments.last().map(|r| (r.msn, r.init_name.clone())),
            Some((last_change - 1, names[1].clone()))
        );
        write_mp4(
            &storage,
            &id,
            "",
            cut.builder.as_ref().expect("b"),
            &cut.segments,
        )
        .await
        .expect("mp4");
        let (errors, runs) = decode(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(runs, [((640, 360), 90), ((320, 180), 90)]);
    }
}

/// Counts the normaliser's repairs (Prometheus `vshare_timestamp_repairs_total{track,kind}`) and
/// logs the first of each kind and then every power of two, so a broken encoder is visible
/// without flooding the log.
#[derive(Default)]
struct RepairLog {
    seen: HashMap<(TrackKind, RepairKind), u64>,
}

impl RepairLog {
    fn note(&mut self, video: &str, repairs: Vec<Repair>) {
        for r in repairs {
            let track = match r.track {
                TrackKind::Video => "video",
                TrackKind::Audio => "audio",
            };
            metrics::counter!("vshare_timestamp_repairs_total", "track" => track, "kind" => r.kind.label())
                .increment(1);
            let n = self.seen.entry((r.track, r.kind)).or_default();
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
