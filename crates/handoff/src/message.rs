//! The one boundary between the video server role and the live server role.

use std::sync::Arc;

use bytes::Bytes;

/// What the video server tells the live server about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveMessage {
    /// A new init segment (`init.mp4` first, `init{msn}.mp4` after a codec change).
    Init {
        stream: String,
        name: String,
        init: Bytes,
    },
    /// A partial segment is ready; `playlist` lists it.
    Part {
        stream: String,
        msn: u64,
        index: u32,
        bytes: Bytes,
        playlist: Arc<str>,
    },
    /// A segment is complete (its parts went before it; its bytes are in the recording);
    /// `playlist` lists it.
    Segment {
        stream: String,
        msn: u64,
        playlist: Arc<str>,
    },
    /// The recording stored segment `msn`: its parts may leave memory (they are byte ranges
    /// of the stored segment).
    Stored { stream: String, msn: u64 },
    /// The publisher stopped; the final playlist carries EXT-X-ENDLIST.
    End { stream: String, playlist: Arc<str> },
    /// The multivariant playlist of a video with several renditions (each rendition is its own
    /// stream, named `<video>/<rendition>`; the source is `<video>`).
    Multivariant { stream: String, playlist: Arc<str> },
    /// Segment `msn` is complete and stored, and its parts have these lengths (each part is a
    /// byte range of the stored segment); `playlist` is the current one. Only a resync sends
    /// it: it stands for the parts, `Segment` and `Stored` of a segment whose parts left
    /// memory.
    StoredSegment {
        stream: String,
        msn: u64,
        part_lengths: Vec<u32>,
        playlist: Arc<str>,
    },
}

impl LiveMessage {
    /// The stream the message is about.
    pub fn stream(&self) -> &str {
        match self {
            LiveMessage::Init { stream, .. }
            | LiveMessage::Part { stream, .. }
            | LiveMessage::Segment { stream, .. }
            | LiveMessage::Stored { stream, .. }
            | LiveMessage::End { stream, .. }
            | LiveMessage::Multivariant { stream, .. }
            | LiveMessage::StoredSegment { stream, .. } => stream,
        }
    }

    /// Media bytes and playlist text the message carries (what a queue is bounded by).
    pub fn weight(&self) -> usize {
        let own = match self {
            LiveMessage::Init { name, init, .. } => name.len() + init.len(),
            LiveMessage::Part {
                bytes, playlist, ..
            } => bytes.len() + playlist.len(),
            LiveMessage::Segment { playlist, .. }
            | LiveMessage::End { playlist, .. }
            | LiveMessage::Multivariant { playlist, .. } => playlist.len(),
            LiveMessage::Stored { .. } => 0,
            LiveMessage::StoredSegment {
                part_lengths,
                playlist,
                ..
            } => part_lengths.len() * 4 + playlist.len(),
        };
        own + self.stream().len() + 32
    }
}
