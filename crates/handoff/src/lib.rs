//! The live hand-off (`docs/live-handoff.md`): [`LiveMessage`], the one boundary between the
//! video server role and the live server role, and its form on a TCP connection — versioned,
//! length-prefixed frames, a handshake in which both ends prove a shared secret (HMAC-SHA256
//! over a nonce from each side), and a tag on every frame after it.
//!
//! Sans-IO: a [`Session`] takes and gives bytes and never touches a socket or a clock; nonces
//! come from the caller. Decoding never panics and never allocates beyond [`Limits`]; every
//! error says at which byte of the connection it was found.
//!
//! Hand-written: the protocols that exist for this (DASH-IF live media ingest, OvenMediaEngine's
//! OVT, SRT) carry media to be packaged, not a packager's window with its playlists, and none
//! has a Rust crate with a sans-IO codec; the document says more.
//!
//! ```
//! use std::sync::Arc;
//! use vshare_handoff::{Event, LiveMessage, Limits, Session};
//! let secret = b"a secret both servers were given";
//! let mut video = Session::client(secret, [1; 32], Limits::default());
//! let mut live = Session::server(secret, [2; 32], Limits::default());
//! let pump = |a: &mut Session, b: &mut Session| {
//!     while let Some(bytes) = a.poll_transmit() { b.handle_input(&bytes).unwrap(); }
//! };
//! pump(&mut video, &mut live); // hello
//! pump(&mut live, &mut video); // challenge with the live server's proof
//! pump(&mut video, &mut live); // the video server's proof
//! pump(&mut live, &mut video); // accept
//! assert_eq!(video.poll_event(), Some(Event::Ready));
//! assert_eq!(live.poll_event(), Some(Event::Ready));
//! let part = LiveMessage::Part {
//!     stream: "v1".into(), msn: 0, index: 0,
//!     bytes: vec![0u8; 100].into(), playlist: Arc::from("#EXTM3U\n"),
//! };
//! video.send(&part).unwrap();
//! pump(&mut video, &mut live);
//! assert_eq!(live.poll_event(), Some(Event::Message(part)));
//! ```

pub mod frame;
mod message;
mod session;

pub use frame::{HandoffError, Limits, NONCE_LEN, RefuseReason, VERSION};
pub use message::LiveMessage;
pub use session::{Event, Session};
