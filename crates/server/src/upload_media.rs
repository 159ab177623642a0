//! The upload adapter's media: what a track announces becomes a track configuration (Opus
//! becomes AAC, for HLS and MP4 players), and what a frame carries becomes media events.

use bytes::Bytes;
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};
use vshare_transcode::OpusToAac;
use vshare_upload::{CloseCode, ProtocolError, TrackInfo, UploadFrame};

use super::Session;

/// AAC bitrate for converted Opus audio, bit/s.
const CONVERTED_AAC_BITRATE: u64 = 96_000;
/// How a track's frames become media events.
pub(super) enum AudioPath {
    Aac,
    Opus(Box<OpusToAac>),
}

pub(super) fn unsupported(m: impl Into<String>) -> ProtocolError {
    ProtocolError::new(CloseCode::Unsupported, m)
}

/// The media configuration a track announces.
pub(super) fn track_config(
    info: &TrackInfo,
) -> Result<(Option<TrackConfig>, Option<AudioPath>), ProtocolError> {
    let description = info.description_bytes()?;
    if info.is_video() {
        if !info.codec.starts_with("avc1") && !info.codec.starts_with("avc3") {
            return Err(unsupported(format!(
                "video codec {:?}; this server takes H.264 (avc1)",
                info.codec
            )));
        }
        let record =
            description.ok_or_else(|| unsupported("an H.264 track needs its avcC description"))?;
        let c = AvcConfig::parse(Bytes::from(record))
            .map_err(|e| unsupported(format!("H.264 description: {e}")))?;
        return Ok((Some(TrackConfig::Avc(c)), None));
    }
    match info.codec.as_str() {
        c if c.starts_with("mp4a.40") => {
            let asc = description
                .ok_or_else(|| unsupported("an AAC track needs its AudioSpecificConfig"))?;
            let c = AacConfig::parse(Bytes::from(asc))
                .map_err(|e| unsupported(format!("AAC description: {e}")))?;
            Ok((Some(TrackConfig::Aac(c)), Some(AudioPath::Aac)))
        }
        "opus" => {
            let conv = OpusToAac::new(
                description.as_deref(),
                info.channels.unwrap_or(1),
                info.sample_rate.unwrap_or(48_000),
                CONVERTED_AAC_BITRATE,
            )
            .map_err(|e| unsupported(format!("Opus to AAC: {e}")))?;
            let c = conv.config().clone();
            Ok((
                Some(TrackConfig::Aac(c)),
                Some(AudioPath::Opus(Box::new(conv))),
            ))
        }
        other => Err(unsupported(format!(
            "audio codec {other:?}; this server takes AAC (mp4a.40.2) or Opus"
        ))),
    }
}

pub(super) fn frame_events(
    s: &mut Session,
    f: UploadFrame,
) -> Result<Vec<MediaEvent>, ProtocolError> {
    if Some(f.track) == s.video_track {
        return Ok(vec![MediaEvent::Frame(Frame {
            track: TrackKind::Video,
            pts: f.pts,
            dts: f.dts,
            key: f.key,
            data: f.data,
        })]);
    }
    if Some(f.track) != s.audio_track {
        return Ok(Vec::new());
    }
    match &mut s.audio {
        AudioPath::Aac => Ok(vec![MediaEvent::Frame(Frame {
            track: TrackKind::Audio,
            pts: f.pts,
            dts: f.pts,
            key: true,
            data: f.data,
        })]),
        AudioPath::Opus(conv) => Ok(conv
            .push(f.pts, &f.data)
            .map_err(|e| unsupported(format!("Opus frame {}: {e}", f.seq)))?
            .into_iter()
            .map(MediaEvent::Frame)
            .collect()),
    }
}
