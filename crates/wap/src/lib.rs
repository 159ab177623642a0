//! WAP Push, sans-IO: Service Indication and Service Loading documents (WAP-167, WAP-168) in XML
//! and WBXML (WAP-192), the WSP connectionless push PDU (WAP-230 §8.2.4.1), carriage over WDP
//! in SMS to port 2948 (WAP-259 §6.5, TS 23.040 §9.2.3.24.4), and PAP messages (WAP-247).
//!
//! Hand-written: no WBXML or WSP crate exists on crates.io; XML is read with quick-xml.
//!
//! ```
//! use vshare_wap::{si::ServiceIndication, wsp::PushPdu};
//! let si = ServiceIndication::new("http://127.0.0.1:8080/vod/v1/video.mp4", "New video");
//! let push = PushPdu::service_indication(1, si.to_wbxml().unwrap());
//! let parts = vshare_wap::wdp::sms_parts(&push.encode(), vshare_sms::split::ConcatRef::Eight(1)).unwrap();
//! assert_eq!(parts.parts.len(), 1);
//! let back = PushPdu::decode(&parts.parts[0].payload).unwrap();
//! assert_eq!(ServiceIndication::from_wbxml(&back.body).unwrap(), si);
//! ```

pub mod date;
pub mod pap;
pub mod si;
pub mod sl;
mod uintvar;
pub mod wbxml;
pub mod wdp;
pub mod wsp;
pub mod xml;

/// Why bytes did not decode (or a document cannot be encoded), naming the layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WapError {
    #[error("{layer}, byte {offset}: ends inside {what}")]
    Truncated {
        layer: Layer,
        offset: usize,
        what: &'static str,
    },
    #[error("{layer}, byte {offset}: {reason}")]
    Invalid {
        layer: Layer,
        offset: usize,
        reason: String,
    },
    #[error("{layer}: cannot encode: {reason}")]
    Unencodable { layer: Layer, reason: String },
}

/// The layer an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Wbxml,
    Wsp,
    Xml,
    Si,
    Sl,
    Pap,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Wbxml => "WBXML",
            Layer::Wsp => "WSP push",
            Layer::Xml => "XML",
            Layer::Si => "SI document",
            Layer::Sl => "SL document",
            Layer::Pap => "PAP",
        })
    }
}
