//! FFmpeg-library pipelines behind [`crate::Source`]: remux, decode+encode, test pattern.

use std::path::Path;
use std::sync::Once;

use bytes::Bytes;
use ff::Rescale;
use ff::format::Pixel;
use ff::format::sample::{Sample, Type as SampleType};
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::flv;

use crate::{
    Input, Merger, Mode, SourceError, SourceInfo, SourceOptions, Tag, TagKind, annexb, ff,
};

pub(crate) const AUDIO_RATE: u32 = 48_000;
const AAC_FRAME: u32 = 1024;
pub(crate) const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Initialises FFmpeg once and keeps its log to errors.
pub fn init_ffmpeg() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

pub(crate) trait Producer {
    /// Produces more tags into the merger; `false` at the end of the input.
    fn produce(&mut self, m: &mut Merger) -> Result<bool, SourceError>;
}

pub(crate) type Opened = (Box<dyn Producer>, SourceInfo, Vec<Tag>);

pub(crate) fn open(input: &Input, o: &SourceOptions) -> Result<Opened, SourceError> {
    match input {
        Input::TestPattern => open_pattern(o),
        Input::File(p) => open_file(p, o),
    }
}

/// Copies the codec extradata of a context.
pub(crate) fn extradata_of_context(ctx: &ff::codec::context::Context) -> Vec<u8> {
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

/// Copies the codec extradata of stream parameters.
fn extradata_of_parameters(par: &ff::codec::Parameters) -> Vec<u8> {
    // SAFETY: as above, for a live AVCodecParameters.
    unsafe {
        let p = par.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
    }
}

fn ms(ts: i64, tb: ff::Rational) -> i64 {
    ts.rescale(tb, ff::Rational(1, 1000))
}

fn tag(kind: TagKind, timestamp_ms: i64, body: Bytes, key: bool, config: bool) -> Tag {
    Tag {
        kind,
        timestamp_ms,
        body,
        key,
        config,
    }
}

// ---------------------------------------------------------------------------------------------
// Encoders

/// Opens libx264 for live publishing: `veryfast`, `zerolatency`, a key frame every second, no
/// B-frames, a VBV of `bufsize` bits; returns it with its AVCDecoderConfigurationRecord.
pub(crate) fn open_x264(
    width: u32,
    height: u32,
    fps: u32,
    bitrate: u64,
    time_base: ff::Rational,
    bufsize: u64,
    extra: &[(&str, &str)],
) -> Result<(ff::encoder::Video, Vec<u8>), SourceError> {
    let codec = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| SourceError::Input("this FFmpeg has no libx264 encoder".into()))?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ff("creating the H.264 encoder"))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(time_base);
    enc.set_frame_rate(Some(ff::Rational(fps as i32, 1)));
    enc.set_bit_rate(bitrate as usize);
    enc.set_max_bit_rate(bitrate as usize);
    enc.set_gop(fps);
    enc.set_max_b_frames(0);
    enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    let mut opts = ff::Dictionary::new();
    opts.set("preset", "veryfast");
    opts.set("tune", "zerolatency");
    opts.set("bufsize", &bufsize.to_string());
    opts.set("sc_threshold", "0");
    for (k, v) in extra {
        opts.set(k, v);
    }
    let enc = enc.open_with(opts).map_err(ff("opening libx264"))?;
    let record = annexb::decoder_configuration_record(&extradata_of_context(&enc))
        .ok_or_else(|| SourceError::Input("libx264 gave no SPS/PPS in its extradata".into()))?;
    Ok((enc, record))
}

struct VideoEncoder {
    enc: ff::encoder::Video,
    time_base: ff::Rational,
    record: Vec<u8>,
}

impl VideoEncoder {
    fn open(width: u32, height: u32, fps: u32, bitrate: u64) -> Result<Self, SourceError> {
        let time_base = ff::Rational(1, fps as i32);
        let keyint = fps.to_string();
        let (enc, record) = open_x264(
            width,
            height,
            fps,
            bitrate,
            time_base,
            bitrate,
            &[("keyint_min", &keyint)],
        )?;
        Ok(Self {
            enc,
            time_base,
            record,
        })
    }

    fn header(&self) -> Tag {
        tag(
            TagKind::Video,
            0,
            flv::video_sequence_header(&self.record),
            true,
            true,
        )
    }

    fn drain(&mut self, out: &mut Merger) {
        let mut pkt = ff::Packet::empty();
        while self.enc.receive_packet(&mut pkt).is_ok() {
            let Some(pts) = pkt.pts() else { continue };
            let dts = pkt.dts().unwrap_or(pts);
            let cts = (ms(pts, self.time_base) - ms(dts, self.time_base)) as i32;
            let data = annexb::to_avcc(pkt.data().unwrap_or_default());
            let body = flv::video_frame(pkt.is_key(), cts, &data);
            out.video.push_back(tag(
                TagKind::Video,
                ms(dts, self.time_base),
                body,
                pkt.is_key(),
                false,
            ));
        }
    }

    fn encode(&mut self, frame: &ff::frame::Video, out: &mut Merger) -> Result<(), SourceError> {
        self.enc.send_frame(frame).map_err(ff("encoding video"))?;
        self.drain(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Merger) {
        let _ = self.enc.send_eof();
        self.drain(out);
    }
}

struct AudioEncoder {
    enc: ff::encoder::Audio,
    asc: Vec<u8>,
}

impl AudioEncoder {
    fn open(bitrate: u64) -> Result<Self, SourceError> {
        let codec = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| SourceError::Input("this FFmpeg has no AAC encoder".into()))?;
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(ff("creating the AAC encoder"))?;
        enc.set_rate(AUDIO_RATE as i32);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_format(Sample::F32(SampleType::Planar));
        enc.set_bit_rate(bitrate as usize);
        enc.set_time_base(ff::Rational(1, AUDIO_RATE as i32));
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        let enc = enc.open_as(codec).map_err(ff("opening the AAC encoder"))?;
        let asc = extradata_of_context(&enc);
        if asc.len() < 2 {
            return Err(SourceError::Input(
                "the AAC encoder gave no AudioSpecificConfig".into(),
            ));
        }
        Ok(Self { enc, asc })
    }

    fn header(&self) -> Tag {
        tag(
            TagKind::Audio,
            0,
            flv::audio_sequence_header(&self.asc),
            true,
            true,
        )
    }

    fn drain(&mut self, out: &mut Merger) {
        let mut pkt = ff::Packet::empty();
        let tb = ff::Rational(1, AUDIO_RATE as i32);
        while self.enc.receive_packet(&mut pkt).is_ok() {
            let Some(pts) = pkt.pts() else { continue };
            let body = flv::audio_frame(pkt.data().unwrap_or_default());
            out.audio
                .push_back(tag(TagKind::Audio, ms(pts, tb), body, true, false));
        }
    }

    fn encode(&mut self, frame: &ff::frame::Audio, out: &mut Merger) -> Result<(), SourceError> {
        self.enc.send_frame(frame).map_err(ff("encoding audio"))?;
        self.drain(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Merger) {
        let _ = self.enc.send_eof();
        self.drain(out);
    }
}

// ---------------------------------------------------------------------------------------------
// Filter graphs

pub(crate) fn graph_with_sink(
    sink: &str,
    source: Option<(&str, &str)>,
    spec: &str,
) -> Result<ff::filter::Graph, SourceError> {
    let mut g = ff::filter::Graph::new();
    let find = |n: &str| {
        ff::filter::find(n).ok_or_else(|| SourceError::Input(format!("FFmpeg filter {n} missing")))
    };
    g.add(&find(sink)?, "out", "")
        .map_err(ff(format!("adding {sink}")))?;
    if sink == "abuffersink"
        && let Some(mut out) = g.get("out")
    {
        out.set_sample_format(Sample::F32(SampleType::Planar));
        out.set_channel_layout(ChannelLayout::STEREO);
        out.set_sample_rate(AUDIO_RATE);
    }
    let parser = match source {
        Some((src, args)) => {
            g.add(&find(src)?, "in", args)
                .map_err(ff(format!("adding {src} with {args}")))?;
            g.output("in", 0)
                .map_err(ff("graph input"))?
                .input("out", 0)
                .map_err(ff("graph output"))?
        }
        None => g.input("out", 0).map_err(ff("graph output"))?,
    };
    let what = match source {
        Some((src, args)) => format!("filter graph {src}={args} -> {spec}"),
        None => format!("filter graph {spec}"),
    };
    parser.parse(spec).map_err(ff(what.clone()))?;
    g.validate().map_err(ff(what))?;
    if sink == "abuffersink"
        && let Some(mut out) = g.get("out")
    {
        out.sink().set_frame_size(AAC_FRAME);
    }
    Ok(g)
}

pub(crate) fn sink_video(g: &mut ff::filter::Graph, frame: &mut ff::frame::Video) -> bool {
    g.get("out")
        .is_some_and(|mut c| c.sink().frame(frame).is_ok())
}

pub(crate) fn sink_audio(g: &mut ff::filter::Graph, frame: &mut ff::frame::Audio) -> bool {
    g.get("out")
        .is_some_and(|mut c| c.sink().frame(frame).is_ok())
}

pub(crate) fn sink_time_base(g: &mut ff::filter::Graph) -> ff::Rational {
    g.get("out")
        .map_or(ff::Rational(1, 1000), |mut c| c.sink().time_base())
}

// ---------------------------------------------------------------------------------------------
// Test pattern

struct Pattern {
    vgraph: ff::filter::Graph,
    agraph: ff::filter::Graph,
    venc: VideoEncoder,
    aenc: AudioEncoder,
    frame_index: i64,
}

fn open_pattern(o: &SourceOptions) -> Result<Opened, SourceError> {
    let (w, h) = o.size.unwrap_or((640, 360));
    let fps = o.fps.unwrap_or(30);
    let font = if Path::new(FONT).exists() {
        format!("fontfile={FONT}:")
    } else {
        String::new()
    };
    let size = (h / 24).max(10);
    // drawtext expansions: %{localtime} the wall clock, %{pts:hms} the media time, %{n} the
    // frame number. `\\:` survives the graph parser as `\:`, which the option parser turns
    // into the `:` drawtext expects.
    let spec = format!(
        "testsrc2=size={w}x{h}:rate={fps},\
         drawtext={font}text=vshare %{{localtime}}  media %{{pts\\\\:hms}}  frame %{{n}}:x=10:y=10:\
         fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=5,format=yuv420p"
    );
    // drawtext needs a font (fonts-dejavu-core, or any font fontconfig finds); without one the
    // pattern still runs, without the burnt-in text.
    let vgraph = graph_with_sink("buffersink", None, &spec).or_else(|_| {
        graph_with_sink(
            "buffersink",
            None,
            &format!("testsrc2=size={w}x{h}:rate={fps},format=yuv420p"),
        )
    })?;
    let agraph = graph_with_sink(
        "abuffersink",
        None,
        &format!("sine=frequency=440:sample_rate={AUDIO_RATE}"),
    )?;
    let venc = VideoEncoder::open(w, h, fps, o.video_bitrate)?;
    let aenc = AudioEncoder::open(o.audio_bitrate)?;
    let headers = vec![venc.header(), aenc.header()];
    let info = SourceInfo {
        mode: Mode::TestPattern,
        width: w,
        height: h,
        fps: f64::from(fps),
        video_bitrate: o.video_bitrate,
        has_video: true,
        has_audio: true,
        audio_sample_rate: AUDIO_RATE,
        audio_channels: 2,
    };
    Ok((
        Box::new(Pattern {
            vgraph,
            agraph,
            venc,
            aenc,
            frame_index: 0,
        }),
        info,
        headers,
    ))
}

impl Producer for Pattern {
    fn produce(&mut self, m: &mut Merger) -> Result<bool, SourceError> {
        if m.video.is_empty() {
            let mut f = ff::frame::Video::empty();
            if !sink_video(&mut self.vgraph, &mut f) {
                return Err(SourceError::Input(
                    "the test pattern graph produced no picture".into(),
                ));
            }
            f.set_pts(Some(self.frame_index));
            f.set_kind(ff::picture::Type::None);
            self.frame_index += 1;
            self.venc.encode(&f, m)?;
        }
        if m.audio.is_empty() {
            let tb = sink_time_base(&mut self.agraph);
            // The AAC encoder holds one frame back: feed until a packet comes out.
            for _ in 0..8 {
                let mut f = ff::frame::Audio::empty();
                if !sink_audio(&mut self.agraph, &mut f) {
                    return Err(SourceError::Input(
                        "the tone graph produced no samples".into(),
                    ));
                }
                let pts = f
                    .pts()
                    .unwrap_or(0)
                    .rescale(tb, ff::Rational(1, AUDIO_RATE as i32));
                f.set_pts(Some(pts));
                self.aenc.encode(&f, m)?;
                if !m.audio.is_empty() {
                    break;
                }
            }
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Files

struct Track {
    index: usize,
    time_base: ff::Rational,
    /// First timestamp of the file (stream time base), to loop with continuous timestamps.
    first: Option<i64>,
    /// Largest end time written so far, including the loop offset (stream time base).
    end: i64,
    /// Added to every timestamp of the current pass (stream time base).
    offset: i64,
    /// A frame's duration when packets do not say (stream time base).
    default_duration: i64,
}

impl Track {
    fn new(stream: &ff::format::stream::Stream, default_duration_s: f64) -> Self {
        let tb = stream.time_base();
        let d = (default_duration_s * f64::from(tb.denominator())
            / f64::from(tb.numerator().max(1)))
        .round() as i64;
        Track {
            index: stream.index(),
            time_base: tb,
            first: None,
            end: 0,
            offset: 0,
            default_duration: d.max(1),
        }
    }

    /// Applies the loop offset to a timestamp and records the end.
    fn place(&mut self, ts: i64, duration: i64) -> i64 {
        let first = *self.first.get_or_insert(ts);
        let t = ts - first + self.offset;
        let d = if duration > 0 {
            duration
        } else {
            self.default_duration
        };
        self.end = self.end.max(t + d);
        t
    }

    fn rewind(&mut self) {
        self.offset = self.end;
    }
}

struct Decoding {
    vdec: Option<(ff::decoder::Video, ff::filter::Graph, VideoEncoder)>,
    adec: Option<(ff::decoder::Audio, ff::filter::Graph, AudioEncoder)>,
    next_video_pts: i64,
}

struct FileProducer {
    ictx: ff::format::context::Input,
    video: Option<Track>,
    audio: Option<Track>,
    decoding: Option<Decoding>,
    looping: bool,
    packets_this_pass: u64,
}

fn open_file(path: &Path, o: &SourceOptions) -> Result<Opened, SourceError> {
    if !path.exists() {
        return Err(SourceError::Input(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let ictx = ff::format::input(path).map_err(ff(format!("opening {}", path.display())))?;
    let vs = ictx.streams().best(ff::media::Type::Video);
    let as_ = ictx.streams().best(ff::media::Type::Audio);
    if vs.is_none() && as_.is_none() {
        return Err(SourceError::Input(format!(
            "{}: no audio or video stream",
            path.display()
        )));
    }
    let avg = vs.as_ref().map(|s| s.avg_frame_rate());
    let file_fps = avg
        .filter(|r| r.numerator() > 0 && r.denominator() > 0)
        .map(|r| f64::from(r.numerator()) / f64::from(r.denominator()));
    let fps = o
        .fps
        .unwrap_or_else(|| file_fps.map_or(30, |f| f.round().clamp(1.0, 120.0) as u32));

    let video_par = vs.as_ref().map(|s| s.parameters());
    let audio_par = as_.as_ref().map(|s| s.parameters());
    let video_record = video_par.as_ref().map(extradata_of_parameters);
    let audio_asc = audio_par.as_ref().map(extradata_of_parameters);
    let video_copy = video_par
        .as_ref()
        .zip(video_record.as_ref())
        .is_none_or(|(p, r)| {
            p.id() == ff::codec::Id::H264
                && r.first() == Some(&1)
                && vshare_media::AvcConfig::parse(Bytes::from(r.clone())).is_ok()
        });
    let audio_copy = audio_par
        .as_ref()
        .zip(audio_asc.as_ref())
        .is_none_or(|(p, a)| p.id() == ff::codec::Id::AAC && a.len() >= 2);
    let remux = video_copy && audio_copy && !o.force_encode && o.size.is_none() && o.fps.is_none();

    let video = vs.as_ref().map(|s| Track::new(s, 1.0 / f64::from(fps)));
    let audio = as_
        .as_ref()
        .map(|s| Track::new(s, f64::from(AAC_FRAME) / f64::from(AUDIO_RATE)));

    let vdecoder = match &video_par {
        Some(p) => Some(
            ff::codec::context::Context::from_parameters(p.clone())
                .map_err(ff("video decoder parameters"))?
                .decoder()
                .video()
                .map_err(ff("opening the video decoder"))?,
        ),
        None => None,
    };
    let adecoder = match &audio_par {
        Some(p) => Some(
            ff::codec::context::Context::from_parameters(p.clone())
                .map_err(ff("audio decoder parameters"))?
                .decoder()
                .audio()
                .map_err(ff("opening the audio decoder"))?,
        ),
        None => None,
    };

    let mut info = SourceInfo {
        mode: if remux { Mode::Remux } else { Mode::Encode },
        width: vdecoder.as_ref().map_or(0, |d| d.width()),
        height: vdecoder.as_ref().map_or(0, |d| d.height()),
        fps: if remux {
            file_fps.unwrap_or(f64::from(fps))
        } else {
            f64::from(fps)
        },
        video_bitrate: vdecoder.as_ref().map_or(0, |d| d.bit_rate() as u64),
        has_video: vdecoder.is_some(),
        has_audio: adecoder.is_some(),
        audio_sample_rate: adecoder.as_ref().map_or(0, |d| d.rate()),
        audio_channels: adecoder.as_ref().map_or(0, |d| u32::from(d.channels())),
    };

    let mut headers = Vec::new();
    let decoding = if remux {
        if let Some(r) = &video_record {
            headers.push(tag(
                TagKind::Video,
                0,
                flv::video_sequence_header(r),
                true,
                true,
            ));
        }
        if let Some(a) = &audio_asc {
            headers.push(tag(
                TagKind::Audio,
                0,
                flv::audio_sequence_header(a),
                true,
                true,
            ));
        }
        None
    } else {
        let vdec = match (vdecoder, &video) {
            (Some(dec), Some(track)) => {
                let (w, h) = o.size.unwrap_or((dec.width() & !1, dec.height() & !1));
                if w == 0 || h == 0 {
                    return Err(SourceError::Input(format!(
                        "{}: video has no size",
                        path.display()
                    )));
                }
                let tb = track.time_base;
                let sar = dec.aspect_ratio();
                let sar = if sar.numerator() > 0 {
                    sar
                } else {
                    ff::Rational(1, 1)
                };
                let args = format!(
                    "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
                    dec.width(),
                    dec.height(),
                    ff::ffi::AVPixelFormat::from(dec.format()) as i32,
                    tb.numerator(),
                    tb.denominator(),
                    sar.numerator(),
                    sar.denominator()
                );
                let spec = format!("fps={fps},scale={w}:{h},format=yuv420p");
                let graph = graph_with_sink("buffersink", Some(("buffer", &args)), &spec)?;
                let enc = VideoEncoder::open(w, h, fps, o.video_bitrate)?;
                headers.push(enc.header());
                info.width = w;
                info.height = h;
                info.video_bitrate = o.video_bitrate;
                Some((dec, graph, enc))
            }
            _ => None,
        };
        let adec = match (adecoder, &audio) {
            (Some(dec), Some(track)) => {
                let tb = track.time_base;
                let layout = if dec.channel_layout().bits() != 0 {
                    dec.channel_layout()
                } else {
                    ChannelLayout::default(i32::from(dec.channels()))
                };
                let args = format!(
                    "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
                    tb.numerator(),
                    tb.denominator(),
                    dec.rate(),
                    dec.format().name(),
                    layout.bits()
                );
                let spec = format!(
                    "aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
                );
                let graph = graph_with_sink("abuffersink", Some(("abuffer", &args)), &spec)?;
                let enc = AudioEncoder::open(o.audio_bitrate)?;
                headers.push(enc.header());
                info.audio_sample_rate = AUDIO_RATE;
                info.audio_channels = 2;
                Some((dec, graph, enc))
            }
            _ => None,
        };
        Some(Decoding {
            vdec,
            adec,
            next_video_pts: 0,
        })
    };
    let producer = FileProducer {
        ictx,
        video,
        audio,
        decoding,
        looping: o.looping,
        packets_this_pass: 0,
    };
    Ok((Box::new(producer), info, headers))
}

impl FileProducer {
    fn remux_packet(&mut self, pkt: &ff::Packet, m: &mut Merger) {
        let idx = pkt.stream();
        let Some(data) = pkt.data() else { return };
        if let Some(t) = self.video.as_mut().filter(|t| t.index == idx) {
            let Some(dts) = pkt.dts().or(pkt.pts()) else {
                return;
            };
            let pts = pkt.pts().unwrap_or(dts);
            let placed = t.place(dts, pkt.duration());
            let cts = ms(pts - dts, t.time_base) as i32;
            let body = flv::video_frame(pkt.is_key(), cts, data);
            m.video.push_back(tag(
                TagKind::Video,
                ms(placed, t.time_base),
                body,
                pkt.is_key(),
                false,
            ));
        } else if let Some(t) = self.audio.as_mut().filter(|t| t.index == idx) {
            let Some(pts) = pkt.pts().or(pkt.dts()) else {
                return;
            };
            let placed = t.place(pts, pkt.duration());
            m.audio.push_back(tag(
                TagKind::Audio,
                ms(placed, t.time_base),
                flv::audio_frame(data),
                true,
                false,
            ));
        }
    }

    fn decode_packet(
        &mut self,
        pkt: Option<&ff::Packet>,
        m: &mut Merger,
    ) -> Result<(), SourceError> {
        let Some(d) = self.decoding.as_mut() else {
            return Ok(());
        };
        let idx = pkt.map(|p| p.stream());
        if let (Some((dec, graph, enc)), Some(track)) = (d.vdec.as_mut(), self.video.as_mut())
            && (idx.is_none() || idx == Some(track.index))
        {
            match pkt {
                Some(p) => dec.send_packet(p).map_err(ff("decoding video"))?,
                None => {
                    let _ = dec.send_eof();
                }
            }
            let mut frame = ff::frame::Video::empty();
            while dec.receive_frame(&mut frame).is_ok() {
                let Some(ts) = frame.timestamp() else {
                    continue;
                };
                let placed = track.place(ts, frame.packet().duration);
                frame.set_pts(Some(placed));
                if let Some(mut src) = graph.get("in") {
                    src.source().add(&frame).map_err(ff("filtering video"))?;
                }
                filtered_video(graph, enc, &mut d.next_video_pts, m)?;
            }
            if pkt.is_none() {
                if let Some(mut src) = graph.get("in") {
                    let _ = src.source().flush();
                }
                filtered_video(graph, enc, &mut d.next_video_pts, m)?;
                enc.finish(m);
            }
        }
        if let (Some((dec, graph, enc)), Some(track)) = (d.adec.as_mut(), self.audio.as_mut())
            && (idx.is_none() || idx == Some(track.index))
        {
            match pkt {
                Some(p) => dec.send_packet(p).map_err(ff("decoding audio"))?,
                None => {
                    let _ = dec.send_eof();
                }
            }
            let mut frame = ff::frame::Audio::empty();
            while dec.receive_frame(&mut frame).is_ok() {
                let Some(ts) = frame.timestamp() else {
                    continue;
                };
                let dur = (i64::from(frame.samples() as u32))
                    .rescale(ff::Rational(1, dec.rate() as i32), track.time_base);
                let placed = track.place(ts, dur);
                frame.set_pts(Some(placed));
                if let Some(mut src) = graph.get("in") {
                    src.source().add(&frame).map_err(ff("filtering audio"))?;
                }
                filtered_audio(graph, enc, m)?;
            }
            if pkt.is_none() {
                if let Some(mut src) = graph.get("in") {
                    let _ = src.source().flush();
                }
                filtered_audio(graph, enc, m)?;
                enc.finish(m);
            }
        }
        Ok(())
    }
}

fn filtered_video(
    graph: &mut ff::filter::Graph,
    enc: &mut VideoEncoder,
    next_pts: &mut i64,
    m: &mut Merger,
) -> Result<(), SourceError> {
    let tb = sink_time_base(graph);
    let mut out = ff::frame::Video::empty();
    while sink_video(graph, &mut out) {
        // Constant frame rate after `fps`: number frames in the encoder's 1/fps time base.
        let pts = out
            .pts()
            .map_or(*next_pts, |p| p.rescale(tb, enc.time_base))
            .max(*next_pts);
        *next_pts = pts + 1;
        out.set_pts(Some(pts));
        out.set_kind(ff::picture::Type::None);
        enc.encode(&out, m)?;
    }
    Ok(())
}

fn filtered_audio(
    graph: &mut ff::filter::Graph,
    enc: &mut AudioEncoder,
    m: &mut Merger,
) -> Result<(), SourceError> {
    let tb = sink_time_base(graph);
    let mut out = ff::frame::Audio::empty();
    while sink_audio(graph, &mut out) {
        let pts = out
            .pts()
            .unwrap_or(0)
            .rescale(tb, ff::Rational(1, AUDIO_RATE as i32));
        out.set_pts(Some(pts));
        enc.encode(&out, m)?;
    }
    Ok(())
}

impl Producer for FileProducer {
    fn produce(&mut self, m: &mut Merger) -> Result<bool, SourceError> {
        let mut pkt = ff::Packet::empty();
        match pkt.read(&mut self.ictx) {
            Ok(()) => {
                self.packets_this_pass += 1;
                if self.decoding.is_some() {
                    self.decode_packet(Some(&pkt), m)?;
                } else {
                    self.remux_packet(&pkt, m);
                }
                Ok(true)
            }
            Err(ff::Error::Eof) if self.looping && self.packets_this_pass > 0 => {
                self.ictx
                    .seek(0, ..)
                    .map_err(ff("seeking to the start to loop"))?;
                for t in [self.video.as_mut(), self.audio.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    t.rewind();
                }
                if let Some(d) = self.decoding.as_mut() {
                    if let Some((dec, _, _)) = d.vdec.as_mut() {
                        dec.flush();
                    }
                    if let Some((dec, _, _)) = d.adec.as_mut() {
                        dec.flush();
                    }
                }
                self.packets_this_pass = 0;
                Ok(true)
            }
            Err(ff::Error::Eof) => {
                self.decode_packet(None, m)?;
                Ok(false)
            }
            Err(e) => Err(SourceError::Ffmpeg {
                what: "reading the file".into(),
                source: e,
            }),
        }
    }
}
