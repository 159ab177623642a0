//! The server's side of a session: reassembles frame pieces, enforces order, the window and the
//! message rate, and produces acknowledgements and feedback. It outlives a connection: after a
//! drop the same receiver continues when the sender resumes.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::rate::ServerRate;
use crate::wire::{CloseCode, PieceHeader, ProtocolError, SenderMessage, ServerMessage, TrackInfo};

/// Limits a receiver enforces.
#[derive(Debug, Clone)]
pub struct ReceiverLimits {
    pub window_bytes: u64,
    pub max_frame_bytes: u32,
    pub max_piece_bytes: u32,
    pub max_messages_per_second: u32,
    pub ack_interval_us: i64,
    pub feedback_interval_us: i64,
    /// `backfill`: late frames one session may promise, and their payload bytes in all.
    pub max_late_frames: u32,
    pub max_late_bytes: u64,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        ReceiverLimits {
            window_bytes: 4 << 20,
            max_frame_bytes: 8 << 20,
            max_piece_bytes: 64 << 10,
            max_messages_per_second: 1000,
            ack_interval_us: 100_000,
            feedback_interval_us: 500_000,
            max_late_frames: 20_000,
            max_late_bytes: 256 << 20,
        }
    }
}

/// A whole frame, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFrame {
    pub seq: u32,
    pub track: u8,
    pub key: bool,
    pub pts: i64,
    pub dts: i64,
    pub data: Bytes,
}

/// What the receiver hands on, strictly in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    Frame(UploadFrame),
    Config(TrackInfo),
    /// Every message arrived and the sender stopped (the live stream ends; with `backfill`,
    /// late frames may still follow).
    End,
    /// `backfill`: a frame dropped from the live send, sent late: for the recording only.
    LateFrame(UploadFrame),
    /// `backfill`: the sender stopped and every late frame it promised arrived.
    BackfillComplete,
}

#[derive(Debug)]
struct Partial {
    header: PieceHeader,
    data: Vec<u8>,
}

#[derive(Debug)]
pub struct UploadReceiver {
    limits: ReceiverLimits,
    tracks: Vec<TrackInfo>,
    next_seq: u32,
    partial: Option<Partial>,
    /// Pieces of an already-received frame being sent again after a resume.
    skipping: Option<u32>,
    last_dts: Vec<(u8, i64)>,
    /// Payload bytes received beyond the last acknowledgement sent.
    unacked_bytes: u64,
    ack_sent: u32,
    ack_now: bool,
    last_ack_us: i64,
    last_feedback_us: Option<i64>,
    rate: ServerRate,
    rate_second_start: i64,
    rate_count: u32,
    ended: bool,
    /// `end`'s sequence number, to recognise it when a resumed sender sends it again.
    end_seq: Option<u32>,
    /// The `backfill` feature: granted, late frames promised and received, their bytes.
    backfill: bool,
    late_promised: u32,
    late_received: u32,
    late_bytes: u64,
    complete: bool,
    events: VecDeque<ReceiverEvent>,
}

impl UploadReceiver {
    /// A receiver for a new session whose `hello` declared `tracks`.
    pub fn new(
        limits: ReceiverLimits,
        tracks: Vec<TrackInfo>,
        start_kbps: u32,
        max_kbps: u32,
    ) -> Self {
        UploadReceiver {
            limits,
            tracks,
            next_seq: 0,
            partial: None,
            skipping: None,
            last_dts: Vec::new(),
            unacked_bytes: 0,
            ack_sent: 0,
            ack_now: false,
            last_ack_us: 0,
            last_feedback_us: None,
            rate: ServerRate::new(start_kbps, max_kbps),
            rate_second_start: 0,
            rate_count: 0,
            ended: false,
            end_seq: None,
            backfill: false,
            late_promised: 0,
            late_received: 0,
            late_bytes: 0,
            complete: false,
            events: VecDeque::new(),
        }
    }

    /// Grants the `backfill` feature (the sender asked for it in `hello`).
    pub fn enable_backfill(&mut self) {
        self.backfill = true;
    }

    pub fn backfill(&self) -> bool {
        self.backfill
    }

    /// Late frames promised and not yet received: "N frames still coming".
    pub fn late_owed(&self) -> u32 {
        self.late_promised.saturating_sub(self.late_received)
    }

    /// Late frames received (handed on).
    pub fn late_received(&self) -> u32 {
        self.late_received
    }

    /// Whether the sender stopped and every late frame it promised arrived.
    pub fn backfill_complete(&self) -> bool {
        self.complete
    }

    /// After `end`, once nothing is owed: the recording is complete.
    fn check_complete(&mut self) {
        if self.backfill && self.ended && !self.complete && self.late_owed() == 0 {
            self.complete = true;
            self.ack_now = true;
            self.events.push_back(ReceiverEvent::BackfillComplete);
        }
    }

    /// Checks a `hello`'s tracks: at most one video and one audio track, distinct numbers.
    pub fn check_tracks(tracks: &[TrackInfo]) -> Result<(), ProtocolError> {
        let unsupported = |m: String| ProtocolError::new(CloseCode::Unsupported, m);
        if tracks.is_empty() {
            return Err(unsupported("hello declares no tracks".into()));
        }
        for (i, t) in tracks.iter().enumerate() {
            match t.kind.as_deref() {
                Some("video") | Some("audio") => {}
                other => return Err(unsupported(format!("track {}: kind {other:?}", t.track))),
            }
            if tracks[..i].iter().any(|o| o.track == t.track) {
                return Err(unsupported(format!("track {} declared twice", t.track)));
            }
            if tracks[..i].iter().any(|o| o.kind == t.kind) {
                return Err(unsupported(format!(
                    "more than one {} track",
                    t.kind.as_deref().unwrap_or_default()
                )));
            }
            t.description_bytes()?;
        }
        Ok(())
    }

    /// The first sequence number still needed (what `welcome` announces).
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// A (new) connection carries the session from here: a cut-off frame is dropped, the
    /// window starts empty, the sender learns `next_seq` from `welcome`.
    pub fn connected(&mut self, now_us: i64) {
        self.partial = None;
        self.skipping = None;
        self.unacked_bytes = 0;
        self.ack_sent = self.next_seq;
        self.ack_now = false;
        self.last_ack_us = now_us;
        self.rate_second_start = now_us;
        self.rate_count = 0;
        self.rate.reset_baseline();
    }

    fn count_message(&mut self, now_us: i64) -> Result<(), ProtocolError> {
        if now_us - self.rate_second_start >= 1_000_000 {
            self.rate_second_start = now_us;
            self.rate_count = 0;
        }
        self.rate_count += 1;
        if self.rate_count > self.limits.max_messages_per_second {
            return Err(ProtocolError::new(
                CloseCode::Flood,
                format!(
                    "more than {} messages in one second",
                    self.limits.max_messages_per_second
                ),
            ));
        }
        // With `backfill`, late frames may follow `end` until every promised one arrived.
        if self.ended && (!self.backfill || self.complete) {
            return Err(ProtocolError::new(
                CloseCode::OutOfOrder,
                "message after end",
            ));
        }
        Ok(())
    }

    /// A binary message: a frame piece.
    pub fn handle_binary(&mut self, msg: &[u8], now_us: i64) -> Result<(), ProtocolError> {
        self.count_message(now_us)?;
        let (h, payload) = PieceHeader::decode(msg)?;
        if h.late && !self.backfill {
            return Err(ProtocolError::new(
                CloseCode::Malformed,
                "a late frame without the backfill feature",
            ));
        }
        if self.ended && !h.late {
            return Err(out_of_order("a live frame after end"));
        }
        if payload.len() as u64 > u64::from(self.limits.max_piece_bytes) {
            return Err(ProtocolError::new(
                CloseCode::TooLarge,
                format!(
                    "piece of {} bytes; the limit is {}",
                    payload.len(),
                    self.limits.max_piece_bytes
                ),
            ));
        }
        if h.total > self.limits.max_frame_bytes {
            return Err(ProtocolError::new(
                CloseCode::TooLarge,
                format!(
                    "frame of {} bytes; the limit is {}",
                    h.total, self.limits.max_frame_bytes
                ),
            ));
        }
        // Pieces of a frame already received (sent again after a resume) are skipped whole.
        if self.partial.is_none() && h.seq < self.next_seq {
            if h.offset == 0 || self.skipping == Some(h.seq) {
                self.skipping = (!h.last).then_some(h.seq);
                return Ok(());
            }
            return Err(out_of_order(format!(
                "piece at {} of frame {} without its start",
                h.offset, h.seq
            )));
        }
        self.skipping = None;
        match &mut self.partial {
            Some(p) => {
                let expected = p.data.len() as u64;
                if h.seq != p.header.seq
                    || h.track != p.header.track
                    || h.total != p.header.total
                    || h.late != p.header.late
                    || u64::from(h.offset) != expected
                {
                    return Err(out_of_order(format!(
                        "piece of frame {} at {} while frame {} needs its piece at {expected}",
                        h.seq, h.offset, p.header.seq
                    )));
                }
                p.data.extend_from_slice(payload);
            }
            None => {
                if h.seq != self.next_seq {
                    return Err(out_of_order(format!(
                        "frame {} where {} was due",
                        h.seq, self.next_seq
                    )));
                }
                if h.offset != 0 {
                    return Err(out_of_order(format!(
                        "frame {} starts at offset {}",
                        h.seq, h.offset
                    )));
                }
                if !self.tracks.iter().any(|t| t.track == h.track) {
                    return Err(ProtocolError::new(
                        CloseCode::Malformed,
                        format!("frame {} on undeclared track {}", h.seq, h.track),
                    ));
                }
                if h.late {
                    self.check_late(h.total)?;
                }
                let mut data = Vec::with_capacity(h.total as usize);
                data.extend_from_slice(payload);
                self.partial = Some(Partial { header: h, data });
            }
        }
        self.unacked_bytes += payload.len() as u64;
        if self.unacked_bytes > self.limits.window_bytes {
            return Err(ProtocolError::new(
                CloseCode::Flood,
                format!(
                    "{} bytes beyond the last acknowledgement; the window is {}",
                    self.unacked_bytes, self.limits.window_bytes
                ),
            ));
        }
        if h.last
            && let Some(p) = self.partial.take()
        {
            let h = p.header;
            if h.late {
                self.rate.on_late_frame(now_us, u64::from(h.total));
                self.late_received += 1;
                self.late_bytes += u64::from(h.total);
                self.next_seq += 1;
                self.events.push_back(ReceiverEvent::LateFrame(UploadFrame {
                    seq: h.seq,
                    track: h.track,
                    key: h.key,
                    pts: h.pts,
                    dts: h.dts,
                    data: Bytes::from(p.data),
                }));
                self.check_complete();
                return Ok(());
            }
            // A dts going back is an encoder's new clock (a restart): the session repairs the
            // timestamps (docs/timestamps.md); here the delay baseline starts again, or the
            // whole step would look like queueing delay for its 10 s window.
            match self.last_dts.iter_mut().find(|(t, _)| *t == h.track) {
                Some(entry) => {
                    if h.dts < entry.1 {
                        self.rate.reset_baseline();
                    }
                    entry.1 = h.dts;
                }
                None => self.last_dts.push((h.track, h.dts)),
            }
            self.rate.on_frame(now_us, h.dts, u64::from(h.total));
            self.next_seq += 1;
            self.events.push_back(ReceiverEvent::Frame(UploadFrame {
                seq: h.seq,
                track: h.track,
                key: h.key,
                pts: h.pts,
                dts: h.dts,
                data: Bytes::from(p.data),
            }));
        }
        Ok(())
    }

    /// The first piece of a late frame of `total` bytes: within the promise and the limits.
    fn check_late(&self, total: u32) -> Result<(), ProtocolError> {
        if self.late_received >= self.late_promised {
            return Err(out_of_order(format!(
                "late frame {} of {} promised",
                self.late_received + 1,
                self.late_promised
            )));
        }
        if self.late_bytes + u64::from(total) > self.limits.max_late_bytes {
            return Err(ProtocolError::new(
                CloseCode::Flood,
                format!(
                    "late frames of more than {} bytes in all",
                    self.limits.max_late_bytes
                ),
            ));
        }
        Ok(())
    }

    /// A text message after `hello`: `config`, `end` or `backfill`.
    pub fn handle_text(&mut self, text: &str, now_us: i64) -> Result<(), ProtocolError> {
        self.count_message(now_us)?;
        let msg = SenderMessage::parse(text)?;
        if self.partial.is_some() {
            return Err(out_of_order("text message between the pieces of a frame"));
        }
        match msg {
            SenderMessage::Hello(_) => Err(ProtocolError::new(
                CloseCode::Malformed,
                "a second hello on one connection",
            )),
            SenderMessage::Config { .. } if self.ended => Err(out_of_order("a config after end")),
            SenderMessage::Config { seq, info } => {
                if seq < self.next_seq {
                    return Ok(());
                }
                if seq != self.next_seq {
                    return Err(out_of_order(format!(
                        "config {seq} where {} was due",
                        self.next_seq
                    )));
                }
                let Some(slot) = self.tracks.iter_mut().find(|t| t.track == info.track) else {
                    return Err(ProtocolError::new(
                        CloseCode::Malformed,
                        format!("config for undeclared track {}", info.track),
                    ));
                };
                info.description_bytes()?;
                let info = TrackInfo {
                    kind: slot.kind.clone(),
                    ..info
                };
                *slot = info.clone();
                self.next_seq += 1;
                self.ack_now = true;
                self.events.push_back(ReceiverEvent::Config(info));
                Ok(())
            }
            // A resumed sender sends `end` again at its place.
            SenderMessage::End { seq } if self.ended && self.end_seq == Some(seq) => Ok(()),
            SenderMessage::End { .. } if self.ended => Err(out_of_order("a second end")),
            SenderMessage::Backfill { frames } => {
                if !self.backfill {
                    return Err(ProtocolError::new(
                        CloseCode::Malformed,
                        "backfill without the backfill feature",
                    ));
                }
                if frames > self.limits.max_late_frames {
                    return Err(ProtocolError::new(
                        CloseCode::Flood,
                        format!(
                            "{frames} late frames promised; the limit is {}",
                            self.limits.max_late_frames
                        ),
                    ));
                }
                if frames < self.late_received {
                    return Err(ProtocolError::new(
                        CloseCode::Malformed,
                        format!(
                            "{frames} late frames promised; {} arrived already",
                            self.late_received
                        ),
                    ));
                }
                self.late_promised = frames;
                self.check_complete();
                Ok(())
            }
            SenderMessage::End { seq } => {
                if seq != self.next_seq {
                    return Err(out_of_order(format!(
                        "end says {seq} messages were sent; {} arrived",
                        self.next_seq
                    )));
                }
                self.ended = true;
                self.end_seq = Some(seq);
                self.ack_now = true;
                self.events.push_back(ReceiverEvent::End);
                self.check_complete();
                Ok(())
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// The next message to send at `now_us`: an acknowledgement when one is due, then feedback.
    pub fn poll_transmit(&mut self, now_us: i64) -> Option<ServerMessage> {
        if self.next_seq > self.ack_sent
            && (self.ack_now || now_us - self.last_ack_us >= self.limits.ack_interval_us)
        {
            self.ack_sent = self.next_seq;
            self.ack_now = false;
            self.last_ack_us = now_us;
            self.unacked_bytes = self.partial.as_ref().map_or(0, |p| p.data.len() as u64);
            return Some(ServerMessage::Ack { seq: self.next_seq });
        }
        let due = self
            .last_feedback_us
            .is_none_or(|t| now_us - t >= self.limits.feedback_interval_us);
        if due && !self.ended {
            self.last_feedback_us = Some(now_us);
            let (receive_kbps, queue_delay_ms, suggested_kbps) = self.rate.feedback(now_us);
            return Some(ServerMessage::Feedback {
                receive_kbps,
                queue_delay_ms,
                suggested_kbps,
            });
        }
        None
    }

    /// When [`Self::poll_transmit`] should be asked next.
    pub fn next_timeout(&self, now_us: i64) -> i64 {
        let feedback = self
            .last_feedback_us
            .map_or(now_us, |t| t + self.limits.feedback_interval_us);
        let ack = if self.next_seq > self.ack_sent {
            self.last_ack_us + self.limits.ack_interval_us
        } else {
            i64::MAX
        };
        feedback.min(ack).max(now_us)
    }
}

fn out_of_order(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(CloseCode::OutOfOrder, message)
}
