//! Opus from a browser becomes AAC: Opus packets made by the ffmpeg CLI (libopus, in Ogg) go
//! through `OpusToAac`; the AAC comes out in an FLV file that ffprobe and ffmpeg read back —
//! the right length, clean, and still a 1 kHz tone.

mod common;

use common::*;
use vshare_media::{MediaEvent, TrackConfig};
use vshare_testkit::ffmpeg::{ffprobe, stream_of};
use vshare_testkit::process::{run_tool, run_tool_text};
use vshare_transcode::OpusToAac;

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
