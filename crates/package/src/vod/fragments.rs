//! Reading media segments: each `moof`/`mdat` pair is checked and staged against the track
//! configurations in force, then committed to the sample tables (times converted to the track's
//! first timescale, chunks pointed at their sample entry, payload ranges recorded).

use std::ops::Range;

use mp4_atom::{Decode, Moof, TrunEntry};

use super::{VodMp4Builder, mp4_err};
use crate::PackageError;
use crate::fmp4::BoxSpan;

/// `sample_is_non_sync_sample` in `sample_flags` (ISO/IEC 14496-12 §8.8.3.1).
const NON_SYNC_FLAG: u32 = 0x0001_0000;

/// One run of samples read from a segment, checked and waiting to be committed. Times are in
/// the MP4 track's timescale.
pub(super) struct StagedRun {
    track: usize,
    base_decode: u64,
    entry: u32,
    data: Range<usize>,
    samples: Vec<(u32, u32, u32, i32)>,
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

impl VodMp4Builder {
    pub(super) fn stage_fragment(
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
    pub(super) fn commit(&mut self, seg_index: usize, run: StagedRun) {
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
