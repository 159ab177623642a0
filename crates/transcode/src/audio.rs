//! Audio between the two codecs of our sources and players: Opus from a browser's WebCodecs
//! AudioEncoder becomes AAC-LC, so the live stream and the VOD stay H.264 + AAC
//! ([`OpusToAac`]); AAC from RTMP becomes Opus for WebRTC players, who take no AAC
//! ([`AacToOpus`], once per stream, never per viewer).

use bytes::Bytes;
use ff::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::{AacConfig, Frame, TrackKind};

use crate::TranscodeError;
use crate::av::{AudioConverter, AudioEncoder, Decoded, Decoders, Packet};

/// Decodes Opus packets and encodes them again as AAC-LC at 48 kHz, keeping the capture clock.
pub struct OpusToAac {
    decoders: Decoders,
    converter: AudioConverter,
    encoder: AudioEncoder,
    config: AacConfig,
}

/// An `OpusHead` (RFC 7845 §5.1) for a source that sent no description of its own.
pub fn opus_head(channels: u8, input_sample_rate: u32) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&input_sample_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

impl OpusToAac {
    /// `head` is the source's `OpusHead`, if it sent one; `channels` and `sample_rate` are used
    /// when it did not. The AAC output is mono or stereo like the source.
    pub fn new(
        head: Option<&[u8]>,
        channels: u8,
        sample_rate: u32,
        bitrate: u64,
    ) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let channels = channels.clamp(1, 2);
        let head = match head {
            Some(h) if h.starts_with(b"OpusHead") => h.to_vec(),
            _ => opus_head(channels, sample_rate.max(8000)),
        };
        let mut decoders = Decoders::new();
        decoders.open_audio_codec(ff::codec::Id::OPUS, &head)?;
        let layout = if channels == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        };
        let fltp = ff::format::Sample::F32(ff::format::sample::Type::Planar);
        let encoder = AudioEncoder::open("aac", bitrate, fltp, layout, true)?.with_capture_times();
        let config = AacConfig::parse(Bytes::from(encoder.global_header.clone()))
            .map_err(|e| TranscodeError::Config(format!("the AAC encoder's configuration: {e}")))?;
        Ok(OpusToAac {
            decoders,
            converter: AudioConverter::new(fltp, layout, encoder.frame_size),
            encoder,
            config,
        })
    }

    /// The AAC configuration of the frames that come out.
    pub fn config(&self) -> &AacConfig {
        &self.config
    }

    /// One Opus packet with its capture pts (µs); returns the AAC frames ready so far. A packet
    /// the decoder refuses is skipped (counted in [`Self::decode_errors`]).
    pub fn push(&mut self, pts_us: i64, data: &[u8]) -> Result<Vec<Frame>, TranscodeError> {
        let frame = Frame {
            track: TrackKind::Audio,
            pts: pts_us,
            dts: pts_us,
            key: true,
            data: Bytes::copy_from_slice(data),
        };
        let mut out = Vec::new();
        let mut error = None;
        let OpusToAac {
            decoders,
            converter,
            encoder,
            ..
        } = self;
        decoders.push(&frame, &mut |d| {
            if let Decoded::Audio(af, pts) = d
                && let Err(e) = convert(converter, encoder, af, pts, &mut out)
            {
                error.get_or_insert(e);
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(out.iter().map(to_frame).collect()),
        }
    }

    /// Flushes the decoder, resampler and encoder at the end of the stream.
    pub fn finish(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        let OpusToAac {
            decoders,
            converter,
            encoder,
            ..
        } = self;
        decoders.flush_audio(&mut |d| {
            if let Decoded::Audio(af, pts) = d {
                let _ = convert(converter, encoder, af, pts, &mut out);
            }
        });
        converter.flush(&mut |conv| {
            let _ = encoder.encode(conv, &mut out);
        });
        encoder.finish(&mut out);
        out.iter().map(to_frame).collect()
    }

    pub fn decode_errors(&self) -> u64 {
        self.decoders.errors
    }
}

/// Decodes AAC frames and encodes them again as Opus (libopus) at 48 kHz in 20 ms packets,
/// keeping the capture clock: the audio of a live stream for WebRTC players.
pub struct AacToOpus {
    decoders: Decoders,
    converter: AudioConverter,
    encoder: AudioEncoder,
    channels: u8,
}

impl AacToOpus {
    /// Opus output is mono or stereo like the source (more channels are down-mixed to stereo).
    pub fn new(config: &AacConfig, bitrate: u64) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let mut decoders = Decoders::new();
        decoders.open_audio(&config.asc)?;
        let (layout, channels) = if config.channels == 1 {
            (ChannelLayout::MONO, 1)
        } else {
            (ChannelLayout::STEREO, 2)
        };
        // libopus takes interleaved samples; its frame size is 960 at 48 kHz (20 ms).
        let flt = ff::format::Sample::F32(ff::format::sample::Type::Packed);
        let encoder =
            AudioEncoder::open("libopus", bitrate, flt, layout, false)?.with_capture_times();
        Ok(AacToOpus {
            decoders,
            converter: AudioConverter::new(flt, layout, encoder.frame_size),
            encoder,
            channels,
        })
    }

    /// Channels of the Opus packets (1 or 2).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// One raw AAC frame with its capture pts (µs); returns the Opus packets ready so far as
    /// frames (pts µs, data one Opus packet). A frame the decoder refuses is skipped (counted in
    /// [`Self::decode_errors`]).
    pub fn push(&mut self, pts_us: i64, data: &[u8]) -> Result<Vec<Frame>, TranscodeError> {
        let frame = Frame {
            track: TrackKind::Audio,
            pts: pts_us,
            dts: pts_us,
            key: true,
            data: Bytes::copy_from_slice(data),
        };
        let mut out = Vec::new();
        let mut error = None;
        let AacToOpus {
            decoders,
            converter,
            encoder,
            ..
        } = self;
        decoders.push(&frame, &mut |d| {
            if let Decoded::Audio(af, pts) = d
                && let Err(e) = convert(converter, encoder, af, pts, &mut out)
            {
                error.get_or_insert(e);
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(out.iter().map(to_frame).collect()),
        }
    }

    pub fn decode_errors(&self) -> u64 {
        self.decoders.errors
    }
}

fn convert(
    converter: &mut AudioConverter,
    encoder: &mut AudioEncoder,
    af: &mut ff::frame::Audio,
    pts: i64,
    out: &mut Vec<Packet>,
) -> Result<(), TranscodeError> {
    let mut result = Ok(());
    converter.push(af, pts, &mut |conv| {
        if result.is_ok() {
            result = encoder.encode(conv, out);
        }
    })?;
    result
}

fn to_frame(p: &Packet) -> Frame {
    Frame {
        track: TrackKind::Audio,
        pts: p.pts,
        dts: p.pts,
        key: true,
        data: p.data.clone(),
    }
}
