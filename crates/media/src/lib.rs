//! The frame type that flows through vshare, and the codec configurations that describe it.
//!
//! Ingest (RTMP, the upload protocol) turns every protocol into [`MediaEvent`]s: first the
//! [`TrackConfig`] of each track, then timestamped [`Frame`]s. The same events feed the live
//! packager, the recorder and statistics. Nothing here does I/O.

pub mod annexb;
pub mod codec;
pub mod flv;
mod frame;
pub mod timestamps;

pub use codec::{AacConfig, AvcConfig, CodecError, HevcConfig, TrackConfig};
pub use frame::{Frame, HevcEvent, MediaEvent, TrackKind};
