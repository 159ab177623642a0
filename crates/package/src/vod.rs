//! The fast-start MP4 (ISO/IEC 14496-12: `ftyp`, a `moov` with complete sample tables, then one
//! `mdat`) built from our recorded CMAF segments without copying sample data: the caller writes
//! [`VodMp4Builder::header`] and then the byte ranges of [`VodMp4Builder::payload_ranges`].

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    Co64, Codec, Ctts, CttsEntry, Decode, Edts, Elst, ElstEntry, Encode, FourCC, Ftyp, Moof, Moov,
    Mvhd, Stco, Stsc, StscEntry, Stss, Stsz, StszSamples, Stts, SttsEntry, Trak, TrunEntry,
};

use crate::PackageError;
use crate::fmp4::{BoxSpan, fourcc, top_level_boxes};

/// Timescale of the movie header and edit lists (ISO/IEC 14496-12 §8.2.2 `timescale`).
const MOVIE_TIMESCALE: u32 = 1000;

/// `sample_is_non_sync_sample` in `sample_flags` (ISO/IEC 14496-12 §8.8.3.1).
const NON_SYNC_FLAG: u32 = 0x0001_0000;

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

/// One run of samples read from a segment, checked and waiting to be committed. Times are in
/// the MP4 track's timescale.
struct StagedRun {
    track: usize,
    base_decode: u64,
    entry: u32,
    data: Range<usize>,
    samples: Vec<(u32, u32, u32, i32)>,
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

/// `value` ticks of `from` in ticks of `to`, rounded to nearest.
fn rescale(value: u64, from: u32, to: u32) -> u64 {
    if from == to {
        return value;
    }
    let from = u128::from(from.max(1));
    let v = (u128::from(value) * u128::from(to) + from / 2) / from;
    u64::try_from(v).unwrap_or(u64::MAX)
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

    fn stage_fragment(
        &self,
        data: &[u8],
        moof_box: &BoxSpan,
        mdat: &BoxSpan,
        layer: &str,
        staged: &mut Vec<StagedRun>,
    ) -> Result<(), PackageError> {
        let at = moof_box.start;
        let moof = Moof::decode(&mut &data[moof_box.start..moof_box.end])
            .map_err(|e| mp4_err(layer, at, format!("moof: {e}")))?;
        for traf in &moof.traf {
            let id = traf.tfhd.track_id;
            let track = self
                .tracks
                .iter()
                .position(|t| t.track_id == id && t.in_init)
                .ok_or_else(|| {
                    mp4_err(
                        layer,
                        at,
                        format!("traf of track {id}, which the init segment does not have"),
                    )
                })?;
            let t = &self.tracks[track];
            let base_decode = traf
                .tfdt
                .as_ref()
                .ok_or_else(|| mp4_err(layer, at, format!("traf of track {id} has no 'tfdt'")))?
                .base_media_decode_time;
            let description = traf.tfhd.sample_description_index.unwrap_or(t.trex_index);
            let entry = description
                .checked_sub(1)
                .and_then(|i| t.entry_map.get(i as usize))
                .copied()
                .ok_or_else(|| {
                    mp4_err(
                        layer,
                        at,
                        format!(
                            "track {id}: sample description {description} of {} in the init segment",
                            t.entry_map.len()
                        ),
                    )
                })?;
            let base = match traf.tfhd.base_data_offset {
                Some(b) => usize::try_from(b)
                    .map_err(|_| mp4_err(layer, at, "base_data_offset out of range"))?,
                None => moof_box.start,
            };
            let mut next_start = base;
            for trun in &traf.trun {
                let start = match trun.data_offset {
                    Some(o) => (base as i64)
                        .checked_add(i64::from(o))
                        .and_then(|s| usize::try_from(s).ok())
                        .ok_or_else(|| {
                            mp4_err(
                                layer,
                                at,
                                format!("track {id}: data_offset {o} points before the segment"),
                            )
                        })?,
                    None => next_start,
                };
                let mdat_len = mdat.end - mdat.body;
                if trun.samples.len() > mdat_len {
                    return Err(mp4_err(
                        layer,
                        at,
                        format!(
                            "track {id}: {} samples cannot fit an mdat of {mdat_len} bytes",
                            trun.samples.len()
                        ),
                    ));
                }
                let mut samples = Vec::with_capacity(trun.samples.len());
                let mut total = 0usize;
                for TrunEntry {
                    duration,
                    size,
                    flags,
                    cts,
                } in trun.samples.iter()
                {
                    let size = size
                        .or(traf.tfhd.default_sample_size)
                        .or((t.trex_size > 0).then_some(t.trex_size))
                        .filter(|s| *s > 0)
                        .ok_or_else(|| {
                            mp4_err(
                                layer,
                                at,
                                format!("track {id}: sample {} has no size", samples.len()),
                            )
                        })?;
                    let duration = duration
                        .or(traf.tfhd.default_sample_duration)
                        .or((t.trex_duration > 0).then_some(t.trex_duration))
                        .ok_or_else(|| {
                            mp4_err(
                                layer,
                                at,
                                format!("track {id}: sample {} has no duration", samples.len()),
                            )
                        })?;
                    let flags = flags
                        .or(traf.tfhd.default_sample_flags)
                        .unwrap_or(t.trex_flags);
                    let cts = i32::try_from(cts.unwrap_or(0)).map_err(|_| {
                        mp4_err(
                            layer,
                            at,
                            format!("track {id}: composition offset out of range"),
                        )
                    })?;
                    total = total.saturating_add(size as usize);
                    samples.push((duration, size, flags, cts));
                }
                let end = start.saturating_add(total);
                if start < mdat.body || end > mdat.end {
                    return Err(mp4_err(
                        layer,
                        at,
                        format!(
                            "track {id}: sample data {start}..{end} lies outside the mdat payload {}..{}",
                            mdat.body, mdat.end
                        ),
                    ));
                }
                next_start = end;
                if !samples.is_empty() {
                    let (base_decode, samples) = if t.source_timescale == t.timescale {
                        (base_decode, samples)
                    } else {
                        convert_times(base_decode, &samples, t.source_timescale, t.timescale)
                    };
                    staged.push(StagedRun {
                        track,
                        base_decode,
                        entry,
                        data: start..end,
                        samples,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records a checked run. Infallible, so a segment is recorded whole or not at all.
    fn commit(&mut self, seg_index: usize, run: StagedRun) {
        let t = &mut self.tracks[run.track];
        match t.first_decode {
            None => {
                t.first_decode = Some(run.base_decode);
                t.next_decode = run.base_decode;
            }
            Some(_) if run.base_decode > t.next_decode => {
                // A gap in the timeline: the previous sample lasts until this run starts.
                let gap = run.base_decode - t.next_decode;
                // (A gap beyond the 32-bit duration field only comes from damaged input: the
                // sample then lasts as long as the field allows.)
                if let Some(last) = t.durations.last_mut() {
                    *last = u32::try_from(u64::from(*last).saturating_add(gap)).unwrap_or(u32::MAX);
                }
                t.next_decode = run.base_decode;
            }
            // An overlap cannot be expressed in a sample table: the run continues the timeline.
            Some(_) => {}
        }
        let first = t.first_decode.unwrap_or(0);
        t.chunks
            .push((self.payload_len, run.samples.len() as u32, run.entry));
        for (duration, size, flags, cts) in run.samples {
            t.durations.push(duration);
            t.sizes.push(size);
            t.cts.push(cts);
            if !t.is_video || flags & NON_SYNC_FLAG == 0 {
                t.sync.push(t.durations.len() as u32);
            }
            let pts = ((t.next_decode - first) as i64).saturating_add(i64::from(cts));
            t.min_pts = Some(t.min_pts.map_or(pts, |m| m.min(pts)));
            t.max_pts_end = t.max_pts_end.max(pts.saturating_add(i64::from(duration)));
            t.next_decode = t.next_decode.saturating_add(u64::from(duration));
        }
        self.payload_len += run.data.len() as u64;
        match self.ranges.last_mut() {
            Some((s, r)) if *s == seg_index && r.end == run.data.start => r.end = run.data.end,
            _ => self.ranges.push((seg_index, run.data)),
        }
    }

    /// Presentation start (µs on the packager's timeline) and duration (µs) of each track with
    /// samples, and the media time its edit starts at.
    fn track_times(&self) -> Vec<Option<(i64, i64, u64)>> {
        self.tracks
            .iter()
            .map(|t| {
                let first = t.first_decode?;
                let media_time = t.min_pts.unwrap_or(0).max(0) as u64;
                let to_us =
                    |ticks: u64| (u128::from(ticks) * 1_000_000 / u128::from(t.timescale)) as i64;
                let start = to_us(first.saturating_add(media_time));
                // Presentation ends with the latest composition end, which B-frames put after
                // the decode end.
                let duration = to_us((t.max_pts_end.max(0) as u64).saturating_sub(media_time));
                Some((start, duration, media_time))
            })
            .collect()
    }

    fn earliest_start(times: &[Option<(i64, i64, u64)>]) -> i64 {
        times
            .iter()
            .flatten()
            .map(|(s, _, _)| *s)
            .min()
            .unwrap_or(0)
    }

    fn moov(&self, chunk_base: u64, co64: bool) -> Moov {
        let times = self.track_times();
        let g = Self::earliest_start(&times);
        let movie =
            |us: i64| (i128::from(us.max(0)) * i128::from(MOVIE_TIMESCALE) / 1_000_000) as u64;
        let mut traks = Vec::new();
        let mut movie_duration = 0u64;
        for (t, time) in self.tracks.iter().zip(&times) {
            let Some((start, duration, media_time)) = *time else {
                continue;
            };
            let empty = start.saturating_sub(g);
            let track_duration = movie(empty.saturating_add(duration));
            movie_duration = movie_duration.max(track_duration);
            let mut trak = t.template.clone();
            trak.tkhd.duration = track_duration;
            trak.mdia.mdhd.duration = t.next_decode - t.first_decode.unwrap_or(0);
            trak.edts = (empty > 0 || media_time > 0).then(|| {
                let mut entries = Vec::new();
                if empty > 0 {
                    entries.push(ElstEntry {
                        segment_duration: movie(empty),
                        media_time: None,
                        media_rate: 1.into(),
                    });
                }
                entries.push(ElstEntry {
                    segment_duration: movie(duration),
                    media_time: Some(media_time),
                    media_rate: 1.into(),
                });
                Edts {
                    elst: Some(Elst { entries }),
                }
            });
            let stbl = &mut trak.mdia.minf.stbl;
            stbl.stts = Stts {
                entries: run_lengths(&t.durations)
                    .map(|(n, d)| SttsEntry {
                        sample_count: n,
                        sample_delta: d,
                    })
                    .collect(),
            };
            stbl.ctts = (t.is_video && t.cts.iter().any(|c| *c != 0)).then(|| Ctts {
                entries: run_lengths(&t.cts)
                    .map(|(n, c)| CttsEntry {
                        sample_count: n,
                        sample_offset: i64::from(c),
                    })
                    .collect(),
            });
            stbl.stss = (t.sync.len() < t.durations.len()).then(|| Stss {
                entries: t.sync.clone(),
            });
            stbl.stsd.codecs = t.entries.clone();
            if let Some((w, h)) = t.presentation_size() {
                trak.tkhd.width = w.into();
                trak.tkhd.height = h.into();
            }
            let mut stsc = Vec::new();
            for (i, (_, n, entry)) in t.chunks.iter().enumerate() {
                if stsc.last().is_none_or(|e: &StscEntry| {
                    e.samples_per_chunk != *n || e.sample_description_index != *entry
                }) {
                    stsc.push(StscEntry {
                        first_chunk: i as u32 + 1,
                        samples_per_chunk: *n,
                        sample_description_index: *entry,
                    });
                }
            }
            stbl.stsc = Stsc { entries: stsc };
            stbl.stsz = Stsz {
                samples: StszSamples::Different {
                    sizes: t.sizes.clone(),
                },
            };
            let offsets = t.chunks.iter().map(|(o, _, _)| o + chunk_base);
            if co64 {
                stbl.stco = None;
                stbl.co64 = Some(Co64 {
                    entries: offsets.collect(),
                });
            } else {
                stbl.co64 = None;
                stbl.stco = Some(Stco {
                    entries: offsets.map(|o| o as u32).collect(),
                });
            }
            traks.push(trak);
        }
        Moov {
            mvhd: Mvhd {
                timescale: MOVIE_TIMESCALE,
                duration: movie_duration,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: self.tracks.iter().map(|t| t.track_id).max().unwrap_or(0) + 1,
                ..Default::default()
            },
            trak: traks,
            ..Default::default()
        }
    }

    fn mdat_header_len(&self) -> u64 {
        if self.payload_len + 8 > u64::from(u32::MAX) {
            16
        } else {
            8
        }
    }

    fn encoded(&self, co64: bool, chunk_base: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let ftyp = Ftyp {
            major_brand: FourCC::new(b"isom"),
            minor_version: 512,
            compatible_brands: self.ftyp_brands.clone(),
        };
        // Encoding these boxes cannot fail: every count fits its field (samples are at least a
        // byte each, tracks at most a few); an error would leave the header short and is caught
        // by the size check of callers' tests.
        let _ = ftyp.encode(&mut buf);
        let _ = self.moov(chunk_base, co64).encode(&mut buf);
        buf
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

/// A run's decode time and samples (duration, size, flags, composition offset) in ticks of
/// `from`, converted to ticks of `to`: each sample's decode time is converted and durations are
/// the differences, so rounding does not accumulate along the track.
fn convert_times(
    base_decode: u64,
    samples: &[(u32, u32, u32, i32)],
    from: u32,
    to: u32,
) -> (u64, Vec<(u32, u32, u32, i32)>) {
    let mut decode = base_decode;
    let mut out = Vec::with_capacity(samples.len());
    for (duration, size, flags, cts) in samples {
        let end = decode.saturating_add(u64::from(*duration));
        let d = rescale(end, from, to).saturating_sub(rescale(decode, from, to));
        let c = rescale(u64::from(cts.unsigned_abs()), from, to);
        let c = i32::try_from(c).unwrap_or(i32::MAX);
        out.push((
            u32::try_from(d).unwrap_or(u32::MAX),
            *size,
            *flags,
            if *cts < 0 { -c } else { c },
        ));
        decode = end;
    }
    (rescale(base_decode, from, to), out)
}

/// Runs of equal values: (count, value).
fn run_lengths<T: Copy + PartialEq>(values: &[T]) -> impl Iterator<Item = (u32, T)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = *values.get(i)?;
        let n = values[i..].iter().take_while(|v| **v == first).count();
        i += n;
        Some((n as u32, first))
    })
}
