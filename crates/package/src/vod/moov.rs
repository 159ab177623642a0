//! Writing the file header: the presentation times of the tracks, the `moov` with complete
//! sample tables (stts, ctts, stss, stsz, stsc, stco or co64) and edit lists, and the `mdat`
//! header.

use mp4_atom::{
    Co64, Ctts, CttsEntry, Edts, Elst, ElstEntry, Encode, FourCC, Ftyp, Moov, Mvhd, Stco, Stsc,
    StscEntry, Stss, Stsz, StszSamples, Stts, SttsEntry,
};

use super::VodMp4Builder;

/// Timescale of the movie header and edit lists (ISO/IEC 14496-12 §8.2.2 `timescale`).
const MOVIE_TIMESCALE: u32 = 1000;

impl VodMp4Builder {
    /// Presentation start (µs on the packager's timeline) and duration (µs) of each track with
    /// samples, and the media time its edit starts at.
    pub(super) fn track_times(&self) -> Vec<Option<(i64, i64, u64)>> {
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

    pub(super) fn earliest_start(times: &[Option<(i64, i64, u64)>]) -> i64 {
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

    pub(super) fn mdat_header_len(&self) -> u64 {
        if self.payload_len + 8 > u64::from(u32::MAX) {
            16
        } else {
            8
        }
    }

    pub(super) fn encoded(&self, co64: bool, chunk_base: u64) -> Vec<u8> {
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
