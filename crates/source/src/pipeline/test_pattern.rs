//! The test pattern: `testsrc2` with the wall clock, media time and frame number burnt in, and
//! a 440 Hz tone, encoded live.

use std::path::Path;

use ff::Rescale;
use ffmpeg_next as ff;

use super::encoders::{AudioEncoder, VideoEncoder};
use super::{
    AUDIO_RATE, FONT, Opened, Producer, graph_with_sink, sink_audio, sink_time_base, sink_video,
};
use crate::{Merger, Mode, SourceError, SourceInfo, SourceOptions};

struct Pattern {
    vgraph: ff::filter::Graph,
    agraph: ff::filter::Graph,
    venc: VideoEncoder,
    aenc: AudioEncoder,
    frame_index: i64,
}

pub(super) fn open_pattern(o: &SourceOptions) -> Result<Opened, SourceError> {
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
