//! The viewer side of LL-HLS, sans-IO: reading a media playlist (RFC 8216bis) and deciding what
//! a player like hls.js or AVPlayer asks for next — the blocking reload for the next part, the
//! parts it has not fetched, the preload-hinted part early, and segments where a playlist lists
//! no parts. Our own reader: m3u8-rs has no EXT-X-PART, EXT-X-PRELOAD-HINT or
//! EXT-X-SERVER-CONTROL, and the load generator needs only these few tags. The async adapter is
//! `vshare bench --viewers`.

use std::collections::BTreeSet;

/// A part or segment a playlist names: its media sequence number, its part index (segments:
/// none) and its URI as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    pub msn: u64,
    pub part: Option<u32>,
    pub uri: String,
}

/// What a viewer needs from a media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    pub media_sequence: u64,
    /// `EXT-X-PART-INF:PART-TARGET`, s.
    pub part_target_s: Option<f64>,
    pub target_duration_s: f64,
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block: bool,
    pub ended: bool,
    /// The first `EXT-X-MAP` URI.
    pub map: Option<String>,
    pub segments: Vec<MediaRef>,
    pub parts: Vec<MediaRef>,
    /// `EXT-X-PRELOAD-HINT:TYPE=PART`: the part the server makes next.
    pub hint: Option<MediaRef>,
}

fn attr<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    // Attribute lists split at commas outside quotes (RFC 8216bis §4.2).
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = next;
    }
    None
}

impl MediaPlaylist {
    /// Reads a media playlist; `None` when it is not one (no `#EXTM3U`).
    pub fn parse(text: &str) -> Option<MediaPlaylist> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some("#EXTM3U") {
            return None;
        }
        let mut p = MediaPlaylist::default();
        // Parts seen since the last segment URI: they belong to the next segment.
        let mut pending: Vec<String> = Vec::new();
        let mut hint_uri = None;
        for line in lines {
            if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = v.parse().ok()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target_duration_s = v.parse().ok()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
                p.part_target_s = attr(v, "PART-TARGET").and_then(|t| t.parse().ok());
            } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                p.can_block = attr(v, "CAN-BLOCK-RELOAD") == Some("YES");
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                if p.map.is_none() {
                    p.map = attr(v, "URI").map(String::from);
                }
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
                pending.extend(attr(v, "URI").map(String::from));
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                if attr(v, "TYPE") == Some("PART") {
                    hint_uri = attr(v, "URI").map(String::from);
                }
            } else if !line.starts_with('#') {
                let msn = p.media_sequence + p.segments.len() as u64;
                p.take_parts(msn, &mut pending);
                p.segments.push(MediaRef {
                    msn,
                    part: None,
                    uri: line.to_string(),
                });
            }
        }
        // Parts after the last segment: the segment in progress; the hint follows them.
        let msn = p.media_sequence + p.segments.len() as u64;
        let next_index = pending.len() as u32;
        p.take_parts(msn, &mut pending);
        p.hint = hint_uri.map(|uri| MediaRef {
            msn,
            part: Some(next_index),
            uri,
        });
        Some(p)
    }

    fn take_parts(&mut self, msn: u64, pending: &mut Vec<String>) {
        for (i, uri) in pending.drain(..).enumerate() {
            self.parts.push(MediaRef {
                msn,
                part: Some(i as u32),
                uri,
            });
        }
    }

    /// The `_HLS_msn`/`_HLS_part` query of the blocking reload for the next part (or, without
    /// parts, the next segment); `None` when the server cannot block or the stream ended.
    pub fn next_reload(&self) -> Option<String> {
        if !self.can_block || self.ended {
            return None;
        }
        Some(match &self.hint {
            Some(MediaRef {
                msn, part: Some(i), ..
            }) => format!("_HLS_msn={msn}&_HLS_part={i}"),
            _ => format!(
                "_HLS_msn={}",
                self.media_sequence + self.segments.len() as u64
            ),
        })
    }
}

/// One viewer's memory of what it has asked for: which parts and segments, so each playlist
/// yields only what is new, and where to start.
#[derive(Debug, Default)]
pub struct Viewer {
    started: bool,
    /// Parts asked for, by (msn, index).
    parts: BTreeSet<(u64, u32)>,
    /// Segments asked for (or whose parts were).
    segments: BTreeSet<u64>,
}

/// What a playlist tells a viewer to fetch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fetches {
    /// The init segment (on the first playlist).
    pub init: Option<String>,
    /// New parts, and segments that are listed without parts, in playlist order.
    pub media: Vec<MediaRef>,
    /// The preload-hinted part, to ask for before it exists.
    pub hint: Option<MediaRef>,
}

impl Viewer {
    pub fn new() -> Self {
        Self::default()
    }

    /// What to fetch after `playlist`. On the first one a viewer starts at the live edge: the
    /// parts of the last listed segment and of the one in progress (or the last segment when
    /// there are no parts), as players join a live stream; after that, everything new.
    pub fn on_playlist(&mut self, playlist: &MediaPlaylist) -> Fetches {
        let mut out = Fetches::default();
        if !self.started {
            self.started = true;
            out.init = playlist.map.clone();
            let from = playlist
                .segments
                .last()
                .map_or(playlist.media_sequence, |s| s.msn);
            // Everything before the starting point counts as seen.
            for s in &playlist.segments {
                if s.msn < from || !playlist.parts.is_empty() {
                    self.segments.insert(s.msn);
                }
            }
            for p in &playlist.parts {
                if p.msn < from {
                    self.parts.insert((p.msn, p.part.unwrap_or(0)));
                }
            }
        }
        let with_parts: BTreeSet<u64> = playlist.parts.iter().map(|p| p.msn).collect();
        // Segments listed without parts that nothing was fetched for: the fallback.
        for s in &playlist.segments {
            if !with_parts.contains(&s.msn) && self.segments.insert(s.msn) {
                out.media.push(s.clone());
            }
        }
        for p in &playlist.parts {
            self.segments.insert(p.msn);
            if self.parts.insert((p.msn, p.part.unwrap_or(0))) {
                out.media.push(p.clone());
            }
        }
        if let Some(h) = &playlist.hint
            && self.parts.insert((h.msn, h.part.unwrap_or(0)))
        {
            self.segments.insert(h.msn);
            out.hint = Some(h.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n\
        #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXTINF:2.0,\nseg7.m4s\n\
        #EXT-X-PART:DURATION=0.5,URI=\"part8.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.5,URI=\"part8.1.m4s\"\n#EXTINF:1.0,\nseg8.m4s\n\
        #EXT-X-PART:DURATION=0.5,URI=\"part9.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part9.1.m4s\"\n";

    fn r(msn: u64, part: Option<u32>, uri: &str) -> MediaRef {
        MediaRef {
            msn,
            part,
            uri: uri.into(),
        }
    }

    #[test]
    fn reads_parts_segments_and_the_hint() {
        let p = MediaPlaylist::parse(LIVE).expect("playlist");
        assert_eq!(p.media_sequence, 7);
        assert_eq!(p.part_target_s, Some(0.5));
        assert!(p.can_block && !p.ended);
        assert_eq!(p.map.as_deref(), Some("init.mp4"));
        assert_eq!(p.segments, [r(7, None, "seg7.m4s"), r(8, None, "seg8.m4s")]);
        assert_eq!(
            p.parts,
            [
                r(8, Some(0), "part8.0.m4s"),
                r(8, Some(1), "part8.1.m4s"),
                r(9, Some(0), "part9.0.m4s")
            ]
        );
        assert_eq!(p.hint, Some(r(9, Some(1), "part9.1.m4s")));
        assert_eq!(p.next_reload().as_deref(), Some("_HLS_msn=9&_HLS_part=1"));
        assert_eq!(MediaPlaylist::parse("not a playlist"), None);
        let ended = MediaPlaylist::parse(&format!("{LIVE}#EXT-X-ENDLIST\n")).expect("ended");
        assert!(ended.ended && ended.next_reload().is_none());
    }

    #[test]
    fn a_viewer_starts_at_the_live_edge_and_then_takes_what_is_new() {
        let mut v = Viewer::new();
        let first = v.on_playlist(&MediaPlaylist::parse(LIVE).expect("playlist"));
        assert_eq!(first.init.as_deref(), Some("init.mp4"));
        assert_eq!(
            first.media,
            [
                r(8, Some(0), "part8.0.m4s"),
                r(8, Some(1), "part8.1.m4s"),
                r(9, Some(0), "part9.0.m4s")
            ]
        );
        assert_eq!(first.hint, Some(r(9, Some(1), "part9.1.m4s")));
        // The next playlist lists the hinted part (already asked for) and one more.
        let next = LIVE.replace(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part9.1.m4s\"\n",
            "#EXT-X-PART:DURATION=0.5,URI=\"part9.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.5,URI=\"part9.2.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part9.3.m4s\"\n",
        );
        let second = v.on_playlist(&MediaPlaylist::parse(&next).expect("playlist"));
        assert_eq!(second.init, None);
        assert_eq!(second.media, [r(9, Some(2), "part9.2.m4s")]);
        assert_eq!(second.hint, Some(r(9, Some(3), "part9.3.m4s")));
    }

    #[test]
    fn without_parts_a_viewer_falls_back_to_segments() {
        let plain = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n\
                     #EXTINF:2.0,\nseg3.m4s\n#EXTINF:2.0,\nseg4.m4s\n";
        let mut v = Viewer::new();
        let p = MediaPlaylist::parse(plain).expect("playlist");
        assert!(p.next_reload().is_none(), "no blocking reloads offered");
        assert_eq!(v.on_playlist(&p).media, [r(4, None, "seg4.m4s")]);
        let more = format!("{plain}#EXTINF:2.0,\nseg5.m4s\n");
        let p = MediaPlaylist::parse(&more).expect("playlist");
        assert_eq!(v.on_playlist(&p).media, [r(5, None, "seg5.m4s")]);
    }
}
