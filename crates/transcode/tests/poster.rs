//! Posters and the thumbnail sprite from a real H.264 source: ffprobe decodes them, the poster
//! keeps the source's aspect ratio, and the sprite's WebVTT cues cover the video in order.

mod common;

use common::*;
use vshare_testkit::ffmpeg::{ffprobe, stream_of};
use vshare_transcode::{PosterMaker, PosterSettings, SpriteSettings};

fn probe_jpeg(dir: &std::path::Path, name: &str, bytes: &[u8]) -> (u64, u64) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    let probe = ffprobe(&path);
    let v = stream_of(&probe, "video");
    assert_eq!(v["codec_name"], "mjpeg", "{probe}");
    let errors = vshare_testkit::ffmpeg::decode_errors(&path);
    assert!(errors.trim().is_empty(), "{name}: {errors}");
    (
        v["width"].as_u64().unwrap_or(0),
        v["height"].as_u64().unwrap_or(0),
    )
}

#[test]
fn posters_every_interval_and_a_sprite_with_its_track() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.flv");
    // 6 s at 30 fps, a keyframe every 15 frames (0.5 s).
    flash_source(&src, 640, 360, 30, 6, 15);
    let events = read_events(&src);
    let mut maker = PosterMaker::new(PosterSettings {
        max_width: 320,
        interval_us: 2_000_000,
        quality: 5,
        sprite: Some(SpriteSettings {
            interval_us: 1_000_000,
            tile_width: 96,
            columns: 4,
            max_tiles: 4,
        }),
    });
    let mut posters = Vec::new();
    for e in &events {
        if let Some(p) = maker.push(e).expect("push") {
            posters.push(p);
        }
    }
    // 6 s with a poster every 2 s: at 0, 2 and 4 s.
    assert_eq!(
        posters.len(),
        3,
        "{:?}",
        posters.iter().map(|p| p.pts_us).collect::<Vec<_>>()
    );
    for (i, p) in posters.iter().enumerate() {
        assert_eq!((p.width, p.height), (320, 180));
        assert_eq!(
            probe_jpeg(dir.path(), &format!("p{i}.jpg"), &p.jpeg),
            (320, 180)
        );
    }
    assert_ne!(posters[0].jpeg, posters[2].jpeg, "the picture moves");
    let sprite = maker.sprite().expect("sprite").expect("tiles");
    // Six tiles at 1 s were more than 4: every other one kept, at 2 s apart.
    assert_eq!(sprite.tiles.len(), 3, "{:?}", sprite.tiles);
    assert_eq!((sprite.width, sprite.height), (96 * 3, 54));
    assert_eq!(
        probe_jpeg(dir.path(), "sprite.jpg", &sprite.jpeg),
        (288, 54)
    );
    assert_eq!(sprite.tiles[0].start_us, 0);
    for w in sprite.tiles.windows(2) {
        assert_eq!(w[0].end_us, w[1].start_us);
        assert!(w[1].start_us >= w[0].start_us + 1_000_000, "{w:?}");
    }
    let vtt = sprite.vtt("sprite.jpg");
    assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> "), "{vtt}");
    assert_eq!(vtt.matches("sprite.jpg#xywh=").count(), 3);
    assert!(vtt.contains("sprite.jpg#xywh=192,0,96,54\n"), "{vtt}");
}
