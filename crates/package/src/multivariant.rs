//! The HLS multivariant playlist (RFC 8216bis §4.4.6) and the meter that measures what it
//! declares. A few lines of text, written by us like the media playlists.
//!
//! Every attribute is measured from a rendition's encoded output, never taken from the ladder
//! configuration: BANDWIDTH is the peak bitrate of any segment, AVERAGE-BANDWIDTH the bits over
//! the whole duration (§4.4.6.2), RESOLUTION and FRAME-RATE come from the output SPS (or the
//! frame timestamps when the SPS has no timing), CODECS from the codec configurations
//! (RFC 6381).

use std::fmt::Write as _;

use vshare_media::{MediaEvent, TrackConfig, TrackKind};

/// One rendition as the multivariant playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The media playlist of this rendition, relative to the multivariant playlist.
    pub uri: String,
    /// Peak segment bitrate, bits/s (BANDWIDTH, RFC 8216bis §4.4.6.2).
    pub bandwidth: u64,
    /// Average bitrate, bits/s (AVERAGE-BANDWIDTH).
    pub average_bandwidth: u64,
    /// Picture size (RESOLUTION); 0×0 for audio only (then RESOLUTION and FRAME-RATE are left out).
    pub width: u32,
    pub height: u32,
    /// FRAME-RATE, written with three decimals.
    pub frame_rate: f64,
    /// RFC 6381 codec strings, comma-separated (CODECS).
    pub codecs: String,
}

/// The multivariant playlist text for `variants`, in the order given.
pub fn multivariant_playlist(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            v.bandwidth.max(1),
            v.average_bandwidth.max(1),
            v.codecs.replace('"', "")
        );
        if v.width > 0 && v.height > 0 {
            let _ = write!(out, ",RESOLUTION={}x{}", v.width, v.height);
            if v.frame_rate.is_finite() && v.frame_rate > 0.0 {
                let _ = write!(out, ",FRAME-RATE={:.3}", v.frame_rate);
            }
        }
        let _ = writeln!(out, "\n{}", v.uri.replace(['\n', '\r'], ""));
    }
    out
}

/// Measures one rendition's output (its MediaEvents) for its [`Variant`] line.
///
/// Segments are cut like the packager cuts them: at the first video keyframe once the target
/// duration has passed (audio-only: at the target). Bits are the frames' payload bytes.
#[derive(Debug, Clone)]
pub struct VariantMeter {
    segment_target_us: i64,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    width: u32,
    height: u32,
    sps_frame_rate: Option<f64>,
    has_video: bool,
    segment_start: Option<i64>,
    segment_bits: u64,
    peak: f64,
    total_bits: u64,
    first_ts: Option<i64>,
    last_end: i64,
    /// Decode time of the last lead-track frame and the interval before it (the duration the
    /// last frame is given).
    last_lead: Option<i64>,
    lead_interval: i64,
    video_frames: u64,
    first_video: Option<i64>,
    last_video: i64,
}

impl VariantMeter {
    /// `segment_target_us`: the packager's segment target (2 s by default).
    pub fn new(segment_target_us: i64) -> Self {
        VariantMeter {
            segment_target_us: segment_target_us.max(1),
            video_codec: None,
            audio_codec: None,
            width: 0,
            height: 0,
            sps_frame_rate: None,
            has_video: false,
            segment_start: None,
            segment_bits: 0,
            peak: 0.0,
            total_bits: 0,
            first_ts: None,
            last_end: 0,
            last_lead: None,
            lead_interval: 0,
            video_frames: 0,
            first_video: None,
            last_video: 0,
        }
    }

    fn close_segment(&mut self, at: i64) {
        if let Some(start) = self.segment_start
            && at > start
        {
            let rate = self.segment_bits as f64 * 1e6 / (at - start) as f64;
            self.peak = self.peak.max(rate);
        }
        self.segment_start = Some(at);
        self.segment_bits = 0;
    }

    /// Feeds one output event of the rendition.
    pub fn push(&mut self, event: &MediaEvent) {
        match event {
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                self.video_codec = Some(c.codec_string());
                self.width = c.width;
                self.height = c.height;
                self.sps_frame_rate = c.frame_rate;
                self.has_video = true;
            }
            MediaEvent::Config(TrackConfig::Aac(c)) => self.audio_codec = Some(c.codec_string()),
            MediaEvent::Frame(f) => {
                let lead = if self.has_video {
                    f.track == TrackKind::Video
                } else {
                    true
                };
                if lead {
                    if let Some(prev) = self.last_lead
                        && f.dts > prev
                    {
                        self.lead_interval = f.dts - prev;
                    }
                    self.last_lead = Some(f.dts);
                    match self.segment_start {
                        None => self.segment_start = Some(f.dts),
                        Some(s) => {
                            let boundary = if self.has_video { f.key } else { true };
                            if boundary && f.dts - s >= self.segment_target_us {
                                self.close_segment(f.dts);
                            }
                        }
                    }
                }
                if f.track == TrackKind::Video {
                    self.video_frames += 1;
                    self.first_video.get_or_insert(f.pts);
                    self.last_video = self.last_video.max(f.pts);
                }
                let bits = f.data.len() as u64 * 8;
                self.segment_bits += bits;
                self.total_bits += bits;
                self.first_ts = Some(self.first_ts.map_or(f.dts, |t| t.min(f.dts)));
                self.last_end = self.last_end.max(f.dts);
            }
        }
    }

    /// Frame rate from the frame timestamps (frames per second over the span).
    pub fn measured_frame_rate(&self) -> Option<f64> {
        let first = self.first_video?;
        (self.video_frames > 1 && self.last_video > first)
            .then(|| (self.video_frames - 1) as f64 * 1e6 / (self.last_video - first) as f64)
    }

    /// End of the media seen: the last decode time plus one frame interval, µs.
    fn end(&self) -> i64 {
        self.last_end + self.lead_interval
    }

    /// Average bits per second over everything seen.
    pub fn average_bitrate(&self) -> u64 {
        let Some(first) = self.first_ts else { return 0 };
        let span = self.end() - first;
        if span <= 0 {
            return 0;
        }
        (self.total_bits as f64 * 1e6 / span as f64).round() as u64
    }

    /// The variant line for what was measured so far; `None` before any frame.
    pub fn variant(&self, uri: &str) -> Option<Variant> {
        self.first_ts?;
        let average = self.average_bitrate();
        // The open segment counts once it is at least half the target (RFC 8216bis §4.4.6.2).
        let mut peak = self.peak;
        if let Some(s) = self.segment_start {
            let d = self.end() - s;
            if d > 0 && (d * 2 >= self.segment_target_us || peak == 0.0) {
                peak = peak.max(self.segment_bits as f64 * 1e6 / d as f64);
            }
        }
        let codecs: Vec<&str> = [self.video_codec.as_deref(), self.audio_codec.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        Some(Variant {
            uri: uri.to_string(),
            bandwidth: (peak.round() as u64).max(average),
            average_bandwidth: average,
            width: self.width,
            height: self.height,
            frame_rate: self
                .sps_frame_rate
                .or_else(|| self.measured_frame_rate())
                .unwrap_or(0.0),
            codecs: codecs.join(","),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use vshare_media::{AacConfig, Frame};

    use super::*;

    #[test]
    fn playlist_text() {
        let v = [
            Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 2_800_000,
                average_bandwidth: 2_500_000,
                width: 1280,
                height: 720,
                frame_rate: 30.0,
                codecs: "avc1.64001F,mp4a.40.2".into(),
            },
            Variant {
                uri: "audio/index.m3u8".into(),
                bandwidth: 130_000,
                average_bandwidth: 128_000,
                width: 0,
                height: 0,
                frame_rate: 0.0,
                codecs: "mp4a.40.2".into(),
            },
        ];
        assert_eq!(
            multivariant_playlist(&v),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2800000,AVERAGE-BANDWIDTH=2500000,CODECS=\"avc1.64001F,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\n\
             720p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\n\
             audio/index.m3u8\n"
        );
    }

    fn frame(track: TrackKind, ts: i64, key: bool, len: usize) -> MediaEvent {
        MediaEvent::Frame(Frame {
            track,
            pts: ts,
            dts: ts,
            key,
            data: Bytes::from(vec![0u8; len]),
        })
    }

    #[test]
    fn meter_measures_peak_and_average() {
        let mut m = VariantMeter::new(1_000_000);
        assert_eq!(m.variant("a.m3u8"), None);
        m.push(&MediaEvent::Config(TrackConfig::Aac(
            AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc"),
        )));
        // Audio only, 4 s: 1000 bytes every 100 ms for 2 s, then 3000 bytes: 80 kb/s then 240 kb/s.
        for i in 0..40 {
            let len = if i < 20 { 1000 } else { 3000 };
            m.push(&frame(TrackKind::Audio, i * 100_000, true, len));
        }
        let v = m.variant("a.m3u8").expect("variant");
        assert_eq!(v.codecs, "mp4a.40.2");
        assert_eq!((v.width, v.height), (0, 0));
        // 80 000 bytes * 8 over 4 s.
        assert_eq!(v.average_bandwidth, 160_000);
        assert_eq!(v.bandwidth, 240_000);
    }
}
