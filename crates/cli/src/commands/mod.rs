//! One module per subcommand: flags, then a call into the crate that does the work.

pub mod bench;
pub mod bench_viewers;
pub mod bench_whep;
pub mod keys;
pub mod open;
pub mod publish;
mod publish_status;
pub mod serve;
pub mod share;
pub mod smsc;
pub mod subscribe;
pub mod upload;
