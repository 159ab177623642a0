//! Backfill (`docs/upload-protocol.md`, *Backfill*): the frames an upload sender dropped from
//! the live send arrive late, and the recording must hold them.
//!
//! Design, the simplest correct one we found: the live stream and its recording go on as
//! always (segments stored as they are made, the VOD finished at the stop from what arrived,
//! so a viewer has it at once). While the session may receive late frames, the upload adapter
//! writes every live source event to a [`SourceLog`] on local disk and keeps the late frames
//! in memory (bounded by `upload_backfill_max_bytes`). Once the backfill is complete, the
//! video is packaged again ([`VideoServer::rebuild_source`]): the log is read back in order
//! and the late frames are merged in at their timestamps, through a fresh session — the same
//! timestamp repair, the same packager, the same ladder and other-format writers — and its
//! segments, rows, MP4s and files replace the first ones. Patching segments in place instead
//! would mean rewriting each affected segment's sample tables and the MP4's offsets by hand,
//! which only the packager should know. Late frames are never key frames (a sender drops
//! until the next one), so the rebuilt segments are cut at the same key frames: the VOD
//! playlists keep their segment numbers and durations while they are swapped. The log is read
//! faster than real time, so the transcoder and the file writers are offered each event until
//! their queues take it (the live path drops instead). Until the rebuild, the VOD records say
//! how many frames are still coming (`frames_coming`). The log format is ours (a flat,
//! fixed-header record per event): nothing is kept beyond the rebuild.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, BufReader};
use tracing::info;
use vshare_attributes::{AttributeRecord, Kind};
use vshare_media::{AacConfig, AvcConfig, Frame, MediaEvent, TrackConfig, TrackKind};

use tokio::sync::mpsc;
use vshare_transcode::TranscodeWorker;

use super::recorder::rendition_prefix;
use super::recording::{Recording, Store};
use super::session::{Action, Session};
use super::{VideoServer, derived};
use crate::db::VideoState;
use crate::files::FileJob;
use crate::storage::object_path;

const HEADER: usize = 32;
const AVC_CONFIG: u8 = 0;
const AAC_CONFIG: u8 = 1;
const VIDEO_FRAME: u8 = 2;
const AUDIO_FRAME: u8 = 3;

/// The backfill state of a video, in the video API (`backfill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BackfillState {
    /// `pending` (late frames still coming, or the VOD being rebuilt), `complete`, or
    /// `incomplete` (the wait after the stop ran out, or the connection dropped).
    pub state: &'static str,
    /// Late frames promised and not yet received.
    pub frames_owed: u32,
    /// Late frames received.
    pub frames_received: u32,
}

/// Backfill states kept in memory (one per upload that used it, until this many).
pub const MAX_BACKFILL_STATES: usize = 10_000;

fn encode(event: &MediaEvent, arrival: i64) -> Option<Vec<u8>> {
    let (kind, key, pts, dts, data) = match event {
        MediaEvent::Config(TrackConfig::Avc(c)) => (AVC_CONFIG, false, 0, 0, &c.record),
        MediaEvent::Config(TrackConfig::Aac(c)) => (AAC_CONFIG, false, 0, 0, &c.asc),
        MediaEvent::Frame(f) => (
            match f.track {
                TrackKind::Video => VIDEO_FRAME,
                TrackKind::Audio => AUDIO_FRAME,
            },
            f.key,
            f.pts,
            f.dts,
            &f.data,
        ),
    };
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.push(kind);
    out.push(u8::from(key));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&pts.to_be_bytes());
    out.extend_from_slice(&dts.to_be_bytes());
    out.extend_from_slice(&arrival.to_be_bytes());
    out.extend_from_slice(data);
    Some(out)
}

fn decode(header: &[u8; HEADER], data: Bytes) -> anyhow::Result<(MediaEvent, i64)> {
    let i64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[i..i + 8]);
        i64::from_be_bytes(b)
    };
    let (pts, dts, arrival) = (i64_at(8), i64_at(16), i64_at(24));
    let frame = |track| {
        MediaEvent::Frame(Frame {
            track,
            pts,
            dts,
            key: header[1] != 0,
            data: data.clone(),
        })
    };
    let event = match header[0] {
        AVC_CONFIG => MediaEvent::Config(TrackConfig::Avc(AvcConfig::parse(data.clone())?)),
        AAC_CONFIG => MediaEvent::Config(TrackConfig::Aac(AacConfig::parse(data.clone())?)),
        VIDEO_FRAME => frame(TrackKind::Video),
        AUDIO_FRAME => frame(TrackKind::Audio),
        k => anyhow::bail!("source log: unknown record kind {k}"),
    };
    Ok((event, arrival))
}

/// The live source events of a session, appended as they go to the video session.
pub struct SourceLog {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl SourceLog {
    pub fn create(dir: &Path, video_id: &str) -> anyhow::Result<SourceLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{video_id}.log"));
        let file = std::io::BufWriter::with_capacity(64 << 10, std::fs::File::create(&path)?);
        Ok(SourceLog { path, file })
    }

    pub fn append(&mut self, event: &MediaEvent, arrival: i64) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(rec) = encode(event, arrival) {
            self.file.write_all(&rec)?;
        }
        Ok(())
    }

    /// Flushes and gives the path to read back.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        use std::io::Write as _;
        self.file.flush()?;
        Ok(self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Merges late frames (sorted by dts) into the live events: before each live frame, the late
/// frames decoded before it; a configuration waits for the next live frame of its track, so
/// late frames dropped before a configuration change stay under the configuration they were
/// encoded with.
#[derive(Default)]
pub struct Merge {
    late: VecDeque<Frame>,
    held: Vec<(TrackKind, MediaEvent, i64)>,
}

impl Merge {
    pub fn new(mut late: Vec<Frame>) -> Self {
        late.sort_by_key(|f| f.dts);
        Merge {
            late: late.into(),
            held: Vec::new(),
        }
    }

    /// One live event in; the events to package now, in order.
    pub fn push(&mut self, event: MediaEvent, arrival: i64) -> Vec<(MediaEvent, i64)> {
        let (track, dts) = match &event {
            MediaEvent::Frame(f) => (f.track, f.dts),
            MediaEvent::Config(c) => {
                self.held.push((c.kind(), event, arrival));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        while self.late.front().is_some_and(|l| l.dts < dts) {
            if let Some(l) = self.late.pop_front() {
                out.push((MediaEvent::Frame(l), arrival));
            }
        }
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 == track {
                let (_, e, a) = self.held.remove(i);
                out.push((e, a));
            } else {
                i += 1;
            }
        }
        out.push((event, arrival));
        out
    }

    /// What is left at the end of the log.
    pub fn finish(&mut self, arrival: i64) -> Vec<(MediaEvent, i64)> {
        let mut out: Vec<_> = self
            .late
            .drain(..)
            .map(|l| (MediaEvent::Frame(l), arrival))
            .collect();
        out.extend(self.held.drain(..).map(|(_, e, a)| (e, a)));
        out
    }
}

impl VideoServer {
    /// The backfill state of a video, while its session or the rebuild is known here.
    pub fn backfill_state(&self, video_id: &str) -> Option<BackfillState> {
        self.backfill
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(video_id)
            .copied()
    }

    /// Records a video's backfill state. The map holds at most [`MAX_BACKFILL_STATES`]: past
    /// it, the finished ones go (their videos' API answers then just lack `backfill`).
    pub fn set_backfill_state(&self, video_id: &str, state: BackfillState) {
        let mut states = self.backfill.write().unwrap_or_else(|e| e.into_inner());
        if states.len() >= MAX_BACKFILL_STATES && !states.contains_key(video_id) {
            states.retain(|_, s| s.state == "pending");
        }
        states.insert(video_id.to_string(), state);
    }

    /// Frames a video's VOD still waits for: while its backfill is pending, those owed and
    /// those received but not yet in the VOD (they go in with the rebuild); else 0.
    pub fn frames_coming(&self, video_id: &str) -> u64 {
        self.backfill_state(video_id)
            .filter(|s| s.state == "pending")
            .map_or(0, |s| u64::from(s.frames_owed) + u64::from(s.frames_received))
    }

    /// Clears `frames_coming` from a video's records: nothing more will come.
    pub async fn settle_frames_coming(&self, id: &str) -> anyhow::Result<()> {
        let Some(video) = self.db.get_video(id).await? else {
            return Ok(());
        };
        if video.attributes.iter().all(|r| r.frames_coming == 0) {
            return Ok(());
        }
        let mut records = video.attributes;
        for r in &mut records {
            r.frames_coming = 0;
        }
        self.db
            .update_video(id, video.state, &records, video.ended_at.as_deref(), None)
            .await
    }

    /// Packages the video again from `log` with the `late` frames merged in: the source, the
    /// ladder's rungs and the other-format files, through a fresh session as the live one ran,
    /// and replaces their segments, rows, MP4s and VOD records. Call after the session ended.
    pub async fn rebuild_source(
        &self,
        id: &str,
        log: &Path,
        late: Vec<Frame>,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let late_frames = late.len();
        let Some(video) = self.db.get_video(id).await? else {
            anyhow::bail!("video {id} is gone");
        };
        let mut session = Session::new(id, &video.title, self.session_config());
        let (tc_tx, mut tc_rx) = mpsc::unbounded_channel();
        let mut out = Rebuilt {
            recordings: vec![Recording::default()],
            rungs: Vec::new(),
            tc_tx: Some(tc_tx),
            worker: None,
            files: Vec::new(),
        };
        let mut merge = Merge::new(late);
        let mut reader = BufReader::with_capacity(64 << 10, tokio::fs::File::open(log).await?);
        let mut last_arrival = 0;
        loop {
            let mut header = [0u8; HEADER];
            match reader.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mut data = vec![0u8; len];
            reader.read_exact(&mut data).await?;
            let (event, arrival) = decode(&header, Bytes::from(data))?;
            last_arrival = arrival;
            for (e, a) in merge.push(event, arrival) {
                session.push(e, a);
            }
            self.store_rebuilt(id, &mut session, &mut out).await?;
            while let Ok((rung, event)) = tc_rx.try_recv() {
                session.push_transcoded(rung, event, arrival);
            }
            self.store_rebuilt(id, &mut session, &mut out).await?;
        }
        for (e, a) in merge.finish(last_arrival) {
            session.push(e, a);
        }
        session.end();
        self.store_rebuilt(id, &mut session, &mut out).await?;
        // The transcoder's last frames, then every packager's.
        out.tc_tx = None;
        if let Some(w) = out.worker.take() {
            tokio::task::spawn_blocking(move || w.finish()).await?;
        }
        while let Some((rung, event)) = tc_rx.recv().await {
            session.push_transcoded(rung, event, last_arrival);
            self.store_rebuilt(id, &mut session, &mut out).await?;
        }
        let closed = session.close();
        self.store_rebuilt(id, &mut session, &mut out).await?;
        let mut fresh = Vec::new();
        for (rendition, recording) in closed.into_iter().zip(&out.recordings) {
            let name = rendition.name.as_deref();
            self.db
                .replace_segments(id, name.unwrap_or(""), &recording.segments)
                .await?;
            fresh.extend(
                self.finish_vod(id, name, recording, &rendition.measured, &video.title)
                    .await?,
            );
        }
        if fresh.is_empty() {
            anyhow::bail!("the rebuilt session has no source rendition");
        }
        // The poster stays; the MP4 and HLS records are replaced, the files' when they are done.
        let poster = video
            .attributes
            .iter()
            .find(|r| r.kind == Kind::Vod)
            .map(|r| r.poster.clone())
            .unwrap_or_default();
        let mut records: Vec<AttributeRecord> = video
            .attributes
            .into_iter()
            .filter(|r| !(r.kind == Kind::Vod && fresh.iter().any(|f| f.url == r.url)))
            .collect();
        for mut r in fresh {
            r.poster = poster.clone();
            records.push(r);
        }
        for r in &mut records {
            r.frames_coming = 0;
        }
        self.db
            .update_video(
                id,
                VideoState::Ready,
                &records,
                video.ended_at.as_deref(),
                None,
            )
            .await?;
        let files = std::mem::take(&mut out.files);
        if !files.is_empty() {
            self.finish_files(id, &video.title, files, 0).await?;
        }
        info!(video = %id, late_frames, rebuild_ms = started.elapsed().as_millis() as u64, "VOD rebuilt with the late frames");
        Ok(())
    }

    /// Carries out the rebuilding session's actions: its renditions' objects are stored, the
    /// derived outputs fed (waiting for room: nothing may be lost); nothing goes live.
    async fn store_rebuilt(
        &self,
        id: &str,
        session: &mut Session,
        out: &mut Rebuilt,
    ) -> anyhow::Result<()> {
        while let Some(action) = session.poll() {
            match action {
                Action::Record { rendition, message } => {
                    let prefix = match rendition {
                        0 => String::new(),
                        _ => rendition_prefix(out.rungs.get(rendition - 1).map(String::as_str)),
                    };
                    let Some(recording) = out.recordings.get_mut(rendition) else {
                        continue;
                    };
                    for store in recording.push(message)? {
                        if let Store::Object { name, bytes } = store {
                            self.storage
                                .put(&object_path(id, &format!("{prefix}{name}")), bytes)
                                .await?;
                        }
                    }
                }
                Action::StartDerived { video, audio } => {
                    if let Some(tx) = &out.tc_tx
                        && let Some((worker, rungs)) =
                            derived::start_ladder(self, id, video.as_ref(), audio.as_ref(), tx)
                    {
                        out.recordings
                            .extend(rungs.iter().map(|_| Recording::default()));
                        out.rungs.clone_from(&rungs);
                        session.add_rungs(rungs);
                        out.worker = Some(worker);
                    }
                    out.files = self.start_files(id, video, audio, Some(PACED_EVENTS));
                }
                Action::Derive(event) => out.derive(event).await,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Events queued for each derived output of a rebuild.
const PACED_EVENTS: usize = 256;

/// The outputs of a rebuild.
struct Rebuilt {
    /// One per rendition, the source first.
    recordings: Vec<Recording>,
    /// The ladder's rungs, in its order.
    rungs: Vec<String>,
    /// Where the transcoder sends the rungs' events; None once it is being flushed.
    tc_tx: Option<mpsc::UnboundedSender<(usize, MediaEvent)>>,
    worker: Option<TranscodeWorker>,
    files: Vec<FileJob>,
}

impl Rebuilt {
    /// Hands a source event to the ladder and each file, waiting while a queue is full.
    async fn derive(&mut self, event: MediaEvent) {
        if let Some(w) = self.worker.as_mut() {
            let mut e = event.clone();
            while let Err(back) = w.offer(e) {
                e = back;
                tokio::time::sleep(WAIT_FOR_ROOM).await;
            }
        }
        for job in &mut self.files {
            let mut e = event.clone();
            while let Err(back) = job.offer(e) {
                e = back;
                tokio::time::sleep(WAIT_FOR_ROOM).await;
            }
        }
    }
}

/// How long a rebuild waits for room in a full queue before offering again.
const WAIT_FOR_ROOM: std::time::Duration = std::time::Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dts: i64, key: bool) -> Frame {
        Frame {
            track: TrackKind::Video,
            pts: dts,
            dts,
            key,
            data: Bytes::from_static(b"x"),
        }
    }

    fn dts_of(out: &[(MediaEvent, i64)]) -> Vec<Option<i64>> {
        out.iter()
            .map(|(e, _)| match e {
                MediaEvent::Frame(f) => Some(f.dts),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn late_frames_go_in_at_their_timestamps_before_a_new_configuration() {
        let aac = AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc");
        let audio = |dts| Frame {
            track: TrackKind::Audio,
            ..frame(dts, true)
        };
        let mut m = Merge::new(vec![audio(40), audio(30), audio(60)]);
        let mut out = m.push(MediaEvent::Frame(audio(0)), 1);
        out.extend(m.push(MediaEvent::Frame(audio(20)), 2));
        assert!(
            m.push(MediaEvent::Config(TrackConfig::Aac(aac)), 3)
                .is_empty()
        );
        // A frame of another track does not release the configuration, but the late frames
        // before it go.
        out.extend(m.push(MediaEvent::Frame(frame(35, false)), 4));
        out.extend(m.push(MediaEvent::Frame(audio(50)), 5));
        out.extend(m.finish(6));
        // The held configuration goes after the late frames, just before its track's next
        // live frame; what is late after the last live frame goes at the end.
        assert_eq!(
            dts_of(&out),
            [
                Some(0),
                Some(20),
                Some(30),
                Some(35),
                Some(40),
                None,
                Some(50),
                Some(60)
            ]
        );
        // The late frames arrive "with" the next live frame.
        assert_eq!(out[2].1, 4);
    }

    #[test]
    fn the_log_reads_back_what_was_written() {
        let f = frame(33, true);
        let rec = encode(&MediaEvent::Frame(f.clone()), 77).expect("encodes");
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&rec[..HEADER]);
        let (e, arrival) =
            decode(&header, Bytes::copy_from_slice(&rec[HEADER..])).expect("decodes");
        assert_eq!(arrival, 77);
        let MediaEvent::Frame(back) = e else {
            panic!("not a frame")
        };
        assert_eq!(back, f);
        header[0] = 9;
        assert!(decode(&header, Bytes::new()).is_err());
    }
}
