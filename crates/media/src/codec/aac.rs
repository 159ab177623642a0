//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) — a handful of bit fields; our own reader
//! keeps the crate free of a dependency for ~40 lines.

use bytes::Bytes;

use super::CodecError;

/// Sampling frequencies by index (ISO/IEC 14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// An AudioSpecificConfig and the parameters it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The config as received (the DecoderSpecificInfo of an `esds`).
    pub asc: Bytes,
    /// Audio object type (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS/HE-AACv2).
    pub object_type: u8,
    /// Core sampling rate, Hz: the rate at which the access units are timed.
    pub sample_rate: u32,
    /// Output sampling rate when SBR is signalled explicitly, else the core rate.
    pub output_sample_rate: u32,
    /// Channel configuration (1 = mono, 2 = stereo, … ; 0 = defined in the bitstream).
    pub channels: u8,
    /// PCM samples per access unit at the core rate: 1024, or 960 with frameLengthFlag.
    pub samples_per_frame: u32,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, CodecError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or_else(|| {
                CodecError::Asc(format!(
                    "truncated at bit {} of {}",
                    self.pos,
                    self.data.len() * 8
                ))
            })?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, CodecError> {
        let t = self.read(5)?;
        Ok(if t == 31 { 32 + self.read(6)? } else { t } as u8)
    }

    fn sample_rate(&mut self) -> Result<u32, CodecError> {
        let index = self.read(4)?;
        if index == 15 {
            return self.read(24);
        }
        SAMPLE_RATES
            .get(index as usize)
            .copied()
            .ok_or_else(|| CodecError::Asc(format!("reserved sampling frequency index {index}")))
    }
}

impl AacConfig {
    pub fn parse(asc: Bytes) -> Result<Self, CodecError> {
        let mut r = Bits { data: &asc, pos: 0 };
        let mut object_type = r.object_type()?;
        let sample_rate = r.sample_rate()?;
        let channels = r.read(4)? as u8;
        let mut output_sample_rate = sample_rate;
        let signalled = object_type;
        if object_type == 5 || object_type == 29 {
            output_sample_rate = r.sample_rate()?;
            object_type = r.object_type()?;
        }
        if !matches!(object_type, 1 | 2 | 3 | 4 | 6 | 7) {
            return Err(CodecError::Unsupported(format!(
                "AAC audio object type {object_type}"
            )));
        }
        if sample_rate == 0 {
            return Err(CodecError::Asc("sampling frequency 0".into()));
        }
        let frame_length_flag = r.read(1)?;
        Ok(AacConfig {
            object_type: signalled,
            sample_rate,
            output_sample_rate,
            channels,
            samples_per_frame: if frame_length_flag == 1 { 960 } else { 1024 },
            asc,
        })
    }

    /// `mp4a.40.N` (RFC 6381 §3.3, N the audio object type).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// Duration of one access unit in µs.
    pub fn frame_duration_us(&self) -> f64 {
        f64::from(self.samples_per_frame) * 1e6 / f64::from(self.sample_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_44100_stereo() {
        // 0x12 0x10: AOT 2, index 4 (44100), 2 channels — what ffmpeg's aac encoder writes.
        let c = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).expect("parse");
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 44100, 2));
        assert_eq!(c.samples_per_frame, 1024);
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn lc_48000_mono() {
        let c = AacConfig::parse(Bytes::from_static(&[0x11, 0x88])).expect("parse");
        assert_eq!((c.sample_rate, c.channels), (48000, 1));
    }

    #[test]
    fn he_aac_explicit_sbr() {
        // AOT 5, core 24000 (index 6), stereo, extension 48000 (index 3), underlying AOT 2.
        let c = AacConfig::parse(Bytes::from_static(&[0x2b, 0x11, 0x88, 0x00])).expect("parse");
        assert_eq!(c.object_type, 5);
        assert_eq!((c.sample_rate, c.output_sample_rate), (24000, 48000));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = AacConfig::parse(Bytes::from_static(&[0x12])).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = AacConfig::parse(Bytes::from_static(&[0x16, 0x90])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AudioSpecificConfig: reserved sampling frequency index 13"
        );
    }
}
