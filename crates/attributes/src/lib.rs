//! The video attribute record (the patent's "video attribute data"): publish address, format,
//! codecs, size, resolution, frame rate, bitrate and duration of a live stream or a VOD file.
//!
//! The server measures every field from the bitstream and the bytes it wrote; the message forms
//! (TLV, XML, text) that carry a record to a phone live in [`forms`].

pub mod forms;

use serde::{Deserialize, Serialize};

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A live stream, playable while the source films.
    Live,
    /// An on-demand file.
    Vod,
}

/// Attributes of one live stream or one VOD file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeRecord {
    pub kind: Kind,
    /// Stable id of the video (the recording this stream produces).
    pub video_id: String,
    /// Where to fetch or play it (absolute URL).
    pub url: String,
    /// A picture of the video (absolute URL of a JPEG), empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub poster: String,
    /// Container / delivery format: `hls`, `ll-hls`, `mp4`, …
    pub format: String,
    /// RFC 6381 codec strings, comma-separated (`avc1.64001F,mp4a.40.2`).
    pub codecs: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
    /// Average total bitrate, bits per second.
    pub bitrate: u64,
    /// File size in bytes (VOD), or bytes published so far (live).
    pub size: u64,
    /// Duration in milliseconds (VOD), or so far (live).
    pub duration_ms: u64,
    /// Seconds of the DVR window a live stream offers (how far back a viewer can rewind while
    /// it is live); 0: none. Always 0 on VOD records.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dvr: u64,
    /// Frames the recording still waits for (the upload protocol's backfill: frames the live
    /// send dropped, sent late); 0: nothing more is coming, the VOD is complete as it is.
    /// Always 0 on live records.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frames_coming: u64,
    /// Audio sample rate in Hz, 0 without audio.
    pub audio_sample_rate: u32,
    /// Audio channels, 0 without audio.
    pub audio_channels: u8,
    /// Title the source gave, may be empty.
    pub title: String,
}

/// Zero fields that newer versions added are left out of JSON, as older readers knew it.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl AttributeRecord {
    /// A record with every field empty or zero, for decoders to fill in.
    pub fn blank(kind: Kind) -> Self {
        AttributeRecord {
            kind,
            video_id: String::new(),
            url: String::new(),
            poster: String::new(),
            format: String::new(),
            codecs: String::new(),
            width: 0,
            height: 0,
            frame_rate: 0.0,
            bitrate: 0,
            size: 0,
            duration_ms: 0,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: 0,
            audio_channels: 0,
            title: String::new(),
        }
    }
}
