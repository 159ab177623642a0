//! Pictures of a video: a poster (one JPEG, refreshed while live) and a thumbnail sprite (one
//! JPEG grid of small frames with a WebVTT track that maps times to tiles, for scrubbing).
//!
//! Only keyframes are decoded, each on its own by a fresh single-threaded decoder, and only when
//! a poster or a tile is due: a live stream costs one keyframe decode, one scale and one small
//! JPEG encode every few seconds. [`PosterMaker`] is the blocking work; [`PosterWorker`] runs it
//! on its own thread behind a bounded queue that never blocks the caller (a keyframe that finds
//! the queue full is skipped: the next one will do).

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use ff::format::Pixel;
use ffmpeg_next as ff;
use vshare_media::{Frame, MediaEvent, TrackConfig, TrackKind};

use crate::TranscodeError;
use crate::av::{decoder_context, ffe, init_ffmpeg, packet_of, set_threads};

/// What pictures to make.
#[derive(Debug, Clone, PartialEq)]
pub struct PosterSettings {
    /// Widest poster, pixels (narrower sources keep their width); the aspect ratio is kept.
    pub max_width: u32,
    /// A new poster at the first keyframe this long after the last one, µs.
    pub interval_us: i64,
    /// JPEG quantiser scale, 2 (best) ..= 31.
    pub quality: u8,
    /// The thumbnail sprite, when one is made.
    pub sprite: Option<SpriteSettings>,
}

/// How the thumbnail sprite is laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct SpriteSettings {
    /// A tile at the first keyframe at least this long after the last tile, µs.
    pub interval_us: i64,
    /// Tile width, pixels (height from the aspect ratio).
    pub tile_width: u32,
    /// Tiles per row.
    pub columns: u32,
    /// Most tiles kept: past it, every other tile goes and the interval doubles.
    pub max_tiles: usize,
}

/// A poster: JPEG bytes, the picture's size and its capture time (µs).
#[derive(Debug, Clone)]
pub struct Poster {
    pub jpeg: Bytes,
    pub width: u32,
    pub height: u32,
    pub pts_us: i64,
}

/// One tile of a sprite: the time span it stands for (µs from the first picture) and where it
/// is in the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpriteTile {
    pub start_us: i64,
    pub end_us: i64,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// A thumbnail sprite: the grid as JPEG and its tiles.
#[derive(Debug, Clone)]
pub struct Sprite {
    pub jpeg: Bytes,
    pub width: u32,
    pub height: u32,
    pub tiles: Vec<SpriteTile>,
}

impl Sprite {
    /// The WebVTT track of the sprite's tiles, each cue `image#xywh=x,y,w,h` (Media Fragments).
    pub fn vtt(&self, image: &str) -> String {
        let mut out = String::from("WEBVTT\n");
        for t in &self.tiles {
            out.push_str(&format!(
                "\n{} --> {}\n{image}#xywh={},{},{},{}\n",
                vtt_time(t.start_us),
                vtt_time(t.end_us),
                t.x,
                t.y,
                t.w,
                t.h
            ));
        }
        out
    }
}

/// `HH:MM:SS.mmm`.
fn vtt_time(us: i64) -> String {
    let ms = us.max(0) / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `src` scaled to at most `max_width` wide, keeping the aspect ratio; both even (4:2:0).
pub fn fit_width(src_w: u32, src_h: u32, max_width: u32) -> (u32, u32) {
    let (src_w, src_h) = (src_w.max(2), src_h.max(2));
    let w = (src_w.min(max_width.max(2))) & !1;
    let h = ((u64::from(src_h) * u64::from(w) + u64::from(src_w)) / (2 * u64::from(src_w))) as u32;
    (w, (h * 2).max(2))
}

/// A tile kept for the sprite.
struct Tile {
    pts: i64,
    picture: ff::frame::Video,
}

/// Makes posters and the sprite from a stream's video (see the module doc).
pub struct PosterMaker {
    settings: PosterSettings,
    record: Option<Bytes>,
    next_poster_us: Option<i64>,
    first_pts: Option<i64>,
    last_pts: i64,
    next_tile_us: Option<i64>,
    tile_interval_us: i64,
    tile_size: Option<(u32, u32)>,
    tiles: Vec<Tile>,
    /// Keyframes the decoder could not make a picture of.
    pub errors: u64,
}

impl PosterMaker {
    pub fn new(settings: PosterSettings) -> Self {
        init_ffmpeg();
        PosterMaker {
            tile_interval_us: settings.sprite.as_ref().map_or(0, |s| s.interval_us.max(1)),
            settings,
            record: None,
            next_poster_us: None,
            first_pts: None,
            last_pts: 0,
            next_tile_us: None,
            tile_size: None,
            tiles: Vec::new(),
            errors: 0,
        }
    }

    /// One source event; returns a poster when one was due at this keyframe.
    pub fn push(&mut self, event: &MediaEvent) -> Result<Option<Poster>, TranscodeError> {
        match event {
            MediaEvent::Config(TrackConfig::Avc(c)) => {
                self.record = Some(c.record.clone());
                Ok(None)
            }
            MediaEvent::Frame(f) if f.track == TrackKind::Video => {
                self.last_pts = self.last_pts.max(f.pts);
                if f.key { self.keyframe(f) } else { Ok(None) }
            }
            _ => Ok(None),
        }
    }

    fn keyframe(&mut self, f: &Frame) -> Result<Option<Poster>, TranscodeError> {
        let Some(record) = self.record.clone() else {
            return Ok(None);
        };
        self.first_pts.get_or_insert(f.pts);
        if self.tiles.last().is_some_and(|t| f.pts < t.pts)
            || self
                .next_poster_us
                .is_some_and(|t| f.pts < t - self.settings.interval_us)
        {
            // The source's clock went back: start the schedules again from here. Tiles must
            // go forward in time, so those after this point in the old clock are let go.
            self.next_poster_us = None;
            self.next_tile_us = None;
            self.tiles.retain(|t| t.pts < f.pts);
            self.last_pts = f.pts;
            if self.tiles.is_empty() {
                self.first_pts = Some(f.pts);
            }
        }
        let poster_due = self.next_poster_us.is_none_or(|t| f.pts >= t);
        let tile_due =
            self.settings.sprite.is_some() && self.next_tile_us.is_none_or(|t| f.pts >= t);
        if !poster_due && !tile_due {
            return Ok(None);
        }
        let Some(picture) = decode_alone(&record, f) else {
            self.errors += 1;
            return Ok(None);
        };
        if tile_due && let Some(s) = self.settings.sprite.clone() {
            let size = *self
                .tile_size
                .get_or_insert_with(|| fit_width(picture.width(), picture.height(), s.tile_width));
            self.tiles.push(Tile {
                pts: f.pts,
                picture: scale(&picture, size)?,
            });
            if self.tiles.len() > s.max_tiles.max(2) {
                // Bounded memory whatever the length: half the tiles, twice the interval.
                let mut i = 0;
                self.tiles.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.tile_interval_us *= 2;
            }
            self.next_tile_us = Some(f.pts + self.tile_interval_us);
        }
        if !poster_due {
            return Ok(None);
        }
        self.next_poster_us = Some(f.pts + self.settings.interval_us.max(1));
        let size = fit_width(picture.width(), picture.height(), self.settings.max_width);
        let scaled = scale(&picture, size)?;
        Ok(Some(Poster {
            jpeg: encode_jpeg(&scaled, self.settings.quality)?,
            width: size.0,
            height: size.1,
            pts_us: f.pts,
        }))
    }

    /// The sprite of every tile kept (None without tiles or without a sprite).
    pub fn sprite(&self) -> Result<Option<Sprite>, TranscodeError> {
        let (Some(s), Some((tw, th)), Some(first)) =
            (&self.settings.sprite, self.tile_size, self.first_pts)
        else {
            return Ok(None);
        };
        // Tiles of another size (the source changed resolution) are left out.
        let tiles: Vec<&Tile> = self
            .tiles
            .iter()
            .filter(|t| (t.picture.width(), t.picture.height()) == (tw, th))
            .collect();
        if tiles.is_empty() {
            return Ok(None);
        }
        let columns = s.columns.clamp(1, tiles.len() as u32);
        let rows = (tiles.len() as u32).div_ceil(columns);
        let (width, height) = (columns * tw, rows * th);
        let mut grid = ff::frame::Video::new(Pixel::YUVJ420P, width, height);
        for (plane, fill) in [(0usize, 0u8), (1, 128), (2, 128)] {
            grid.data_mut(plane).fill(fill);
        }
        let mut out = Vec::with_capacity(tiles.len());
        let end_us = self.last_pts.max(tiles[tiles.len() - 1].pts + 1);
        for (i, t) in tiles.iter().enumerate() {
            let (x, y) = ((i as u32 % columns) * tw, (i as u32 / columns) * th);
            blit(&mut grid, &t.picture, x, y);
            let next = tiles.get(i + 1).map_or(end_us, |n| n.pts);
            out.push(SpriteTile {
                start_us: t.pts - first,
                end_us: next - first,
                x,
                y,
                w: tw,
                h: th,
            });
        }
        Ok(Some(Sprite {
            jpeg: encode_jpeg(&grid, self.settings.quality)?,
            width,
            height,
            tiles: out,
        }))
    }
}

/// Decodes one keyframe with a fresh decoder: no state carried from other frames.
fn decode_alone(record: &[u8], f: &Frame) -> Option<ff::frame::Video> {
    let mut ctx = decoder_context(ff::codec::Id::H264, record).ok()?;
    set_threads(&mut ctx, 1);
    let mut dec = ctx.decoder().video().ok()?;
    dec.send_packet(&packet_of(f)).ok()?;
    let _ = dec.send_eof();
    let mut picture = ff::frame::Video::empty();
    dec.receive_frame(&mut picture).ok()?;
    (picture.width() > 0 && picture.height() > 0).then_some(picture)
}

/// A picture scaled to `size` in full-range 4:2:0, as JPEG wants it.
fn scale(input: &ff::frame::Video, size: (u32, u32)) -> Result<ff::frame::Video, TranscodeError> {
    let mut ctx = ff::software::scaling::Context::get(
        input.format(),
        input.width(),
        input.height(),
        Pixel::YUVJ420P,
        size.0,
        size.1,
        ff::software::scaling::Flags::BICUBIC,
    )
    .map_err(ffe(format!(
        "scaler {}x{} -> {}x{}",
        input.width(),
        input.height(),
        size.0,
        size.1
    )))?;
    let mut out = ff::frame::Video::empty();
    ctx.run(input, &mut out).map_err(ffe("scaling"))?;
    Ok(out)
}

/// Copies `tile` into `grid` at (x, y); both YUVJ420P, x and y even.
fn blit(grid: &mut ff::frame::Video, tile: &ff::frame::Video, x: u32, y: u32) {
    for plane in 0..3 {
        let shift = u32::from(plane > 0);
        let (px, py) = ((x >> shift) as usize, (y >> shift) as usize);
        let w = (tile.width() >> shift) as usize;
        let h = tile.plane_height(plane) as usize;
        let (gs, ts) = (grid.stride(plane), tile.stride(plane));
        for row in 0..h {
            let src = tile.data(plane).get(row * ts..row * ts + w);
            let at = (py + row) * gs + px;
            if let (Some(src), Some(dst)) = (src, grid.data_mut(plane).get_mut(at..at + w)) {
                dst.copy_from_slice(src);
            }
        }
    }
}

/// One picture as a baseline JPEG (FFmpeg's `mjpeg` encoder at a fixed quantiser scale).
fn encode_jpeg(picture: &ff::frame::Video, quality: u8) -> Result<Bytes, TranscodeError> {
    let codec = ff::encoder::find(ff::codec::Id::MJPEG)
        .ok_or_else(|| TranscodeError::Config("this FFmpeg has no MJPEG encoder".into()))?;
    let mut ctx = ff::codec::context::Context::new_with_codec(codec);
    set_threads(&mut ctx, 1);
    let mut enc = ctx.encoder().video().map_err(ffe("creating mjpeg"))?;
    let lambda = i32::from(quality.clamp(2, 31)) * ff::ffi::FF_QP2LAMBDA;
    enc.set_width(picture.width());
    enc.set_height(picture.height());
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(ff::Rational(1, 25));
    enc.set_flags(ff::codec::Flags::QSCALE);
    enc.set_global_quality(lambda);
    let mut enc = enc.open_as(codec).map_err(ffe("opening mjpeg"))?;
    let mut frame = picture.clone();
    frame.set_pts(Some(0));
    // SAFETY: a live frame we own; `quality` is the per-picture lambda the encoder reads.
    unsafe { (*frame.as_mut_ptr()).quality = lambda };
    enc.send_frame(&frame).map_err(ffe("encoding JPEG"))?;
    let _ = enc.send_eof();
    let mut pkt = ff::Packet::empty();
    enc.receive_packet(&mut pkt).map_err(ffe("encoding JPEG"))?;
    Ok(Bytes::copy_from_slice(pkt.data().unwrap_or_default()))
}

/// What a [`PosterWorker`] did, for the log and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PosterStats {
    pub posters: u64,
    pub tiles: u64,
    /// Keyframes that made no picture.
    pub errors: u64,
    /// Keyframes skipped because the queue was full.
    pub skipped: u64,
    /// CPU time of the worker thread, ms (Linux; None elsewhere).
    pub cpu_ms: Option<u64>,
}

/// CPU time of the calling thread from `/proc/thread-self/stat` (utime + stime), ms.
fn thread_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI the server runs on.
    Some(ticks * 10)
}

/// What a [`PosterWorker`] hands its sink.
#[derive(Debug)]
pub enum Picture {
    Poster(Poster),
    Sprite(Sprite),
}

/// A [`PosterMaker`] on its own thread. Only video configurations and keyframes are queued.
pub struct PosterWorker {
    tx: Option<SyncSender<MediaEvent>>,
    thread: Option<JoinHandle<PosterStats>>,
    /// Keyframes skipped because the queue was full.
    skipped: u64,
}

impl PosterWorker {
    /// Starts the thread; `sink` gets each poster as it is made and the sprite at the end.
    pub fn spawn<F>(settings: PosterSettings, mut sink: F) -> Self
    where
        F: FnMut(Picture) + Send + 'static,
    {
        let (tx, rx) = sync_channel::<MediaEvent>(8);
        let thread = std::thread::Builder::new()
            .name("vshare-poster".into())
            .spawn(move || {
                let mut maker = PosterMaker::new(settings);
                let mut stats = PosterStats::default();
                while let Ok(event) = rx.recv() {
                    match maker.push(&event) {
                        Ok(Some(p)) => {
                            stats.posters += 1;
                            sink(Picture::Poster(p));
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!("poster: {e}"),
                    }
                }
                stats.tiles = maker.tiles.len() as u64;
                match maker.sprite() {
                    Ok(Some(s)) => sink(Picture::Sprite(s)),
                    Ok(None) => {}
                    Err(e) => tracing::warn!("thumbnail sprite: {e}"),
                }
                stats.errors = maker.errors;
                stats.cpu_ms = thread_cpu_ms();
                stats
            })
            .ok();
        if thread.is_none() {
            tracing::error!("could not start the poster thread");
        }
        PosterWorker {
            tx: Some(tx),
            thread,
            skipped: 0,
        }
    }

    /// Offers one source event; never blocks.
    pub fn push(&mut self, event: &MediaEvent) {
        let wanted = match event {
            MediaEvent::Config(TrackConfig::Avc(_)) => true,
            MediaEvent::Frame(f) => f.track == TrackKind::Video && f.key,
            _ => false,
        };
        if !wanted {
            return;
        }
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_)) = tx.try_send(event.clone())
        {
            self.skipped += 1;
        }
    }

    /// Ends the input; the thread makes the sprite, hands it to the sink and stops. Blocks
    /// until it has (call from a blocking context).
    pub fn finish(mut self) -> PosterStats {
        self.tx = None;
        let mut stats = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        stats.skipped = self.skipped;
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_that_goes_back_restarts_the_schedules() {
        let mut m = PosterMaker::new(PosterSettings {
            max_width: 64,
            interval_us: 5_000_000,
            quality: 5,
            sprite: None,
        });
        m.next_poster_us = Some(10_000_000);
        m.record = Some(Bytes::new());
        let f = Frame {
            track: TrackKind::Video,
            pts: 1_000_000,
            dts: 1_000_000,
            key: true,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        };
        // Not decodable, but due again: counted as an error rather than waiting 9 s.
        assert!(m.keyframe(&f).is_ok_and(|p| p.is_none()));
        assert_eq!(m.errors, 1);
    }

    #[test]
    fn sizes_keep_the_aspect_ratio() {
        assert_eq!(fit_width(1280, 720, 640), (640, 360));
        assert_eq!(fit_width(640, 360, 1280), (640, 360));
        assert_eq!(fit_width(720, 1280, 160), (160, 284));
        assert_eq!(fit_width(1, 1, 160), (2, 2));
    }

    #[test]
    fn vtt_cues_name_their_tiles() {
        let s = Sprite {
            jpeg: Bytes::new(),
            width: 320,
            height: 90,
            tiles: vec![
                SpriteTile {
                    start_us: 0,
                    end_us: 2_000_000,
                    x: 0,
                    y: 0,
                    w: 160,
                    h: 90,
                },
                SpriteTile {
                    start_us: 2_000_000,
                    end_us: 3_723_004_000,
                    x: 160,
                    y: 0,
                    w: 160,
                    h: 90,
                },
            ],
        };
        assert_eq!(
            s.vtt("sprite.jpg"),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprite.jpg#xywh=0,0,160,90\n\n\
             00:00:02.000 --> 01:02:03.004\nsprite.jpg#xywh=160,0,160,90\n"
        );
    }
}
