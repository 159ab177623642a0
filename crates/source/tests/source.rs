//! The source's tags checked by our FLV demuxer and by ffprobe (an independent decoder).
//! Needs the `ffmpeg` and `ffprobe` binaries (Debian package `ffmpeg`).

use std::path::{Path, PathBuf};

use vshare_media::flv::TagDemuxer;
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_source::{Input, Mode, Source, SourceOptions, Tag, TagKind};
use vshare_testkit::ffmpeg::{ffmpeg_make, ffprobe_csv};
use vshare_testkit::flv::{AUDIO_TAG, VIDEO_TAG, write_tags};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vshare-source-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

/// Writes the source's tags as an FLV file.
fn write_flv(path: &Path, tags: &[Tag]) {
    write_tags(
        path,
        tags.iter().map(|t| {
            let kind = if t.kind == TagKind::Video {
                VIDEO_TAG
            } else {
                AUDIO_TAG
            };
            (kind, t.timestamp_ms as u32, &t.body)
        }),
    );
}

struct Checked {
    tags: Vec<Tag>,
    width: u32,
    height: u32,
    frame_rate: Option<f64>,
    video_frames: usize,
    keyframes: usize,
    audio_frames: usize,
    sample_rate: u32,
}

fn collect(input: Input, options: SourceOptions) -> (Checked, Mode) {
    let mut source = Source::open(&input, &options).expect("open");
    let mode = source.info().mode;
    let tags: Vec<Tag> = source.by_ref().collect::<Result<_, _>>().expect("tags");
    let mut demux = TagDemuxer::new();
    let mut c = Checked {
        tags: tags.clone(),
        width: 0,
        height: 0,
        frame_rate: None,
        video_frames: 0,
        keyframes: 0,
        audio_frames: 0,
        sample_rate: 0,
    };
    let mut last = i64::MIN;
    for t in &tags {
        assert!(
            t.timestamp_ms >= last,
            "tags must come in decode order: {} after {last}",
            t.timestamp_ms
        );
        last = t.timestamp_ms;
        let ev = match t.kind {
            TagKind::Video => demux.video(t.timestamp_ms, t.body.clone()),
            TagKind::Audio => demux.audio(t.timestamp_ms, t.body.clone()),
        };
        match ev.expect("tag parses") {
            Some(MediaEvent::Config(TrackConfig::Avc(a))) => {
                c.width = a.width;
                c.height = a.height;
                c.frame_rate = a.frame_rate;
            }
            Some(MediaEvent::Config(TrackConfig::Aac(a))) => c.sample_rate = a.sample_rate,
            Some(MediaEvent::Frame(f)) if f.track == TrackKind::Video => {
                c.video_frames += 1;
                c.keyframes += usize::from(f.key);
            }
            Some(MediaEvent::Frame(_)) => c.audio_frames += 1,
            None => {}
        }
    }
    (c, mode)
}

#[test]
fn test_pattern_is_h264_and_aac_at_the_requested_size_and_rate() {
    let options = SourceOptions {
        size: Some((320, 240)),
        fps: Some(25),
        video_bitrate: 500_000,
        duration_ms: Some(3000),
        ..SourceOptions::default()
    };
    let (c, mode) = collect(Input::TestPattern, options);
    assert_eq!(mode, Mode::TestPattern);
    assert_eq!((c.width, c.height), (320, 240));
    assert_eq!(c.frame_rate, Some(25.0), "x264 writes VUI timing");
    assert_eq!(c.video_frames, 75);
    assert_eq!(c.keyframes, 3, "one keyframe a second");
    assert_eq!(c.sample_rate, 48_000);
    assert!((139..=142).contains(&c.audio_frames), "{}", c.audio_frames);

    let flv = tmp("pattern.flv");
    write_flv(&flv, &c.tags);
    assert_eq!(
        ffprobe_csv(&flv, "v:0", "stream=codec_name,width,height,nb_read_frames"),
        "h264,320,240,75"
    );
    assert_eq!(
        ffprobe_csv(&flv, "a:0", "stream=codec_name,sample_rate,channels"),
        "aac,48000,2"
    );
    // Bitrate close to the request (the pattern is easy to code; x264 stays below).
    let video_bytes: usize = c
        .tags
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .map(|t| t.body.len())
        .sum();
    let kbps = video_bytes as f64 * 8.0 / 3.0 / 1000.0;
    assert!(
        (150.0..=650.0).contains(&kbps),
        "{kbps} kbit/s for 500 requested"
    );
}

#[test]
fn mpeg4_and_mp3_file_is_encoded_to_h264_and_aac() {
    let src = tmp("legacy.avi");
    ffmpeg_make(
        &src,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=352x288:rate=15:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:sample_rate=44100:duration=2",
            "-c:v",
            "mpeg4",
            "-c:a",
            "libmp3lame",
        ],
    );
    let (c, mode) = collect(Input::File(src), SourceOptions::default());
    assert_eq!(mode, Mode::Encode);
    assert_eq!((c.width, c.height), (352, 288));
    assert_eq!(c.frame_rate, Some(15.0));
    assert!((29..=31).contains(&c.video_frames), "{}", c.video_frames);
    assert_eq!(c.sample_rate, 48_000);
    assert!((90..=98).contains(&c.audio_frames), "{}", c.audio_frames);
    let flv = tmp("legacy.flv");
    write_flv(&flv, &c.tags);
    assert_eq!(
        ffprobe_csv(&flv, "v:0", "stream=codec_name,width,height"),
        "h264,352,288"
    );
    assert_eq!(
        ffprobe_csv(&flv, "a:0", "stream=codec_name,sample_rate"),
        "aac,48000"
    );
}

#[test]
fn h264_aac_mp4_is_remuxed_and_loops_with_continuous_timestamps() {
    let src = tmp("clip.mp4");
    ffmpeg_make(
        &src,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=44100:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
    );
    let options = SourceOptions {
        looping: true,
        duration_ms: Some(2500),
        ..SourceOptions::default()
    };
    let (c, mode) = collect(Input::File(src), options);
    assert_eq!(mode, Mode::Remux);
    assert_eq!((c.width, c.height), (320, 180));
    assert_eq!(c.sample_rate, 44_100);
    assert!((74..=76).contains(&c.video_frames), "{}", c.video_frames);
    assert_eq!(c.keyframes, 3, "each pass starts with a keyframe");
    let last = c.tags.last().expect("tags").timestamp_ms;
    assert!((2400..2500).contains(&last), "{last}");
    let flv = tmp("clip.flv");
    write_flv(&flv, &c.tags);
    assert_eq!(
        ffprobe_csv(&flv, "v:0", "stream=codec_name,nb_read_frames"),
        format!("h264,{}", c.video_frames)
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = Source::open(
        &Input::File("/nonexistent/x.mp4".into()),
        &SourceOptions::default(),
    )
    .err()
    .expect("error");
    assert!(e.to_string().contains("no such file"), "{e}");
    let p = tmp("not-media.mp4");
    std::fs::write(&p, b"hello").expect("write");
    let e = Source::open(&Input::File(p), &SourceOptions::default())
        .err()
        .expect("error");
    assert!(e.to_string().starts_with("FFmpeg: opening"), "{e}");
}
