//! The sender's side: numbers frames and configurations, cuts frames into pieces, keeps every
//! message until it is acknowledged, respects the window, and rewinds after a reconnect. With
//! the `backfill` feature it also keeps the frames the live send dropped, within a bound, and
//! sends them late when the caller says there is room (or after the stop).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::wire::{
    BackfillLimits, FEATURE_BACKFILL, FEATURE_KEYFRAME, Hello, PieceHeader, ProtocolError, Resume,
    SenderMessage, ServerMessage, TrackInfo, VERSION, WireMessage,
};

/// A frame dropped from the live send, kept to be sent late.
#[derive(Debug, Clone)]
struct LateFrame {
    track: u8,
    key: bool,
    pts: i64,
    dts: i64,
    data: Bytes,
}

#[derive(Debug, Clone)]
enum Kept {
    Frame {
        seq: u32,
        track: u8,
        key: bool,
        late: bool,
        pts: i64,
        dts: i64,
        data: Bytes,
    },
    Config {
        seq: u32,
        info: TrackInfo,
    },
}

impl Kept {
    fn seq(&self) -> u32 {
        match self {
            Kept::Frame { seq, .. } | Kept::Config { seq, .. } => *seq,
        }
    }

    fn payload_len(&self) -> u64 {
        match self {
            Kept::Frame { data, .. } => data.len() as u64,
            Kept::Config { .. } => 0,
        }
    }
}

/// Counters for the overhead benchmark and the studio's display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Frame payload bytes handed in.
    pub media_bytes: u64,
    /// Bytes of every WebSocket message payload sent (headers, JSON and frames sent again).
    pub wire_bytes: u64,
    /// Frames sent again after a reconnect.
    pub resent_frames: u64,
    /// `backfill`: dropped frames kept to be sent late, and those not kept (over a bound).
    pub late_kept: u64,
    pub late_refused: u64,
}

#[derive(Debug)]
pub struct UploadSender {
    kept: VecDeque<Kept>,
    /// Index in `kept` of the next message to send, and how much of it is sent.
    send_index: usize,
    send_offset: usize,
    next_seq: u32,
    /// Payload bytes sent and not acknowledged.
    in_flight: u64,
    /// Payload bytes kept (sent or not) and not acknowledged.
    backlog: u64,
    window_bytes: u64,
    max_piece_bytes: usize,
    session: Option<String>,
    end_seq: Option<u32>,
    end_sent: bool,
    /// Highest sequence number ever sent, to count what is sent again.
    sent_high: Option<u32>,
    stats: SenderStats,
    /// `backfill`: asked for (with the sender's own byte bound), and granted by `welcome`.
    late_max_bytes: Option<u64>,
    late_limits: Option<BackfillLimits>,
    /// Late frames kept and not yet numbered, and their bytes.
    late: VecDeque<LateFrame>,
    late_bytes: u64,
    /// Late frames promised in all; the count last announced on this connection.
    late_promised: u32,
    late_announced: Option<u32>,
    /// Late payload bytes numbered in all (against the server's `max_bytes`).
    late_total_bytes: u64,
}

impl Default for UploadSender {
    fn default() -> Self {
        Self::new()
    }
}

impl UploadSender {
    pub fn new() -> Self {
        UploadSender {
            kept: VecDeque::new(),
            send_index: 0,
            send_offset: 0,
            next_seq: 0,
            in_flight: 0,
            backlog: 0,
            window_bytes: 1 << 20,
            max_piece_bytes: 16 << 10,
            session: None,
            end_seq: None,
            end_sent: false,
            sent_high: None,
            stats: SenderStats::default(),
            late_max_bytes: None,
            late_limits: None,
            late: VecDeque::new(),
            late_bytes: 0,
            late_promised: 0,
            late_announced: None,
            late_total_bytes: 0,
        }
    }

    /// Asks for the `backfill` feature in `hello`, keeping at most `max_bytes` of dropped
    /// frames waiting to be sent.
    pub fn with_backfill(mut self, max_bytes: u64) -> Self {
        self.late_max_bytes = Some(max_bytes);
        self
    }

    /// Whether the server granted `backfill`.
    pub fn backfill(&self) -> bool {
        self.late_limits.is_some()
    }

    /// The `hello` for a new session, or for resuming the one the server welcomed us to.
    pub fn hello(
        &self,
        token: &str,
        title: &str,
        tracks: Vec<TrackInfo>,
        start_kbps: u32,
        max_kbps: u32,
    ) -> WireMessage {
        let msg = SenderMessage::Hello(Hello {
            version: VERSION,
            token: token.to_string(),
            title: title.to_string(),
            start_kbps: Some(start_kbps),
            max_kbps: Some(max_kbps),
            tracks,
            resume: self.session.clone().map(|session| Resume { session }),
            // This sender's encoders make a key frame whenever asked.
            features: std::iter::once(FEATURE_KEYFRAME)
                .chain(self.late_max_bytes.map(|_| FEATURE_BACKFILL))
                .map(String::from)
                .collect(),
        });
        WireMessage::Text(msg.to_text())
    }

    /// Keeps a frame to send; returns its sequence number.
    pub fn push_frame(&mut self, track: u8, key: bool, pts: i64, dts: i64, data: Bytes) -> u32 {
        let seq = self.take_seq();
        self.backlog += data.len() as u64;
        self.stats.media_bytes += data.len() as u64;
        self.kept.push_back(Kept::Frame {
            seq,
            track,
            key,
            late: false,
            pts,
            dts,
            data,
        });
        seq
    }

    /// A frame the live send dropped: kept to be sent late when `backfill` was granted and the
    /// bounds allow (ours and the server's). Returns whether it was kept. A frame not kept
    /// ends what can be kept of its run: the frames after it would not decode without it, so
    /// the caller keeps none until the next key frame.
    pub fn keep_late(&mut self, track: u8, key: bool, pts: i64, dts: i64, data: Bytes) -> bool {
        let len = data.len() as u64;
        let fits = match (self.late_limits, self.late_max_bytes) {
            (Some(l), Some(max)) => {
                self.late_promised < l.max_frames
                    && self.late_total_bytes + self.late_bytes + len <= l.max_bytes
                    && self.late_bytes + len <= max
            }
            _ => false,
        };
        if !fits {
            self.stats.late_refused += 1;
            return false;
        }
        self.late_bytes += len;
        self.late_promised += 1;
        self.stats.late_kept += 1;
        self.late.push_back(LateFrame {
            track,
            key,
            pts,
            dts,
            data,
        });
        true
    }

    /// Numbers late frames, oldest first, for sending next: as many whole frames as fit in
    /// `budget_bytes`, and one in any case when nothing else is waiting to go out. Returns how
    /// many.
    pub fn release_late(&mut self, budget_bytes: u64) -> usize {
        let mut used = 0;
        let mut n = 0;
        while let Some(f) = self.late.front() {
            let len = f.data.len() as u64;
            let idle = n == 0 && self.send_index >= self.kept.len() && self.in_flight == 0;
            if used + len > budget_bytes && !idle {
                break;
            }
            let Some(f) = self.late.pop_front() else {
                break;
            };
            used += len;
            n += 1;
            self.late_bytes -= len;
            self.late_total_bytes += len;
            self.backlog += len;
            let seq = self.take_seq();
            self.kept.push_back(Kept::Frame {
                seq,
                track: f.track,
                key: f.key,
                late: true,
                pts: f.pts,
                dts: f.dts,
                data: f.data,
            });
        }
        n
    }

    /// Late frames kept and not yet numbered, and their bytes.
    pub fn late_waiting(&self) -> (usize, u64) {
        (self.late.len(), self.late_bytes)
    }

    /// Keeps a new configuration for a track (its next frame must be a key frame).
    pub fn push_config(&mut self, info: TrackInfo) -> u32 {
        let seq = self.take_seq();
        self.kept.push_back(Kept::Config { seq, info });
        seq
    }

    /// The user stopped: `end` goes out after everything kept.
    pub fn end(&mut self) {
        if self.end_seq.is_none() {
            self.end_seq = Some(self.next_seq);
        }
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Handles a server message; `welcome` rewinds to what the server still needs.
    pub fn handle_server(&mut self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Welcome {
                session,
                next_seq,
                window_bytes,
                max_piece_bytes,
                ..
            } => {
                self.session = Some(session.clone());
                if let ServerMessage::Welcome {
                    features, backfill, ..
                } = msg
                    && self.late_max_bytes.is_some()
                    && features.iter().any(|f| f == FEATURE_BACKFILL)
                {
                    self.late_limits = *backfill;
                }
                self.late_announced = None;
                self.window_bytes = (*window_bytes).max(1);
                self.max_piece_bytes = (*max_piece_bytes as usize).clamp(1, 1 << 20);
                self.acknowledge(*next_seq);
                self.send_index = 0;
                self.send_offset = 0;
                self.in_flight = 0;
                self.end_sent = false;
            }
            ServerMessage::Ack { seq } => self.acknowledge(*seq),
            _ => {}
        }
    }

    /// Parses and handles a text message from the server.
    pub fn handle_text(&mut self, text: &str) -> Result<ServerMessage, ProtocolError> {
        let msg = ServerMessage::parse(text)?;
        self.handle_server(&msg);
        Ok(msg)
    }

    fn acknowledge(&mut self, seq: u32) {
        while self.kept.front().is_some_and(|k| k.seq() < seq) {
            let Some(k) = self.kept.pop_front() else {
                break;
            };
            let len = k.payload_len();
            self.backlog -= len;
            if self.send_index > 0 {
                self.send_index -= 1;
                self.in_flight = self.in_flight.saturating_sub(len);
            } else {
                // Acknowledged while (partly) unsent here: a resume told us it arrived before.
                self.in_flight = self.in_flight.saturating_sub(self.send_offset as u64);
                self.send_offset = 0;
            }
        }
    }

    /// The next message to write, if the window allows one.
    pub fn poll_transmit(&mut self) -> Option<WireMessage> {
        // Text messages go between frames, never between the pieces of one.
        if self.send_offset == 0 {
            if self.backfill() && self.late_announced != Some(self.late_promised) {
                self.late_announced = Some(self.late_promised);
                return Some(self.text(SenderMessage::Backfill {
                    frames: self.late_promised,
                }));
            }
            // `end` goes at its place: late frames numbered after it follow it.
            let next = self.kept.get(self.send_index).map(Kept::seq);
            if let Some(end) = self.end_seq.filter(|_| !self.end_sent)
                && next.is_none_or(|n| n >= end)
            {
                self.end_sent = true;
                return Some(self.text(SenderMessage::End { seq: end }));
            }
        }
        let kept = self.kept.get(self.send_index)?;
        let seq = kept.seq();
        let msg = match kept {
            Kept::Config { info, .. } => {
                let text = SenderMessage::Config {
                    seq,
                    info: info.clone(),
                }
                .to_text();
                self.send_index += 1;
                WireMessage::Text(text)
            }
            Kept::Frame {
                track,
                key,
                late,
                pts,
                dts,
                data,
                ..
            } => {
                let remaining = data.len() - self.send_offset;
                let len = remaining.min(self.max_piece_bytes);
                if self.in_flight > 0 && self.in_flight + len as u64 > self.window_bytes {
                    return None;
                }
                let header = PieceHeader {
                    track: *track,
                    key: *key,
                    last: len == remaining,
                    late: *late,
                    seq,
                    pts: *pts,
                    dts: *dts,
                    offset: self.send_offset as u32,
                    total: data.len() as u32,
                };
                let bytes = header.encode(&data[self.send_offset..self.send_offset + len]);
                if self.send_offset == 0 && self.sent_high.is_some_and(|h| seq <= h) {
                    self.stats.resent_frames += 1;
                }
                self.in_flight += len as u64;
                if header.last {
                    self.send_index += 1;
                    self.send_offset = 0;
                } else {
                    self.send_offset += len;
                }
                WireMessage::Binary(bytes)
            }
        };
        self.sent_high = Some(self.sent_high.map_or(seq, |h| h.max(seq)));
        self.stats.wire_bytes += match &msg {
            WireMessage::Text(t) => t.len() as u64,
            WireMessage::Binary(b) => b.len() as u64,
        };
        Some(msg)
    }

    fn text(&mut self, msg: SenderMessage) -> WireMessage {
        let text = msg.to_text();
        self.stats.wire_bytes += text.len() as u64;
        WireMessage::Text(text)
    }

    /// Frame payload bytes kept and not acknowledged (sent or not).
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog
    }

    /// The capture time (dts, µs) of the oldest live frame not yet acknowledged: how far
    /// behind real time the upload is (late frames are behind by design).
    pub fn oldest_unacked_dts(&self) -> Option<i64> {
        self.kept.iter().find_map(|k| match k {
            Kept::Frame {
                dts, late: false, ..
            } => Some(*dts),
            _ => None,
        })
    }

    /// Frame payload bytes sent and not acknowledged.
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight
    }

    /// Whether `end` went out and everything, late frames too, was acknowledged.
    pub fn finished(&self) -> bool {
        self.end_sent && self.kept.is_empty() && self.late.is_empty()
    }

    pub fn stats(&self) -> SenderStats {
        self.stats
    }
}
