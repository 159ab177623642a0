//! VOD files in other container families, written with libavformat from the source frames:
//! WebM (VP9 + Opus) for browsers, 3GP (H.263 or H.264 Baseline + AAC-LC) for old phones.
//! Debian's FFmpeg has no AMR-NB encoder, so 3GP audio is AAC-LC (3GPP TS 26.244 allows it).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ff::Rescale;
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use serde::Deserialize;
use vshare_attributes::{AttributeRecord, Kind};
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

use crate::av::{
    AUDIO_RATE, AudioConverter, AudioEncoder, Decoded, Decoders, Packet, Scaler, US, VideoEncoder,
    VideoEncoderSpec, ffe, fps_rational, init_ffmpeg, rung_options, scaled_size,
};
use crate::{TranscodeError, annexb};

/// A container family.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// WebM (Matroska subset): VP9 + Opus.
    #[serde(rename = "webm")]
    Webm,
    /// 3GPP file format (3GPP TS 26.244): H.263 profile 0 or H.264 Baseline, AAC-LC.
    #[serde(rename = "3gp")]
    ThreeGp,
}

impl FileFormat {
    /// libavformat muxer name, which is also the file extension and the record's `format`.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Webm => "webm",
            FileFormat::ThreeGp => "3gp",
        }
    }
}

/// One VOD file to write, as data.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct FileSpec {
    pub format: FileFormat,
    /// Picture height. WebM: default 480 (or the source's, if smaller), width from the aspect
    /// ratio. 3GP with H.263: 144 → QCIF 176×144, anything larger → CIF 352×288 (the sizes
    /// H.263 profile 0 allows; the picture is stretched to fit). 3GP with H.264: default 240.
    #[serde(default)]
    pub height: Option<u32>,
    /// Video encoder: WebM `libvpx-vp9` (default); 3GP `h263` (default) or `libx264`.
    #[serde(default)]
    pub video_codec: Option<String>,
    /// Video bitrate, bits/s (WebM 1 000 000, 3GP 256 000 by default).
    #[serde(default)]
    pub video_bitrate: Option<u64>,
    /// Audio bitrate, bits/s (Opus 96 000, AAC 64 000 by default).
    #[serde(default)]
    pub audio_bitrate: Option<u64>,
}

impl FileSpec {
    /// The defaults for a format.
    pub fn new(format: FileFormat) -> Self {
        FileSpec {
            format,
            height: None,
            video_codec: None,
            video_bitrate: None,
            audio_bitrate: None,
        }
    }
}

/// What was written, measured: the makings of an [`AttributeRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    pub path: PathBuf,
    /// `webm` or `3gp`.
    pub format: String,
    /// RFC 6381-style codec strings, comma-separated (`vp09.00.30.08,opus`; `s263,mp4a.40.2`).
    pub codecs: String,
    /// Bytes on disk.
    pub size: u64,
    pub width: u32,
    pub height: u32,
    /// Video frames over their presentation span.
    pub frame_rate: f64,
    /// size × 8 / duration, bits/s.
    pub bitrate: u64,
    /// From the first to the end of the last packet written, ms.
    pub duration_ms: u64,
    pub audio_sample_rate: u32,
    pub audio_channels: u8,
    pub video_frames: u64,
}

impl FileSummary {
    /// The VOD attribute record of this file, served at `url`.
    pub fn attribute_record(&self, video_id: &str, url: &str, title: &str) -> AttributeRecord {
        AttributeRecord {
            kind: Kind::Vod,
            video_id: video_id.into(),
            url: url.into(),
            poster: String::new(),
            format: self.format.clone(),
            codecs: self.codecs.clone(),
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate,
            bitrate: self.bitrate,
            size: self.size,
            duration_ms: self.duration_ms,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: self.audio_sample_rate,
            audio_channels: self.audio_channels,
            title: title.into(),
        }
    }
}

/// VP9 level (VP9 bitstream spec Annex A) for a picture size and rate: the lowest level whose
/// luma sample rate and picture size allow it.
fn vp9_level(width: u32, height: u32, fps: f64) -> u8 {
    let size = u64::from(width) * u64::from(height);
    let rate = size as f64 * fps;
    const LEVELS: [(u8, u64, f64); 10] = [
        (10, 36_864, 829_440.0),
        (11, 73_728, 2_764_800.0),
        (20, 122_880, 4_608_000.0),
        (21, 245_760, 9_216_000.0),
        (30, 552_960, 20_736_000.0),
        (31, 983_040, 36_864_000.0),
        (40, 2_228_224, 83_558_400.0),
        (41, 2_228_224, 160_432_128.0),
        (50, 8_912_896, 311_951_360.0),
        (51, 8_912_896, 588_251_136.0),
    ];
    LEVELS
        .iter()
        .find(|(_, s, r)| size <= *s && rate <= *r)
        .map_or(62, |l| l.0)
}

struct Track {
    stream: usize,
    time_base: ff::Rational,
}

/// Writes one VOD file from the source's events: decode, scale, encode, mux.
pub struct FileWriter {
    spec: FileSpec,
    path: PathBuf,
    octx: ff::format::context::Output,
    decoders: Decoders,
    video: Option<(VideoEncoder, Scaler, Track)>,
    audio: Option<(AudioEncoder, AudioConverter, Track)>,
    /// Packets held until both tracks have one, to find the earliest time (the file's zero).
    held: Vec<(TrackKind, Packet)>,
    origin: Option<i64>,
    seen_video_packet: bool,
    seen_audio_packet: bool,
    first_ts: Option<i64>,
    end_ts: i64,
    video_frames: u64,
    first_video: Option<i64>,
    last_video: i64,
    codec_strings: (String, String),
    started: bool,
}

impl FileWriter {
    /// Opens the file and its encoders. Without a video configuration the file is audio only.
    pub fn new(
        spec: &FileSpec,
        path: &Path,
        video: Option<&AvcConfig>,
        audio: Option<&AacConfig>,
    ) -> Result<Self, TranscodeError> {
        init_ffmpeg();
        let mut decoders = Decoders::new();
        let mut octx = ff::format::output_as(path, spec.format.name())
            .map_err(ffe(format!("creating {}", path.display())))?;
        let global = octx
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let mut codec_strings = (String::new(), String::new());
        let mut venc = None;
        if let Some(v) = video {
            decoders.open_video(&v.record)?;
            let fps = fps_rational(v.frame_rate.unwrap_or(30.0));
            let (codec, (w, h), bitrate) = match spec.format {
                FileFormat::Webm => {
                    let h = spec.height.unwrap_or(480).min(v.height);
                    (
                        spec.video_codec
                            .clone()
                            .unwrap_or_else(|| "libvpx-vp9".into()),
                        scaled_size(v.width, v.height, h),
                        spec.video_bitrate.unwrap_or(1_000_000),
                    )
                }
                FileFormat::ThreeGp => {
                    let codec = spec.video_codec.clone().unwrap_or_else(|| "h263".into());
                    let size = if codec == "h263" {
                        if spec.height.unwrap_or(144) <= 144 {
                            (176, 144)
                        } else {
                            (352, 288)
                        }
                    } else {
                        scaled_size(v.width, v.height, spec.height.unwrap_or(240).min(v.height))
                    };
                    (codec, size, spec.video_bitrate.unwrap_or(256_000))
                }
            };
            let options = match codec.as_str() {
                "libvpx-vp9" => vec![
                    ("deadline".into(), "realtime".into()),
                    ("cpu-used".into(), "8".into()),
                    ("lag-in-frames".into(), "0".into()),
                    ("row-mt".into(), "1".into()),
                ],
                "libx264" => rung_options("libx264", None, bitrate),
                _ => Vec::new(),
            };
            let vspec = VideoEncoderSpec {
                codec: codec.clone(),
                width: w,
                height: h,
                fps,
                bitrate,
                global_header: global,
                options,
                pixel: ff::format::Pixel::YUV420P,
                profile_baseline: codec == "libx264",
            };
            let enc = VideoEncoder::open(&vspec)?;
            codec_strings.0 = match codec.as_str() {
                "libvpx-vp9" => format!(
                    "vp09.00.{}.08",
                    vp9_level(
                        w,
                        h,
                        f64::from(fps.numerator()) / f64::from(fps.denominator())
                    )
                ),
                "h263" => "s263".into(),
                "libx264" => annexb::decoder_configuration_record(&enc.global_header)
                    .and_then(|r| AvcConfig::parse(Bytes::from(r)).ok())
                    .map_or_else(|| "avc1".into(), |c| c.codec_string()),
                other => other.into(),
            };
            let stream = {
                let codec = ff::encoder::find_by_name(&codec)
                    .ok_or_else(|| TranscodeError::Config(format!("no {codec} encoder")))?;
                let mut st = octx
                    .add_stream(codec)
                    .map_err(ffe("adding the video stream"))?;
                st.set_parameters(enc.parameters());
                st.set_time_base(enc.time_base());
                st.index()
            };
            venc = Some((
                enc,
                Scaler::new(w, h),
                Track {
                    stream,
                    time_base: ff::Rational(1, 1),
                },
            ));
        }
        let mut aenc = None;
        if let Some(a) = audio {
            decoders.open_audio(&a.asc)?;
            let (codec, fmt, bitrate) = match spec.format {
                FileFormat::Webm => (
                    "libopus",
                    ff::format::Sample::F32(ff::format::sample::Type::Packed),
                    spec.audio_bitrate.unwrap_or(96_000),
                ),
                FileFormat::ThreeGp => (
                    "aac",
                    ff::format::Sample::F32(ff::format::sample::Type::Planar),
                    spec.audio_bitrate.unwrap_or(64_000),
                ),
            };
            // Packets at the input's times, priming taken out. Opus in WebM: the muxer declares
            // the encoder's pre-skip (CodecDelay) and readers drop that many samples *and* move
            // the first sample by it (measured: 6.6 ms off otherwise, 0.4 ms so). AAC in 3GP: a
            // re-encoded track would otherwise start a priming frame (21.3 ms) early.
            let enc = AudioEncoder::open(codec, bitrate, fmt, ChannelLayout::STEREO, global)?
                .with_capture_times();
            codec_strings.1 = if codec == "libopus" {
                "opus".into()
            } else {
                "mp4a.40.2".into()
            };
            let conv = AudioConverter::new(fmt, ChannelLayout::STEREO, enc.frame_size);
            let stream = {
                let c = ff::encoder::find_by_name(codec)
                    .ok_or_else(|| TranscodeError::Config(format!("no {codec} encoder")))?;
                let mut st = octx.add_stream(c).map_err(ffe("adding the audio stream"))?;
                st.set_parameters(enc.parameters());
                st.set_time_base(ff::Rational(1, AUDIO_RATE as i32));
                st.index()
            };
            aenc = Some((
                enc,
                conv,
                Track {
                    stream,
                    time_base: ff::Rational(1, 1),
                },
            ));
        }
        if venc.is_none() && aenc.is_none() {
            return Err(TranscodeError::Config(
                "a file needs a video or an audio track".into(),
            ));
        }
        octx.write_header()
            .map_err(ffe(format!("writing the {} header", spec.format.name())))?;
        for t in [
            venc.as_mut().map(|v| &mut v.2),
            aenc.as_mut().map(|a| &mut a.2),
        ]
        .into_iter()
        .flatten()
        {
            t.time_base = octx
                .stream(t.stream)
                .map_or(ff::Rational(1, 1000), |s| s.time_base());
        }
        Ok(FileWriter {
            spec: spec.clone(),
            path: path.to_path_buf(),
            octx,
            decoders,
            video: venc,
            audio: aenc,
            held: Vec::new(),
            origin: None,
            seen_video_packet: false,
            seen_audio_packet: false,
            first_ts: None,
            end_ts: 0,
            video_frames: 0,
            first_video: None,
            last_video: 0,
            codec_strings,
            started: false,
        })
    }

    /// Feeds one source event. A new video configuration (resolution change) is decoded and
    /// scaled to the file's fixed size.
    pub fn push_event(&mut self, event: &MediaEvent) -> Result<(), TranscodeError> {
        match event {
            MediaEvent::Frame(f) => self.push(f),
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                if self.started {
                    self.flush_video()?;
                }
                self.decoders.open_video(&c.record)
            }
            MediaEvent::Config(TrackConfig::Aac(c)) => self.decoders.open_audio(&c.asc),
        }
    }

    /// Feeds one source frame.
    pub fn push(&mut self, frame: &Frame) -> Result<(), TranscodeError> {
        self.started = true;
        let mut packets: Vec<(TrackKind, Packet)> = Vec::new();
        let mut error = None;
        {
            let FileWriter {
                decoders,
                video,
                audio,
                ..
            } = self;
            let mut on = |d: Decoded<'_>| {
                let r = encode_decoded(d, video, audio, &mut packets);
                if let Err(e) = r {
                    error.get_or_insert(e);
                }
            };
            decoders.push(frame, &mut on);
        }
        self.write(packets)?;
        error.map_or(Ok(()), Err)
    }

    fn flush_video(&mut self) -> Result<(), TranscodeError> {
        let mut packets = Vec::new();
        let mut error = None;
        {
            let FileWriter {
                decoders,
                video,
                audio,
                ..
            } = self;
            let mut on = |d: Decoded<'_>| {
                if let Err(e) = encode_decoded(d, video, audio, &mut packets) {
                    error.get_or_insert(e);
                }
            };
            decoders.flush_video(&mut on);
        }
        self.write(packets)?;
        error.map_or(Ok(()), Err)
    }

    fn write(&mut self, packets: Vec<(TrackKind, Packet)>) -> Result<(), TranscodeError> {
        for (kind, p) in packets {
            match kind {
                TrackKind::Video => self.seen_video_packet = true,
                TrackKind::Audio => self.seen_audio_packet = true,
            }
            self.held.push((kind, p));
        }
        if self.origin.is_none() {
            let ready = (self.video.is_none() || self.seen_video_packet)
                && (self.audio.is_none() || self.seen_audio_packet);
            if !ready && self.held.len() < 2000 {
                return Ok(());
            }
            self.origin = self.held.iter().map(|(_, p)| p.dts).min();
        }
        let held = std::mem::take(&mut self.held);
        for (kind, p) in held {
            self.mux(kind, p)?;
        }
        Ok(())
    }

    fn mux(&mut self, kind: TrackKind, p: Packet) -> Result<(), TranscodeError> {
        let origin = self.origin.unwrap_or(0);
        let track = match kind {
            TrackKind::Video => self.video.as_ref().map(|v| &v.2),
            TrackKind::Audio => self.audio.as_ref().map(|a| &a.2),
        };
        let Some(track) = track else { return Ok(()) };
        let (pts, dts) = (p.pts - origin, p.dts - origin);
        if kind == TrackKind::Video {
            self.video_frames += 1;
            self.first_video.get_or_insert(pts);
            self.last_video = self.last_video.max(pts);
        }
        self.first_ts = Some(self.first_ts.map_or(dts, |f| f.min(dts)));
        self.end_ts = self.end_ts.max(pts + p.duration);
        let mut pkt = ff::Packet::copy(&p.data);
        pkt.set_pts(Some(pts.rescale(US, track.time_base)));
        pkt.set_dts(Some(dts.rescale(US, track.time_base)));
        pkt.set_duration(p.duration.rescale(US, track.time_base).max(1));
        if p.key {
            pkt.set_flags(ff::packet::Flags::KEY);
        }
        pkt.set_stream(track.stream);
        pkt.write_interleaved(&mut self.octx)
            .map_err(ffe(format!("writing {}", self.path.display())))
    }

    /// Drains the encoders, writes the trailer and measures the file.
    pub fn finish(mut self) -> Result<FileSummary, TranscodeError> {
        self.flush_video()?;
        let mut packets = Vec::new();
        {
            let FileWriter {
                decoders,
                video,
                audio,
                ..
            } = &mut self;
            let mut on = |d: Decoded<'_>| {
                let _ = encode_decoded(d, video, audio, &mut packets);
            };
            decoders.flush_audio(&mut on);
            if let Some((enc, conv, _)) = audio.as_mut() {
                conv.flush(&mut |f| {
                    let mut out = Vec::new();
                    let _ = enc.encode(f, &mut out);
                    packets.extend(out.into_iter().map(|p| (TrackKind::Audio, p)));
                });
                let mut out = Vec::new();
                enc.finish(&mut out);
                packets.extend(out.into_iter().map(|p| (TrackKind::Audio, p)));
            }
            if let Some((enc, _, _)) = video.as_mut() {
                let mut out = Vec::new();
                enc.finish(&mut out);
                packets.extend(out.into_iter().map(|p| (TrackKind::Video, p)));
            }
        }
        if self.origin.is_none() {
            self.origin = packets
                .iter()
                .chain(self.held.iter())
                .map(|(_, p)| p.dts)
                .min();
        }
        self.write(packets)?;
        self.octx
            .write_trailer()
            .map_err(ffe(format!("finishing {}", self.path.display())))?;
        let size = std::fs::metadata(&self.path)?.len();
        let duration_us = (self.end_ts - self.first_ts.unwrap_or(0)).max(0);
        let frame_rate = match self.first_video {
            Some(first) if self.video_frames > 1 && self.last_video > first => {
                (self.video_frames - 1) as f64 * 1e6 / (self.last_video - first) as f64
            }
            _ => 0.0,
        };
        let (width, height) = self
            .video
            .as_ref()
            .map_or((0, 0), |v| (v.0.spec.width, v.0.spec.height));
        let codecs: Vec<&str> = [&self.codec_strings.0, &self.codec_strings.1]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .collect();
        Ok(FileSummary {
            path: self.path.clone(),
            format: self.spec.format.name().into(),
            codecs: codecs.join(","),
            size,
            width,
            height,
            frame_rate,
            bitrate: if duration_us > 0 {
                (size as f64 * 8e6 / duration_us as f64).round() as u64
            } else {
                0
            },
            duration_ms: (duration_us / 1000) as u64,
            audio_sample_rate: if self.audio.is_some() { AUDIO_RATE } else { 0 },
            audio_channels: self.audio.as_ref().map_or(0, |a| a.0.channels),
            video_frames: self.video_frames,
        })
    }
}

fn encode_decoded(
    d: Decoded<'_>,
    video: &mut Option<(VideoEncoder, Scaler, Track)>,
    audio: &mut Option<(AudioEncoder, AudioConverter, Track)>,
    packets: &mut Vec<(TrackKind, Packet)>,
) -> Result<(), TranscodeError> {
    match d {
        Decoded::Video(pic, pts, key) => {
            let Some((enc, scaler, _)) = video.as_mut() else {
                return Ok(());
            };
            let scaled = scaler.run(pic)?;
            let mut out = Vec::new();
            enc.encode(scaled, pts, key, &mut out)?;
            packets.extend(out.into_iter().map(|p| (TrackKind::Video, p)));
        }
        Decoded::Audio(af, pts) => {
            let Some((enc, conv, _)) = audio.as_mut() else {
                return Ok(());
            };
            let mut err = None;
            conv.push(af, pts, &mut |f| {
                let mut out = Vec::new();
                if let Err(e) = enc.encode(f, &mut out) {
                    err.get_or_insert(e);
                }
                packets.extend(out.into_iter().map(|p| (TrackKind::Audio, p)));
            })?;
            if let Some(e) = err {
                return Err(e);
            }
        }
    }
    Ok(())
}
