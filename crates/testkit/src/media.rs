//! Codec configurations for hand-built streams: the same avcC and AudioSpecificConfig in every
//! crate's tests.

use bytes::Bytes;
use vshare_media::{AacConfig, AvcConfig, MediaEvent, TrackConfig};

/// The avcC of a 1280x720 30 fps x264 encode (High profile, level 3.1).
pub const AVCC_720P30: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
];

/// The AudioSpecificConfig of AAC-LC, 44.1 kHz, stereo.
pub const ASC_44100_STEREO: &[u8] = &[0x12, 0x10];

/// [`AVCC_720P30`] as a configuration event.
pub fn video_config() -> MediaEvent {
    MediaEvent::Config(TrackConfig::Avc(
        AvcConfig::parse(Bytes::from_static(AVCC_720P30)).expect("avcC"),
    ))
}

/// [`ASC_44100_STEREO`] as a configuration event.
pub fn audio_config() -> MediaEvent {
    MediaEvent::Config(TrackConfig::Aac(
        AacConfig::parse(Bytes::from_static(ASC_44100_STEREO)).expect("asc"),
    ))
}
