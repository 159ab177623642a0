//! WebM and 3GP files: they decode, their summaries match ffprobe, audio stays on the picture.

mod common;

use common::*;
use vshare_media::MediaEvent;
use vshare_testkit::ffmpeg::{ffprobe, parse_rate, stream_of};
use vshare_testkit::process::run_tool_text;
use vshare_transcode::{FileFormat, FileSpec, FileSummary, FileWriter};

fn write(
    format: FileFormat,
    codec: Option<&str>,
    height: Option<u32>,
    name: &str,
) -> (tempfile::TempDir, FileSummary) {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    flash_source(&src, 640, 360, 30, 6, 30);
    let events = read_events(&src);
    let (v, a) = configs(&events);
    let mut spec = FileSpec::new(format);
    spec.video_codec = codec.map(Into::into);
    spec.height = height;
    let path = dir.path().join(name);
    let mut w = FileWriter::new(&spec, &path, v.as_ref(), a.as_ref()).expect("writer");
    for e in events.iter().filter(|e| matches!(e, MediaEvent::Frame(_))) {
        w.push_event(e).expect("push");
    }
    let summary = w.finish().expect("finish");
    (dir, summary)
}

fn check(s: &FileSummary, vcodec: &str, acodec: &str) {
    eprintln!("{s:?}");
    let p = ffprobe(&s.path);
    let f = &p["format"];
    let size: u64 = f["size"]
        .as_str()
        .and_then(|x| x.parse().ok())
        .expect("size");
    assert_eq!(size, s.size);
    let dur: f64 = f["duration"]
        .as_str()
        .and_then(|x| x.parse().ok())
        .expect("duration");
    assert!(
        (dur * 1000.0 - s.duration_ms as f64).abs() < 50.0,
        "duration ffprobe {dur} s vs {} ms",
        s.duration_ms
    );
    let br: f64 = f["bit_rate"]
        .as_str()
        .and_then(|x| x.parse().ok())
        .expect("bit_rate");
    assert!(
        (br / s.bitrate as f64 - 1.0).abs() < 0.05,
        "bitrate ffprobe {br} vs {}",
        s.bitrate
    );
    let v = stream_of(&p, "video");
    assert_eq!(v["codec_name"], vcodec);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(u64::from(s.width)), Some(u64::from(s.height)))
    );
    let fr = parse_rate(v["avg_frame_rate"].as_str().expect("rate"));
    let fr = if fr > 0.0 {
        fr
    } else {
        parse_rate(v["r_frame_rate"].as_str().expect("rate"))
    };
    assert!(
        (fr - s.frame_rate).abs() < 0.5,
        "frame rate ffprobe {fr} vs {}",
        s.frame_rate
    );
    let a = stream_of(&p, "audio");
    assert_eq!(a["codec_name"], acodec);
    assert_eq!(
        a["sample_rate"].as_str(),
        Some(s.audio_sample_rate.to_string().as_str())
    );
    assert_eq!(a["channels"].as_u64(), Some(u64::from(s.audio_channels)));
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-xerror",
            "-i",
            s.path.to_str().expect("p"),
            "-f",
            "null",
            "-",
        ],
    );
    let (off, n) = av_offset(&s.path);
    eprintln!(
        "{}: A/V offset {:.1} ms over {n} flashes",
        s.format,
        off * 1e3
    );
    assert!(n >= 5 && off <= 1.0 / 30.0, "A/V offset {off} over {n}");
    let r = s.attribute_record("v1", "http://h/v.x", "t");
    assert_eq!(
        (r.width, r.height, r.size, r.bitrate, r.format.as_str()),
        (s.width, s.height, s.size, s.bitrate, s.format.as_str())
    );
}

#[test]
fn webm_vp9_opus() {
    let (_d, s) = write(FileFormat::Webm, None, None, "v.webm");
    assert_eq!((s.width, s.height), (640, 360));
    assert!(
        s.codecs.starts_with("vp09.00.") && s.codecs.ends_with(",opus"),
        "{}",
        s.codecs
    );
    check(&s, "vp9", "opus");
}

#[test]
fn three_gp_h263_aac() {
    let (_d, s) = write(FileFormat::ThreeGp, None, None, "v.3gp");
    assert_eq!(
        (s.width, s.height, s.codecs.as_str()),
        (176, 144, "s263,mp4a.40.2")
    );
    check(&s, "h263", "aac");
}

#[test]
fn three_gp_h264_baseline_aac() {
    let (_d, s) = write(FileFormat::ThreeGp, Some("libx264"), Some(240), "v.3gp");
    assert!(s.codecs.starts_with("avc1.42"), "{}", s.codecs);
    check(&s, "h264", "aac");
    let p = ffprobe(&s.path);
    assert_eq!(stream_of(&p, "video")["profile"], "Constrained Baseline");
}

#[test]
fn spec_from_json() {
    let s: Vec<FileSpec> = serde_json::from_str(
        r#"[{"format":"webm"},{"format":"3gp","video_codec":"libx264","height":240}]"#,
    )
    .expect("json");
    assert_eq!(s[0], FileSpec::new(FileFormat::Webm));
    assert_eq!(s[1].format, FileFormat::ThreeGp);
}
