//! The rendition ladder and the other VOD formats, with FFmpeg's libraries in process.
//!
//! - [`Transcoder`]: one source (H.264 + AAC [`vshare_media::MediaEvent`]s) in, the ladder's
//!   renditions out as MediaEvents again (a `Config` first, then AVCC / raw AAC frames keeping
//!   the source's capture timestamps). Decode once, scale once per rung, encode per rung;
//!   audio is decoded, resampled and encoded on its own path. Every rung gets an IDR exactly on
//!   each source keyframe and nowhere else, so segment and part boundaries line up across
//!   renditions. A rung whose encoder fails is marked failed; the others carry on.
//! - [`TranscodeWorker`]: a `Transcoder` on its own OS thread behind a bounded queue that never
//!   blocks ingest: when full, input is dropped until the next source keyframe.
//! - [`HevcToAvc`] / [`ConvertWorker`]: HEVC from a source (Enhanced RTMP) decoded and encoded
//!   as H.264 at ingest, on its own thread, keeping capture times and the source's keyframes, so
//!   that everything after ingest sees an ordinary H.264 source.
//! - [`FileWriter`]: WebM (VP9 + Opus) and 3GP (H.263 or H.264 Baseline + AAC) files written
//!   with libavformat, and a [`FileSummary`] measured from what was written.
//!
//! - [`PosterMaker`] / [`PosterWorker`]: a JPEG poster from a keyframe every few seconds, and
//!   a thumbnail sprite with its WebVTT track.
//!
//! The ladder, presets and file formats are data ([`LadderConfig`], [`FileSpec`]).
//! `docs/transcoding.md` explains the timing rules.

use vshare_media::annexb;
mod audio;
mod av;
mod config;
mod convert;
mod file;
mod gate;
mod poster;
mod transcoder;
mod worker;

pub use audio::{AacToOpus, OpusToAac, opus_head};
pub use av::init_ffmpeg;
pub use config::{LadderConfig, RenditionSpec};
pub use convert::{ConvertSettings, ConvertStats, ConvertWorker, HevcToAvc};
pub use file::{FileFormat, FileSpec, FileSummary, FileWriter};
pub use poster::{
    Picture, Poster, PosterMaker, PosterSettings, PosterStats, PosterWorker, Sprite,
    SpriteSettings, SpriteTile, fit_width,
};
pub use transcoder::{Output, RenditionInfo, Transcoder};
pub use worker::{TranscodeWorker, WorkerStats};

/// Why transcoding could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("FFmpeg: {what}: {source}")]
    Ffmpeg {
        what: String,
        #[source]
        source: ffmpeg_next::Error,
    },
    #[error("transcode configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Undecodable(String),
    #[error("encoder output: {0}")]
    Codec(#[from] vshare_media::CodecError),
    #[error("file output: {0}")]
    Io(#[from] std::io::Error),
}
