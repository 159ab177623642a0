//! fMP4/CMAF muxer, LL-HLS packager and playlists, and the fast-start MP4 VOD builder.
//!
//! Sans-IO: nothing here reads a clock or touches a socket or file. The server drives a
//! [`Packager`] per live stream with [`vshare_media::MediaEvent`]s and their arrival times, serves
//! what it returns, and builds the VOD file with [`VodMp4Builder`] from the recorded segments.
//! The layout and timing rules are described in `docs/packaging.md`.

mod error;
pub mod fmp4;
pub mod multivariant;
mod packager;
mod playlist;
mod playlist_query;
mod vod;
pub mod window;

pub use error::PackageError;
pub use multivariant::{Variant, VariantMeter, multivariant_playlist};
pub use packager::{
    MAX_COMPOSITION_OFFSET_US, MAX_FRAME_SIZE, ORIGIN_MARGIN_US, Packager, PackagerConfig,
    PackagerOutput,
};
pub use playlist::{VodSegment, dvr_playlist, vod_playlist, vod_playlist_segments};
pub use playlist_query::{playlist_with_query, uri_with_query};
pub use vod::VodMp4Builder;
pub use window::{LiveWindow, PartBytes, SegmentBytes, WindowUpdate};
