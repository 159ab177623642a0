//! Codec configurations, parsed once into a typed description the rest of vshare reads.

mod aac;
mod avc;
pub mod hevc;

pub use aac::AacConfig;
pub use avc::AvcConfig;
pub use hevc::HevcConfig;

use crate::TrackKind;

/// Why a codec configuration could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("AVCDecoderConfigurationRecord: {0}")]
    AvcRecord(String),
    #[error("AVC SPS: {0}")]
    Sps(String),
    #[error("HEVCDecoderConfigurationRecord: {0}")]
    HevcRecord(String),
    #[error("HEVC SPS: {0}")]
    HevcSps(String),
    #[error("AudioSpecificConfig: {0}")]
    Asc(String),
    #[error("unsupported codec: {0}")]
    Unsupported(String),
}

/// The decoder configuration of one track.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackConfig {
    Avc(AvcConfig),
    Aac(AacConfig),
}

impl TrackConfig {
    pub fn kind(&self) -> TrackKind {
        match self {
            TrackConfig::Avc(_) => TrackKind::Video,
            TrackConfig::Aac(_) => TrackKind::Audio,
        }
    }

    /// RFC 6381 codec string, as HLS CODECS and MIME types want it.
    pub fn codec_string(&self) -> String {
        match self {
            TrackConfig::Avc(c) => c.codec_string(),
            TrackConfig::Aac(c) => c.codec_string(),
        }
    }
}
