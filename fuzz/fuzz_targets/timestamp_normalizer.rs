//! The timestamp normaliser on arbitrary event sequences: each 12-byte record is one event (a
//! kind byte: video frame, audio frame, AVC configuration with a declared rate, AAC
//! configuration; then a DTS step, a composition offset and an arrival step). Whatever comes in,
//! what comes out has strictly increasing DTS and pts ≥ dts per track, and nothing panics.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vshare_media::timestamps::TimestampNormalizer;
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

const RATES: [Option<f64>; 6] = [
    None,
    Some(30.0),
    Some(25.0),
    Some(29.97),
    Some(60.0),
    Some(500.0),
];

fuzz_target!(|data: &[u8]| {
    let mut n = TimestampNormalizer::new();
    let mut out = Vec::new();
    let (mut vdts, mut adts, mut arrival) = (0i64, 0i64, 0i64);
    for r in data.chunks_exact(12) {
        let step = i64::from(i32::from_le_bytes([r[1], r[2], r[3], r[4]]));
        let cts = i64::from(i16::from_le_bytes([r[5], r[6]])) * 100;
        arrival += i64::from(u16::from_le_bytes([r[7], r[8]])) * 10;
        let wide = r[9] & 0x80 != 0;
        let step = if wide {
            step.saturating_mul(1 << 20)
        } else {
            step
        };
        let event = match r[0] % 4 {
            0 => {
                vdts = vdts.saturating_add(step);
                MediaEvent::Frame(Frame {
                    track: TrackKind::Video,
                    pts: vdts.saturating_add(cts),
                    dts: vdts,
                    key: r[10] & 1 == 1,
                    data: Bytes::from_static(&[1]),
                })
            }
            1 => {
                adts = adts.saturating_add(step);
                MediaEvent::Frame(Frame {
                    track: TrackKind::Audio,
                    pts: adts,
                    dts: adts,
                    key: true,
                    data: Bytes::from_static(&[1]),
                })
            }
            2 => MediaEvent::Config(TrackConfig::Avc(AvcConfig {
                record: Bytes::new(),
                width: 640,
                height: 360,
                frame_rate: RATES[usize::from(r[11]) % RATES.len()],
                profile_idc: 66,
                constraint_flags: 0,
                level_idc: 30,
                nal_length_size: 4,
            })),
            _ => {
                // Sampling-frequency index in the top bits of r[11]; LC, stereo.
                let asc = [0x10 | ((r[11] >> 1) & 0x07), ((r[11] & 1) << 7) | 0x10];
                match AacConfig::parse(Bytes::copy_from_slice(&asc)) {
                    Ok(c) => MediaEvent::Config(TrackConfig::Aac(c)),
                    Err(_) => continue,
                }
            }
        };
        out.extend(n.push(event, arrival));
    }
    out.extend(n.finish());
    let mut last = [None::<i64>; 2];
    for (e, _) in out {
        if let MediaEvent::Frame(f) = e {
            let i = usize::from(f.track == TrackKind::Audio);
            assert!(f.pts >= f.dts, "pts {} < dts {}", f.pts, f.dts);
            if let Some(l) = last[i] {
                assert!(f.dts > l, "{:?} dts {} after {l}", f.track, f.dts);
            }
            last[i] = Some(f.dts);
        }
    }
});
