//! The fast-start MP4 (ISO/IEC 14496-12: `ftyp`, a `moov` with complete sample tables, then one
//! `mdat`) built from our recorded CMAF segments without copying sample data: the caller writes
//! [`VodMp4Builder::header`] and then the byte ranges of [`VodMp4Builder::payload_ranges`].
//!
//! This file holds the builder, its tracks and the init segments it reads; `fragments` reads
//! the media segments' `moof`/`mdat` pairs into the sample tables, and `moov` writes them out.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{Codec, Decode, FourCC, Moov, Trak};

use crate::PackageError;
use crate::fmp4::{fourcc, top_level_boxes};

mod fragments;
mod moov;

use fragments::StagedRun;

#[derive(Debug, Clone)]
struct VodTrack {
    /// The `trak` of the first init segment that had this track: `tkhd`, `mdhd`, `hdlr` are
    /// kept; its `stsd` is replaced by `entries`.
    template: Trak,
    track_id: u32,
    /// The media timescale of the MP4 track (that of the first init segment).
    timescale: u32,
    is_video: bool,
    /// Every sample entry met so far, in order: `stsd` lists them, `stsc` refers to them.
    entries: Vec<Codec>,
    /// The current init segment's view of the track: its timescale (fragment times are converted
    /// from it when it differs), its `trex` defaults and, for each of its `stsd` entries, the
    /// 1-based index of the same entry in `entries`.
    source_timescale: u32,
    entry_map: Vec<u32>,
    trex_index: u32,
    trex_duration: u32,
    trex_size: u32,
    trex_flags: u32,
    /// The current init segment describes this track (fragments of other tracks are refused).
    in_init: bool,
    first_decode: Option<u64>,
    next_decode: u64,
    durations: Vec<u32>,
    sizes: Vec<u32>,
    cts: Vec<i32>,
    /// 1-based numbers of sync samples.
    sync: Vec<u32>,
    /// (offset in the payload, number of samples, 1-based sample entry index) of each chunk.
    chunks: Vec<(u64, u32, u32)>,
    /// Earliest composition time, relative to the first decode time, in the track timescale.
    min_pts: Option<i64>,
    /// Latest composition end time (pts + duration), same reference.
    max_pts_end: i64,
}

/// A track as one init segment describes it.
struct InitTrack {
    trak: Trak,
    track_id: u32,
    timescale: u32,
    is_video: bool,
    trex_index: u32,
    trex_duration: u32,
    trex_size: u32,
    trex_flags: u32,
}

/// Builds a fast-start MP4 from init segments and media segments that the packager wrote.
///
/// A stream whose codec configuration changes (a new init segment mid-stream, e.g. a publisher
/// that changes its picture size) stays one MP4: each track's `stsd` lists every distinct sample
/// entry and `stsc` points each chunk at the entry its samples were coded with (ISO/IEC
/// 14496-12 §8.7.4 `sample_description_index`).
#[derive(Debug, Clone)]
pub struct VodMp4Builder {
    ftyp_brands: Vec<FourCC>,
    tracks: Vec<VodTrack>,
    ranges: Vec<(usize, Range<usize>)>,
    payload_len: u64,
    segments: usize,
    inits: usize,
}

fn mp4_err(layer: &str, offset: usize, what: impl Into<String>) -> PackageError {
    PackageError::Mp4 {
        layer: layer.to_string(),
        offset,
        what: what.into(),
    }
}

/// Reads the tracks of an init segment (`ftyp` + `moov` with `mvex`), and where its `moov` starts.
fn read_init(init_segment: &[u8], layer: &str) -> Result<(Vec<InitTrack>, usize), PackageError> {
    let boxes = top_level_boxes(init_segment, layer)?;
    let moov_box = boxes
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| mp4_err(layer, 0, "no 'moov' box"))?;
    let at = moov_box.start;
    let moov = Moov::decode(&mut &init_segment[moov_box.start..moov_box.end])
        .map_err(|e| mp4_err(layer, at, format!("moov: {e}")))?;
    let mvex = moov.mvex.as_ref().ok_or_else(|| {
        mp4_err(
            layer,
            at,
            "moov has no 'mvex': not a fragmented init segment",
        )
    })?;
    let mut tracks: Vec<InitTrack> = Vec::new();
    for trak in &moov.trak {
        let id = trak.tkhd.track_id;
        let timescale = trak.mdia.mdhd.timescale;
        if timescale == 0 {
            return Err(mp4_err(layer, at, format!("track {id}: timescale 0")));
        }
        let codecs = &trak.mdia.minf.stbl.stsd.codecs;
        let is_video = matches!(codecs.first(), Some(Codec::Avc1(_)));
        if codecs.is_empty() {
            return Err(mp4_err(layer, at, format!("track {id}: empty 'stsd'")));
        }
        for codec in codecs {
            match (codec, is_video) {
                (Codec::Avc1(_), true) | (Codec::Mp4a(_), false) => {}
                (other, _) => {
                    return Err(mp4_err(
                        layer,
                        at,
                        format!("track {id}: sample entry {other:?} is not avc1 or mp4a")
                            .chars()
                            .take(120)
                            .collect::<String>(),
                    ));
                }
            }
        }
        if tracks.iter().any(|t| t.track_id == id) {
            return Err(mp4_err(layer, at, format!("track {id} appears twice")));
        }
        let trex = mvex.trex.iter().find(|t| t.track_id == id);
        tracks.push(InitTrack {
            trak: trak.clone(),
            track_id: id,
            timescale,
            is_video,
            trex_index: trex.map_or(1, |t| t.default_sample_description_index),
            trex_duration: trex.map_or(0, |t| t.default_sample_duration),
            trex_size: trex.map_or(0, |t| t.default_sample_size),
            trex_flags: trex.map_or(0, |t| t.default_sample_flags),
        });
    }
    if tracks.is_empty() {
        return Err(mp4_err(layer, at, "moov has no tracks"));
    }
    Ok((tracks, at))
}

impl VodTrack {
    fn new(init: InitTrack) -> Self {
        let entries = init.trak.mdia.minf.stbl.stsd.codecs.clone();
        VodTrack {
            entry_map: (1..=entries.len() as u32).collect(),
            entries,
            template: init.trak,
            track_id: init.track_id,
            timescale: init.timescale,
            is_video: init.is_video,
            source_timescale: init.timescale,
            trex_index: init.trex_index,
            trex_duration: init.trex_duration,
            trex_size: init.trex_size,
            trex_flags: init.trex_flags,
            in_init: true,
            first_decode: None,
            next_decode: 0,
            durations: Vec::new(),
            sizes: Vec::new(),
            cts: Vec::new(),
            sync: Vec::new(),
            chunks: Vec::new(),
            min_pts: None,
            max_pts_end: 0,
        }
    }

    /// The picture size the `tkhd` announces: the largest (by area) of the track's sample
    /// entries, the first of equal ones, so that no picture of the track is shown scaled down.
    fn presentation_size(&self) -> Option<(u16, u16)> {
        self.entries
            .iter()
            .filter_map(|c| match c {
                Codec::Avc1(a) => Some((a.visual.width, a.visual.height)),
                _ => None,
            })
            .fold(None, |best: Option<(u16, u16)>, (w, h)| match best {
                Some((bw, bh)) if u32::from(bw) * u32::from(bh) >= u32::from(w) * u32::from(h) => {
                    best
                }
                _ => Some((w, h)),
            })
    }
}

impl VodMp4Builder {
    /// Reads the track configurations back from an init segment (`ftyp` + `moov` with `mvex`),
    /// so the VOD file can be built after a restart from what was stored.
    pub fn new(init_segment: &[u8]) -> Result<Self, PackageError> {
        let tracks: Vec<VodTrack> = read_init(init_segment, "init segment")?
            .0
            .into_iter()
            .map(VodTrack::new)
            .collect();
        let mut builder = VodMp4Builder {
            ftyp_brands: vec![
                FourCC::new(b"isom"),
                FourCC::new(b"iso2"),
                FourCC::new(b"mp41"),
            ],
            tracks,
            ranges: Vec::new(),
            payload_len: 0,
            segments: 0,
            inits: 1,
        };
        builder.update_brands();
        Ok(builder)
    }

    fn update_brands(&mut self) {
        let avc1 = FourCC::new(b"avc1");
        if self.tracks.iter().any(|t| t.is_video) && !self.ftyp_brands.contains(&avc1) {
            self.ftyp_brands.push(avc1);
        }
    }

    /// Takes a new init segment that the packager wrote mid-stream (after a codec configuration
    /// change): the segments added from now on are read against it. For each of its tracks, a
    /// sample entry that differs from every entry met so far is appended to the track's `stsd`,
    /// and the following chunks refer to it; an entry equal to an earlier one (a publisher that
    /// steps back to an earlier configuration) reuses that one. A track the MP4 did not have yet
    /// is added (it starts later, with an empty edit before it). Fragment times in a changed
    /// timescale are converted to the track's first one. On error nothing changes.
    pub fn add_init(&mut self, init_segment: &[u8]) -> Result<(), PackageError> {
        let layer = format!("init segment {}", self.inits);
        let (parsed, at) = read_init(init_segment, &layer)?;
        for p in &parsed {
            if let Some(t) = self.tracks.iter().find(|t| t.track_id == p.track_id)
                && t.is_video != p.is_video
            {
                return Err(mp4_err(
                    &layer,
                    at,
                    format!(
                        "track {} changes from {} to {}",
                        p.track_id,
                        if t.is_video { "video" } else { "audio" },
                        if p.is_video { "video" } else { "audio" },
                    ),
                ));
            }
        }
        // Checked: from here on the builder changes.
        for t in &mut self.tracks {
            t.in_init = false;
        }
        for p in parsed {
            let Some(t) = self.tracks.iter_mut().find(|t| t.track_id == p.track_id) else {
                self.tracks.push(VodTrack::new(p));
                continue;
            };
            t.entry_map = p
                .trak
                .mdia
                .minf
                .stbl
                .stsd
                .codecs
                .iter()
                .map(|codec| match t.entries.iter().position(|e| e == codec) {
                    Some(i) => i as u32 + 1,
                    None => {
                        t.entries.push(codec.clone());
                        t.entries.len() as u32
                    }
                })
                .collect();
            t.source_timescale = p.timescale;
            t.trex_index = p.trex_index;
            t.trex_duration = p.trex_duration;
            t.trex_size = p.trex_size;
            t.trex_flags = p.trex_flags;
            t.in_init = true;
        }
        self.update_brands();
        self.inits += 1;
        Ok(())
    }

    /// Parses one segment's moof/mdat pairs and records its samples. On error nothing of the
    /// segment is recorded (and it does not count towards the segment indices).
    pub fn add_segment(&mut self, segment: &[u8]) -> Result<(), PackageError> {
        let layer = format!("media segment {}", self.segments);
        let boxes = top_level_boxes(segment, &layer)?;
        let mut staged: Vec<StagedRun> = Vec::new();
        let mut i = 0;
        while let Some(b) = boxes.get(i) {
            match &b.kind {
                b"moof" => {
                    let mdat =
                        boxes
                            .get(i + 1)
                            .filter(|m| &m.kind == b"mdat")
                            .ok_or_else(|| {
                                mp4_err(&layer, b.end, "'moof' is not followed by 'mdat'")
                            })?;
                    self.stage_fragment(segment, b, mdat, &layer, &mut staged)?;
                    i += 2;
                }
                b"styp" | b"sidx" | b"free" | b"skip" | b"prft" | b"emsg" => i += 1,
                other => {
                    return Err(mp4_err(
                        &layer,
                        b.start,
                        format!("unexpected box '{}'", fourcc(*other)),
                    ));
                }
            }
        }
        let seg_index = self.segments;
        for run in staged {
            self.commit(seg_index, run);
        }
        self.segments += 1;
        Ok(())
    }

    /// `ftyp` + `moov` (stts, ctts, stss, stsz, stsc, stco or co64, edts where needed) + the
    /// `mdat` header (64-bit size beyond 4 GiB). Chunk offsets count this header.
    pub fn header(&self) -> Bytes {
        let mdat_header = self.mdat_header_len();
        let probe = self.encoded(false, 0).len() as u64;
        let co64 = probe + mdat_header + self.payload_len > u64::from(u32::MAX);
        let len = self.encoded(co64, 0).len() as u64;
        let body = self.encoded(co64, len + mdat_header);
        let mut out = BytesMut::with_capacity(body.len() + 16);
        out.put_slice(&body);
        if mdat_header == 16 {
            out.put_u32(1);
            out.put_slice(b"mdat");
            out.put_u64(self.payload_len + 16);
        } else {
            out.put_u32((self.payload_len + 8) as u32);
            out.put_slice(b"mdat");
        }
        out.freeze()
    }

    /// The bytes to copy after [`header`](Self::header), in order: (segment index in the order
    /// segments were added, byte range within that segment).
    pub fn payload_ranges(&self) -> Vec<(usize, Range<usize>)> {
        self.ranges.clone()
    }

    /// Duration of the presentation, µs (earliest track start to latest track end).
    pub fn duration_us(&self) -> i64 {
        let times = self.track_times();
        let g = Self::earliest_start(&times);
        times
            .iter()
            .flatten()
            .map(|(s, d, _)| s.saturating_sub(g).saturating_add(*d))
            .max()
            .unwrap_or(0)
    }

    /// Size of the finished file: header plus payload.
    pub fn total_size(&self) -> u64 {
        self.header().len() as u64 + self.payload_len
    }

    /// Segments added so far.
    pub fn segment_count(&self) -> usize {
        self.segments
    }

    /// Samples recorded per track id.
    pub fn sample_counts(&self) -> Vec<(u32, usize)> {
        self.tracks
            .iter()
            .map(|t| (t.track_id, t.sizes.len()))
            .collect()
    }
}
