//! The live window of one LL-HLS stream, as a live server keeps it: the init segments, the
//! current playlist, the parts not yet in the recording, and which segments are complete. It
//! answers the blocking-reload condition of RFC 8216bis §6.2.5.2 and says where a segment's or
//! a part's bytes are: in memory, or in the recording's storage (a part is a byte range of its
//! stored segment, which is its parts concatenated).
//!
//! Memory per stream is the segment in progress, the newest complete segment, and complete
//! segments the recorder has not yet confirmed stored ([`WindowUpdate::Stored`]); parts the
//! playlist still lists but whose segment is stored and older are read back by range. The
//! newest complete segment stays because it is what is asked for most once complete: its last
//! parts by players a moment behind the live edge, its whole by players that load segments. Sans-IO: a live server wraps it with its locks and
//! wake-ups.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::playlist::SEGMENTS_WITH_PARTS;

/// What the packager's side tells a live window, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowUpdate {
    /// A new init segment (`init.mp4` first, `init{msn}.mp4` after a codec change).
    Init { name: String, bytes: Bytes },
    /// Part `index` of segment `msn` exists; `playlist` lists it.
    Part {
        msn: u64,
        index: u32,
        bytes: Bytes,
        playlist: Arc<str>,
    },
    /// Segment `msn` is complete (its parts are all there); `playlist` lists it.
    Segment { msn: u64, playlist: Arc<str> },
    /// The recording has stored segment `msn`: its parts may leave memory.
    Stored { msn: u64 },
    /// The stream ended; `playlist` carries EXT-X-ENDLIST.
    End { playlist: Arc<str> },
    /// Segment `msn` is complete and stored, its parts of these lengths; `playlist` is the
    /// current one. What a [`LiveWindow::snapshot`] says of a segment whose parts left memory.
    StoredSegment {
        msn: u64,
        part_lengths: Vec<u32>,
        playlist: Arc<str>,
    },
}

/// Where a segment's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentBytes {
    /// Still in the window: its parts, concatenated.
    InMemory(Bytes),
    /// Complete, but its parts left the window: read it from the recording.
    Stored,
    /// Not complete (or never existed).
    Missing,
}

/// Where a part's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartBytes {
    InMemory(Bytes),
    /// In the stored segment `seg<msn>.m4s`, at `offset`, `len` bytes.
    Stored {
        offset: u64,
        len: u64,
    },
    /// Not made yet, or no longer listed.
    Missing,
}

/// The live window of one stream. See the module docs.
#[derive(Debug, Default)]
pub struct LiveWindow {
    /// Every init segment by name: segments still listed may be packaged under an older one.
    inits: BTreeMap<String, Bytes>,
    playlist: Option<Arc<str>>,
    /// Parts whose segment is in progress or not yet stored.
    parts: BTreeMap<(u64, u32), Bytes>,
    /// Where each part of a listed complete segment lies in it: (offset, length).
    part_ranges: BTreeMap<(u64, u32), (u64, u64)>,
    /// Complete segments the recording has stored.
    stored: std::collections::BTreeSet<u64>,
    /// Highest part listed, as (msn, index).
    last_part: Option<(u64, u32)>,
    /// Highest complete segment.
    last_segment: Option<u64>,
    /// Parts per complete segment still held (to know a segment is whole in memory).
    part_counts: BTreeMap<u64, u32>,
    ended: bool,
}

impl LiveWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one update. Parts stay in memory until their segment is complete and stored;
    /// parts (and their ranges) are listed for the segments the playlist lists parts for and
    /// one more; older bytes are the recording's.
    pub fn apply(&mut self, update: WindowUpdate) {
        match update {
            WindowUpdate::Init { name, bytes } => {
                self.inits.insert(name, bytes);
            }
            WindowUpdate::Part {
                msn,
                index,
                bytes,
                playlist,
            } => {
                self.parts.insert((msn, index), bytes);
                self.playlist = Some(playlist);
                self.last_part = self.last_part.max(Some((msn, index)));
            }
            WindowUpdate::Segment { msn, playlist } => {
                let mut offset = 0;
                let mut count = 0;
                for (&(m, index), bytes) in self.parts.range((msn, 0)..(msn + 1, 0)) {
                    let len = bytes.len() as u64;
                    self.part_ranges.insert((m, index), (offset, len));
                    offset += len;
                    count += 1;
                }
                self.part_counts.insert(msn, count);
                self.playlist = Some(playlist);
                self.last_segment = self.last_segment.max(Some(msn));
                self.keep_listed();
                // The segment before this one is no longer the newest: if stored, its parts go.
                let older: Vec<u64> = self.stored.range(..msn).copied().collect();
                for m in older {
                    self.forget_parts(m);
                }
            }
            WindowUpdate::StoredSegment {
                msn,
                part_lengths,
                playlist,
            } => {
                let mut offset = 0;
                for (index, &len) in (0u32..).zip(&part_lengths) {
                    self.part_ranges
                        .insert((msn, index), (offset, u64::from(len)));
                    offset += u64::from(len);
                }
                let count = part_lengths.len() as u32;
                self.part_counts.insert(msn, count);
                self.stored.insert(msn);
                self.forget_parts(msn);
                if let Some(last) = count.checked_sub(1) {
                    self.last_part = self.last_part.max(Some((msn, last)));
                }
                self.last_segment = self.last_segment.max(Some(msn));
                self.playlist = Some(playlist);
                self.keep_listed();
            }
            WindowUpdate::Stored { msn } => {
                if self
                    .last_segment
                    .is_some_and(|last| msn + SEGMENTS_WITH_PARTS as u64 >= last)
                {
                    self.stored.insert(msn);
                }
                if self.part_counts.contains_key(&msn)
                    && self.last_segment.is_some_and(|last| msn < last)
                {
                    self.forget_parts(msn);
                }
            }
            WindowUpdate::End { playlist } => {
                self.playlist = Some(playlist);
                self.ended = true;
            }
        }
    }

    /// Keeps parts and ranges for the segments the playlist lists parts for and one more: a
    /// player on the playlist before this one may still ask for them.
    fn keep_listed(&mut self) {
        let Some(last) = self.last_segment else {
            return;
        };
        let keep_from = last.saturating_sub(SEGMENTS_WITH_PARTS as u64);
        self.parts.retain(|(m, _), _| *m >= keep_from);
        self.part_ranges.retain(|(m, _), _| *m >= keep_from);
        self.part_counts.retain(|m, _| *m >= keep_from);
        self.stored.retain(|m| *m >= keep_from);
    }

    /// Updates that bring an empty window to the state of this one (what a live server that
    /// lost it is sent after a reconnect): the init segments, each listed complete segment —
    /// its parts, `Segment` (and `Stored` if stored) while they are in memory, else
    /// `StoredSegment` with their lengths — then the parts of the segment in progress, and `End` if the stream ended.
    /// Every playlist is the current one. Empty before the first playlist.
    pub fn snapshot(&self) -> Vec<WindowUpdate> {
        let Some(playlist) = self.playlist.clone() else {
            return Vec::new();
        };
        let mut out: Vec<WindowUpdate> = self
            .inits
            .iter()
            .map(|(name, bytes)| WindowUpdate::Init {
                name: name.clone(),
                bytes: bytes.clone(),
            })
            .collect();
        let part = |(&(msn, index), bytes): (&(u64, u32), &Bytes)| WindowUpdate::Part {
            msn,
            index,
            bytes: bytes.clone(),
            playlist: playlist.clone(),
        };
        for (&msn, &count) in &self.part_counts {
            let held = self.parts.range((msn, 0)..(msn + 1, 0)).count() as u32;
            if held == count {
                out.extend(self.parts.range((msn, 0)..(msn + 1, 0)).map(part));
                out.push(WindowUpdate::Segment {
                    msn,
                    playlist: playlist.clone(),
                });
                // The newest complete segment keeps its parts once stored.
                if self.stored.contains(&msn) {
                    out.push(WindowUpdate::Stored { msn });
                }
            } else {
                let part_lengths = self
                    .part_ranges
                    .range((msn, 0)..(msn + 1, 0))
                    .map(|(_, &(_, len))| u32::try_from(len).unwrap_or(u32::MAX))
                    .collect();
                out.push(WindowUpdate::StoredSegment {
                    msn,
                    part_lengths,
                    playlist: playlist.clone(),
                });
            }
        }
        let from = self.last_segment.map_or(0, |l| l + 1);
        out.extend(self.parts.range((from, 0)..).map(part));
        if self.ended {
            out.push(WindowUpdate::End { playlist });
        }
        out
    }

    /// Drops the in-memory parts of a complete, stored segment (their ranges stay).
    fn forget_parts(&mut self, msn: u64) {
        let keys: Vec<_> = self
            .parts
            .range((msn, 0)..(msn + 1, 0))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.parts.remove(&k);
        }
    }

    pub fn playlist(&self) -> Option<Arc<str>> {
        self.playlist.clone()
    }

    /// An init segment by name (`init.mp4`, `init{msn}.mp4`).
    pub fn init(&self, name: &str) -> Option<Bytes> {
        self.inits.get(name).cloned()
    }

    /// Where part `index` of segment `msn` is.
    pub fn part(&self, msn: u64, index: u32) -> PartBytes {
        if let Some(b) = self.parts.get(&(msn, index)) {
            return PartBytes::InMemory(b.clone());
        }
        match self.part_ranges.get(&(msn, index)) {
            Some(&(offset, len)) => PartBytes::Stored { offset, len },
            None => PartBytes::Missing,
        }
    }

    /// Where segment `msn`'s bytes are.
    pub fn segment(&self, msn: u64) -> SegmentBytes {
        if self.last_segment.is_none_or(|last| msn > last) {
            return SegmentBytes::Missing;
        }
        let Some(&count) = self.part_counts.get(&msn) else {
            return SegmentBytes::Stored;
        };
        let parts: Vec<&Bytes> = self
            .parts
            .range((msn, 0)..(msn + 1, 0))
            .map(|(_, b)| b)
            .collect();
        if parts.len() as u32 != count || count == 0 {
            return SegmentBytes::Stored;
        }
        let mut bytes = BytesMut::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            bytes.extend_from_slice(p);
        }
        SegmentBytes::InMemory(bytes.freeze())
    }

    /// True when the playlist satisfies a blocking reload for part (`msn`, `part`) — that part
    /// or a later one is listed — or, without a part, for complete segment `msn`. An ended
    /// stream satisfies every request.
    pub fn satisfies(&self, msn: u64, part: Option<u32>) -> bool {
        if self.ended {
            return true;
        }
        match part {
            Some(p) => self.last_part.is_some_and(|last| last >= (msn, p)),
            None => self.last_segment.is_some_and(|last| last >= msn),
        }
    }

    /// The (msn, part) after the last listed part: a client may block for it, and a request
    /// far beyond it is refused rather than held.
    pub fn next_expected(&self) -> (u64, u32) {
        match self.last_part {
            Some((msn, idx)) => (msn, idx + 1),
            None => (0, 0),
        }
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Bytes of media the window holds (parts and init segments).
    pub fn held_bytes(&self) -> usize {
        self.parts.values().map(Bytes::len).sum::<usize>()
            + self.inits.values().map(Bytes::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pl(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    /// Segments of three parts each, part bytes naming their (msn, index).
    fn fill(w: &mut LiveWindow, segments: u64) {
        w.apply(WindowUpdate::Init {
            name: "init.mp4".into(),
            bytes: Bytes::from_static(b"init"),
        });
        fill_from(w, 0, segments);
    }

    fn fill_from(w: &mut LiveWindow, from: u64, to: u64) {
        for msn in from..to {
            for index in 0..3 {
                w.apply(WindowUpdate::Part {
                    msn,
                    index,
                    bytes: Bytes::from(format!("[{msn}.{index}]")),
                    playlist: pl(&format!("p{msn}.{index}")),
                });
            }
            w.apply(WindowUpdate::Segment {
                msn,
                playlist: pl(&format!("s{msn}")),
            });
        }
    }

    #[test]
    fn recent_segments_come_from_their_parts_older_ones_from_storage() {
        let mut w = LiveWindow::new();
        fill(&mut w, 10);
        assert_eq!(
            w.segment(9),
            SegmentBytes::InMemory(Bytes::from_static(b"[9.0][9.1][9.2]"))
        );
        assert!(matches!(w.segment(6), SegmentBytes::InMemory(_)));
        assert_eq!(w.segment(5), SegmentBytes::Stored);
        assert_eq!(w.segment(0), SegmentBytes::Stored);
        assert_eq!(w.segment(10), SegmentBytes::Missing);
        assert!(matches!(w.part(9, 2), PartBytes::InMemory(_)));
        assert!(matches!(w.part(6, 0), PartBytes::InMemory(_)));
        assert_eq!(
            w.part(5, 0),
            PartBytes::Missing,
            "parts leave a segment after their listing"
        );
        assert_eq!(w.init("init.mp4"), Some(Bytes::from_static(b"init")));
        assert_eq!(w.playlist().as_deref(), Some("s9"));
        // Four segments of three 5-byte parts, and the init segment.
        assert_eq!(w.held_bytes(), 12 * 5 + 4);
    }

    #[test]
    fn a_segment_in_progress_is_missing_its_parts_are_there() {
        let mut w = LiveWindow::new();
        fill(&mut w, 2);
        w.apply(WindowUpdate::Part {
            msn: 2,
            index: 0,
            bytes: Bytes::from_static(b"x"),
            playlist: pl("p2.0"),
        });
        assert_eq!(w.segment(2), SegmentBytes::Missing);
        assert_eq!(w.part(2, 0), PartBytes::InMemory(Bytes::from_static(b"x")));
    }

    #[test]
    fn a_stored_segment_s_parts_are_byte_ranges_of_it() {
        let mut w = LiveWindow::new();
        fill(&mut w, 3);
        // Nothing stored yet: everything listed is in memory.
        assert_eq!(w.held_bytes(), 9 * 5 + 4);
        w.apply(WindowUpdate::Stored { msn: 1 });
        assert_eq!(w.part(1, 0), PartBytes::Stored { offset: 0, len: 5 });
        assert_eq!(w.part(1, 2), PartBytes::Stored { offset: 10, len: 5 });
        assert_eq!(w.segment(1), SegmentBytes::Stored);
        assert!(matches!(w.part(2, 1), PartBytes::InMemory(_)));
        assert_eq!(w.held_bytes(), 6 * 5 + 4);
        // A stored confirmation before the segment is complete (it cannot come earlier in
        // order, but the window does not rely on it) leaves the segment's parts until then.
        w.apply(WindowUpdate::Part {
            msn: 3,
            index: 0,
            bytes: Bytes::from_static(b"[3.0]"),
            playlist: pl("p3.0"),
        });
        w.apply(WindowUpdate::Stored { msn: 3 });
        assert!(matches!(w.part(3, 0), PartBytes::InMemory(_)));
        w.apply(WindowUpdate::Segment {
            msn: 3,
            playlist: pl("s3"),
        });
        // Complete and stored, but the newest: still in memory until the next completes.
        assert!(matches!(w.part(3, 0), PartBytes::InMemory(_)));
        assert!(matches!(w.segment(3), SegmentBytes::InMemory(_)));
        fill_from(&mut w, 4, 5);
        assert_eq!(w.part(3, 0), PartBytes::Stored { offset: 0, len: 5 });
        assert_eq!(w.segment(3), SegmentBytes::Stored);
        // The concatenation of the parts is the stored segment: ranges follow each other.
        let ranges: Vec<_> = (0..3).map(|i| w.part(1, i)).collect();
        assert_eq!(
            ranges,
            [
                PartBytes::Stored { offset: 0, len: 5 },
                PartBytes::Stored { offset: 5, len: 5 },
                PartBytes::Stored { offset: 10, len: 5 },
            ]
        );
        // Parts beyond the listing go, stored or not.
        fill_from(&mut w, 5, 10);
        assert_eq!(w.part(1, 0), PartBytes::Missing);
    }

    /// What a client sees of a window: playlist, inits, every part and segment, the blocking
    /// condition.
    fn view(w: &LiveWindow, segments: u64) -> Vec<String> {
        let mut v = vec![format!("{:?} {:?}", w.playlist(), w.init("init.mp4"))];
        for msn in 0..=segments {
            v.push(format!("{msn}: {:?}", w.segment(msn)));
            for i in 0..4 {
                v.push(format!("{msn}.{i}: {:?}", w.part(msn, i)));
            }
        }
        v.push(format!("{:?} {}", w.next_expected(), w.is_ended()));
        v.push(format!("{}", w.satisfies(segments, None)));
        v
    }

    #[test]
    fn a_snapshot_rebuilds_the_window() {
        let mut w = LiveWindow::new();
        assert!(w.snapshot().is_empty());
        fill(&mut w, 6);
        for msn in 0..4 {
            w.apply(WindowUpdate::Stored { msn });
        }
        // Segment 6 in progress, 4 and 5 complete in memory, 3 and 2 stored with ranges.
        for index in 0..2 {
            w.apply(WindowUpdate::Part {
                msn: 6,
                index,
                bytes: Bytes::from(format!("[6.{index}]")),
                playlist: pl(&format!("p6.{index}")),
            });
        }
        let mut fresh = LiveWindow::new();
        for u in w.snapshot() {
            fresh.apply(u);
        }
        assert_eq!(view(&fresh, 7), view(&w, 7));
        assert_eq!(fresh.held_bytes(), w.held_bytes());
        // And it goes on from there like the original.
        fill_from(&mut w, 6, 9);
        fill_from(&mut fresh, 6, 9);
        assert_eq!(view(&fresh, 9), view(&w, 9));
        w.apply(WindowUpdate::End {
            playlist: pl("end"),
        });
        let mut ended = LiveWindow::new();
        for u in w.snapshot() {
            ended.apply(u);
        }
        assert_eq!(view(&ended, 9), view(&w, 9));
    }

    #[test]
    fn the_newest_complete_segment_stays_in_memory_once_stored() {
        let mut w = LiveWindow::new();
        fill(&mut w, 3);
        for msn in 0..3 {
            w.apply(WindowUpdate::Stored { msn });
        }
        // Segments 0 and 1 are read back from storage; 2, the newest, is served from memory.
        assert_eq!(w.segment(1), SegmentBytes::Stored);
        assert_eq!(
            w.segment(2),
            SegmentBytes::InMemory(Bytes::from_static(b"[2.0][2.1][2.2]"))
        );
        assert_eq!(
            w.part(2, 2),
            PartBytes::InMemory(Bytes::from_static(b"[2.2]"))
        );
        assert_eq!(w.held_bytes(), 3 * 5 + 4);
        // A part of the next segment changes nothing; its completion sends 2 to storage.
        w.apply(WindowUpdate::Part {
            msn: 3,
            index: 0,
            bytes: Bytes::from_static(b"[3.0]"),
            playlist: pl("p3.0"),
        });
        assert!(matches!(w.segment(2), SegmentBytes::InMemory(_)));
        w.apply(WindowUpdate::Part {
            msn: 3,
            index: 1,
            bytes: Bytes::from_static(b"[3.1]"),
            playlist: pl("p3.1"),
        });
        w.apply(WindowUpdate::Segment {
            msn: 3,
            playlist: pl("s3"),
        });
        assert_eq!(w.segment(2), SegmentBytes::Stored);
        assert_eq!(w.part(2, 2), PartBytes::Stored { offset: 10, len: 5 });
        // Segment 3 is not stored yet: in memory either way.
        assert_eq!(w.held_bytes(), 2 * 5 + 4);
        w.apply(WindowUpdate::Stored { msn: 3 });
        assert_eq!(w.held_bytes(), 2 * 5 + 4);
    }

    #[test]
    fn blocking_reload_condition() {
        let mut w = LiveWindow::new();
        assert!(!w.satisfies(0, Some(0)) && !w.satisfies(0, None));
        assert_eq!(w.next_expected(), (0, 0));
        fill(&mut w, 2);
        assert!(w.satisfies(1, Some(2)) && w.satisfies(1, None) && w.satisfies(0, Some(7)));
        assert!(!w.satisfies(2, Some(0)) && !w.satisfies(2, None));
        assert_eq!(w.next_expected(), (1, 3));
        w.apply(WindowUpdate::Part {
            msn: 2,
            index: 0,
            bytes: Bytes::from_static(b"x"),
            playlist: pl("p2.0"),
        });
        assert!(w.satisfies(2, Some(0)) && !w.satisfies(2, Some(1)));
        w.apply(WindowUpdate::End {
            playlist: pl("end"),
        });
        assert!(w.satisfies(99, Some(9)) && w.is_ended());
    }
}
