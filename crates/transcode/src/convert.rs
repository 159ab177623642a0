//! Video from sources whose codec the rest of the server does not take: HEVC (Enhanced RTMP
//! `hvc1`) is decoded and encoded again as H.264 at the source's picture size and frame rate, so
//! that from ingest on the stream is an ordinary H.264 source (live, recording, ladder, VOD,
//! attribute records).
//!
//! - [`HevcToAvc`]: the conversion itself (blocking work). Every output frame keeps the capture
//!   pts of the source picture it was made from, and the encoder puts an IDR exactly on the
//!   pictures decoded from source keyframes and nowhere else, so the ladder's keyframe alignment
//!   and the packager's segment boundaries follow the publisher's keyframes as for H.264.
//! - [`ConvertWorker`]: a `HevcToAvc` on its own OS thread, fed the whole stream (HEVC events and
//!   the ordinary audio events) in order. Pushing never blocks; when too much video waits, HEVC
//!   frames are dropped until the next source keyframe (the workers' one policy, `gate.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use ffmpeg_next as ff;
use vshare_media::{AvcConfig, Frame, HevcConfig, HevcEvent, MediaEvent, TrackConfig, TrackKind};

use crate::av::{
    Decoded, Decoders, Packet, Scaler, VideoEncoder, VideoEncoderSpec, fps_rational, init_ffmpeg,
    rung_options,
};
use crate::gate::{DropCounters, KeyframeGate};
use crate::{TranscodeError, annexb};

/// How converted video is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSettings {
    /// FFmpeg H.264 encoder name.
    pub encoder: String,
    /// Encoder speed preset (`veryfast` for libx264 when `None`).
    pub preset: Option<String>,
    /// libx264 constant rate factor: the quality aimed at.
    pub crf: u8,
    /// VBV ceiling in bits per pixel per frame: 0.12 caps 640x360 at 30 fps near 830 kb/s,
    /// 1280x720 near 3.3 Mb/s and 1920x1080 near 7.5 Mb/s.
    pub max_bits_per_pixel: f64,
}

impl Default for ConvertSettings {
    fn default() -> Self {
        ConvertSettings {
            encoder: "libx264".into(),
            preset: None,
            crf: 21,
            max_bits_per_pixel: 0.12,
        }
    }
}

impl ConvertSettings {
    /// The VBV maximum rate for a picture size and frame rate, bits per second.
    pub fn max_bitrate(&self, width: u32, height: u32, fps: f64) -> u64 {
        let bits = f64::from(width) * f64::from(height) * fps * self.max_bits_per_pixel;
        (bits as u64).clamp(300_000, 40_000_000)
    }
}

/// Source frames held at the start while the frame rate is measured, when the parameter sets do
/// not say it.
const RATE_PROBE_FRAMES: usize = 8;
/// … or this much decode time, µs.
const RATE_PROBE_SPAN_US: i64 = 1_000_000;
/// Frames in a row that gave no picture (refused, or swallowed: FFmpeg takes many kinds of
/// garbage without an error), after which the source is given up as not HEVC. No decoder holds
/// back this many (5 s at 30 fps).
const MAX_FRAMES_WITHOUT_PICTURE: u32 = 150;

/// Frame rates that measured intervals snap to (FLV carries whole milliseconds).
const COMMON_RATES: [f64; 12] = [
    10.0,
    12.0,
    15.0,
    24000.0 / 1001.0,
    24.0,
    25.0,
    30000.0 / 1001.0,
    30.0,
    48.0,
    50.0,
    60000.0 / 1001.0,
    60.0,
];

/// The frame rate of a run of decode times: mean interval, snapped to a common rate within 1 %.
fn measured_fps(dts: &[i64]) -> Option<f64> {
    let (first, last) = (*dts.first()?, *dts.last()?);
    if dts.len() < 2 || last <= first {
        return None;
    }
    let fps = (dts.len() - 1) as f64 * 1e6 / (last - first) as f64;
    let snapped = COMMON_RATES
        .iter()
        .copied()
        .min_by(|a, b| (a - fps).abs().total_cmp(&(b - fps).abs()))
        .filter(|r| (r - fps).abs() / r < 0.01);
    Some(snapped.unwrap_or((fps * 1000.0).round() / 1000.0))
}

fn sane_fps(fps: f64) -> Option<f64> {
    (fps.is_finite() && (1.0..=240.0).contains(&fps)).then_some(fps)
}

/// Decodes HEVC and encodes H.264 (see the module doc). Blocking work: run it on its own thread
/// ([`ConvertWorker`]).
pub struct HevcToAvc {
    settings: ConvertSettings,
    decoders: Decoders,
    record: Bytes,
    source: HevcConfig,
    encoder: Option<VideoEncoder>,
    scaler: Option<Scaler>,
    /// Frame rate for the encoder, once known.
    fps: Option<f64>,
    /// Source frames held while the frame rate is measured.
    waiting: Vec<Frame>,
    out: Vec<MediaEvent>,
    error: Option<TranscodeError>,
    frames_without_picture: u32,
    decode_errors_logged: bool,
    /// Decoded pictures dropped because no encoder was open (no keyframe yet).
    pub(crate) skipped_pictures: u64,
}

impl HevcToAvc {
    pub fn new(config: &HevcConfig, settings: ConvertSettings) -> Result<Self, TranscodeError> {
        init_ffmpeg();
        let mut decoders = Decoders::new();
        decoders.open_video_codec(ff::codec::Id::HEVC, &config.record)?;
        let fps = decoders
            .video_frame_rate()
            .or(config.frame_rate)
            .and_then(sane_fps);
        Ok(HevcToAvc {
            settings,
            decoders,
            record: config.record.clone(),
            source: config.clone(),
            encoder: None,
            scaler: None,
            fps,
            waiting: Vec::new(),
            out: Vec::new(),
            error: None,
            frames_without_picture: 0,
            decode_errors_logged: false,
            skipped_pictures: 0,
        })
    }

    /// The source configuration the decoder runs with.
    pub fn source(&self) -> &HevcConfig {
        &self.source
    }

    /// The frame rate the encoder runs at (None until it is known).
    pub fn frame_rate(&self) -> Option<f64> {
        self.fps
    }

    /// Source frames the decoder refused (skipped).
    pub fn decode_errors(&self) -> u64 {
        self.decoders.errors
    }

    /// A new source configuration (a publisher that changes resolution sends one before its
    /// next keyframe): the pictures of the old one are flushed through, then the decoder
    /// reopens. The encoder restarts at the next keyframe if the picture size changed.
    pub fn reconfigure(&mut self, config: &HevcConfig) -> Result<Vec<MediaEvent>, TranscodeError> {
        if config.record == self.record {
            return Ok(Vec::new());
        }
        self.release_waiting();
        self.flush_decoder();
        self.decoders
            .open_video_codec(ff::codec::Id::HEVC, &config.record)?;
        self.record = config.record.clone();
        self.source = config.clone();
        if let Some(fps) = self.decoders.video_frame_rate().and_then(sane_fps) {
            self.fps.get_or_insert(fps);
        }
        self.take()
    }

    /// After a gap in the source (frames dropped before the keyframe that follows): the
    /// decoder's pictures are flushed and it starts afresh, so an open-GOP keyframe's leading
    /// pictures, whose references were dropped, are skipped rather than shown broken.
    pub fn resync(&mut self) -> Result<Vec<MediaEvent>, TranscodeError> {
        self.release_waiting();
        self.flush_decoder();
        self.decoders
            .open_video_codec(ff::codec::Id::HEVC, &self.record)?;
        self.take()
    }

    /// One HEVC access unit (length-prefixed NAL units) with its capture times; returns the
    /// events ready so far: a `Config(Avc)` when the encoder opens, then AVCC frames.
    pub fn push(&mut self, frame: &Frame) -> Result<Vec<MediaEvent>, TranscodeError> {
        if self.fps.is_none() {
            self.waiting.push(frame.clone());
            let span = frame.dts - self.waiting[0].dts;
            if self.waiting.len() < RATE_PROBE_FRAMES && span < RATE_PROBE_SPAN_US {
                return Ok(Vec::new());
            }
            self.release_waiting();
            return self.take();
        }
        self.decode(frame);
        self.take()
    }

    /// End of stream: everything held is decoded and encoded.
    pub fn finish(&mut self) -> Result<Vec<MediaEvent>, TranscodeError> {
        self.release_waiting();
        self.flush_decoder();
        if let Some(enc) = self.encoder.as_mut() {
            let mut pkts = Vec::new();
            enc.finish(&mut pkts);
            emit(&mut self.out, pkts);
        }
        self.take()
    }

    fn take(&mut self) -> Result<Vec<MediaEvent>, TranscodeError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.out)),
        }
    }

    fn release_waiting(&mut self) {
        if self.fps.is_none() {
            let dts: Vec<i64> = self.waiting.iter().map(|f| f.dts).collect();
            self.fps = Some(measured_fps(&dts).and_then(sane_fps).unwrap_or(30.0));
        }
        for f in std::mem::take(&mut self.waiting) {
            self.decode(&f);
        }
    }

    fn decode(&mut self, frame: &Frame) {
        if self.error.is_some() {
            return;
        }
        let before = self.decoders.errors;
        let mut pictures = 0u32;
        let HevcToAvc {
            settings,
            decoders,
            encoder,
            scaler,
            fps,
            out,
            error,
            skipped_pictures,
            ..
        } = self;
        let fps = fps.unwrap_or(30.0);
        decoders.push(frame, &mut |d| {
            if let Decoded::Video(pic, pts, key) = d {
                pictures += 1;
                if error.is_none()
                    && let Err(e) = encode_picture(
                        settings,
                        encoder,
                        scaler,
                        pic,
                        pts,
                        key,
                        fps,
                        out,
                        skipped_pictures,
                    )
                {
                    *error = Some(e);
                }
            }
        });
        if pictures > 0 {
            self.frames_without_picture = 0;
        } else {
            self.frames_without_picture += 1;
        }
        if self.decoders.errors > before && !self.decode_errors_logged {
            self.decode_errors_logged = true;
            tracing::warn!(
                "HEVC frame refused by the decoder (pts {} µs); skipped",
                frame.pts
            );
        }
        if self.frames_without_picture >= MAX_FRAMES_WITHOUT_PICTURE && self.error.is_none() {
            self.error = Some(TranscodeError::Undecodable(format!(
                "the HEVC decoder made no picture from {} frames in a row ({} refused in all; \
                 the last at {} µs): the source is not decodable HEVC",
                self.frames_without_picture, self.decoders.errors, frame.pts
            )));
        }
    }

    fn flush_decoder(&mut self) {
        let HevcToAvc {
            settings,
            decoders,
            encoder,
            scaler,
            fps,
            out,
            error,
            skipped_pictures,
            ..
        } = self;
        let fps = fps.unwrap_or(30.0);
        decoders.flush_video(&mut |d| {
            if let Decoded::Video(pic, pts, key) = d
                && error.is_none()
                && let Err(e) = encode_picture(
                    settings,
                    encoder,
                    scaler,
                    pic,
                    pts,
                    key,
                    fps,
                    out,
                    skipped_pictures,
                )
            {
                *error = Some(e);
            }
        });
    }
}

fn emit(out: &mut Vec<MediaEvent>, pkts: Vec<Packet>) {
    for p in pkts {
        out.push(MediaEvent::Frame(Frame {
            track: TrackKind::Video,
            pts: p.pts,
            dts: p.dts,
            key: p.key,
            data: Bytes::from(annexb::to_avcc(&p.data)),
        }));
    }
}

/// Encodes one decoded picture; opens the encoder at a keyframe (and again at the first
/// keyframe of a new picture size).
#[allow(clippy::too_many_arguments)]
fn encode_picture(
    settings: &ConvertSettings,
    encoder: &mut Option<VideoEncoder>,
    scaler: &mut Option<Scaler>,
    pic: &ff::frame::Video,
    pts: i64,
    key: bool,
    fps: f64,
    out: &mut Vec<MediaEvent>,
    skipped: &mut u64,
) -> Result<(), TranscodeError> {
    // 4:2:0 H.264 wants even sizes; an odd HEVC picture loses its last row or column.
    let (w, h) = ((pic.width() & !1).max(2), (pic.height() & !1).max(2));
    if let Some(enc) = encoder.as_mut()
        && (enc.spec.width, enc.spec.height) != (w, h)
    {
        let mut pkts = Vec::new();
        enc.finish(&mut pkts);
        emit(out, pkts);
        *encoder = None;
    }
    if encoder.is_none() {
        if !key {
            *skipped += 1;
            return Ok(());
        }
        let maxrate = settings.max_bitrate(w, h, fps);
        let mut options = rung_options(&settings.encoder, settings.preset.as_deref(), maxrate);
        if settings.encoder == "libx264" {
            options.push(("crf".into(), settings.crf.to_string()));
        }
        let spec = VideoEncoderSpec {
            codec: settings.encoder.clone(),
            width: w,
            height: h,
            fps: fps_rational(fps),
            bitrate: maxrate,
            global_header: true,
            options,
            pixel: ff::format::Pixel::YUV420P,
            profile_baseline: false,
        };
        let enc = VideoEncoder::open(&spec)?;
        let record = annexb::decoder_configuration_record(&enc.global_header).ok_or_else(|| {
            TranscodeError::Config(format!(
                "{} gave no SPS/PPS in its global header",
                spec.codec
            ))
        })?;
        let config = AvcConfig::parse(Bytes::from(record))?;
        out.push(MediaEvent::Config(TrackConfig::Avc(config)));
        *encoder = Some(enc);
        *scaler = Some(Scaler::new(w, h));
    }
    let (Some(enc), Some(sc)) = (encoder.as_mut(), scaler.as_mut()) else {
        return Ok(());
    };
    let picture = sc.run(pic)?;
    let mut pkts = Vec::new();
    enc.encode(picture, pts, key, &mut pkts)?;
    emit(out, pkts);
    Ok(())
}

/// Counters of a [`ConvertWorker`], for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvertStats {
    /// HEVC frames accepted into the queue.
    pub frames_in: u64,
    /// H.264 frames delivered.
    pub frames_out: u64,
    /// HEVC frames dropped because the converter was behind (and until the next keyframe).
    pub frames_dropped: u64,
    /// Times it fell behind (each ended at a source keyframe).
    pub drop_episodes: u64,
    /// Ordinary events (audio) dropped because the queue was over its hard limit.
    pub events_dropped: u64,
    /// HEVC frames the decoder refused.
    pub decode_errors: u64,
    /// Why the conversion stopped, if it did.
    pub failed: Option<String>,
}

#[derive(Default)]
struct Shared {
    video_in_flight: AtomicUsize,
    events_in_flight: AtomicUsize,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    drops: DropCounters,
    events_dropped: AtomicU64,
    decode_errors: AtomicU64,
    /// The sink refused an event (the session has ended).
    closed: AtomicBool,
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        if let Ok(mut f) = self.failed.lock()
            && f.is_none()
        {
            tracing::warn!("HEVC conversion stopped: {why}");
            *f = Some(why);
        }
    }
}

enum Msg {
    Hevc {
        event: HevcEvent,
        stamp: i64,
        resync: bool,
    },
    Media(MediaEvent, i64),
}

/// Ordinary events a worker holds at most while its first H.264 configuration is not out yet.
const MAX_HELD: usize = 480;
/// Ordinary events in the queue above which they are dropped too (the thread is stuck).
const MAX_EVENTS_IN_FLIGHT: usize = 8192;

/// Runs the conversion of one stream on its own thread; see the module doc.
pub struct ConvertWorker {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    max_video_in_flight: usize,
    gate: KeyframeGate,
}

impl ConvertWorker {
    /// Starts the thread. `max_video_in_flight`: HEVC frames that may wait (a second or two,
    /// e.g. 60). `sink` receives the converted stream in order, each event with the stamp of
    /// the input it came from (ingest passes its arrival time); returning `false` (the
    /// receiver is gone) stops the worker.
    pub fn spawn<F>(settings: ConvertSettings, max_video_in_flight: usize, mut sink: F) -> Self
    where
        F: FnMut(MediaEvent, i64) -> bool + Send + 'static,
    {
        let (tx, rx) = channel::<Msg>();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("vshare-convert".into())
            .spawn(move || {
                // The converter is made on this thread (at the first HEVC configuration) and
                // never leaves it.
                let mut run = Run {
                    conv: None,
                    settings,
                    shared: s,
                    held: Vec::new(),
                    expecting_video: false,
                    video_started: false,
                    stamps: BTreeMap::new(),
                    sink: &mut sink,
                };
                while let Ok(msg) = rx.recv() {
                    run.handle(msg);
                    if run.shared.closed.load(Ordering::Relaxed) {
                        break;
                    }
                }
                run.finish();
            })
            .ok();
        if thread.is_none() {
            shared.fail("could not start the conversion thread".into());
        }
        ConvertWorker {
            tx: Some(tx),
            thread,
            shared,
            max_video_in_flight: max_video_in_flight.max(1),
            gate: KeyframeGate::new("HEVC conversion"),
        }
    }

    fn send(&self, msg: Msg) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok())
    }

    /// Offers an HEVC event; never blocks. `false` when the frame was dropped.
    pub fn push_hevc(&mut self, event: HevcEvent, stamp: i64) -> bool {
        let key = match &event {
            HevcEvent::Config(_) => {
                return self.send(Msg::Hevc {
                    event,
                    stamp,
                    resync: false,
                });
            }
            HevcEvent::Frame(f) => f.key,
        };
        let in_flight = self.shared.video_in_flight.load(Ordering::Relaxed);
        if !self.gate.admits(key) || in_flight >= self.max_video_in_flight {
            self.gate.dropped(&self.shared.drops);
            return false;
        }
        let resync = self.gate.passed();
        self.shared.video_in_flight.fetch_add(1, Ordering::Relaxed);
        self.shared.frames_in.fetch_add(1, Ordering::Relaxed);
        if !self.send(Msg::Hevc {
            event,
            stamp,
            resync,
        }) {
            self.shared.video_in_flight.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Offers an ordinary event (audio, or video that needs no conversion), kept in order with
    /// the converted video; never blocks.
    pub fn push_media(&mut self, event: MediaEvent, stamp: i64) -> bool {
        if self.shared.events_in_flight.load(Ordering::Relaxed) >= MAX_EVENTS_IN_FLIGHT
            && matches!(event, MediaEvent::Frame(_))
        {
            self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.shared.events_in_flight.fetch_add(1, Ordering::Relaxed);
        if !self.send(Msg::Media(event, stamp)) {
            self.shared.events_in_flight.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Why the conversion stopped (corrupt or undecodable source, encoder failure), or that its
    /// receiver is gone; the stream should be refused.
    pub fn failed(&self) -> Option<String> {
        if let Some(why) = self.shared.failed.lock().ok().and_then(|f| f.clone()) {
            return Some(why);
        }
        self.shared
            .closed
            .load(Ordering::Relaxed)
            .then(|| "the stream's session has ended".to_string())
    }

    pub fn stats(&self) -> ConvertStats {
        let s = &self.shared;
        ConvertStats {
            frames_in: s.frames_in.load(Ordering::Relaxed),
            frames_out: s.frames_out.load(Ordering::Relaxed),
            frames_dropped: s.drops.frames_dropped(),
            drop_episodes: s.drops.drop_episodes(),
            events_dropped: s.events_dropped.load(Ordering::Relaxed),
            decode_errors: s.decode_errors.load(Ordering::Relaxed),
            failed: s.failed.lock().ok().and_then(|f| f.clone()),
        }
    }

    /// End of stream: the worker converts what is queued, flushes the decoder and encoder into
    /// the sink and stops. Blocks until it has (call it from a blocking context).
    pub fn finish(mut self) -> ConvertStats {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stats()
    }
}

impl Drop for ConvertWorker {
    fn drop(&mut self) {
        // Closing the queue ends the thread after it has flushed; it is not waited for here.
        self.tx = None;
    }
}

/// The worker thread's state.
struct Run<'a, F: FnMut(MediaEvent, i64) -> bool> {
    conv: Option<HevcToAvc>,
    settings: ConvertSettings,
    shared: Arc<Shared>,
    /// Ordinary frames held until the first H.264 configuration is out, so the session sees
    /// the video configuration before any frame (and starts its ladder with both tracks).
    held: Vec<(MediaEvent, i64)>,
    expecting_video: bool,
    video_started: bool,
    /// Capture pts → stamp of the source frames in the converter.
    stamps: BTreeMap<i64, i64>,
    sink: &'a mut F,
}

impl<F: FnMut(MediaEvent, i64) -> bool> Run<'_, F> {
    fn failed(&self) -> bool {
        self.shared.failed.lock().map_or(true, |f| f.is_some())
    }

    fn deliver(&mut self, event: MediaEvent, stamp: i64) {
        if self.shared.closed.load(Ordering::Relaxed) {
            return;
        }
        if !(self.sink)(event, stamp) {
            self.shared.closed.store(true, Ordering::Relaxed);
        }
    }

    fn release_held(&mut self) {
        for (e, s) in std::mem::take(&mut self.held) {
            self.deliver(e, s);
        }
    }

    /// Hands the converter's output on: a stamp per frame (its source frame's), the held
    /// ordinary frames right after the first configuration.
    fn output(&mut self, result: Result<Vec<MediaEvent>, TranscodeError>, stamp: i64) {
        let events = match result {
            Ok(events) => events,
            Err(e) => {
                self.shared.fail(e.to_string());
                self.release_held();
                return;
            }
        };
        for event in events {
            match &event {
                MediaEvent::Config(_) => {
                    self.deliver(event, stamp);
                    if !self.video_started {
                        self.video_started = true;
                        self.release_held();
                    }
                }
                MediaEvent::Frame(f) => {
                    let s = self.stamps.get(&f.pts).copied().unwrap_or(stamp);
                    self.stamps = self.stamps.split_off(&f.pts);
                    self.shared.frames_out.fetch_add(1, Ordering::Relaxed);
                    self.deliver(event, s);
                }
            }
        }
        if let Some(c) = &self.conv {
            self.shared
                .decode_errors
                .store(c.decode_errors(), Ordering::Relaxed);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Hevc {
                event,
                stamp,
                resync,
            } => {
                if matches!(event, HevcEvent::Frame(_)) {
                    self.shared.video_in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                if self.failed() {
                    return;
                }
                match event {
                    HevcEvent::Config(c) => {
                        self.expecting_video = true;
                        let result = match self.conv.as_mut() {
                            Some(conv) => conv.reconfigure(&c),
                            None => HevcToAvc::new(&c, self.settings.clone()).map(|conv| {
                                tracing::info!(
                                    codec = %c.codec_string(),
                                    width = c.width,
                                    height = c.height,
                                    "HEVC source: converting to H.264 at ingest"
                                );
                                self.conv = Some(conv);
                                Vec::new()
                            }),
                        };
                        self.output(result, stamp);
                    }
                    HevcEvent::Frame(f) => {
                        let Some(conv) = self.conv.as_mut() else {
                            return;
                        };
                        let mut result = Ok(Vec::new());
                        if resync {
                            result = conv.resync();
                        }
                        self.stamps.insert(f.pts, stamp);
                        let pushed = conv.push(&f);
                        let result = match (result, pushed) {
                            (Ok(mut a), Ok(b)) => {
                                a.extend(b);
                                Ok(a)
                            }
                            (Err(e), _) | (_, Err(e)) => Err(e),
                        };
                        self.output(result, stamp);
                    }
                }
            }
            Msg::Media(event, stamp) => {
                self.shared.events_in_flight.fetch_sub(1, Ordering::Relaxed);
                if let MediaEvent::Config(TrackConfig::Avc(_)) = &event {
                    // The publisher switched to H.264: what HEVC is left goes first.
                    if let Some(mut conv) = self.conv.take() {
                        let result = conv.finish();
                        self.output(result, stamp);
                    }
                    self.expecting_video = false;
                    self.release_held();
                }
                let hold = self.expecting_video
                    && !self.video_started
                    && !self.failed()
                    && matches!(event, MediaEvent::Frame(_));
                if hold {
                    self.held.push((event, stamp));
                    if self.held.len() >= MAX_HELD {
                        self.video_started = true;
                        self.release_held();
                    }
                } else {
                    self.deliver(event, stamp);
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(mut conv) = self.conv.take() {
            if !self.failed() {
                let result = conv.finish();
                let stamp = self.stamps.values().last().copied().unwrap_or(0);
                self.output(result, stamp);
            }
            if conv.skipped_pictures > 0 {
                tracing::debug!(
                    skipped = conv.skipped_pictures,
                    "HEVC pictures before the first keyframe were skipped"
                );
            }
        }
        self.release_held();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_from_millisecond_timestamps() {
        // 30 fps in whole milliseconds: 0, 33, 67, 100, ...
        let dts: Vec<i64> = (0..8).map(|i| (i * 1000 / 30) * 1000).collect();
        assert_eq!(measured_fps(&dts), Some(30.0));
        // 29.97 fps needs finer times than milliseconds (the upload protocol's µs).
        let dts: Vec<i64> = (0..8).map(|i| i * 1_001_000 / 30).collect();
        assert_eq!(measured_fps(&dts), Some(30000.0 / 1001.0));
        let dts: Vec<i64> = (0..8).map(|i| i * 40_000).collect();
        assert_eq!(measured_fps(&dts), Some(25.0));
        // An odd rate is kept (to the millihertz).
        let dts: Vec<i64> = (0..8).map(|i| i * 57_000).collect();
        assert_eq!(measured_fps(&dts), Some(17.544));
        assert_eq!(measured_fps(&[5]), None);
        assert_eq!(measured_fps(&[5, 5]), None);
    }

    #[test]
    fn bitrate_ceiling_follows_the_picture() {
        let s = ConvertSettings::default();
        assert_eq!(s.max_bitrate(1280, 720, 30.0), 3_317_760);
        assert_eq!(s.max_bitrate(160, 90, 15.0), 300_000);
    }

    /// The server keeps a worker in a tokio task: it must be Send.
    #[test]
    fn worker_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ConvertWorker>();
    }
}
