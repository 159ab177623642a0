//! ffmpeg and ffprobe as the independent reference: test clips, probes, decode checks, and a
//! track's packets read without our code.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::process::{require_tool, run_tool, run_tool_text};

/// Runs `ffmpeg -y ARGS OUTPUT` quietly; fails the test with ffmpeg's errors when it fails.
pub fn ffmpeg_make<A: AsRef<OsStr>>(output: &Path, args: &[A]) -> PathBuf {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(output)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not make {}: {}",
        output.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    output.to_path_buf()
}

/// The lavfi inputs of a test clip: `seconds` of testsrc2 at `size` and 30 fps and, with
/// `audio_rate`, a 1 kHz tone sampled at that rate.
pub fn lavfi_inputs(size: &str, seconds: u32, audio_rate: Option<u32>) -> Vec<String> {
    let mut args = vec![
        "-f".to_string(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate=30:duration={seconds}"),
    ];
    if let Some(rate) = audio_rate {
        args.extend([
            "-f".to_string(),
            "lavfi".into(),
            "-i".into(),
            format!("sine=frequency=1000:sample_rate={rate}:duration={seconds}"),
        ]);
    }
    args
}

/// A test clip at `output`: [`lavfi_inputs`] encoded as `encode` says (codecs, GOP, format).
pub fn make_test_clip(
    output: &Path,
    size: &str,
    seconds: u32,
    audio_rate: Option<u32>,
    encode: &[&str],
) -> PathBuf {
    let mut args = lavfi_inputs(size, seconds, audio_rate);
    args.extend(encode.iter().map(|a| a.to_string()));
    ffmpeg_make(output, &args)
}

/// ffprobe's JSON for a file or URL with `args` (`-show_streams`, `-show_entries …`).
pub fn ffprobe_json(args: &[&str], input: impl AsRef<OsStr>) -> Value {
    require_tool("ffprobe");
    let input = input.as_ref();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(input)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {input:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// ffprobe's JSON for a file's or URL's streams and format.
pub fn ffprobe(input: impl AsRef<OsStr>) -> Value {
    ffprobe_json(&["-show_format", "-show_streams"], input)
}

/// ffprobe's `entries` of one `stream` (`v:0`, `a:0`) as CSV lines without section names;
/// frames are decoded and counted when `nb_read_frames` is asked for.
pub fn ffprobe_csv(input: impl AsRef<OsStr>, stream: &str, entries: &str) -> String {
    let input = input.as_ref().to_str().expect("utf-8 input");
    let mut args = vec!["-v", "error", "-select_streams", stream];
    if entries.contains("nb_read_frames") {
        args.push("-count_frames");
    }
    args.extend(["-show_entries", entries, "-of", "csv=p=0", input]);
    run_tool_text("ffprobe", &args).trim().to_string()
}

/// Decoded frames of a stream type, counted by ffprobe.
pub fn frame_count(input: impl AsRef<OsStr>, stream: &str) -> u64 {
    first_count(&ffprobe_csv(input, stream, "stream=nb_read_frames"))
}

/// HLS inputs list a stream once per program and once on its own: the first count is taken.
fn first_count(csv: &str) -> u64 {
    csv.lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or(0)
}

/// Presentation span of a stream from its packets: (first pts, last pts + duration), seconds.
/// (ffprobe's own duration of a lone fragment counts from time zero.)
pub fn packet_span(input: impl AsRef<OsStr>, stream: &str) -> (f64, f64) {
    span_of(&ffprobe_csv(input, stream, "packet=pts_time,duration_time"))
}

fn span_of(csv: &str) -> (f64, f64) {
    let mut first = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for line in csv.lines() {
        let mut it = line.split(',');
        let pts: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let dur: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if pts.is_finite() {
            first = first.min(pts);
            end = end.max(pts + dur);
        }
    }
    (first, end)
}

/// Video packet times of a file or URL, seconds, in order.
pub fn video_packet_times(input: impl AsRef<OsStr>) -> Vec<f64> {
    let mut t: Vec<f64> = ffprobe_csv(input, "v:0", "packet=pts_time")
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// The sizes (width, height) of the decoded video frames, in order.
pub fn frame_sizes(input: impl AsRef<OsStr>) -> Vec<(u64, u64)> {
    ffprobe_csv(input, "v:0", "frame=width,height")
        .lines()
        .filter_map(|line| {
            let mut it = line.split(',').filter_map(|v| v.trim().parse().ok());
            Some((it.next()?, it.next()?))
        })
        .collect()
}

/// Runs of equal sizes: (size, count).
pub fn size_runs(sizes: &[(u64, u64)]) -> Vec<((u64, u64), usize)> {
    let mut runs: Vec<((u64, u64), usize)> = Vec::new();
    for s in sizes {
        match runs.last_mut() {
            Some((last, n)) if last == s => *n += 1,
            _ => runs.push((*s, 1)),
        }
    }
    runs
}

/// `ffmpeg -i INPUT -f null -` at log level `level`: what it printed (empty when clean), and
/// its exit status when it failed.
fn ffmpeg_to_null(input: &OsStr, level: &str, output_args: &[&str]) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-v", level, "-i"])
        .arg(input)
        .args(output_args)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is needed for this test (scripts/setup.sh)");
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("\nexit status {:?}", out.status.code()));
    }
    s
}

/// Decodes every frame with ffmpeg and returns its error output (empty when clean).
pub fn decode_errors(input: impl AsRef<OsStr>) -> String {
    ffmpeg_to_null(input.as_ref(), "error", &[])
}

/// As [`decode_errors`], for variable frame rate video (WebRTC sources: frames stamped when
/// captured, some closer together than the average rate's frame time): frames go to the null
/// output with their own times at 90 kHz, not on a 1/fps grid where two would collide.
pub fn decode_errors_vfr(input: impl AsRef<OsStr>) -> String {
    let passthrough = ["-fps_mode", "passthrough", "-enc_time_base:v", "1/90000"];
    ffmpeg_to_null(input.as_ref(), "error", &passthrough)
}

/// ffmpeg's default conversion of a file or URL: its warnings and errors (empty when clean).
pub fn conversion_warnings(input: impl AsRef<OsStr>) -> String {
    ffmpeg_to_null(input.as_ref(), "warning", &[])
}

/// The first stream of `kind` (`video`, `audio`) in ffprobe's JSON.
pub fn stream_of<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

/// A rate as ffprobe writes it (`30000/1001`, `25`); 0 when unreadable.
pub fn parse_rate(s: &str) -> f64 {
    match s.split_once('/') {
        Some((n, d)) => n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0),
        None => s.parse().unwrap_or(0.0),
    }
}

/// A number in ffprobe's JSON, which writes most of them as strings; NaN when absent.
pub fn number(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// One packet of a track: times in the track's time base, keyframe flag, payload.
pub struct Packet {
    pub pts: i64,
    pub dts: i64,
    pub key: bool,
    pub data: Vec<u8>,
}

/// A track's time base denominator and packets, read with the ffmpeg CLI alone: times, sizes
/// and flags from ffprobe, the payloads (as stored in the MP4: length-prefixed NAL units, raw
/// AAC) from `-f data`.
pub fn packets(path: &Path, stream: &str) -> (i64, Vec<Packet>) {
    let time_base = ffprobe_csv(path, stream, "stream=time_base");
    let den: i64 = time_base
        .split_once('/')
        .and_then(|(_, d)| d.parse().ok())
        .expect("time base 1/N");
    let list = ffprobe_csv(path, stream, "packet=pts,dts,size,flags");
    let p = path.to_str().expect("path");
    let map = format!("0:{stream}");
    let data = run_tool(
        "ffmpeg",
        &[
            "-v", "error", "-i", p, "-map", &map, "-c", "copy", "-f", "data", "-",
        ],
    );
    let mut out = Vec::new();
    let mut at = 0;
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let size: usize = f[2].parse().expect("size");
        out.push(Packet {
            pts: f[0].parse().expect("pts"),
            dts: f[1].parse().expect("dts"),
            key: f[3].starts_with('K'),
            data: data[at..at + size].to_vec(),
        });
        at += size;
    }
    assert_eq!(at, data.len(), "packet sizes add up");
    (den, out)
}

/// The body of an MP4's decoder configuration box (`avcC`, `hvcC`).
pub fn config_box(path: &Path, name: &[u8; 4]) -> Vec<u8> {
    let mp4 = std::fs::read(path).expect("read");
    let at = mp4
        .windows(4)
        .position(|w| w == name)
        .expect("configuration box");
    let size = u32::from_be_bytes([mp4[at - 4], mp4[at - 3], mp4[at - 2], mp4[at - 1]]) as usize;
    mp4[at + 4..at - 4 + size].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hls_frame_count_is_the_first_of_its_listings() {
        // ffprobe on a multivariant playlist: the stream per program, then on its own.
        assert_eq!(first_count("90,\n90\n"), 90);
        assert_eq!(first_count(""), 0);
    }

    #[test]
    fn a_packet_span_runs_from_the_earliest_pts_to_the_latest_end() {
        // B-frames: packets come in decode order, so the last one is not the latest.
        let csv = "0.066667,0.033333\n0.000000,0.033333\n0.133333,0.033333\n0.100000,0.033333\nN/A,0.033333";
        let (first, end) = span_of(csv);
        assert_eq!(first, 0.0);
        assert!((end - 0.166666).abs() < 1e-9, "{end}");
    }

    #[test]
    fn equal_sizes_make_one_run() {
        let sizes = [(640, 360), (640, 360), (320, 180), (640, 360)];
        assert_eq!(
            size_runs(&sizes),
            vec![((640, 360), 2), ((320, 180), 1), ((640, 360), 1)]
        );
    }
}
