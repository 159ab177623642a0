//! The ladder: decode once, scale once per rung, encode per rung; audio decoded, resampled and
//! encoded on its own path (one AAC encoder per distinct bitrate, shared by the rungs that ask
//! for it). Output frames keep the source's capture timestamps.

use bytes::Bytes;
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

use crate::av::{
    AudioConverter, AudioEncoder, Decoded, Decoders, Packet, Scaler, VideoEncoder,
    VideoEncoderSpec, fps_rational, init_ffmpeg, rung_options, scaled_size,
};
use crate::{LadderConfig, RenditionSpec, TranscodeError, annexb};

/// One transcoded rendition, as made so far.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionInfo {
    pub name: String,
    /// Current output size (0 until the first picture when the source size is unknown).
    pub width: u32,
    pub height: u32,
    /// Configured targets, bits per second (measure the output for attribute data).
    pub video_bitrate: u64,
    pub audio_bitrate: u64,
    pub encoder: String,
    /// Why this rendition stopped, if it did.
    pub failed: Option<String>,
    /// Video frames produced.
    pub video_frames: u64,
}

/// Everything a rendition index refers to in [`Transcoder::push`]'s output.
pub type Output = Vec<(usize, MediaEvent)>;

struct Rung {
    spec: RenditionSpec,
    width: u32,
    height: u32,
    scaler: Option<Scaler>,
    encoder: Option<VideoEncoder>,
    /// Index into `Transcoder::audio_encoders`.
    audio: usize,
    failed: Option<String>,
    video_frames: u64,
    /// The source has video: this rung's audio frames wait for its video configuration, so a
    /// rendition starts with both configurations (one init segment, not audio-only first).
    expects_video: bool,
    video_started: bool,
    held_audio: Vec<MediaEvent>,
}

/// Audio frames a rung holds at most while its video has not started (~10 s of AAC).
const MAX_HELD_AUDIO: usize = 480;

impl Rung {
    fn release_audio(&mut self, index: usize, out: &mut Output) {
        self.video_started = true;
        out.extend(self.held_audio.drain(..).map(|e| (index, e)));
    }

    fn fail(&mut self, index: usize, why: String) {
        if self.failed.is_none() {
            tracing::warn!(rendition = %self.spec.name, index, "rendition failed: {why}");
            self.failed = Some(why);
        }
        self.encoder = None;
        self.scaler = None;
    }
}

struct AudioSlot {
    bitrate: u64,
    encoder: Option<AudioEncoder>,
    failed: Option<String>,
}

/// Makes the ladder's renditions from one source. Blocking work: run it on its own thread
/// (see [`crate::TranscodeWorker`]).
pub struct Transcoder {
    rungs: Vec<Rung>,
    audio_encoders: Vec<AudioSlot>,
    converter: AudioConverter,
    decoders: Decoders,
    passthrough: bool,
    /// Frame rate of the source: SPS, else measured from its timestamps.
    sps_fps: Option<f64>,
    pending: Output,
    decode_errors_logged: bool,
    /// The configurations the decoders run with: a publisher that repeats an unchanged one
    /// (some resend it before every keyframe) costs nothing.
    video_record: Option<Bytes>,
    audio_asc: Option<Bytes>,
}

fn to_frame(track: TrackKind, p: &Packet, data: Bytes) -> Frame {
    Frame {
        track,
        pts: p.pts,
        dts: p.dts,
        key: p.key,
        data,
    }
}

impl Transcoder {
    /// Renditions whose height ≥ the source's are skipped. An audio-only source keeps every
    /// rung (audio only).
    pub fn new(
        config: &LadderConfig,
        video: Option<&AvcConfig>,
        audio: Option<&AacConfig>,
    ) -> Result<Self, TranscodeError> {
        init_ffmpeg();
        let mut decoders = Decoders::new();
        if let Some(v) = video {
            decoders.open_video(&v.record)?;
        }
        if let Some(a) = audio {
            decoders.open_audio(&a.asc)?;
        }
        let fltp = ff::format::Sample::F32(ff::format::sample::Type::Planar);
        let mut audio_encoders: Vec<AudioSlot> = Vec::new();
        let mut rungs = Vec::new();
        for spec in &config.renditions {
            if let Some(v) = video
                && spec.height >= v.height
            {
                continue;
            }
            let slot = match audio_encoders
                .iter()
                .position(|s| s.bitrate == spec.audio_bitrate)
            {
                Some(i) => i,
                None => {
                    audio_encoders.push(AudioSlot {
                        bitrate: spec.audio_bitrate,
                        encoder: None,
                        failed: None,
                    });
                    audio_encoders.len() - 1
                }
            };
            let (width, height) = video.map_or((0, spec.height), |v| {
                scaled_size(v.width, v.height, spec.height)
            });
            rungs.push(Rung {
                spec: spec.clone(),
                width,
                height,
                scaler: None,
                encoder: None,
                audio: slot,
                failed: None,
                video_frames: 0,
                expects_video: video.is_some(),
                video_started: false,
                held_audio: Vec::new(),
            });
        }
        let mut t = Transcoder {
            rungs,
            audio_encoders,
            converter: AudioConverter::new(fltp, ChannelLayout::STEREO, 1024),
            decoders,
            passthrough: config.passthrough,
            sps_fps: video.and_then(|v| v.frame_rate),
            pending: Vec::new(),
            decode_errors_logged: false,
            video_record: video.map(|v| v.record.clone()),
            audio_asc: audio.map(|a| a.asc.clone()),
        };
        if audio.is_some() {
            t.open_audio_encoders();
        }
        Ok(t)
    }

    fn open_audio_encoders(&mut self) {
        let fltp = ff::format::Sample::F32(ff::format::sample::Type::Planar);
        for (si, slot) in self.audio_encoders.iter_mut().enumerate() {
            if slot.encoder.is_some() || slot.failed.is_some() {
                continue;
            }
            let result = AudioEncoder::open("aac", slot.bitrate, fltp, ChannelLayout::STEREO, true)
                .map(AudioEncoder::with_capture_times)
                .and_then(|e| {
                    let c = AacConfig::parse(Bytes::from(e.global_header.clone()))?;
                    Ok((e, c))
                });
            match result {
                Ok((enc, cfg)) => {
                    slot.encoder = Some(enc);
                    for (i, r) in self.rungs.iter().enumerate() {
                        if r.audio == si {
                            self.pending
                                .push((i, MediaEvent::Config(TrackConfig::Aac(cfg.clone()))));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(bitrate = slot.bitrate, "AAC encoder failed: {e}");
                    slot.failed = Some(e.to_string());
                }
            }
        }
    }

    /// Whether the source is offered as a rendition too (the caller packages it directly).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    /// The transcoded renditions, in output index order.
    pub fn renditions(&self) -> Vec<RenditionInfo> {
        self.rungs
            .iter()
            .map(|r| RenditionInfo {
                name: r.spec.name.clone(),
                width: r.width,
                height: r.height,
                video_bitrate: r.spec.video_bitrate,
                audio_bitrate: r.spec.audio_bitrate,
                encoder: r.spec.encoder_name().into(),
                failed: r.failed.clone().or_else(|| {
                    self.audio_encoders
                        .get(r.audio)
                        .and_then(|s| s.failed.clone())
                }),
                video_frames: r.video_frames,
            })
            .collect()
    }

    /// Source frames the decoders refused (corrupt input), skipped.
    pub fn decode_errors(&self) -> u64 {
        self.decoders.errors
    }

    /// Feeds one ingest event: a configuration change or a frame.
    pub fn push_event(&mut self, event: &MediaEvent) -> Result<Output, TranscodeError> {
        match event {
            MediaEvent::Frame(f) => self.push(f),
            MediaEvent::Config(TrackConfig::Avc(c))
                if self.video_record.as_ref() == Some(&c.record) =>
            {
                Ok(std::mem::take(&mut self.pending))
            }
            MediaEvent::Config(TrackConfig::Aac(c)) if self.audio_asc.as_ref() == Some(&c.asc) => {
                Ok(std::mem::take(&mut self.pending))
            }
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                self.flush_video();
                self.video_record = Some(c.record.clone());
                for r in &mut self.rungs {
                    r.expects_video = true;
                }
                self.sps_fps = c.frame_rate;
                self.decoders.open_video(&c.record)?;
                Ok(std::mem::take(&mut self.pending))
            }
            MediaEvent::Config(TrackConfig::Aac(c)) => {
                self.flush_audio_decoder();
                self.audio_asc = Some(c.asc.clone());
                self.decoders.open_audio(&c.asc)?;
                self.open_audio_encoders();
                Ok(std::mem::take(&mut self.pending))
            }
        }
    }

    /// Decode once, scale once per rung, encode per rung; audio on its own path.
    pub fn push(&mut self, frame: &Frame) -> Result<Output, TranscodeError> {
        let errors_before = self.decoders.errors;
        let Transcoder {
            rungs,
            audio_encoders,
            converter,
            decoders,
            sps_fps,
            pending,
            ..
        } = self;
        let fps = sps_fps.or_else(|| decoders.estimated_fps()).unwrap_or(30.0);
        let mut on = |d: Decoded<'_>| match d {
            Decoded::Video(pic, pts, key) => video_to_rungs(rungs, pic, pts, key, fps, pending),
            Decoded::Audio(af, pts) => {
                audio_to_rungs(rungs, audio_encoders, converter, af, pts, pending)
            }
        };
        decoders.push(frame, &mut on);
        if self.decoders.errors > errors_before && !self.decode_errors_logged {
            self.decode_errors_logged = true;
            tracing::warn!(
                "source frame refused by the decoder (pts {} µs); skipped",
                frame.pts
            );
        }
        Ok(std::mem::take(&mut self.pending))
    }

    fn flush_video(&mut self) {
        let Transcoder {
            rungs,
            decoders,
            sps_fps,
            pending,
            ..
        } = self;
        let fps = sps_fps.or_else(|| decoders.estimated_fps()).unwrap_or(30.0);
        let mut on = |d: Decoded<'_>| {
            if let Decoded::Video(pic, pts, key) = d {
                video_to_rungs(rungs, pic, pts, key, fps, pending);
            }
        };
        decoders.flush_video(&mut on);
    }

    fn flush_audio_decoder(&mut self) {
        let Transcoder {
            rungs,
            audio_encoders,
            converter,
            decoders,
            pending,
            ..
        } = self;
        let mut on = |d: Decoded<'_>| {
            if let Decoded::Audio(af, pts) = d {
                audio_to_rungs(rungs, audio_encoders, converter, af, pts, pending);
            }
        };
        decoders.flush_audio(&mut on);
    }

    /// End of stream: drains decoders and encoders.
    pub fn finish(&mut self) -> Result<Output, TranscodeError> {
        self.flush_video();
        self.flush_audio_decoder();
        let Transcoder {
            rungs,
            audio_encoders,
            converter,
            pending,
            ..
        } = self;
        converter.flush(&mut |af| encode_audio(rungs, audio_encoders, af, pending));
        for (i, r) in rungs.iter_mut().enumerate() {
            r.release_audio(i, pending);
            if let Some(enc) = r.encoder.as_mut() {
                let mut pkts = Vec::new();
                enc.finish(&mut pkts);
                emit_video(i, r, pkts, pending);
            }
        }
        for (si, slot) in audio_encoders.iter_mut().enumerate() {
            if let Some(enc) = slot.encoder.as_mut() {
                let mut pkts = Vec::new();
                enc.finish(&mut pkts);
                emit_audio(rungs, si, pkts, pending);
            }
        }
        Ok(std::mem::take(&mut self.pending))
    }
}

fn emit_video(i: usize, r: &mut Rung, pkts: Vec<Packet>, out: &mut Output) {
    for p in pkts {
        let data = Bytes::from(annexb::to_avcc(&p.data));
        r.video_frames += 1;
        out.push((i, MediaEvent::Frame(to_frame(TrackKind::Video, &p, data))));
    }
}

fn emit_audio(rungs: &mut [Rung], slot: usize, pkts: Vec<Packet>, out: &mut Output) {
    for p in pkts {
        for (i, r) in rungs.iter_mut().enumerate() {
            if r.audio != slot {
                continue;
            }
            let e = MediaEvent::Frame(to_frame(TrackKind::Audio, &p, p.data.clone()));
            if r.expects_video && !r.video_started && r.failed.is_none() {
                r.held_audio.push(e);
                if r.held_audio.len() >= MAX_HELD_AUDIO {
                    r.release_audio(i, out);
                }
            } else {
                out.push((i, e));
            }
        }
    }
}

/// One rung's share of a picture, handed to a scoped thread.
struct RungJob<'a> {
    index: usize,
    rung: &'a mut Rung,
    picture: &'a ff::frame::Video,
}

// SAFETY: the rung's FFmpeg contexts (scaler, encoder) are used by exactly one thread at a time:
// the job moves the only `&mut Rung` into its thread and the scope joins before the caller uses
// the rung again. The decoded picture is only read (sws_scale reads its planes) while every
// job runs, and the decoder does not touch it until the scope has ended.
unsafe impl Send for RungJob<'_> {}

impl RungJob<'_> {
    fn run(self, pts: i64, key: bool, fps: f64) -> Output {
        let mut out = Vec::new();
        let RungJob {
            index,
            rung,
            picture,
        } = self;
        if let Err(e) = video_to_rung(index, rung, picture, pts, key, fps, &mut out) {
            rung.fail(index, e.to_string());
            rung.release_audio(index, &mut out);
        }
        out
    }
}

/// Scales and encodes one decoded picture in every live rung. With more than one, each rung
/// works on its own scoped thread (the two cores share the rungs; output stays in rung order).
fn video_to_rungs(
    rungs: &mut [Rung],
    pic: &ff::frame::Video,
    pts: i64,
    key: bool,
    fps: f64,
    out: &mut Output,
) {
    let jobs: Vec<RungJob<'_>> = rungs
        .iter_mut()
        .enumerate()
        .filter(|(_, r)| r.failed.is_none())
        .map(|(index, rung)| RungJob {
            index,
            rung,
            picture: pic,
        })
        .collect();
    if jobs.len() <= 1 {
        for job in jobs {
            out.extend(job.run(pts, key, fps));
        }
        return;
    }
    let results: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| scope.spawn(move || job.run(pts, key, fps)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for r in results {
        out.extend(r);
    }
}

fn video_to_rung(
    i: usize,
    r: &mut Rung,
    pic: &ff::frame::Video,
    pts: i64,
    key: bool,
    fps: f64,
    out: &mut Output,
) -> Result<(), TranscodeError> {
    let (w, h) = scaled_size(pic.width(), pic.height(), r.spec.height);
    if let Some(enc) = r.encoder.as_mut()
        && (enc.spec.width, enc.spec.height) != (w, h)
    {
        // The source changed size: finish this encoder; a new one starts at this keyframe.
        let mut pkts = Vec::new();
        enc.finish(&mut pkts);
        emit_video(i, r, pkts, out);
        r.encoder = None;
    }
    if r.encoder.is_none() {
        if !key {
            // Start only on a source keyframe, so every rung's keyframes stay aligned.
            return Ok(());
        }
        let codec = r.spec.encoder_name().to_string();
        let spec = VideoEncoderSpec {
            options: rung_options(&codec, r.spec.preset.as_deref(), r.spec.video_bitrate),
            codec,
            width: w,
            height: h,
            fps: fps_rational(fps),
            bitrate: r.spec.video_bitrate,
            global_header: true,
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
        let cfg = AvcConfig::parse(Bytes::from(record))?;
        out.push((i, MediaEvent::Config(TrackConfig::Avc(cfg))));
        r.release_audio(i, out);
        r.encoder = Some(enc);
        r.scaler = Some(Scaler::new(w, h));
        r.width = w;
        r.height = h;
    }
    let (Some(enc), Some(scaler)) = (r.encoder.as_mut(), r.scaler.as_mut()) else {
        return Ok(());
    };
    let scaled = scaler.run(pic)?;
    let mut pkts = Vec::new();
    enc.encode(scaled, pts, key, &mut pkts)?;
    emit_video(i, r, pkts, out);
    Ok(())
}

fn audio_to_rungs(
    rungs: &mut [Rung],
    slots: &mut [AudioSlot],
    converter: &mut AudioConverter,
    af: &mut ff::frame::Audio,
    pts: i64,
    out: &mut Output,
) {
    let r = converter.push(af, pts, &mut |conv| encode_audio(rungs, slots, conv, out));
    if let Err(e) = r {
        for (si, slot) in slots.iter_mut().enumerate() {
            if slot.failed.is_none() {
                tracing::warn!(slot = si, "audio conversion failed: {e}");
                slot.failed = Some(e.to_string());
                slot.encoder = None;
            }
        }
    }
}

fn encode_audio(
    rungs: &mut [Rung],
    slots: &mut [AudioSlot],
    conv: &mut ff::frame::Audio,
    out: &mut Output,
) {
    for (si, slot) in slots.iter_mut().enumerate() {
        let Some(enc) = slot.encoder.as_mut() else {
            continue;
        };
        let mut pkts = Vec::new();
        if let Err(e) = enc.encode(conv, &mut pkts) {
            tracing::warn!(bitrate = slot.bitrate, "AAC encoder failed: {e}");
            slot.failed = Some(e.to_string());
            slot.encoder = None;
            continue;
        }
        emit_audio(rungs, si, pkts, out);
    }
}
