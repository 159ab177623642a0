//! Helpers for the tests of the vshare crates: use it from `[dev-dependencies]` only.
//!
//! It depends on no crate it serves except `vshare-media` (for FLV files), so any crate's
//! tests can use it without a cycle.

pub mod db;
pub mod dir;
pub mod ffmpeg;
pub mod flv;
pub mod media;
pub mod net;
pub mod process;
pub mod wait;
