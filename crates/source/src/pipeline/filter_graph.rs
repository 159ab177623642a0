//! libavfilter graphs with one sink (`buffersink` or `abuffersink`, the latter giving AAC-sized
//! frames of 48 kHz stereo float), and reading frames out of them.

use ff::format::sample::{Sample, Type as SampleType};
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;

use super::{AAC_FRAME, AUDIO_RATE};
use crate::{SourceError, ff};

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
