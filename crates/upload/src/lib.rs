//! The upload protocol, `vshare-upload.1` (`docs/upload-protocol.md`): how a source terminal
//! sends encoded frames to the video server over WebSocket, with a sliding window of
//! acknowledgements, feedback for rate adaptation, and resume after a dropped connection.
//!
//! Sans-IO: [`UploadReceiver`] (the server's side) and [`UploadSender`] take and give whole
//! WebSocket messages and never touch a socket or a clock; callers pass the time in.
//! [`rate`] holds the adaptation logic both ends run. The `backfill` extension (negotiated in
//! `hello`/`welcome`) carries frames the live send dropped late, for the recording only.

pub mod rate;
mod receiver;
mod sender;
pub mod wire;

pub use rate::{QualityStep, SenderRate, ServerRate};
pub use receiver::{ReceiverEvent, ReceiverLimits, UploadFrame, UploadReceiver};
pub use sender::{SenderStats, UploadSender};
pub use wire::{
    BackfillLimits, CloseCode, Hello, PieceHeader, ProtocolError, Resume, SenderMessage,
    ServerMessage, TrackInfo, WireMessage,
};
