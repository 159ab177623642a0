//! The one error type of the crate: every variant names the layer and the place it went wrong.

use vshare_media::TrackKind;

/// Why the packager refused an event, or why bytes are not a segment we wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// A frame arrived before any codec configuration of its track.
    #[error("packager: {track:?} frame at dts {dts_us} µs arrived before its codec configuration")]
    FrameBeforeConfig { track: TrackKind, dts_us: i64 },
    /// A frame's decode time is not after the previous frame's decode time on the same track.
    #[error(
        "packager: {track:?} decode time went backwards: frame at dts {dts_us} µs after a frame at {previous_us} µs"
    )]
    NonIncreasingDts {
        track: TrackKind,
        dts_us: i64,
        previous_us: i64,
    },
    /// A frame's decode time lies before the start of the stream's timeline.
    #[error(
        "packager: {track:?} frame at dts {dts_us} µs is before the stream origin ({origin_us} µs)"
    )]
    BeforeOrigin {
        track: TrackKind,
        dts_us: i64,
        origin_us: i64,
    },
    /// A frame's size is zero or larger than any real access unit.
    #[error("packager: {track:?} frame at dts {dts_us} µs has {size} bytes (allowed 1..={limit})")]
    FrameSize {
        track: TrackKind,
        dts_us: i64,
        size: usize,
        limit: usize,
    },
    /// A timestamp or composition offset out of the range the fMP4 fields can carry.
    #[error("packager: {track:?} frame at dts {dts_us} µs: {what} is out of range")]
    TimestampRange {
        track: TrackKind,
        dts_us: i64,
        what: &'static str,
    },
    /// A codec configuration the init segment cannot describe.
    #[error("packager: {0}")]
    Config(String),
    /// Bytes that are not an MP4 we wrote, or are damaged: `layer` names the segment, `offset` the
    /// byte (from the start of the buffer handed in) where the problem is.
    #[error("{layer}: {what} at byte {offset}")]
    Mp4 {
        layer: String,
        offset: usize,
        what: String,
    },
    /// The box writer failed (a value did not fit its field).
    #[error("fMP4 writer: {0}")]
    Encode(String),
}

impl From<mp4_atom::Error> for PackageError {
    fn from(e: mp4_atom::Error) -> Self {
        PackageError::Encode(e.to_string())
    }
}
