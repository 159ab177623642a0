//! The recording's layout in storage, sans-IO: which objects a rendition's init segments and
//! segments are stored as, which init segment each segment was packaged under, and the MP4
//! sample tables built as they come. The recorder task stores what [`Recording`] says; recovery
//! reads the same layout back with [`StoredLayout`].
//!
//! The rule, both ways: the first configuration is `init.mp4`; a later one is `init<msn>.mp4`,
//! named after the first segment packaged under it and stored just before that segment (a
//! configuration that no segment used is never stored). A segment belongs to the latest init
//! segment whose number is at most its own.

use bytes::Bytes;
use vshare_package::VodMp4Builder;

use crate::db::SegmentRow;

/// What the session hands a rendition's recorder.
#[derive(Debug)]
pub enum RecordMessage {
    Init(Bytes),
    Segment {
        msn: u64,
        duration_us: i64,
        bytes: Bytes,
    },
}

/// What the recorder must do for one message, in order.
#[derive(Debug, PartialEq)]
pub enum Store {
    /// Store an object under the rendition's prefix.
    Object { name: String, bytes: Bytes },
    /// Record a segment's row (after its object is stored).
    Row(SegmentRow),
}

/// Why a message could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("segment {0} came before any init segment")]
    SegmentBeforeInit(u64),
    #[error("{0}")]
    Package(#[from] vshare_package::PackageError),
}

/// The storage name of an init segment: `init.mp4` for the stream's first configuration,
/// `init<msn>.mp4` for one that a codec configuration change started at segment `msn`.
pub fn init_name(first: bool, msn: u64) -> String {
    if first {
        "init.mp4".to_string()
    } else {
        format!("init{msn}.mp4")
    }
}

/// The storage name of segment `msn`.
pub fn segment_name(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// One rendition's recording as it is made.
#[derive(Default)]
pub struct Recording {
    /// The MP4's sample tables, from the first init segment on.
    pub builder: Option<VodMp4Builder>,
    pub segments: Vec<SegmentRow>,
    /// Bytes of every init segment stored.
    pub init_size: u64,
    /// A later init segment, until the first segment packaged under it stores it.
    pending: Option<Bytes>,
    /// The stored init segment in force: its bytes and name.
    current: Option<(Bytes, String)>,
}

impl Recording {
    /// Takes one message; returns what to store, in order. Nothing is stored for a repeated
    /// init segment, nor yet for a later one.
    pub fn push(&mut self, message: RecordMessage) -> Result<Vec<Store>, RecordingError> {
        match message {
            RecordMessage::Init(bytes) => {
                self.pending = None;
                if self.current.as_ref().is_some_and(|(b, _)| *b == bytes) {
                    return Ok(vec![]);
                }
                if !self.segments.is_empty() {
                    self.pending = Some(bytes);
                    return Ok(vec![]);
                }
                // The first configuration (or one that replaced it before any segment).
                self.builder = Some(VodMp4Builder::new(&bytes)?);
                let name = init_name(true, 0);
                self.init_size = bytes.len() as u64;
                self.current = Some((bytes.clone(), name.clone()));
                Ok(vec![Store::Object { name, bytes }])
            }
            RecordMessage::Segment {
                msn,
                duration_us,
                bytes,
            } => {
                let Some(builder) = self.builder.as_mut() else {
                    return Err(RecordingError::SegmentBeforeInit(msn));
                };
                let mut out = Vec::with_capacity(3);
                if let Some(init) = self.pending.take() {
                    let name = init_name(false, msn);
                    builder.add_init(&init)?;
                    self.init_size += init.len() as u64;
                    self.current = Some((init.clone(), name.clone()));
                    out.push(Store::Object { name, bytes: init });
                }
                builder.add_segment(&bytes)?;
                let row = SegmentRow {
                    msn: msn as i64,
                    duration_us,
                    size: bytes.len() as i64,
                    init_name: self
                        .current
                        .as_ref()
                        .map_or_else(init_name_first, |(_, n)| n.clone()),
                };
                out.push(Store::Object {
                    name: segment_name(msn),
                    bytes,
                });
                out.push(Store::Row(row.clone()));
                self.segments.push(row);
                Ok(out)
            }
        }
    }

    /// Bytes of the HLS VOD: every init segment and segment stored.
    pub fn hls_size(&self) -> u64 {
        self.init_size + self.segments.iter().map(|s| s.size as u64).sum::<u64>()
    }
}

fn init_name_first() -> String {
    init_name(true, 0)
}

/// A recording's layout read back from the names of its stored objects.
#[derive(Debug, Default, PartialEq)]
pub struct StoredLayout {
    /// Segment numbers, in order.
    pub segments: Vec<u64>,
    /// Numbers of the later init segments, in order.
    later_inits: Vec<u64>,
}

impl StoredLayout {
    /// From the object names under a rendition's prefix (others are ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let number = |name: &str, prefix: &str, suffix: &str| -> Option<u64> {
            name.strip_prefix(prefix)?
                .strip_suffix(suffix)?
                .parse()
                .ok()
        };
        let mut layout = StoredLayout::default();
        for name in names {
            if let Some(msn) = number(name, "seg", ".m4s") {
                layout.segments.push(msn);
            } else if let Some(msn) = number(name, "init", ".mp4") {
                layout.later_inits.push(msn);
            }
        }
        layout.segments.sort_unstable();
        layout.later_inits.sort_unstable();
        layout
    }

    /// The init segment segment `msn` was packaged under.
    pub fn init_of(&self, msn: u64) -> String {
        self.later_inits
            .iter()
            .rev()
            .find(|k| **k <= msn)
            .map_or_else(init_name_first, |k| init_name(false, *k))
    }
}

#[cfg(test)]
mod tests {
    use vshare_media::{AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};
    use vshare_package::{Packager, PackagerConfig, PackagerOutput};

    use super::*;

    fn config(variant: u8) -> MediaEvent {
        let mut avcc = vshare_testkit::media::AVCC_720P30.to_vec();
        // A byte of the PPS: a new configuration of the same picture.
        avcc[40] ^= variant;
        MediaEvent::Config(TrackConfig::Avc(
            AvcConfig::parse(Bytes::from(avcc)).expect("avcC"),
        ))
    }

    fn frame(i: i64) -> MediaEvent {
        MediaEvent::Frame(Frame {
            track: TrackKind::Video,
            pts: i * 33_333,
            dts: i * 33_333,
            key: i % 30 == 0,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
        })
    }

    /// A packaged stream: 4 s under one configuration, 4 s under another, then the first
    /// again; the recorder's messages.
    fn messages() -> Vec<RecordMessage> {
        let mut p = Packager::new(PackagerConfig::default());
        let mut out = Vec::new();
        let mut events = Vec::new();
        for (part, last) in [(0, 0x00), (1, 0x01), (2, 0x00)] {
            events.push(config(last));
            events.extend((part * 120..part * 120 + 120).map(frame));
        }
        for (i, e) in events.into_iter().enumerate() {
            out.extend(p.push(e, i as i64).expect("push"));
        }
        out.extend(p.finish());
        out.into_iter()
            .filter_map(|o| match o {
                PackagerOutput::Init { bytes, .. } => Some(RecordMessage::Init(bytes)),
                PackagerOutput::Segment {
                    msn,
                    duration_us,
                    bytes,
                    ..
                } => Some(RecordMessage::Segment {
                    msn,
                    duration_us,
                    bytes,
                }),
                PackagerOutput::Part { .. } => None,
            })
            .collect()
    }

    #[test]
    fn each_init_is_stored_before_the_first_segment_under_it_and_read_back_the_same() {
        let mut rec = Recording::default();
        let mut stored = Vec::new();
        for m in messages() {
            stored.extend(rec.push(m).expect("push"));
        }
        let names: Vec<&str> = stored
            .iter()
            .filter_map(|s| match s {
                Store::Object { name, .. } => Some(name.as_str()),
                Store::Row(_) => None,
            })
            .collect();
        let inits: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.starts_with("init"))
            .collect();
        assert_eq!(inits.len(), 3, "{names:?}");
        assert_eq!(inits[0], "init.mp4");
        // Each later init comes right before the segment it is named after.
        for init in &inits[1..] {
            let at = names.iter().position(|n| n == init).expect("stored");
            let msn = init.trim_start_matches("init").trim_end_matches(".mp4");
            assert_eq!(names[at + 1], format!("seg{msn}.m4s"));
        }
        // Rows follow their segment and name the init in force.
        let rows: Vec<&SegmentRow> = stored
            .iter()
            .filter_map(|s| match s {
                Store::Row(r) => Some(r),
                Store::Object { .. } => None,
            })
            .collect();
        assert_eq!(rows.len(), rec.segments.len());
        // Storage alone gives back the same segment → init mapping.
        let layout = StoredLayout::from_names(names.iter().copied().chain(["video.mp4"]));
        assert_eq!(layout.segments.len(), rows.len());
        for row in rows {
            assert_eq!(layout.init_of(row.msn as u64), row.init_name, "{row:?}");
        }
        assert_eq!(
            rec.init_size + rec.segments.iter().map(|s| s.size as u64).sum::<u64>(),
            rec.hls_size()
        );
    }

    #[test]
    fn an_unused_configuration_is_never_stored_and_a_repeat_stores_nothing() {
        let messages = messages();
        let mut rec = Recording::default();
        let first_init = match &messages[0] {
            RecordMessage::Init(b) => b.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            rec.push(RecordMessage::Init(first_init.clone()))
                .expect("init")
                .len(),
            1
        );
        assert!(
            rec.push(RecordMessage::Init(first_init.clone()))
                .expect("repeat")
                .is_empty()
        );
        let segment = messages
            .into_iter()
            .find(|m| matches!(m, RecordMessage::Segment { .. }))
            .expect("segment");
        assert_eq!(rec.push(segment).expect("segment").len(), 2);
        // A later configuration that no segment uses before the stream ends.
        let later = match config(0x07) {
            MediaEvent::Config(TrackConfig::Avc(c)) => c,
            _ => unreachable!(),
        };
        let init = vshare_package::fmp4::init_segment(Some(&later), None).expect("init");
        assert!(
            rec.push(RecordMessage::Init(init))
                .expect("pending")
                .is_empty()
        );
        assert_eq!(rec.init_size, first_init.len() as u64);
    }

    #[test]
    fn a_segment_before_any_init_is_refused() {
        let mut rec = Recording::default();
        let err = rec
            .push(RecordMessage::Segment {
                msn: 4,
                duration_us: 1,
                bytes: Bytes::new(),
            })
            .expect_err("no init");
        assert!(matches!(err, RecordingError::SegmentBeforeInit(4)));
    }

    #[test]
    fn the_layout_ignores_other_names_and_orders_by_number() {
        let layout = StoredLayout::from_names([
            "seg10.m4s",
            "seg9.m4s",
            "init10.mp4",
            "init.mp4",
            "video.mp4",
            "seg.m4s",
            "segx.m4s",
            "init3.mp4",
        ]);
        assert_eq!(layout.segments, [9, 10]);
        assert_eq!(layout.init_of(2), "init.mp4");
        assert_eq!(layout.init_of(9), "init3.mp4");
        assert_eq!(layout.init_of(10), "init10.mp4");
    }
}
