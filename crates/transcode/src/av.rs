//! Thin wrappers over FFmpeg's decoders, scaler, audio filter graph and encoders, shared by the
//! ladder and the file writer. Timestamps in and out are µs on the publisher's capture clock.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Once;

use bytes::Bytes;
use ff::Rescale;
use ff::format::Pixel;
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::{Frame, TrackKind};

use crate::TranscodeError;

/// Our timestamps: microseconds.
pub(crate) const US: ff::Rational = ff::Rational(1, 1_000_000);
/// Sample rate of every audio output.
pub(crate) const AUDIO_RATE: u32 = 48_000;

/// Initialises FFmpeg once and keeps its log to errors.
pub fn init_ffmpeg() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

pub(crate) fn ffe(what: impl Into<String>) -> impl FnOnce(ff::Error) -> TranscodeError {
    let what = what.into();
    move |source| TranscodeError::Ffmpeg { what, source }
}

/// Copies the extradata (global header) of a codec context.
pub(crate) fn extradata(ctx: &ff::codec::context::Context) -> Vec<u8> {
    // SAFETY: `ctx` is a live AVCodecContext; FFmpeg keeps `extradata_size` bytes at
    // `extradata` when the pointer is non-null.
    unsafe {
        let p = ctx.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
    }
}

/// A codec context for a decoder with `extradata`, packet time base µs and automatic threads.
pub(crate) fn decoder_context(
    id: ff::codec::Id,
    extradata: &[u8],
) -> Result<ff::codec::context::Context, TranscodeError> {
    let codec = ff::decoder::find(id)
        .ok_or_else(|| TranscodeError::Config(format!("this FFmpeg has no {id:?} decoder")))?;
    let mut ctx = ff::codec::context::Context::new_with_codec(codec);
    // SAFETY: the context is fresh and unopened; extradata is allocated with av_mallocz and
    // the padding FFmpeg requires, and the context frees it.
    unsafe {
        let p = ctx.as_mut_ptr();
        let len = extradata.len();
        let buf =
            ff::ffi::av_mallocz(len + ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize) as *mut u8;
        if buf.is_null() {
            return Err(TranscodeError::Config("out of memory for extradata".into()));
        }
        std::ptr::copy_nonoverlapping(extradata.as_ptr(), buf, len);
        (*p).extradata = buf;
        (*p).extradata_size = len as i32;
        (*p).pkt_timebase = US.into();
        (*p).thread_count = 0;
    }
    Ok(ctx)
}

pub(crate) fn set_threads(ctx: &mut ff::codec::context::Context, n: i32) {
    // SAFETY: an unopened, live context.
    unsafe { (*ctx.as_mut_ptr()).thread_count = n }
}

pub(crate) fn packet_of(f: &Frame) -> ff::Packet {
    let mut pkt = ff::Packet::copy(&f.data);
    pkt.set_pts(Some(f.pts));
    pkt.set_dts(Some(f.dts));
    if f.key {
        pkt.set_flags(ff::packet::Flags::KEY);
    }
    pkt
}

/// A decoded picture (with capture pts and whether the source frame was a keyframe) or a
/// decoded audio frame (capture pts).
pub(crate) enum Decoded<'a> {
    Video(&'a ff::frame::Video, i64, bool),
    Audio(&'a mut ff::frame::Audio, i64),
}

/// The source's decoders. Decoded pictures come out with their capture pts and whether the
/// source frame was a keyframe.
pub(crate) struct Decoders {
    video: Option<ff::decoder::Video>,
    audio: Option<ff::decoder::Audio>,
    key_pts: BTreeSet<i64>,
    pub(crate) errors: u64,
    vframe: ff::frame::Video,
    aframe: ff::frame::Audio,
    /// Source video dts seen, to estimate the frame rate when the SPS does not say.
    dts: VecDeque<i64>,
}

impl Decoders {
    pub(crate) fn new() -> Self {
        Decoders {
            video: None,
            audio: None,
            key_pts: BTreeSet::new(),
            errors: 0,
            vframe: ff::frame::Video::empty(),
            aframe: ff::frame::Audio::empty(),
            dts: VecDeque::new(),
        }
    }

    pub(crate) fn open_video(&mut self, record: &[u8]) -> Result<(), TranscodeError> {
        self.open_video_codec(ff::codec::Id::H264, record)
    }

    /// Opens a video decoder for `id` with its configuration record (`avcC`, `hvcC`) as
    /// extradata.
    pub(crate) fn open_video_codec(
        &mut self,
        id: ff::codec::Id,
        record: &[u8],
    ) -> Result<(), TranscodeError> {
        let ctx = decoder_context(id, record)?;
        self.video = Some(
            ctx.decoder()
                .video()
                .map_err(ffe(format!("opening the {id:?} decoder")))?,
        );
        Ok(())
    }

    /// The frame rate the video decoder read from the stream's parameter sets (VUI or VPS
    /// timing), when they carry one.
    pub(crate) fn video_frame_rate(&self) -> Option<f64> {
        let r = self.video.as_ref()?.frame_rate()?;
        (r.numerator() > 0 && r.denominator() > 0)
            .then(|| f64::from(r.numerator()) / f64::from(r.denominator()))
    }

    pub(crate) fn open_audio(&mut self, asc: &[u8]) -> Result<(), TranscodeError> {
        self.open_audio_codec(ff::codec::Id::AAC, asc)
    }

    /// Opens an audio decoder for `id` with its configuration record as extradata.
    pub(crate) fn open_audio_codec(
        &mut self,
        id: ff::codec::Id,
        extradata: &[u8],
    ) -> Result<(), TranscodeError> {
        let ctx = decoder_context(id, extradata)?;
        self.audio = Some(
            ctx.decoder()
                .audio()
                .map_err(ffe(format!("opening the {id:?} decoder")))?,
        );
        Ok(())
    }

    /// Frame rate estimated from the source decode times seen so far (median interval).
    pub(crate) fn estimated_fps(&self) -> Option<f64> {
        let mut d: Vec<i64> = self
            .dts
            .iter()
            .zip(self.dts.iter().skip(1))
            .map(|(a, b)| b - a)
            .filter(|d| *d > 0)
            .collect();
        if d.is_empty() {
            return None;
        }
        d.sort_unstable();
        Some(1e6 / d[d.len() / 2] as f64)
    }

    /// Decodes one source frame. A frame the decoder refuses is counted and skipped.
    pub(crate) fn push(&mut self, f: &Frame, on: &mut dyn FnMut(Decoded<'_>)) {
        match f.track {
            TrackKind::Video => {
                let Some(dec) = self.video.as_mut() else {
                    return;
                };
                self.dts.push_back(f.dts);
                if self.dts.len() > 32 {
                    self.dts.pop_front();
                }
                if f.key {
                    self.key_pts.insert(f.pts);
                }
                if dec.send_packet(&packet_of(f)).is_err() {
                    self.errors += 1;
                    return;
                }
                self.drain_video(on);
            }
            TrackKind::Audio => {
                let Some(dec) = self.audio.as_mut() else {
                    return;
                };
                if dec.send_packet(&packet_of(f)).is_err() {
                    self.errors += 1;
                    return;
                }
                self.drain_audio(on);
            }
        }
    }

    fn drain_video(&mut self, on: &mut dyn FnMut(Decoded<'_>)) {
        let Some(dec) = self.video.as_mut() else {
            return;
        };
        while dec.receive_frame(&mut self.vframe).is_ok() {
            let Some(pts) = self.vframe.pts().or(self.vframe.timestamp()) else {
                continue;
            };
            let key = self.key_pts.remove(&pts);
            // Keyframes the decoder never output (corrupt input) are forgotten.
            self.key_pts = self.key_pts.split_off(&pts);
            on(Decoded::Video(&self.vframe, pts, key));
        }
    }

    fn drain_audio(&mut self, on: &mut dyn FnMut(Decoded<'_>)) {
        let Some(dec) = self.audio.as_mut() else {
            return;
        };
        while dec.receive_frame(&mut self.aframe).is_ok() {
            let Some(pts) = self.aframe.pts().or(self.aframe.timestamp()) else {
                continue;
            };
            on(Decoded::Audio(&mut self.aframe, pts));
        }
    }

    /// Flushes the video decoder (end of stream or before a new configuration).
    pub(crate) fn flush_video(&mut self, on: &mut dyn FnMut(Decoded<'_>)) {
        if let Some(dec) = self.video.as_mut() {
            let _ = dec.send_eof();
            self.drain_video(on);
        }
        self.video = None;
    }

    pub(crate) fn flush_audio(&mut self, on: &mut dyn FnMut(Decoded<'_>)) {
        if let Some(dec) = self.audio.as_mut() {
            let _ = dec.send_eof();
            self.drain_audio(on);
        }
        self.audio = None;
    }
}

/// Scales decoded pictures to one output size, rebuilt when the input size or format changes.
pub(crate) struct Scaler {
    ctx: Option<(Pixel, u32, u32, ff::software::scaling::Context)>,
    pub(crate) out: ff::frame::Video,
    width: u32,
    height: u32,
}

impl Scaler {
    pub(crate) fn new(width: u32, height: u32) -> Self {
        Scaler {
            ctx: None,
            out: ff::frame::Video::empty(),
            width,
            height,
        }
    }

    pub(crate) fn run(
        &mut self,
        input: &ff::frame::Video,
    ) -> Result<&mut ff::frame::Video, TranscodeError> {
        let key = (input.format(), input.width(), input.height());
        if self.ctx.as_ref().map(|c| (c.0, c.1, c.2)) != Some(key) {
            let ctx = ff::software::scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUV420P,
                self.width,
                self.height,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(ffe(format!(
                "scaler {}x{} -> {}x{}",
                key.1, key.2, self.width, self.height
            )))?;
            self.ctx = Some((key.0, key.1, key.2, ctx));
        }
        if let Some((_, _, _, ctx)) = self.ctx.as_mut() {
            ctx.run(input, &mut self.out).map_err(ffe("scaling"))?;
        }
        Ok(&mut self.out)
    }
}

/// One encoded access unit with capture timestamps, µs.
pub(crate) struct Packet {
    pub pts: i64,
    pub dts: i64,
    pub duration: i64,
    pub key: bool,
    pub data: Bytes,
}

/// What a video encoder is asked to make.
#[derive(Clone, Debug)]
pub(crate) struct VideoEncoderSpec {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: ff::Rational,
    pub bitrate: u64,
    pub global_header: bool,
    pub options: Vec<(String, String)>,
    pub pixel: Pixel,
    pub profile_baseline: bool,
}

/// The encoder options for a ladder rung: keyframes only where we force them, no B-frames (so
/// output order is input order), VBV-bounded bitrate.
pub(crate) fn rung_options(
    codec: &str,
    preset: Option<&str>,
    bitrate: u64,
) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| o.push((k.into(), v));
    set("bufsize", bitrate.to_string());
    match codec {
        "libx264" => {
            set("preset", preset.unwrap_or("veryfast").into());
            set("tune", "zerolatency".into());
            set("forced-idr", "1".into());
            set(
                "x264-params",
                "scenecut=0:open-gop=0:keyint=infinite".into(),
            );
        }
        "h264_nvenc" => {
            set("preset", preset.unwrap_or("p4").into());
            set("forced-idr", "1".into());
            set("no-scenecut", "1".into());
            set("zerolatency", "1".into());
        }
        _ => {
            if let Some(p) = preset {
                set("preset", p.into());
            }
        }
    }
    o
}

/// A video encoder fed decoded pictures. Encoders here never reorder (no B-frames), so each
/// output packet takes the capture time of the next picture that went in.
pub(crate) struct VideoEncoder {
    enc: ff::encoder::Video,
    pub spec: VideoEncoderSpec,
    pending: VecDeque<i64>,
    /// Capture time of the last picture sent (pictures must go forward).
    last_pts: Option<i64>,
    next_index: i64,
    frame_us: i64,
    pub global_header: Vec<u8>,
    pkt: ff::Packet,
}

impl VideoEncoder {
    pub(crate) fn open(spec: &VideoEncoderSpec) -> Result<Self, TranscodeError> {
        let codec = ff::encoder::find_by_name(&spec.codec).ok_or_else(|| {
            TranscodeError::Config(format!("this FFmpeg has no {} encoder", spec.codec))
        })?;
        let mut ctx = ff::codec::context::Context::new_with_codec(codec);
        set_threads(&mut ctx, 0);
        let mut enc = ctx
            .encoder()
            .video()
            .map_err(ffe(format!("creating {}", spec.codec)))?;
        let tb = ff::Rational(spec.fps.denominator(), spec.fps.numerator());
        enc.set_width(spec.width);
        enc.set_height(spec.height);
        enc.set_format(spec.pixel);
        enc.set_time_base(tb);
        enc.set_frame_rate(Some(spec.fps));
        enc.set_bit_rate(spec.bitrate as usize);
        if spec.options.iter().any(|(k, _)| k == "bufsize") {
            // VBV: at most the target rate over a one-second buffer.
            enc.set_max_bit_rate(spec.bitrate as usize);
        }
        enc.set_max_b_frames(0);
        // Keyframes come from the source (forced); the encoder's own GOP is as long as allowed.
        enc.set_gop(if spec.codec == "h263" { 600 } else { 1 << 20 });
        if spec.global_header {
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = ff::Dictionary::new();
        for (k, v) in &spec.options {
            opts.set(k, v);
        }
        if spec.profile_baseline {
            opts.set("profile", "baseline");
        }
        let enc = enc.open_with(opts).map_err(ffe(format!(
            "opening {} at {}x{}",
            spec.codec, spec.width, spec.height
        )))?;
        let global_header = extradata(&enc);
        let frame_us = (1i64).rescale(tb, US).max(1);
        Ok(VideoEncoder {
            enc,
            spec: spec.clone(),
            pending: VecDeque::new(),
            last_pts: None,
            next_index: 0,
            frame_us,
            global_header,
            pkt: ff::Packet::empty(),
        })
    }

    /// Encodes one picture taken at `pts` (µs); `key` forces an IDR.
    pub(crate) fn encode(
        &mut self,
        picture: &mut ff::frame::Video,
        pts: i64,
        key: bool,
        out: &mut Vec<Packet>,
    ) -> Result<(), TranscodeError> {
        if self.last_pts.is_some_and(|last| pts <= last) {
            // Not after the previous picture: a damaged timestamp; skip rather than go backwards.
            return Ok(());
        }
        picture.set_pts(Some(self.next_index));
        picture.set_kind(if key {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        self.next_index += 1;
        self.pending.push_back(pts);
        self.last_pts = Some(pts);
        self.enc
            .send_frame(picture)
            .map_err(ffe(format!("encoding with {}", self.spec.codec)))?;
        self.drain(out);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Packet>) {
        while self.enc.receive_packet(&mut self.pkt).is_ok() {
            let Some(pts) = self.pending.pop_front() else {
                continue;
            };
            let duration = self
                .pending
                .front()
                .map_or(self.frame_us, |next| (next - pts).max(1));
            out.push(Packet {
                pts,
                dts: pts,
                duration,
                key: self.pkt.is_key(),
                data: Bytes::copy_from_slice(self.pkt.data().unwrap_or_default()),
            });
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Packet>) {
        let _ = self.enc.send_eof();
        self.drain(out);
    }

    pub(crate) fn time_base(&self) -> ff::Rational {
        ff::Rational(self.spec.fps.denominator(), self.spec.fps.numerator())
    }

    pub(crate) fn parameters(&self) -> ff::codec::Parameters {
        ff::codec::Parameters::from(&self.enc)
    }
}

/// Resamples decoded audio to 48 kHz in the encoder's sample format and layout, cut into frames
/// of the encoder's size (libavfilter `aresample` + `aformat` + a sized buffersink).
pub(crate) struct AudioConverter {
    graph: Option<ff::filter::Graph>,
    input: Option<(i32, u32, u64)>,
    format: ff::format::Sample,
    layout: ChannelLayout,
    frame_size: u32,
    out: ff::frame::Audio,
}

impl AudioConverter {
    pub(crate) fn new(format: ff::format::Sample, layout: ChannelLayout, frame_size: u32) -> Self {
        AudioConverter {
            graph: None,
            input: None,
            format,
            layout,
            frame_size,
            out: ff::frame::Audio::empty(),
        }
    }

    fn build(&mut self, frame: &ff::frame::Audio) -> Result<(), TranscodeError> {
        let layout = if frame.channel_layout().bits() != 0 {
            frame.channel_layout()
        } else {
            ChannelLayout::default(i32::from(frame.channels()))
        };
        let args = format!(
            "time_base=1/1000000:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            frame.rate(),
            frame.format().name(),
            layout.bits()
        );
        let mut g = ff::filter::Graph::new();
        let find = |n: &str| {
            ff::filter::find(n)
                .ok_or_else(|| TranscodeError::Config(format!("FFmpeg filter {n} missing")))
        };
        g.add(&find("abuffer")?, "in", &args)
            .map_err(ffe(format!("abuffer {args}")))?;
        g.add(&find("abuffersink")?, "out", "")
            .map_err(ffe("abuffersink"))?;
        if let Some(mut out) = g.get("out") {
            out.set_sample_format(self.format);
            out.set_channel_layout(self.layout);
            out.set_sample_rate(AUDIO_RATE);
        }
        let spec = format!(
            "aresample={AUDIO_RATE},aformat=sample_fmts={}:channel_layouts=0x{:x}",
            self.format.name(),
            self.layout.bits()
        );
        g.output("in", 0)
            .map_err(ffe("graph input"))?
            .input("out", 0)
            .map_err(ffe("graph output"))?
            .parse(&spec)
            .map_err(ffe(spec.clone()))?;
        g.validate().map_err(ffe(spec))?;
        if let Some(mut out) = g.get("out") {
            out.sink().set_frame_size(self.frame_size);
        }
        self.graph = Some(g);
        self.input = Some((
            frame.rate() as i32,
            u32::from(frame.channels()),
            layout.bits(),
        ));
        Ok(())
    }

    /// Feeds one decoded frame with capture pts `pts` (µs); calls `sink` with each converted
    /// frame, its pts in 1/48000.
    pub(crate) fn push(
        &mut self,
        frame: &mut ff::frame::Audio,
        pts: i64,
        sink: &mut dyn FnMut(&mut ff::frame::Audio),
    ) -> Result<(), TranscodeError> {
        let key = (
            frame.rate() as i32,
            u32::from(frame.channels()),
            frame.channel_layout().bits(),
        );
        if self.input.is_some_and(|i| (i.0, i.1) != (key.0, key.1)) {
            self.flush(sink);
        }
        if self.graph.is_none() {
            self.build(frame)?;
        }
        frame.set_pts(Some(pts));
        if let Some(g) = self.graph.as_mut() {
            if let Some(mut src) = g.get("in") {
                src.source().add(frame).map_err(ffe("filtering audio"))?;
            }
            self.drain(sink);
        }
        Ok(())
    }

    fn drain(&mut self, sink: &mut dyn FnMut(&mut ff::frame::Audio)) {
        let Some(g) = self.graph.as_mut() else { return };
        let Some(mut out) = g.get("out") else { return };
        let tb = out.sink().time_base();
        while out.sink().frame(&mut self.out).is_ok() {
            let pts = self
                .out
                .pts()
                .unwrap_or(0)
                .rescale(tb, ff::Rational(1, AUDIO_RATE as i32));
            self.out.set_pts(Some(pts));
            sink(&mut self.out);
        }
    }

    pub(crate) fn flush(&mut self, sink: &mut dyn FnMut(&mut ff::frame::Audio)) {
        if let Some(g) = self.graph.as_mut()
            && let Some(mut src) = g.get("in")
        {
            let _ = src.source().flush();
        }
        self.drain(sink);
        self.graph = None;
        self.input = None;
    }
}

/// An audio encoder at 48 kHz; packets keep the capture clock (µs).
pub(crate) struct AudioEncoder {
    enc: ff::encoder::Audio,
    pub codec: String,
    pub global_header: Vec<u8>,
    pub frame_size: u32,
    pub channels: u8,
    /// Priming samples the encoder puts before the first input sample (at 48 kHz).
    pub initial_padding: i64,
    /// Stamp packets with the input time of the samples they decode to (priming taken out), for
    /// a stream that goes on to the packager beside video; a file muxer that declares the
    /// priming itself wants the encoder's own times.
    capture_times: bool,
    pkt: ff::Packet,
}

impl AudioEncoder {
    pub(crate) fn open(
        codec: &str,
        bitrate: u64,
        format: ff::format::Sample,
        layout: ChannelLayout,
        global_header: bool,
    ) -> Result<Self, TranscodeError> {
        let c = ff::encoder::find_by_name(codec)
            .ok_or_else(|| TranscodeError::Config(format!("this FFmpeg has no {codec} encoder")))?;
        let mut enc = ff::codec::context::Context::new_with_codec(c)
            .encoder()
            .audio()
            .map_err(ffe(format!("creating {codec}")))?;
        enc.set_rate(AUDIO_RATE as i32);
        enc.set_channel_layout(layout);
        enc.set_format(format);
        enc.set_bit_rate(bitrate as usize);
        enc.set_time_base(ff::Rational(1, AUDIO_RATE as i32));
        if global_header {
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let enc = enc.open_as(c).map_err(ffe(format!("opening {codec}")))?;
        let frame_size = match enc.frame_size() {
            0 => 1024,
            n => n,
        };
        // SAFETY: reading a field of the live, opened context.
        let initial_padding = i64::from(unsafe { (*enc.as_ptr()).initial_padding });
        Ok(AudioEncoder {
            initial_padding,
            capture_times: false,
            global_header: extradata(&enc),
            frame_size,
            channels: layout.channels() as u8,
            enc,
            codec: codec.into(),
            pkt: ff::Packet::empty(),
        })
    }

    /// Packets from now on carry the input time of the samples they decode to: without this, a
    /// re-encoded AAC track starts one priming frame (21.3 ms) before its video.
    pub(crate) fn with_capture_times(mut self) -> Self {
        self.capture_times = true;
        self
    }

    /// Encodes one frame whose pts is in 1/48000.
    pub(crate) fn encode(
        &mut self,
        frame: &ff::frame::Audio,
        out: &mut Vec<Packet>,
    ) -> Result<(), TranscodeError> {
        self.enc
            .send_frame(frame)
            .map_err(ffe(format!("encoding with {}", self.codec)))?;
        self.drain(out);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Packet>) {
        let tb = ff::Rational(1, AUDIO_RATE as i32);
        while self.enc.receive_packet(&mut self.pkt).is_ok() {
            let Some(mut pts) = self.pkt.pts() else {
                continue;
            };
            if self.capture_times {
                pts += self.initial_padding;
            }
            let dur = if self.pkt.duration() > 0 {
                self.pkt.duration()
            } else {
                i64::from(self.frame_size)
            };
            let pts_us = pts.rescale(tb, US);
            out.push(Packet {
                pts: pts_us,
                dts: pts_us,
                duration: dur.rescale(tb, US),
                key: true,
                data: Bytes::copy_from_slice(self.pkt.data().unwrap_or_default()),
            });
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Packet>) {
        let _ = self.enc.send_eof();
        self.drain(out);
    }

    pub(crate) fn parameters(&self) -> ff::codec::Parameters {
        ff::codec::Parameters::from(&self.enc)
    }
}

/// The output size for a picture of `src_w`x`src_h` scaled to `height` rows, keeping the
/// aspect ratio; both even (4:2:0 chroma).
pub(crate) fn scaled_size(src_w: u32, src_h: u32, height: u32) -> (u32, u32) {
    let h = (height & !1).max(2);
    let src_h = u64::from(src_h.max(1));
    // round(src_w * h / src_h / 2) * 2
    let half = (u64::from(src_w) * u64::from(h) + src_h) / (2 * src_h);
    ((half as u32).max(1) * 2, h)
}

/// A frame rate as a rational: 29.97 → 30000/1001, 30 → 30/1.
pub(crate) fn fps_rational(fps: f64) -> ff::Rational {
    let fps = if fps.is_finite() && fps > 0.5 && fps <= 240.0 {
        fps
    } else {
        30.0
    };
    let rounded = fps.round();
    if (fps - rounded).abs() < 0.01 {
        return ff::Rational(rounded as i32, 1);
    }
    let ntsc = rounded * 1000.0 / 1001.0;
    if (fps - ntsc).abs() < 0.01 {
        return ff::Rational(rounded as i32 * 1000, 1001);
    }
    ff::Rational((fps * 1000.0).round() as i32, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(scaled_size(1280, 720, 480), (854, 480));
        assert_eq!(scaled_size(1280, 720, 240), (426, 240));
        assert_eq!(scaled_size(720, 1280, 240), (136, 240));
        assert_eq!(fps_rational(29.97), ff::Rational(30000, 1001));
        assert_eq!(fps_rational(25.0), ff::Rational(25, 1));
        assert_eq!(fps_rational(f64::NAN), ff::Rational(30, 1));
    }
}
