//! SMPP v3.4 (SMPP Developers Forum, Issue 1.2, 1999): PDUs (§4) and a session state machine
//! (§2.2–2.9) for both ends, an ESME (client) and an SMSC (server) — sans-IO: bytes in through
//! [`Session::handle_input`], bytes out of [`Session::poll_transmit`], events from
//! [`Session::poll_event`], and time passed in ([`Session::poll_timeout`],
//! [`Session::handle_timeout`]).
//!
//! Hand-written: rusmpp 0.4 has a complete PDU codec, but its decode errors carry no byte
//! offset and its session is an async tokio client only (no SMSC side, no clock-free state
//! machine to test deterministically); smpp34 1.5 has client and server, but its windowing and
//! timers live inside its tokio core (not sans-IO), and its Python wheel is the independent SMSC
//! our tests run against, which it could not be if it were also our implementation; smpp-pdu
//! 0.1 is unmaintained.
//!
//! ```
//! use std::time::Instant;
//! use vshare_smpp::{BindKind, Config, Event, Session, pdu::Sm};
//! let now = Instant::now();
//! let mut esme = Session::esme(Config::default());
//! let mut smsc = Session::smsc(Config::default());
//! esme.bind(BindKind::Transceiver, "vshare", "secret", "", now);
//! let mut pump = |a: &mut Session, b: &mut Session| {
//!     while let Some(bytes) = a.poll_transmit() { b.handle_input(&bytes, now).unwrap(); }
//! };
//! pump(&mut esme, &mut smsc);
//! let Some(Event::BindRequest { sequence, .. }) = smsc.poll_event() else { panic!() };
//! smsc.accept_bind(sequence, "dev-smsc");
//! pump(&mut smsc, &mut esme);
//! assert!(matches!(esme.poll_event(), Some(Event::Bound { .. })));
//! esme.submit(1, Sm::text("+8613800138000", "+8613900139000", b"hi"), now);
//! pump(&mut esme, &mut smsc);
//! let Some(Event::Submit { sequence, .. }) = smsc.poll_event() else { panic!() };
//! smsc.respond_submit(sequence, 0, "m1");
//! pump(&mut smsc, &mut esme);
//! assert!(matches!(esme.poll_event(), Some(Event::Submitted { tag: 1, .. })));
//! ```

pub mod pdu;
pub mod receipt;
pub mod session;

pub use pdu::{Body, Pdu, PduError};
pub use session::{BindKind, Config, Event, Session, SessionError, State};

/// command_status values (§5.1.3) this crate names.
pub mod status {
    pub const OK: u32 = 0x0000_0000;
    pub const INVALID_MSG_LENGTH: u32 = 0x0000_0001;
    pub const INVALID_COMMAND_LENGTH: u32 = 0x0000_0002;
    pub const INVALID_COMMAND_ID: u32 = 0x0000_0003;
    pub const INVALID_BIND_STATUS: u32 = 0x0000_0004;
    pub const ALREADY_BOUND: u32 = 0x0000_0005;
    pub const SYSTEM_ERROR: u32 = 0x0000_0008;
    pub const INVALID_SOURCE: u32 = 0x0000_000A;
    pub const INVALID_DEST: u32 = 0x0000_000B;
    pub const BIND_FAILED: u32 = 0x0000_000D;
    pub const INVALID_PASSWORD: u32 = 0x0000_000E;
    pub const INVALID_SYSTEM_ID: u32 = 0x0000_000F;
    /// Message queue full (ESME_RMSGQFUL): back off and retry.
    pub const MSG_QUEUE_FULL: u32 = 0x0000_0014;
    /// Throttling error (ESME_RTHROTTLED): back off and retry.
    pub const THROTTLED: u32 = 0x0000_0058;
}
