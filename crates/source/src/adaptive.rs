//! A source that adapts while it runs, for `vshare publish --protocol upload`: the capture (test
//! pattern or a file played through libavfilter's `movie` source) is scaled, thinned and
//! encoded at whatever size, frame rate and bitrate the upload's rate controller asks for, and
//! comes out as [`MediaEvent`]s on the capture clock (µs). A new size means a new encoder, a
//! new configuration and a key frame; a new bitrate is applied to the running encoder.

use bytes::Bytes;
use ff::Rescale;
use ff::format::Pixel;
use ff::format::sample::{Sample, Type as SampleType};
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

use crate::pipeline::{
    AUDIO_RATE, FONT, extradata_of_context, graph_with_sink, open_x264, sink_audio, sink_time_base,
    sink_video,
};
use crate::{Input, SourceError, annexb, ff};

/// The capture rate; lower frame rates are made by skipping captured pictures.
pub const CAPTURE_FPS: u32 = 30;

/// What the adaptive source starts with.
#[derive(Debug, Clone)]
pub struct AdaptiveOptions {
    pub input: Input,
    /// Capture size (the best quality step).
    pub capture: (u32, u32),
    pub video_kbps: u32,
    pub audio_kbps: u32,
    /// Stop after this much media time, µs.
    pub duration_us: Option<i64>,
}

/// What the rate controller changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Video bitrate, kbit/s.
    Bitrate(u32),
    /// Picture size and frame rate (a new encoder and a key frame).
    Step { width: u32, height: u32, fps: u32 },
    /// The next picture is a key frame (after frames were dropped).
    KeyFrame,
}

struct Encoder {
    enc: ff::encoder::Video,
    width: u32,
    height: u32,
    scaler: ff::software::scaling::Context,
    scaled: ff::frame::Video,
}

const US: ff::Rational = ff::Rational(1, 1_000_000);

fn open_encoder(
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
    capture: (u32, u32),
) -> Result<(Encoder, AvcConfig), SourceError> {
    let bitrate = u64::from(kbps) * 1000;
    // Half a second of buffer: the rate follows the controller closely; an IDR on request.
    let (enc, record) = open_x264(
        width,
        height,
        fps,
        bitrate,
        US,
        bitrate / 2,
        &[("profile", "baseline"), ("forced-idr", "1")],
    )?;
    let config = AvcConfig::parse(Bytes::from(record))
        .map_err(|e| SourceError::Input(format!("libx264's configuration record: {e}")))?;
    let scaler = ff::software::scaling::Context::get(
        Pixel::YUV420P,
        capture.0,
        capture.1,
        Pixel::YUV420P,
        width,
        height,
        ff::software::scaling::Flags::BILINEAR,
    )
    .map_err(ff("creating the scaler"))?;
    Ok((
        Encoder {
            enc,
            width,
            height,
            scaler,
            scaled: ff::frame::Video::empty(),
        },
        config,
    ))
}

pub struct AdaptiveSource {
    vgraph: ff::filter::Graph,
    agraph: ff::filter::Graph,
    capture: (u32, u32),
    encoder: Encoder,
    fps: u32,
    kbps: u32,
    /// Frame-rate thinning: a picture is encoded when this reaches the capture rate.
    thin: u32,
    force_key: bool,
    frame_index: i64,
    aenc: ff::encoder::Audio,
    audio_pts: i64,
    duration_us: Option<i64>,
    pending: Vec<MediaEvent>,
    done: bool,
}

/// Quotes a path for a filter-graph option value.
fn graph_quote(path: &str) -> String {
    let escaped: String = path
        .chars()
        .flat_map(|c| match c {
            '\\' | ':' | '\'' => vec!['\\', '\\', '\\', c],
            ',' | ';' | '[' | ']' | '=' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    escaped
}

impl AdaptiveSource {
    pub fn open(o: &AdaptiveOptions) -> Result<AdaptiveSource, SourceError> {
        crate::init_ffmpeg();
        let (w, h) = o.capture;
        if w < 16 || h < 16 || w % 2 == 1 || h % 2 == 1 {
            return Err(SourceError::Input(format!(
                "capture size {w}x{h}: both even and at least 16"
            )));
        }
        let (vspec, aspec) = match &o.input {
            Input::TestPattern => {
                let font = if std::path::Path::new(FONT).exists() {
                    format!("fontfile={FONT}:")
                } else {
                    String::new()
                };
                let size = (h / 16).max(10);
                (
                    format!(
                        "testsrc2=size={w}x{h}:rate={CAPTURE_FPS},\
                         drawtext={font}text=vshare upload  %{{pts\\\\:hms}}  frame %{{n}}:x=10:y=10:\
                         fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=5,\
                         format=yuv420p"
                    ),
                    format!("sine=frequency=440:sample_rate={AUDIO_RATE}"),
                )
            }
            Input::File(p) => {
                let p = p.to_str().ok_or_else(|| {
                    SourceError::Input(format!("{}: not a UTF-8 path", p.display()))
                })?;
                if !std::path::Path::new(p).exists() {
                    return Err(SourceError::Input(format!("{p}: no such file")));
                }
                let q = graph_quote(p);
                (
                    format!(
                        "movie=filename={q}:loop=0,fps={CAPTURE_FPS},scale={w}:{h},setsar=1,format=yuv420p"
                    ),
                    format!("amovie=filename={q}:loop=0,aresample={AUDIO_RATE}"),
                )
            }
        };
        let vgraph = graph_with_sink("buffersink", None, &vspec).or_else(|e| {
            if matches!(o.input, Input::TestPattern) {
                graph_with_sink(
                    "buffersink",
                    None,
                    &format!("testsrc2=size={w}x{h}:rate={CAPTURE_FPS},format=yuv420p"),
                )
            } else {
                Err(e)
            }
        })?;
        let agraph = graph_with_sink("abuffersink", None, &aspec)?;
        let (encoder, config) = open_encoder(w, h, CAPTURE_FPS, o.video_kbps, (w, h))?;
        let aenc = open_audio(o.audio_kbps)?;
        let asc = extradata_of_context(&aenc);
        let aac = AacConfig::parse(Bytes::from(asc))
            .map_err(|e| SourceError::Input(format!("the AAC encoder's configuration: {e}")))?;
        Ok(AdaptiveSource {
            vgraph,
            agraph,
            capture: (w, h),
            encoder,
            fps: CAPTURE_FPS,
            kbps: o.video_kbps,
            thin: 0,
            force_key: false,
            frame_index: 0,
            aenc,
            audio_pts: 0,
            duration_us: o.duration_us,
            pending: vec![
                MediaEvent::Config(TrackConfig::Avc(config)),
                MediaEvent::Config(TrackConfig::Aac(aac)),
            ],
            done: false,
        })
    }

    /// The current picture size, frame rate and video bitrate (kbit/s).
    pub fn current(&self) -> (u32, u32, u32, u32) {
        (self.encoder.width, self.encoder.height, self.fps, self.kbps)
    }

    pub fn control(&mut self, c: Control) -> Result<(), SourceError> {
        match c {
            Control::Bitrate(kbps) => {
                self.kbps = kbps.max(16);
                let bitrate = i64::from(self.kbps) * 1000;
                // libx264 re-reads these fields before every frame and reconfigures itself
                // when they changed.
                // SAFETY: plain integer fields of the live, opened encoder context.
                unsafe {
                    let p = self.encoder.enc.as_mut_ptr();
                    (*p).bit_rate = bitrate;
                    (*p).rc_max_rate = bitrate;
                    (*p).rc_buffer_size = (bitrate / 2) as i32;
                }
            }
            Control::Step { width, height, fps } => {
                let width = width.clamp(16, self.capture.0) & !1;
                let height = height.clamp(16, self.capture.1) & !1;
                let fps = fps.clamp(1, CAPTURE_FPS);
                if (width, height) != (self.encoder.width, self.encoder.height) {
                    self.flush_video();
                    let (enc, config) = open_encoder(width, height, fps, self.kbps, self.capture)?;
                    self.encoder = enc;
                    self.pending
                        .push(MediaEvent::Config(TrackConfig::Avc(config)));
                }
                self.fps = fps;
            }
            Control::KeyFrame => self.force_key = true,
        }
        Ok(())
    }

    fn flush_video(&mut self) {
        let _ = self.encoder.enc.send_eof();
        let mut out = Vec::new();
        drain_video(&mut self.encoder.enc, &mut out);
        self.pending.extend(out);
    }

    /// The events of the next captured picture (and the audio up to its time), in decode
    /// order; `None` at the end.
    pub fn next_events(&mut self) -> Result<Option<Vec<MediaEvent>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let pts = self.frame_index * 1_000_000 / i64::from(CAPTURE_FPS);
        if self.duration_us.is_some_and(|d| pts >= d) {
            self.done = true;
            self.flush_video();
            let _ = self.aenc.send_eof();
            drain_audio(&mut self.aenc, &mut self.pending);
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        let mut picture = ff::frame::Video::empty();
        if !sink_video(&mut self.vgraph, &mut picture) {
            self.done = true;
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        self.frame_index += 1;
        self.thin += self.fps;
        if self.thin >= CAPTURE_FPS {
            self.thin -= CAPTURE_FPS;
            let e = &mut self.encoder;
            e.scaler
                .run(&picture, &mut e.scaled)
                .map_err(ff("scaling"))?;
            e.scaled.set_pts(Some(pts));
            e.scaled.set_kind(if self.force_key {
                ff::picture::Type::I
            } else {
                ff::picture::Type::None
            });
            self.force_key = false;
            e.enc.send_frame(&e.scaled).map_err(ff("encoding video"))?;
            drain_video(&mut e.enc, &mut self.pending);
        }
        // Audio up to the picture's time.
        let tb = sink_time_base(&mut self.agraph);
        while self.audio_pts * 1_000_000 / i64::from(AUDIO_RATE) <= pts {
            let mut f = ff::frame::Audio::empty();
            if !sink_audio(&mut self.agraph, &mut f) {
                break;
            }
            let a = f
                .pts()
                .unwrap_or(self.audio_pts)
                .rescale(tb, ff::Rational(1, AUDIO_RATE as i32));
            f.set_pts(Some(a));
            self.audio_pts = a + f.samples() as i64;
            self.aenc.send_frame(&f).map_err(ff("encoding audio"))?;
            drain_audio(&mut self.aenc, &mut self.pending);
        }
        Ok(Some(std::mem::take(&mut self.pending)))
    }
}

fn open_audio(kbps: u32) -> Result<ff::encoder::Audio, SourceError> {
    let codec = ff::encoder::find(ff::codec::Id::AAC)
        .ok_or_else(|| SourceError::Input("this FFmpeg has no AAC encoder".into()))?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(ff("creating the AAC encoder"))?;
    enc.set_rate(AUDIO_RATE as i32);
    enc.set_channel_layout(ChannelLayout::STEREO);
    enc.set_format(Sample::F32(SampleType::Planar));
    enc.set_bit_rate(kbps as usize * 1000);
    enc.set_time_base(ff::Rational(1, AUDIO_RATE as i32));
    enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    enc.open_as(codec).map_err(ff("opening the AAC encoder"))
}

fn drain_video(enc: &mut ff::encoder::Video, out: &mut Vec<MediaEvent>) {
    let mut pkt = ff::Packet::empty();
    while enc.receive_packet(&mut pkt).is_ok() {
        let Some(pts) = pkt.pts() else { continue };
        out.push(MediaEvent::Frame(Frame {
            track: TrackKind::Video,
            pts,
            dts: pkt.dts().unwrap_or(pts),
            key: pkt.is_key(),
            data: Bytes::from(annexb::to_avcc(pkt.data().unwrap_or_default())),
        }));
    }
}

fn drain_audio(enc: &mut ff::encoder::Audio, out: &mut Vec<MediaEvent>) {
    let mut pkt = ff::Packet::empty();
    let tb = ff::Rational(1, AUDIO_RATE as i32);
    while enc.receive_packet(&mut pkt).is_ok() {
        let Some(pts) = pkt.pts() else { continue };
        let us = pts.rescale(tb, US);
        out.push(MediaEvent::Frame(Frame {
            track: TrackKind::Audio,
            pts: us,
            dts: us,
            key: true,
            data: Bytes::copy_from_slice(pkt.data().unwrap_or_default()),
        }));
    }
}
