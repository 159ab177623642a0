//! What a stream is, measured from its configurations and frames: the attribute data the
//! server returns (picture, sound, frame rate, size, bitrate), and the VOD records built from it.

use vshare_attributes::{AttributeRecord, Kind};
use vshare_media::{AacConfig, AvcConfig, MediaEvent, TrackConfig, TrackKind};

/// Measured facts about a stream, from its configurations and the frames seen.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    pub video: Option<AvcConfig>,
    pub audio: Option<AacConfig>,
    pub media_bytes: u64,
    video_frames: u64,
    first_video_dts: Option<i64>,
    last_video_dts: i64,
    first_dts: Option<i64>,
    last_dts: i64,
    /// The largest picture (by area) of every video configuration seen, as the VOD MP4's
    /// track header announces it.
    largest_picture: Option<(u32, u32)>,
}

impl Measured {
    pub fn observe(&mut self, event: &MediaEvent) {
        match event {
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
                if self
                    .largest_picture
                    .is_none_or(|l| area(l) < area((c.width, c.height)))
                {
                    self.largest_picture = Some((c.width, c.height));
                }
                self.video = Some(c.clone());
            }
            MediaEvent::Config(TrackConfig::Aac(c)) => self.audio = Some(c.clone()),
            MediaEvent::Frame(f) => {
                self.media_bytes += f.data.len() as u64;
                self.first_dts.get_or_insert(f.dts);
                self.last_dts = self.last_dts.max(f.dts);
                if f.track == TrackKind::Video {
                    self.video_frames += 1;
                    self.first_video_dts.get_or_insert(f.dts);
                    self.last_video_dts = f.dts;
                }
            }
        }
    }

    /// Frames per second: the SPS VUI timing when present, else counted from timestamps.
    pub fn frame_rate(&self) -> f64 {
        if let Some(fps) = self.video.as_ref().and_then(|v| v.frame_rate) {
            return fps;
        }
        let span = self.last_video_dts - self.first_video_dts.unwrap_or(self.last_video_dts);
        if span <= 0 || self.video_frames < 2 {
            return 0.0;
        }
        (self.video_frames - 1) as f64 * 1e6 / span as f64
    }

    fn codecs(&self) -> String {
        let mut c = Vec::new();
        if let Some(v) = &self.video {
            c.push(TrackConfig::Avc(v.clone()).codec_string());
        }
        if let Some(a) = &self.audio {
            c.push(TrackConfig::Aac(a.clone()).codec_string());
        }
        c.join(",")
    }

    #[cfg(test)]
    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    pub fn duration_us(&self) -> i64 {
        self.last_dts - self.first_dts.unwrap_or(self.last_dts)
    }

    /// The live record: the measured picture and sound, the bytes so far and their bitrate.
    pub fn live_record(&self, video_id: &str, url: String, title: &str) -> AttributeRecord {
        let mut rec = self.record(Kind::Live, video_id, url, "ll-hls", title);
        let duration = self.duration_us();
        rec.size = self.media_bytes;
        rec.duration_ms = (duration / 1000).max(0) as u64;
        rec.bitrate = bitrate(self.media_bytes, duration);
        rec
    }

    /// The template of a recorded file's records: as [`record`](Self::record), with the
    /// largest picture of a stream whose picture size changed.
    pub fn vod_template(&self, video_id: &str, title: &str) -> AttributeRecord {
        let mut r = self.record(Kind::Vod, video_id, String::new(), "", title);
        if let Some((w, h)) = self.largest_picture {
            (r.width, r.height) = (w, h);
        }
        r
    }

    /// A record of this stream with the measured picture and sound.
    pub fn record(
        &self,
        kind: Kind,
        video_id: &str,
        url: String,
        format: &str,
        title: &str,
    ) -> AttributeRecord {
        AttributeRecord {
            kind,
            video_id: video_id.to_string(),
            url,
            poster: String::new(),
            format: format.to_string(),
            codecs: self.codecs(),
            width: self.video.as_ref().map_or(0, |v| v.width),
            height: self.video.as_ref().map_or(0, |v| v.height),
            frame_rate: round3(self.frame_rate()),
            bitrate: 0,
            size: 0,
            duration_ms: 0,
            dvr: 0,
            frames_coming: 0,
            audio_sample_rate: self.audio.as_ref().map_or(0, |a| a.output_sample_rate),
            audio_channels: self.audio.as_ref().map_or(0, |a| a.channels),
            title: title.to_string(),
        }
    }
}

/// The sizes of one rendition's recording, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingSizes {
    pub mp4: u64,
    /// Every init segment and segment of the HLS VOD.
    pub hls: u64,
    pub duration_us: i64,
}

/// The VOD records of one rendition (its fast-start MP4 and its HLS VOD under `base_url`),
/// from a template with the picture and sound: the measured one of a finished session, or the
/// live record stored before a crash.
pub fn vod_records(
    template: &AttributeRecord,
    base_url: &str,
    sizes: RecordingSizes,
) -> Vec<AttributeRecord> {
    [
        ("mp4", "video.mp4", sizes.mp4),
        ("hls", "index.m3u8", sizes.hls),
    ]
    .into_iter()
    .map(|(format, file, size)| AttributeRecord {
        kind: Kind::Vod,
        url: format!("{base_url}{file}"),
        format: format.to_string(),
        size,
        duration_ms: (sizes.duration_us / 1000).max(0) as u64,
        // A recording has no DVR window (the template may be a live record).
        dvr: 0,
        frames_coming: 0,
        bitrate: bitrate(size, sizes.duration_us),
        ..template.clone()
    })
    .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Bits per second of `size` bytes over `duration_us`; 0 for no duration.
pub fn bitrate(size: u64, duration_us: i64) -> u64 {
    if duration_us <= 0 {
        return 0;
    }
    (size as f64 * 8.0 * 1e6 / duration_us as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vod_records_carry_the_template_and_their_own_sizes() {
        let template = Measured::default().vod_template("v1", "walk");
        let records = vod_records(
            &template,
            "https://h/vod/v1/",
            RecordingSizes {
                mp4: 1_000_000,
                hls: 1_010_000,
                duration_us: 8_000_000,
            },
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].url, "https://h/vod/v1/video.mp4");
        assert_eq!(records[0].format, "mp4");
        assert_eq!(records[0].bitrate, 1_000_000);
        assert_eq!(records[1].url, "https://h/vod/v1/index.m3u8");
        assert_eq!(records[1].format, "hls");
        assert_eq!(records[1].size, 1_010_000);
        assert!(
            records
                .iter()
                .all(|r| r.duration_ms == 8000 && r.kind == Kind::Vod && r.title == "walk")
        );
    }

    #[test]
    fn the_frame_rate_is_counted_when_the_sps_does_not_say() {
        let mut m = Measured::default();
        for i in 0..31 {
            m.observe(&MediaEvent::Frame(vshare_media::Frame {
                track: TrackKind::Video,
                pts: i * 40_000,
                dts: i * 40_000,
                key: i == 0,
                data: bytes::Bytes::from_static(&[0; 10]),
            }));
        }
        assert_eq!(m.frame_rate(), 25.0);
        assert_eq!(m.duration_us(), 1_200_000);
        assert_eq!(m.media_bytes, 310);
        let live = m.live_record("v", "u".into(), "t");
        assert_eq!(live.bitrate, 2067);
        assert_eq!(bitrate(1, 0), 0);
    }
}
