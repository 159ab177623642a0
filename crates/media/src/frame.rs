use bytes::Bytes;

use crate::TrackConfig;

/// Which of a stream's two tracks a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Video,
    Audio,
}

/// One encoded access unit with its capture timestamps.
///
/// Timestamps are in microseconds on the publisher's capture clock (RTMP carries milliseconds,
/// the upload protocol microseconds). Video data is AVCC: NAL units each prefixed with a 4-byte
/// big-endian length, as in FLV and MP4. Audio data is one raw AAC frame (no ADTS header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub track: TrackKind,
    /// Presentation time, µs.
    pub pts: i64,
    /// Decode time, µs. Equal to `pts` for audio.
    pub dts: i64,
    /// A random access point (IDR for video; every AAC frame is one).
    pub key: bool,
    pub data: Bytes,
}

impl Frame {
    /// Composition offset (pts − dts), µs.
    pub fn cts(&self) -> i64 {
        self.pts - self.dts
    }
}

/// What ingest hands to the rest of the server, in order.
#[derive(Debug, Clone)]
pub enum MediaEvent {
    /// The decoder configuration of a track; arrives before that track's first frame, and again
    /// if the publisher changes it mid-stream.
    Config(TrackConfig),
    Frame(Frame),
}

/// HEVC video from a source, before the server converts it to H.264 (see
/// `vshare_transcode::HevcToAvc`): only ingest and the converter see these; everything after
/// them takes [`MediaEvent`]s.
#[derive(Debug, Clone)]
pub enum HevcEvent {
    /// The decoder configuration; arrives before the first frame, and again if it changes.
    Config(crate::HevcConfig),
    /// One access unit: NAL units each prefixed with a 4-byte big-endian length (as in `hvcC`
    /// MP4 samples), timestamps in µs on the capture clock.
    Frame(Frame),
}
