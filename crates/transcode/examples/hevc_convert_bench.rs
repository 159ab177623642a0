//! Converts the HEVC video of an MP4 to H.264 with `HevcToAvc` as fast as possible and prints
//! the speed, CPU time and output bitrate: what an HEVC publisher costs the server at ingest.
//!
//! `cargo run --release -p vshare-transcode --example hevc_convert_bench -- SOURCE.mp4`
//! (make one with `ffmpeg -f lavfi -i testsrc2=s=1280x720:r=30:d=30,noise=alls=8:allf=t
//! -c:v libx265 -preset ultrafast -tag:v hvc1 src.mp4`).

use std::time::Instant;

use bytes::Bytes;
use ffmpeg_next as ff;
use vshare_media::{Frame, HevcConfig, MediaEvent, TrackKind};
use vshare_transcode::{ConvertSettings, HevcToAvc};

/// CPU time of this process (user + system), seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: hevc_convert_bench SOURCE.mp4")?;
    vshare_transcode::init_ffmpeg();
    let mut input = ff::format::input(&path)?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or("no video stream")?;
    let index = stream.index();
    let tb = stream.time_base();
    // SAFETY: reading the extradata (the hvcC record) of a live stream's codec parameters.
    let record = unsafe {
        let p = stream.parameters().as_ptr();
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size.max(0) as usize).to_vec()
    };
    let config = HevcConfig::parse(Bytes::from(record))?;
    let us = |t: i64| t * 1_000_000 * i64::from(tb.numerator()) / i64::from(tb.denominator());
    let mut frames = Vec::new();
    for (s, pkt) in input.packets() {
        if s.index() != index {
            continue;
        }
        frames.push(Frame {
            track: TrackKind::Video,
            pts: us(pkt.pts().unwrap_or(0)),
            dts: us(pkt.dts().unwrap_or(0)),
            key: pkt.is_key(),
            data: Bytes::copy_from_slice(pkt.data().unwrap_or_default()),
        });
    }
    let media_s = frames.len() as f64 / config.frame_rate.unwrap_or(30.0);
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut conv = HevcToAvc::new(&config, ConvertSettings::default())?;
    let (mut out_frames, mut out_bytes) = (0u64, 0u64);
    let mut count = |events: Vec<MediaEvent>| {
        for e in events {
            if let MediaEvent::Frame(f) = e {
                out_frames += 1;
                out_bytes += f.data.len() as u64;
            }
        }
    };
    for f in &frames {
        count(conv.push(f)?);
    }
    count(conv.finish()?);
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let fps = conv.frame_rate().unwrap_or(30.0);
    let media_s = if config.frame_rate.is_some() {
        media_s
    } else {
        frames.len() as f64 / fps
    };
    println!(
        "{}x{} HEVC ({}), {} frames at {fps} fps: {:.2}x real time, wall {wall:.2} s, cpu {cpu:.2} s \
         ({:.0}% of one core at real time), {out_frames} H.264 frames at {:.0} kb/s",
        config.width,
        config.height,
        config.codec_string(),
        frames.len(),
        media_s / wall,
        100.0 * cpu / media_s,
        out_bytes as f64 * 8.0 / media_s / 1000.0
    );
    Ok(())
}
