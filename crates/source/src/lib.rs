//! The source phone on the command line: turns a media file or a generated test pattern into
//! timestamped FLV tag bodies (H.264 + AAC), ready for an RTMP publisher to send in real time.
//!
//! - A file whose tracks already are H.264 (with an AVCC configuration) and AAC is *remuxed*:
//!   packets pass through untouched, the configuration records become sequence headers.
//! - Any other file is decoded and encoded again: libx264 (`veryfast`, `zerolatency`, one
//!   keyframe a second, constant frame rate) and FFmpeg's AAC encoder (48 kHz stereo).
//! - The test pattern is a libavfilter graph: `testsrc2` with a burnt-in clock and frame
//!   counter (`drawtext`), and a 440 Hz `sine` tone, encoded the same way.
//!
//! [`Source::next_tag`] returns tags in decode-time order across both tracks, timestamps
//! starting at 0 ms. The work is blocking (FFmpeg's libraries): [`SourceThread`] runs it on its
//! own thread and feeds the tags to a publisher.
//!
//! Publishing them is here too, split the sans-IO way:
//! - [`Pacer`] (sans-IO) says when each tag is due, from its timestamp and a clock reading
//!   passed in; `vshare publish`, `vshare bench` and the upload capture share it.
//! - [`RtmpPublisher`] is the async adapter: vshare-rtmp's client over a tokio socket, sending
//!   a [`TagFeed`] (a [`SourceThread`], or a [`LoopedClip`] for the benchmark) as the pacer says.

pub use vshare_media::annexb;
pub mod adaptive;
mod clip;
mod feed;
mod pacer;
mod pipeline;
mod publisher;

use std::collections::VecDeque;
use std::path::PathBuf;

use bytes::Bytes;
use vshare_rtmp::amf0::Value;

pub use clip::{Clip, LoopedClip};
pub use feed::{SourceThread, TagFeed};
pub use pacer::{DEFAULT_MAX_JUMP_MS, Pace, Pacer};
pub use pipeline::init_ffmpeg;
pub use publisher::{
    DEFAULT_CHUNK_SIZE, DEFAULT_PUBLISH_TIMEOUT, PublishError, PublishStats, RtmpPublisher,
    RtmpSession,
};

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    TestPattern,
}

/// How to publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    /// Output picture size when encoding; `None` keeps a file's size (test pattern: 640x360).
    pub size: Option<(u32, u32)>,
    /// Output frame rate when encoding; `None` keeps a file's rate (test pattern: 30).
    pub fps: Option<u32>,
    /// Video bitrate when encoding, bits per second.
    pub video_bitrate: u64,
    /// Audio bitrate when encoding, bits per second.
    pub audio_bitrate: u64,
    /// Stop after this much media time, ms (`None`: end of file; the test pattern never ends).
    pub duration_ms: Option<i64>,
    /// Start a file again at its end, with continuous timestamps.
    pub looping: bool,
    /// Encode even when the file could be remuxed.
    pub force_encode: bool,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            size: None,
            fps: None,
            video_bitrate: 1_000_000,
            audio_bitrate: 128_000,
            duration_ms: None,
            looping: false,
            force_encode: false,
        }
    }
}

/// Which track a tag belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Video,
    Audio,
}

/// One FLV audio or video tag body (Adobe FLV spec v10.1, E.4.2/E.4.3) and its decode time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: TagKind,
    /// Decode time, ms from the start of the publish.
    pub timestamp_ms: i64,
    pub body: Bytes,
    /// A keyframe (video) — every audio frame is one.
    pub key: bool,
    /// A sequence header (AVCDecoderConfigurationRecord or AudioSpecificConfig).
    pub config: bool,
}

/// How the source produces its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Packets copied from the file.
    Remux,
    /// The file decoded and encoded to H.264/AAC.
    Encode,
    /// The generated test pattern.
    TestPattern,
}

/// What the source publishes, for the progress display and the `onMetaData` message.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    pub mode: Mode,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Video bitrate, bits per second (0 if unknown, e.g. remuxed without a declared rate).
    pub video_bitrate: u64,
    pub has_video: bool,
    pub has_audio: bool,
    pub audio_sample_rate: u32,
    pub audio_channels: u32,
}

impl SourceInfo {
    /// Properties for `@setDataFrame onMetaData` (FLV spec E.5: width, height, framerate,
    /// videodatarate in kbit/s, videocodecid 7 = AVC, audiocodecid 10 = AAC, ...).
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let mut m = Vec::new();
        let mut put = |k: &str, v: Value| m.push((k.to_string(), v));
        if self.has_video {
            put("width", Value::Number(f64::from(self.width)));
            put("height", Value::Number(f64::from(self.height)));
            put("framerate", Value::Number(self.fps));
            put("videocodecid", Value::Number(7.0));
            if self.video_bitrate > 0 {
                put(
                    "videodatarate",
                    Value::Number(self.video_bitrate as f64 / 1000.0),
                );
            }
        }
        if self.has_audio {
            put("audiocodecid", Value::Number(10.0));
            put(
                "audiosamplerate",
                Value::Number(f64::from(self.audio_sample_rate)),
            );
            put("stereo", Value::Boolean(self.audio_channels >= 2));
        }
        put(
            "encoder",
            Value::String(format!("vshare {}", env!("CARGO_PKG_VERSION"))),
        );
        m
    }
}

/// Why the source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("FFmpeg: {what}: {source}")]
    Ffmpeg {
        what: String,
        source: ffmpeg_next::Error,
    },
    #[error("{0}")]
    Input(String),
}

pub(crate) fn ff(what: impl Into<String>) -> impl FnOnce(ffmpeg_next::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Ffmpeg { what, source }
}

/// Orders the two tracks' tags by decode time.
#[derive(Debug, Default)]
pub(crate) struct Merger {
    pub video: VecDeque<Tag>,
    pub audio: VecDeque<Tag>,
    pub has_video: bool,
    pub has_audio: bool,
    pub ended: bool,
}

impl Merger {
    fn pop(&mut self) -> Option<Tag> {
        let v = self.video.front().map(|t| t.timestamp_ms);
        let a = self.audio.front().map(|t| t.timestamp_ms);
        match (v, a) {
            (Some(v), Some(a)) if v <= a => self.video.pop_front(),
            (Some(_), Some(_)) => self.audio.pop_front(),
            (Some(_), None) if self.ended || !self.has_audio => self.video.pop_front(),
            (None, Some(_)) if self.ended || !self.has_video => self.audio.pop_front(),
            _ => None,
        }
    }
}

/// A source of FLV tags. Not `Send`-safe across FFmpeg state: create and use it on one thread.
pub struct Source {
    info: SourceInfo,
    producer: Box<dyn pipeline::Producer>,
    headers: VecDeque<Tag>,
    merger: Merger,
    duration_ms: Option<i64>,
    base_ms: Option<i64>,
    done: bool,
}

impl Source {
    /// Opens a file (probing its streams) or builds the test pattern graphs and encoders.
    pub fn open(input: &Input, options: &SourceOptions) -> Result<Source, SourceError> {
        init_ffmpeg();
        let (producer, info, headers) = pipeline::open(input, options)?;
        let merger = Merger {
            has_video: info.has_video,
            has_audio: info.has_audio,
            ..Merger::default()
        };
        Ok(Source {
            info,
            producer,
            headers: headers.into(),
            merger,
            duration_ms: options.duration_ms,
            base_ms: None,
            done: false,
        })
    }

    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// The next tag in decode order; `Ok(None)` at the end (end of file, or the duration
    /// reached). Sequence headers come first, at 0 ms.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, SourceError> {
        if let Some(h) = self.headers.pop_front() {
            return Ok(Some(h));
        }
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(mut t) = self.merger.pop() {
                // Timestamps start at 0 whatever the file's first decode time is.
                let base = *self.base_ms.get_or_insert(t.timestamp_ms);
                t.timestamp_ms = (t.timestamp_ms - base).max(0);
                if let Some(d) = self.duration_ms
                    && t.timestamp_ms >= d
                {
                    self.done = true;
                    return Ok(None);
                }
                return Ok(Some(t));
            }
            if self.merger.ended {
                self.done = true;
                return Ok(None);
            }
            if !self.producer.produce(&mut self.merger)? {
                self.merger.ended = true;
            }
        }
    }
}

impl Iterator for Source {
    type Item = Result<Tag, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tag().transpose()
    }
}

/// Parses `640x360`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size {s:?}: expected WIDTHxHEIGHT"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("size {s:?}: bad width"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("size {s:?}: bad height"))?;
    if !(16..=7680).contains(&w) || !(16..=4320).contains(&h) || w % 2 == 1 || h % 2 == 1 {
        return Err(format!(
            "size {s:?}: width and height must be even, 16x16 to 7680x4320"
        ));
    }
    Ok((w, h))
}

/// Parses a bitrate: `1M`, `800k`, `1500000`.
pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000.0),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000.0),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bitrate {s:?}: expected e.g. 1M or 800k"))?;
    if !v.is_finite() || v <= 0.0 || v * mult > 100e6 {
        return Err(format!("bitrate {s:?} out of range"));
    }
    Ok((v * mult) as u64)
}

/// Parses a duration: `30s`, `2m`, `1h`, `500ms`, or plain seconds. Returns milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (t, 1000.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("duration {s:?} must not be negative"));
    }
    Ok((v * mult).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
        assert!(parse_size("641x360").is_err());
        assert!(parse_size("big").is_err());
        assert_eq!(parse_bitrate("1M"), Ok(1_000_000));
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("2500000"), Ok(2_500_000));
        assert!(parse_bitrate("fast").is_err());
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1.5"), Ok(1500));
        assert!(parse_duration_ms("-1s").is_err());
    }

    #[test]
    fn merger_orders_by_decode_time() {
        let t = |kind, ts| Tag {
            kind,
            timestamp_ms: ts,
            body: Bytes::new(),
            key: true,
            config: false,
        };
        let mut m = Merger {
            has_video: true,
            has_audio: true,
            ..Merger::default()
        };
        m.video
            .extend([t(TagKind::Video, 0), t(TagKind::Video, 33)]);
        m.audio.push_back(t(TagKind::Audio, 21));
        let order: Vec<i64> = std::iter::from_fn(|| m.pop())
            .map(|t| t.timestamp_ms)
            .collect();
        assert_eq!(order, vec![0, 21], "video 33 waits for the next audio tag");
        m.ended = true;
        assert_eq!(m.pop().map(|t| t.timestamp_ms), Some(33));
    }
}
