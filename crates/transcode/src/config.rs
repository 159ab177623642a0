//! The ladder as data: which renditions to make, at what size, bitrate and encoder.

use serde::Deserialize;

/// The renditions made from one live stream.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct LadderConfig {
    /// Transcoded renditions, best first.
    pub renditions: Vec<RenditionSpec>,
    /// The source itself is offered as a rendition too (packaged as received, never transcoded:
    /// the caller feeds it to its packager directly, outside the transcoder).
    pub passthrough: bool,
}

/// One rung of the ladder.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct RenditionSpec {
    /// Name used in URIs and logs (`720p`).
    pub name: String,
    /// Output picture height in pixels; the width follows the source's aspect ratio (even).
    pub height: u32,
    /// Target video bitrate, bits per second (also the VBV maximum rate).
    pub video_bitrate: u64,
    /// AAC bitrate, bits per second (48 kHz stereo).
    pub audio_bitrate: u64,
    /// FFmpeg encoder name: `libx264` (default), `h264_nvenc`, `h264_vaapi`, …
    #[serde(default)]
    pub encoder: Option<String>,
    /// Encoder speed preset (`veryfast` default for libx264).
    #[serde(default)]
    pub preset: Option<String>,
}

impl RenditionSpec {
    fn new(name: &str, height: u32, video_bitrate: u64, audio_bitrate: u64) -> Self {
        RenditionSpec {
            name: name.into(),
            height,
            video_bitrate,
            audio_bitrate,
            encoder: None,
            preset: None,
        }
    }

    /// The FFmpeg encoder this rung uses.
    pub fn encoder_name(&self) -> &str {
        self.encoder.as_deref().unwrap_or("libx264")
    }
}

impl LadderConfig {
    /// A named preset: `default` (source + 720p/480p/240p where smaller than the source, AAC
    /// 128k/64k), `phone` (source + 360p and 240p at low bitrates), `none` (source only).
    pub fn preset(name: &str) -> Option<Self> {
        let renditions = match name {
            "default" => vec![
                RenditionSpec::new("720p", 720, 2_500_000, 128_000),
                RenditionSpec::new("480p", 480, 1_000_000, 128_000),
                RenditionSpec::new("240p", 240, 300_000, 64_000),
            ],
            "phone" => vec![
                RenditionSpec::new("360p", 360, 500_000, 64_000),
                RenditionSpec::new("240p", 240, 200_000, 48_000),
            ],
            "none" => Vec::new(),
            _ => return None,
        };
        Some(LadderConfig {
            renditions,
            passthrough: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_json() {
        assert_eq!(
            LadderConfig::preset("default").map(|c| c.renditions.len()),
            Some(3)
        );
        assert_eq!(
            LadderConfig::preset("phone").map(|c| c.renditions.len()),
            Some(2)
        );
        assert_eq!(
            LadderConfig::preset("none").map(|c| c.renditions.len()),
            Some(0)
        );
        assert!(LadderConfig::preset("x").is_none());
        let c: LadderConfig = serde_json::from_str(
            r#"{"passthrough":false,"renditions":[{"name":"360p","height":360,
                "video_bitrate":600000,"audio_bitrate":64000,"encoder":"h264_nvenc"}]}"#,
        )
        .expect("json");
        assert_eq!(c.renditions[0].encoder_name(), "h264_nvenc");
        assert_eq!(c.renditions[0].preset, None);
    }
}
