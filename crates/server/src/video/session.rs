//! One publisher's session, sans-IO: media events and their arrival times in, actions out.
//!
//! The session puts every event through the timestamp discipline (docs/timestamps.md),
//! packages the source and each transcoded rung, measures the attribute data, and says what to
//! publish, record and announce. The adapter in [`super`] owns the I/O: the live server's
//! channel, the recorder tasks, the database, the transcoder thread and the proxy. Time comes in
//! with the events, so the whole session is tested without a clock, storage or ffmpeg.

use std::collections::VecDeque;
use std::sync::Arc;

use vshare_attributes::AttributeRecord;
use vshare_media::timestamps::{Repair, TimestampNormalizer};
use vshare_media::{AacConfig, AvcConfig, MediaEvent, TrackKind};
use vshare_package::multivariant::{VariantMeter, multivariant_playlist};
use vshare_package::{Packager, PackagerConfig, PackagerOutput};

use super::measured::Measured;
use super::recording::RecordMessage;
use crate::live::LiveMessage;

/// What a session is told at its start.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub packager: PackagerConfig,
    /// Where players reach `/live/…` (`https://host`, the live servers' URL when they are
    /// elsewhere), for the live record's URL.
    pub public_url: String,
    /// A ladder is configured: the live record's URL is the multivariant playlist.
    pub ladder: bool,
    /// The ladder or other-format files want the source's events ([`Action::Derive`]).
    pub derive: bool,
    /// Seconds of the DVR window the live record announces (0: none).
    pub dvr_window_s: u64,
    /// WebRTC viewers want the source's events ([`Action::Feed`]).
    pub feed: bool,
}

/// What the adapter must do, in the order given.
#[derive(Debug)]
pub enum Action {
    /// Hand to the live server.
    Live(LiveMessage),
    /// Hand to rendition `rendition`'s recorder (0 is the source, rung `i` is `i + 1`).
    Record {
        rendition: usize,
        message: RecordMessage,
    },
    /// The source's first frame is next: start the ladder and the other-format files from these
    /// configurations, then tell the session the rungs with [`Session::add_rungs`].
    StartDerived {
        video: Option<AvcConfig>,
        audio: Option<AacConfig>,
    },
    /// A source event for the ladder and the other-format files.
    Derive(MediaEvent),
    /// A source event (configurations included) for WebRTC viewers, after the timestamp
    /// discipline.
    Feed(MediaEvent),
    /// An event of the ladder's top rung for WebRTC viewers (sent in the source's place when
    /// the source has B-frames).
    FeedRung(MediaEvent),
    /// The source's own Opus packet for WebRTC viewers, on the audio's disciplined timeline
    /// (its AAC conversion is then not fed).
    FeedOpus { pts: i64, data: bytes::Bytes },
    /// The live record, measured again at this source segment.
    LiveRecord(AttributeRecord),
    /// The first source segment is out: the stream is live.
    WentLive(AttributeRecord),
    /// A source part is out; its earliest frame arrived at this time (µs since the epoch).
    PartPublished { first_arrival_unix_us: i64 },
    /// The timestamp discipline repaired these.
    Repairs(Vec<Repair>),
    /// A rendition's packager refused a frame: said for the first and every power of two.
    Rejected {
        rendition: Option<String>,
        count: u64,
        error: String,
    },
}

/// One packaged output of a stream: the source as received, or a transcoded rung.
struct Rendition {
    /// None for the source; the rung's name (`240p`) otherwise.
    name: Option<String>,
    /// The live server's name for its stream: `<video>` or `<video>/<rung>`.
    stream: String,
    packager: Packager,
    measured: Measured,
    /// Measures what the multivariant playlist declares for this rendition.
    meter: VariantMeter,
    rejected: u64,
}

impl Rendition {
    fn new(video_id: &str, name: Option<String>, config: &PackagerConfig) -> Self {
        Rendition {
            stream: match &name {
                None => video_id.to_string(),
                Some(n) => format!("{video_id}/{n}"),
            },
            name,
            meter: VariantMeter::new(config.segment_target_us),
            packager: Packager::new(config.clone()),
            measured: Measured::default(),
            rejected: 0,
        }
    }

    /// Its media playlist relative to the multivariant playlist.
    fn playlist_uri(&self) -> String {
        match &self.name {
            None => "index.m3u8".to_string(),
            Some(n) => format!("{n}/index.m3u8"),
        }
    }

    fn playlist(&self) -> Arc<str> {
        self.packager.media_playlist().unwrap_or_default().into()
    }
}

/// A rendition's name and measurements when its session closes.
pub struct ClosedRendition {
    pub name: Option<String>,
    pub measured: Measured,
}

/// Frames that went through the timestamp discipline.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameCounts {
    pub video: u64,
    pub audio: u64,
}

/// One publisher's session.
pub struct Session {
    video_id: String,
    title: String,
    config: SessionConfig,
    timing: TimestampNormalizer,
    renditions: Vec<Rendition>,
    /// The source's first frame was seen (the derived outputs and the origin are set).
    started: bool,
    origin: Option<i64>,
    went_live: bool,
    ended: bool,
    frames: FrameCounts,
    /// The source sends its Opus for WebRTC viewers ([`Session::push_opus`]).
    opus_source: bool,
    actions: VecDeque<Action>,
}

impl Session {
    pub fn new(video_id: &str, title: &str, config: SessionConfig) -> Self {
        Session {
            renditions: vec![Rendition::new(video_id, None, &config.packager)],
            video_id: video_id.to_string(),
            title: title.to_string(),
            config,
            timing: TimestampNormalizer::new(),
            started: false,
            origin: None,
            went_live: false,
            ended: false,
            frames: FrameCounts::default(),
            opus_source: false,
            actions: VecDeque::new(),
        }
    }

    /// The next action, in order.
    pub fn poll(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Frames taken in so far, by track.
    pub fn frames(&self) -> FrameCounts {
        self.frames
    }

    /// A source event and its arrival time, µs since the epoch. Ignored after [`end`](Self::end).
    pub fn push(&mut self, event: MediaEvent, arrival_unix_us: i64) {
        if self.ended {
            return;
        }
        let batch = self.timing.push(event, arrival_unix_us);
        self.take_source(batch);
    }

    /// An Opus packet of a source whose audio is Opus (sent before the AAC made from it): fed
    /// to WebRTC viewers as it came, moved as the discipline moves the audio (a jump it closed),
    /// in place of Opus made again from the AAC.
    pub fn push_opus(&mut self, pts: i64, data: bytes::Bytes) {
        if self.ended || !self.config.feed {
            return;
        }
        self.opus_source = true;
        let pts = pts.saturating_add(self.timing.audio_offset());
        self.actions.push_back(Action::FeedOpus { pts, data });
    }

    /// The publisher stopped: what the timestamp discipline still holds goes out.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let batch = self.timing.finish();
        self.take_source(batch);
    }

    /// The rungs the ladder makes, in its order (after [`Action::StartDerived`]).
    pub fn add_rungs(&mut self, names: impl IntoIterator<Item = String>) {
        for name in names {
            let mut r = Rendition::new(&self.video_id, Some(name), &self.config.packager);
            if let Some(origin) = self.origin {
                r.packager.set_origin(origin);
            }
            self.renditions.push(r);
        }
    }

    /// An event of rung `rung` from the transcoder, and when it came back.
    pub fn push_transcoded(&mut self, rung: usize, event: MediaEvent, arrival_unix_us: i64) {
        if self.config.feed && rung == 0 {
            // The ladder's rungs come largest first.
            self.actions.push_back(Action::FeedRung(event.clone()));
        }
        self.push_to(rung + 1, event, arrival_unix_us);
    }

    /// Flushes every packager and ends every live stream; the renditions' measurements, the
    /// source first. Call after [`end`](Self::end) and the transcoder's last events.
    pub fn close(&mut self) -> Vec<ClosedRendition> {
        self.end();
        for index in 0..self.renditions.len() {
            let outputs = self.renditions[index].packager.finish();
            for out in outputs {
                self.output(index, out);
            }
            let r = &self.renditions[index];
            if let Some(playlist) = r.packager.media_playlist() {
                self.actions.push_back(Action::Live(LiveMessage::End {
                    stream: r.stream.clone(),
                    playlist: playlist.into(),
                }));
            }
        }
        self.renditions
            .drain(..)
            .map(|r| ClosedRendition {
                name: r.name,
                measured: r.measured,
            })
            .collect()
    }

    fn take_source(&mut self, batch: Vec<(MediaEvent, i64)>) {
        let repairs = self.timing.take_repairs();
        if !repairs.is_empty() {
            self.actions.push_back(Action::Repairs(repairs));
        }
        for (event, arrival) in batch {
            if let MediaEvent::Frame(f) = &event {
                match f.track {
                    TrackKind::Video => self.frames.video += 1,
                    TrackKind::Audio => self.frames.audio += 1,
                }
                if !self.started {
                    self.started = true;
                    if self.config.derive {
                        let source = &self.renditions[0].measured;
                        self.actions.push_back(Action::StartDerived {
                            video: source.video.clone(),
                            audio: source.audio.clone(),
                        });
                    }
                    // One origin for every rendition: the same input time is the same media
                    // time in all of them, so players switch cleanly.
                    let origin = f.dts.saturating_sub(vshare_package::ORIGIN_MARGIN_US);
                    self.origin = Some(origin);
                    for r in &mut self.renditions {
                        r.packager.set_origin(origin);
                    }
                }
            }
            let own_opus = self.opus_source
                && matches!(&event, MediaEvent::Frame(f) if f.track == TrackKind::Audio);
            if self.config.feed && !own_opus {
                self.actions.push_back(Action::Feed(event.clone()));
            }
            if self.started && self.config.derive {
                self.actions.push_back(Action::Derive(event.clone()));
            }
            self.push_to(0, event, arrival);
        }
    }

    /// Feeds one event to rendition `index` and turns what its packager makes into actions.
    fn push_to(&mut self, index: usize, event: MediaEvent, arrival_unix_us: i64) {
        let Some(r) = self.renditions.get_mut(index) else {
            return;
        };
        r.measured.observe(&event);
        r.meter.push(&event);
        let outputs = match r.packager.push(event, arrival_unix_us) {
            Ok(outputs) => outputs,
            Err(e) => {
                r.rejected += 1;
                if r.rejected == 1 || r.rejected.is_power_of_two() {
                    self.actions.push_back(Action::Rejected {
                        rendition: r.name.clone(),
                        count: r.rejected,
                        error: e.to_string(),
                    });
                }
                return;
            }
        };
        let mut segment_done = false;
        for out in outputs {
            segment_done |= matches!(out, PackagerOutput::Segment { .. });
            self.output(index, out);
        }
        if segment_done && self.renditions.len() > 1 {
            let variants: Vec<_> = self
                .renditions
                .iter()
                .filter_map(|r| r.meter.variant(&r.playlist_uri()))
                .collect();
            self.actions
                .push_back(Action::Live(LiveMessage::Multivariant {
                    stream: self.video_id.clone(),
                    playlist: multivariant_playlist(&variants).into(),
                }));
        }
    }

    fn output(&mut self, index: usize, out: PackagerOutput) {
        let r = &self.renditions[index];
        let stream = r.stream.clone();
        match out {
            PackagerOutput::Init { bytes, name } => {
                self.actions.push_back(Action::Live(LiveMessage::Init {
                    stream,
                    name,
                    init: bytes.clone(),
                }));
                self.actions.push_back(Action::Record {
                    rendition: index,
                    message: RecordMessage::Init(bytes),
                });
            }
            PackagerOutput::Part {
                msn,
                index: part,
                bytes,
                first_arrival_unix_us,
                ..
            } => {
                self.actions.push_back(Action::Live(LiveMessage::Part {
                    stream,
                    msn,
                    index: part,
                    bytes,
                    playlist: r.playlist(),
                }));
                if r.name.is_none() {
                    self.actions.push_back(Action::PartPublished {
                        first_arrival_unix_us,
                    });
                }
            }
            PackagerOutput::Segment {
                msn,
                duration_us,
                bytes,
                ..
            } => {
                self.actions.push_back(Action::Live(LiveMessage::Segment {
                    stream,
                    msn,
                    playlist: r.playlist(),
                }));
                self.actions.push_back(Action::Record {
                    rendition: index,
                    message: RecordMessage::Segment {
                        msn,
                        duration_us,
                        bytes,
                    },
                });
                if r.name.is_none() {
                    self.source_segment();
                }
            }
        }
    }

    /// The live record follows every source segment; the first one makes the stream live.
    fn source_segment(&mut self) {
        // With a ladder the record's URL is the multivariant playlist, which lists every
        // rendition.
        let playlist = if self.config.ladder {
            "master.m3u8"
        } else {
            "index.m3u8"
        };
        let url = format!(
            "{}/live/{}/{playlist}",
            self.config.public_url, self.video_id
        );
        let mut record = self.renditions[0]
            .measured
            .live_record(&self.video_id, url, &self.title);
        record.dvr = self.config.dvr_window_s;
        let first = !self.went_live;
        self.went_live = true;
        self.actions.push_back(Action::LiveRecord(record.clone()));
        if first {
            self.actions.push_back(Action::WentLive(record));
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
