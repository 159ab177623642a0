//! FFmpeg-library pipelines behind [`crate::Source`]: remux, decode+encode, test pattern.
//!
//! This file holds what every pipeline shares (FFmpeg set-up, the [`Producer`] trait, `open`,
//! small helpers); `encoders` (libx264, AAC), `filter_graph` (libavfilter graphs and their
//! sinks), `test_pattern` and `file` (remux or decode+encode of a file) hold the rest.

use std::sync::Once;

use bytes::Bytes;
use ff::Rescale;
use ffmpeg_next as ff;

use crate::{Input, Merger, SourceError, SourceInfo, SourceOptions, Tag, TagKind};

mod encoders;
mod file;
mod filter_graph;
mod test_pattern;

pub(crate) use encoders::open_x264;
pub(crate) use filter_graph::{graph_with_sink, sink_audio, sink_time_base, sink_video};

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
        Input::TestPattern => test_pattern::open_pattern(o),
        Input::File(p) => file::open_file(p, o),
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
