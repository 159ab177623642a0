//! Runs the ladder over an FLV file as fast as possible and prints what it took.
//!
//! `cargo run --release -p vshare-transcode --example ladder_bench -- SOURCE.flv [PRESET] [RUNG]`
//! PRESET: a ladder preset (`default`); RUNG: keep only that rendition (name), or `none` for
//! decoding alone. `bench/ladder.sh` compares it with the ffmpeg CLI.

use std::time::Instant;

use bytes::Bytes;
use vshare_media::flv::{TagDemuxer, TagType, read_file};
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_transcode::{LadderConfig, Transcoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: ladder_bench SOURCE.flv [PRESET] [RUNG]")?;
    let mut config = LadderConfig::preset(args.get(2).map_or("default", String::as_str))
        .ok_or("unknown preset")?;
    if let Some(only) = args.get(3) {
        config.renditions.retain(|r| &r.name == only);
    }
    let mut demux = TagDemuxer::new();
    let mut events = Vec::new();
    for tag in read_file(Bytes::from(std::fs::read(path)?))? {
        let ts = i64::from(tag.timestamp_ms);
        let e = match tag.tag_type {
            TagType::Video => demux.video(ts, tag.body)?,
            TagType::Audio => demux.audio(ts, tag.body)?,
            _ => None,
        };
        events.extend(e);
    }
    let (mut v, mut a) = (None, None);
    for e in &events {
        match e {
            MediaEvent::Config(TrackConfig::Avc(c)) => v = v.or(Some(c.clone())),
            MediaEvent::Config(TrackConfig::Aac(c)) => a = a.or(Some(c.clone())),
            _ => {}
        }
    }
    let media_us = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Frame(f) if f.track == TrackKind::Video => Some(f.pts),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let started = Instant::now();
    let mut t = Transcoder::new(&config, v.as_ref(), a.as_ref())?;
    let mut bytes = vec![0u64; t.renditions().len()];
    let mut count = |out: Vec<(usize, MediaEvent)>| {
        for (i, e) in out {
            if let MediaEvent::Frame(f) = e {
                bytes[i] += f.data.len() as u64;
            }
        }
    };
    for e in events.iter().filter(|e| matches!(e, MediaEvent::Frame(_))) {
        count(t.push_event(e)?);
    }
    count(t.finish()?);
    let wall = started.elapsed().as_secs_f64();
    let media = media_us as f64 / 1e6;
    for (r, b) in t.renditions().iter().zip(&bytes) {
        println!(
            "rendition {} {}x{} {} frames {:.0} kb/s{}",
            r.name,
            r.width,
            r.height,
            r.video_frames,
            *b as f64 * 8.0 / media / 1000.0,
            r.failed
                .as_ref()
                .map_or(String::new(), |e| format!(" FAILED {e}"))
        );
    }
    println!(
        "media {media:.1} s, wall {wall:.2} s, {:.2}x realtime",
        media / wall
    );
    Ok(())
}
