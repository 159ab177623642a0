//! WHEP playback (draft-ietf-wish-whep) and WHIP ingest (RFC 9725) over WebRTC, sans-IO.
//!
//! - [`Feed`]: one per live stream. Source events in ([`vshare_media::MediaEvent`]: the AVC
//!   configuration, AVCC frames), [`Sample`]s out: H.264 access units in Annex B with SPS and
//!   PPS before every keyframe, and the stream's Opus packets, each with its RTP time and a
//!   wall-clock instant on one timeline for lip sync. H.264 is passed through only while the
//!   source has no B-frames (WebRTC has no composition offsets).
//! - [`Viewer`]: one per WHEP session, a str0m [`str0m::Rtc`] that answers the browser's offer
//!   with H.264 (packetization-mode 1) and Opus, sends from the next keyframe on, and hands its
//!   datagrams and next deadline to the adapter, which owns the UDP socket and the clock.
//! - [`Peer`]: what both share, the `Rtc` answering as an ICE-lite peer on the one host
//!   candidate, its queued datagrams and next deadline.
//! - [`Ingest`]: one per WHIP publisher, a str0m [`str0m::Rtc`] that receives H.264 and Opus
//!   and hands on source events (the AVC configuration from the in-band SPS/PPS, AVCC frames,
//!   Opus packets with their times), asking the publisher for keyframes when it needs them.
//!
//! Why str0m: it is a sans-IO WebRTC stack (input and time go in, transmits and events come
//! out), the same shape as our RTMP, upload-protocol and packager cores, so the server's adapter
//! stays a short loop and the session is testable without sockets. ICE, DTLS-SRTP, RTCP, NACK
//! retransmission from its send buffer and packetization are its work, not ours.

mod feed;
mod ingest;
mod peer;
mod viewer;

pub use feed::{Feed, FeedNote, Sample, SampleKind, h264_profile_level_id};
pub use ingest::{Ingest, IngestEvent, IngestStats, KEYFRAME_REQUEST_INTERVAL};
pub use peer::{Host, Peer};
pub use viewer::{OfferError, Viewer, ViewerStats};

/// Re-exported for the adapter: instants, socket addresses and the datagram type it handles.
pub use str0m;
