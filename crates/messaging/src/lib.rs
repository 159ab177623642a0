//! The messaging roles of vshare over the sans-IO cores (vshare-sms, vshare-wap, vshare-smpp):
//!
//! - [`compose`]: the source's message management — attribute records into SMS parts in one of
//!   five forms (text, TLV, XML, WAP SI, WAP SL), as SMPP submits, SMS-SUBMIT TPDUs or an
//!   `sms:` URI. Pure functions.
//! - [`receive`]: the target's information agent — SMS parts in, records out. Pure functions.
//! - [`smpp_client`], [`smsc`]: thin tokio adapters driving [`vshare_smpp::Session`].
//! - [`api`], [`pap`], [`player`]: the HTTP API of `vshare serve`, a PAP client, media players.

pub mod api;
pub mod bench;
pub mod compose;
pub mod pap;
pub mod player;
pub mod receive;
pub mod smpp_client;
pub mod smsc;
