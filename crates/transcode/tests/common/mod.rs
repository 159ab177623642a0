//! Test helpers: sources made with the ffmpeg CLI, FLV in and out, and measurements taken with
//! ffprobe/ffmpeg (independent of our code).
#![allow(dead_code)]

use std::path::Path;

use vshare_media::flv;
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};
use vshare_testkit::flv::{AUDIO_TAG, VIDEO_TAG, write_tags};
use vshare_testkit::process::{run_tool, run_tool_text};
use vshare_transcode::RenditionSpec;

/// The MediaEvents of an FLV file, in file order.
pub fn read_events(path: &Path) -> Vec<MediaEvent> {
    vshare_testkit::flv::read_events(path, 0)
        .into_iter()
        .map(|(_, event)| event)
        .collect()
}

/// The first video and audio configurations of a source.
pub fn configs(events: &[MediaEvent]) -> (Option<AvcConfig>, Option<AacConfig>) {
    let mut v = None;
    let mut a = None;
    for e in events {
        match e {
            MediaEvent::Config(TrackConfig::Avc(c)) if v.is_none() => v = Some(c.clone()),
            MediaEvent::Config(TrackConfig::Aac(c)) if a.is_none() => a = Some(c.clone()),
            _ => {}
        }
    }
    (v, a)
}

/// A rung of the ladder with the default encoder and preset.
pub fn spec(name: &str, height: u32, vb: u64, ab: u64) -> RenditionSpec {
    RenditionSpec {
        name: name.into(),
        height,
        video_bitrate: vb,
        audio_bitrate: ab,
        encoder: None,
        preset: None,
    }
}

/// A H.264/AAC FLV source: a moving test picture (with noise, so encoders have work) that flashes white for one frame at every whole
/// second + `flash_offset`, and a 1 kHz beep of 30 ms at the same instants.
pub fn flash_source(path: &Path, w: u32, h: u32, fps: u32, seconds: u32, gop: u32) {
    let video = format!(
        "testsrc2=s={w}x{h}:r={fps}:d={seconds},noise=alls=12:allf=t,\
         drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),{f})'",
        f = 0.9 / f64::from(fps)
    );
    let audio = format!(
        "aevalsrc='if(lt(mod(t,1),0.03),0.8*sin(2*PI*1000*t),0)|if(lt(mod(t,1),0.03),0.8*sin(2*PI*1000*t),0)':s=48000:d={seconds}"
    );
    let g = gop.to_string();
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &video,
            "-f",
            "lavfi",
            "-i",
            &audio,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            &g,
            "-keyint_min",
            &g,
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "1500k",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "flv",
            path.to_str().expect("utf-8 path"),
        ],
    );
}

/// The shift [`write_flv`] applies: the earliest negative decode time (µs), else 0.
pub fn flv_shift(events: &[MediaEvent]) -> i64 {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Frame(f) => Some(f.dts),
            _ => None,
        })
        .min()
        .unwrap_or(0)
        .min(0)
}

/// Writes MediaEvents (one rendition) as an FLV file (Adobe FLV v10.1 §E).
pub fn write_flv(path: &Path, events: &[MediaEvent]) {
    // FLV has no negative times: shift both tracks alike (AAC priming starts before 0).
    let shift = flv_shift(events);
    let ms = |ts_us: i64| ((ts_us - shift).max(0) / 1000) as u32;
    let tags = events.iter().map(|e| match e {
        MediaEvent::Config(TrackConfig::Avc(c)) => {
            (VIDEO_TAG, 0, flv::video_sequence_header(&c.record))
        }
        MediaEvent::Config(TrackConfig::Aac(c)) => {
            (AUDIO_TAG, 0, flv::audio_sequence_header(&c.asc))
        }
        MediaEvent::Frame(f) if f.track == TrackKind::Video => {
            let cts = ((f.pts - f.dts) / 1000) as i32;
            (VIDEO_TAG, ms(f.dts), flv::video_frame(f.key, cts, &f.data))
        }
        MediaEvent::Frame(f) => (AUDIO_TAG, ms(f.dts), flv::audio_frame(&f.data)),
    });
    write_tags(path, tags);
}

pub fn frames(events: &[MediaEvent], track: TrackKind) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Frame(f) if f.track == track => Some(f),
            _ => None,
        })
        .collect()
}

/// Video packets as ffprobe sees them: (pts seconds, keyframe, size bytes).
pub fn video_packets(path: &Path) -> Vec<(f64, bool, u64)> {
    let s = run_tool_text(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags,size",
            "-of",
            "csv=p=0",
            path.to_str().expect("path"),
        ],
    );
    s.lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let pts = it.next()?.parse().ok()?;
            let size = it.next()?.parse().ok()?;
            let flags = it.next()?;
            Some((pts, flags.contains('K'), size))
        })
        .collect()
}

/// Times (s) of the video frames whose mean luma shows a white flash, decoded by ffmpeg.
pub fn flash_times(path: &Path) -> Vec<f64> {
    let graph = format!("movie={},signalstats", path.to_str().expect("path"));
    let s = run_tool_text(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &graph,
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ],
    );
    s.lines()
        .filter_map(|l| {
            let (t, y) = l.split_once(',')?;
            let (t, y): (f64, f64) = (t.parse().ok()?, y.parse().ok()?);
            (y > 200.0).then_some(t)
        })
        .collect()
}

/// Onset times (s) of the beeps in a file's audio, decoded by ffmpeg: the first sample above
/// 0.3 after ≥ 0.3 s of quiet, timed from the first decoded audio frame's pts (after any
/// pre-skip or priming the container tells the decoder to drop, as the CLI drops it too).
pub fn beep_times(path: &Path) -> Vec<f64> {
    let p = path.to_str().expect("path");
    let first = run_tool_text(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "frame=pts_time",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    let start: f64 = first
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("audio start");
    let pcm = run_tool(
        "ffmpeg",
        &[
            "-v", "error", "-i", p, "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
        ],
    );
    let mut onsets = Vec::new();
    let mut quiet = usize::MAX / 2;
    for (i, c) in pcm.chunks_exact(4).enumerate() {
        let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]).abs();
        if x > 0.3 {
            if quiet >= 14_400 {
                onsets.push(start + i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    onsets
}

/// The largest |flash − nearest beep| over a file, seconds, and how many flashes were paired.
pub fn av_offset(path: &Path) -> (f64, usize) {
    let flashes = flash_times(path);
    let beeps = beep_times(path);
    assert!(
        !flashes.is_empty() && !beeps.is_empty(),
        "{}: flashes {flashes:?} beeps {beeps:?}",
        path.display()
    );
    let mut worst = 0.0f64;
    let mut n = 0;
    for f in &flashes {
        let d = beeps.iter().map(|b| (b - f).abs()).fold(f64::MAX, f64::min);
        if d < 0.5 {
            worst = worst.max(d);
            n += 1;
        }
    }
    (worst, n)
}

/// Like [`flash_source`] at 640×360, but as phones send it: variable frame rate (every frame
/// but each third one is 8 or 16 ms late) and mono AAC at 22 050 Hz.
pub fn phone_source(path: &Path, seconds: u32) {
    let video = format!(
        "testsrc2=s=640x360:r=30:d={seconds},noise=alls=12:allf=t,\
         drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),0.03)',\
         setpts='PTS+0.008*mod(N,3)/TB'"
    );
    let audio =
        format!("aevalsrc='if(lt(mod(t,1),0.03),0.8*sin(2*PI*1000*t),0)':s=22050:d={seconds}");
    run_tool_text(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &video,
            "-f",
            "lavfi",
            "-i",
            &audio,
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "1500k",
            "-c:a",
            "aac",
            "-ar",
            "22050",
            "-ac",
            "1",
            "-b:a",
            "64k",
            "-f",
            "flv",
            path.to_str().expect("utf-8 path"),
        ],
    );
}
