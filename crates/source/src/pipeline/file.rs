//! A file as the source: remuxed when its codecs are already H.264/AAC and no resize or rate
//! is asked, else decoded, filtered and encoded; optionally looped with continuous timestamps.

use std::path::Path;

use bytes::Bytes;
use ff::Rescale;
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::flv;

use super::encoders::{AudioEncoder, VideoEncoder};
use super::{
    AAC_FRAME, AUDIO_RATE, Opened, Producer, extradata_of_parameters, graph_with_sink, ms,
    sink_audio, sink_time_base, sink_video, tag,
};
use crate::{Merger, Mode, SourceError, SourceInfo, SourceOptions, TagKind, ff};

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

pub(super) fn open_file(path: &Path, o: &SourceOptions) -> Result<Opened, SourceError> {
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
