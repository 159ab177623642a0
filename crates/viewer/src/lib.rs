//! The viewer side, sans-IO, for `vshare bench --viewers`: [`llhls`] reads a media playlist
//! and says what a player asks for next; [`http1`] reads one HTTP/1.1 response from the bytes
//! of a connection. The async adapter is the bench (`crates/cli/src/commands/bench_viewers.rs`).

pub mod http1;
pub mod llhls;
