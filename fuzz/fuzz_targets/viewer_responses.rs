//! The load generator's readers on arbitrary bytes: an HTTP/1.1 response fed in pieces (the
//! first byte sets the piece size), and the same bytes as a media playlist given to the LL-HLS
//! viewer. Errors are fine; a panic or a reader that stops taking bytes without an answer is
//! not, and the body never holds more bytes than came in.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vshare_viewer::http1::{Progress, ResponseReader};
use vshare_viewer::llhls::{MediaPlaylist, Viewer};

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step.max(1));
    let mut reader = ResponseReader::new(step % 2 == 0);
    let mut buf = BytesMut::new();
    let (mut fed, mut body, mut ended) = (0, 0, false);
    // Every call takes bytes, says something, or asks for more: the calls are bounded by the
    // input.
    for _ in 0..(wire.len() * 4 + 16) {
        match reader.advance(&mut buf) {
            Err(_) | Ok(Progress::Done) => {
                ended = true;
                break;
            }
            Ok(Progress::NeedMore) if fed < wire.len() => {
                let end = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
            }
            Ok(Progress::NeedMore) => {
                let _ = reader.closed();
                ended = true;
                break;
            }
            Ok(Progress::Head { .. }) => {}
            Ok(Progress::Data(d)) => {
                assert!(!d.is_empty(), "empty body piece");
                body += d.len();
            }
        }
    }
    assert!(ended, "the reader spun without taking bytes");
    assert!(body <= wire.len());

    if let Ok(text) = std::str::from_utf8(wire)
        && let Some(playlist) = MediaPlaylist::parse(text)
    {
        let mut viewer = Viewer::new();
        let _ = viewer.on_playlist(&playlist);
        let _ = viewer.on_playlist(&playlist);
        let _ = playlist.next_reload();
    }
});
