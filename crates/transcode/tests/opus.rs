//! Opus from a browser becomes AAC: Opus packets made by the ffmpeg CLI (libopus, in Ogg) go
//! through `OpusToAac`; the AAC comes out in an FLV file that ffprobe and ffmpeg read back —
//! the right length, clean, and still a 1 kHz tone. And back: AAC becomes Opus for WebRTC
//! players (`AacToOpus`) in 20 ms packets that decode to the same tone.

mod common;

use common::*;
use vshare_media::{MediaEvent, TrackConfig};
use vshare_testkit::ffmpeg::{ffprobe, stream_of};
use vshare_testkit::process::{run_tool, run_tool_text};
use vshare_transcode::{AacToOpus, OpusToAac};

/// The packets of an Ogg stream (RFC 3533): pages' segments joined until a lacing value < 255.
fn ogg_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while at + 27 <= data.len() {
        assert_eq!(&data[at..at + 4], b"OggS", "page at {at}");
        let segments = usize::from(data[at + 26]);
        let table = &data[at + 27..at + 27 + segments];
        let mut body = at + 27 + segments;
        for &lace in table {
            current.extend_from_slice(&data[body..body + usize::from(lace)]);
            body += usize::from(lace);
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = body;
    }
    packets
}

/// 3 s of a 1 kHz tone as Opus packets (libopus, 20 ms), after the OpusHead.
fn tone_packets(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let ogg = dir.join("tone.ogg");
    let ogg_s = ogg.to_str().expect("path");
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000",
            "-t",
            "3",
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
            "-y",
            ogg_s,
        ],
    );
    ogg_packets(&std::fs::read(&ogg).expect("ogg"))
}

/// Decodes AAC events written to FLV with ffmpeg: the samples (mono, 48 kHz).
fn decode_flv(dir: &std::path::Path, events: &[MediaEvent]) -> Vec<f32> {
    let flv = dir.join("aac.flv");
    write_flv(&flv, events);
    let flv_s = flv.to_str().expect("path");
    let errors = run_tool_text("ffmpeg", &["-v", "error", "-i", flv_s, "-f", "null", "-"]);
    assert_eq!(errors, "");
    let pcm = run_tool(
        "ffmpeg",
        &[
            "-v", "error", "-i", flv_s, "-f", "f32le", "-ac", "1", "-ar", "48000", "-",
        ],
    );
    pcm.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Upward zero crossings over the middle second.
fn tone_hz(samples: &[f32]) -> usize {
    samples[48_000..96_000]
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count()
}

#[test]
fn aac_becomes_opus_in_20_ms_packets_of_the_same_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let packets = tone_packets(dir.path());
    // The tone as AAC (as an RTMP source sends it)...
    let mut to_aac = OpusToAac::new(Some(&packets[0]), 1, 48_000, 96_000).expect("to AAC");
    let aac_config = to_aac.config().clone();
    let mut aac = Vec::new();
    for (i, p) in packets[2..].iter().enumerate() {
        aac.extend(to_aac.push(i as i64 * 20_000, p).expect("to AAC"));
    }
    aac.extend(to_aac.finish());
    // ...becomes Opus for WebRTC.
    let mut to_opus = AacToOpus::new(&aac_config, 64_000).expect("to Opus");
    assert_eq!(to_opus.channels(), 1);
    let mut opus = Vec::new();
    for f in &aac {
        opus.extend(to_opus.push(f.pts, &f.data).expect("to Opus"));
    }
    assert_eq!(to_opus.decode_errors(), 0);
    // 20 ms packets on the capture clock: nearly 3 s of them (the encoder keeps its last).
    assert!(opus.len() >= 145, "{} packets", opus.len());
    let steps: Vec<i64> = opus.windows(2).map(|w| w[1].pts - w[0].pts).collect();
    assert!(steps.iter().all(|d| *d == 20_000), "{steps:?}");
    assert!(
        opus[0].pts.abs() < 30_000,
        "first packet at {} µs",
        opus[0].pts
    );
    // The packets decode (libopus again, through OpusToAac) to the same 1 kHz tone.
    let mut back = OpusToAac::new(None, 1, 48_000, 96_000).expect("decoder");
    let mut events = vec![MediaEvent::Config(TrackConfig::Aac(back.config().clone()))];
    for p in &opus {
        events.extend(
            back.push(p.pts, &p.data)
                .expect("decodes")
                .into_iter()
                .map(MediaEvent::Frame),
        );
    }
    events.extend(back.finish().into_iter().map(MediaEvent::Frame));
    assert_eq!(back.decode_errors(), 0);
    let samples = decode_flv(dir.path(), &events);
    assert!(samples.len() > 2 * 48_000, "{} samples", samples.len());
    let hz = tone_hz(&samples);
    assert!((995..=1005).contains(&hz), "{hz} Hz");
}

#[test]
fn opus_packets_become_aac_of_the_same_length_and_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ogg = dir.path().join("tone.ogg");
    let ogg_s = ogg.to_str().expect("path");
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000",
            "-t",
            "3",
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
            "-y",
            ogg_s,
        ],
    );
    let packets = ogg_packets(&std::fs::read(&ogg).expect("ogg"));
    assert!(packets[0].starts_with(b"OpusHead"));
    assert!(packets[1].starts_with(b"OpusTags"));
    let audio = &packets[2..];
    assert!(audio.len() >= 149, "3 s of 20 ms packets: {}", audio.len());

    let mut conv = OpusToAac::new(Some(&packets[0]), 1, 48_000, 96_000).expect("converter");
    let config = conv.config().clone();
    assert_eq!(config.object_type, 2, "AAC-LC");
    assert_eq!(config.sample_rate, 48_000);
    assert_eq!(config.channels, 1);
    let mut events = vec![MediaEvent::Config(TrackConfig::Aac(config))];
    for (i, p) in audio.iter().enumerate() {
        for f in conv.push(i as i64 * 20_000, p).expect("converts") {
            events.push(MediaEvent::Frame(f));
        }
    }
    events.extend(conv.finish().into_iter().map(MediaEvent::Frame));
    assert_eq!(conv.decode_errors(), 0);
    // Frames keep the capture clock, in order.
    let pts: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Frame(f) => Some(f.pts),
            _ => None,
        })
        .collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "increasing pts");

    let flv = dir.path().join("aac.flv");
    write_flv(&flv, &events);
    let flv_s = flv.to_str().expect("path");
    let p = ffprobe(&flv);
    let a = stream_of(&p, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 1);
    let errors = run_tool_text("ffmpeg", &["-v", "error", "-i", flv_s, "-f", "null", "-"]);
    assert_eq!(errors, "");
    let pcm = run_tool(
        "ffmpeg",
        &[
            "-v", "error", "-i", flv_s, "-f", "f32le", "-ac", "1", "-ar", "48000", "-",
        ],
    );
    let samples: Vec<f32> = pcm
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let seconds = samples.len() as f64 / 48_000.0;
    assert!(
        (seconds - 3.0).abs() < 0.06,
        "decoded length {seconds:.3} s"
    );
    // The tone survives: count upward zero crossings over the middle second.
    let mid = &samples[48_000..96_000];
    let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    assert!((995..=1005).contains(&crossings), "{crossings} Hz");
}
