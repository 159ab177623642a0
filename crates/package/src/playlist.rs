//! HLS media playlists (RFC 8216bis): the live LL-HLS playlist and the VOD playlist. Our own
//! writer: m3u8-rs 6.0 has no EXT-X-PART, EXT-X-PRELOAD-HINT or EXT-X-PART-INF, and writing
//! these tags is a few lines of `format!`.

use std::fmt::Write;

/// A part as the playlist lists it.
#[derive(Debug, Clone)]
pub(crate) struct ListedPart {
    pub duration_us: i64,
    pub independent: bool,
}

/// A segment as the playlist lists it (complete, or the one in progress).
#[derive(Debug, Clone)]
pub(crate) struct ListedSegment {
    pub msn: u64,
    pub duration_us: i64,
    pub program_date_time_unix_ms: i64,
    /// A new init segment starts here: the playlist names it with a new EXT-X-MAP (no
    /// EXT-X-DISCONTINUITY: the timestamps go on, see `render_vod`).
    pub discontinuity: bool,
    /// The init segment it was packaged under (`init.mp4`, `init{msn}.mp4`).
    pub init_uri: std::sync::Arc<str>,
    pub parts: Vec<ListedPart>,
}

/// What the live playlist is rendered from.
pub(crate) struct LiveView<'a> {
    pub part_target_us: i64,
    pub target_duration_s: u64,
    pub segments: &'a [ListedSegment],
    pub in_progress: Option<&'a ListedSegment>,
    /// Number of the next segment: the in-progress one, or the next one to open.
    pub next_msn: u64,
    pub finished: bool,
}

/// Seconds with six decimals (RFC 8216bis §4.2 decimal-floating-point), from µs.
pub(crate) fn seconds(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let us = us.unsigned_abs();
    format!("{sign}{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// A segment duration rounded to the nearest integer second (RFC 8216bis §4.4.3.1).
pub(crate) fn rounded_seconds(us: i64) -> u64 {
    ((us.max(0) as u64) + 500_000) / 1_000_000
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` (RFC 3339, as EXT-X-PROGRAM-DATE-TIME wants, RFC 8216bis §4.4.4.6).
pub(crate) fn rfc3339_ms(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

pub(crate) fn part_uri(msn: u64, index: usize) -> String {
    format!("part{msn}.{index}.m4s")
}

pub(crate) fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// How many complete segments keep their EXT-X-PART lines (RFC 8216bis §4.4.4.9: parts of
/// segments older than three target durations from the end may be removed).
pub(crate) const SEGMENTS_WITH_PARTS: usize = 3;

fn write_parts(out: &mut String, seg: &ListedSegment) {
    for (i, p) in seg.parts.iter().enumerate() {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            seconds(p.duration_us),
            part_uri(seg.msn, i)
        );
        if p.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

pub(crate) fn render_live(v: &LiveView<'_>) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", v.target_duration_s);
    // RFC 8216bis §4.4.3.8: PART-HOLD-BACK at least twice, and we use three times, PART-TARGET.
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
        seconds(3 * v.part_target_us)
    );
    let _ = writeln!(
        out,
        "#EXT-X-PART-INF:PART-TARGET={}",
        seconds(v.part_target_us)
    );
    let first_msn = v
        .segments
        .first()
        .or(v.in_progress)
        .map_or(v.next_msn, |s| s.msn);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    let first_init = v
        .segments
        .first()
        .or(v.in_progress)
        .map_or("init.mp4", |s| &s.init_uri);
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{first_init}\"");
    let with_parts_from = v.segments.len().saturating_sub(SEGMENTS_WITH_PARTS);
    for (i, seg) in v.segments.iter().enumerate() {
        if seg.discontinuity && i > 0 {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", seg.init_uri);
        }
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            rfc3339_ms(seg.program_date_time_unix_ms)
        );
        if i >= with_parts_from {
            write_parts(&mut out, seg);
        }
        let _ = writeln!(
            out,
            "#EXTINF:{},\n{}",
            seconds(seg.duration_us),
            segment_uri(seg.msn)
        );
    }
    if let Some(seg) = v.in_progress.filter(|s| !s.parts.is_empty()) {
        if seg.discontinuity && !v.segments.is_empty() {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", seg.init_uri);
        }
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            rfc3339_ms(seg.program_date_time_unix_ms)
        );
        write_parts(&mut out, seg);
    }
    if v.finished {
        out.push_str("#EXT-X-ENDLIST\n");
    } else {
        // RFC 8216bis §4.4.5.3: the part that will be published next.
        let (msn, index) = match v.in_progress {
            Some(seg) => (seg.msn, seg.parts.len()),
            None => (v.next_msn, 0),
        };
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            part_uri(msn, index)
        );
    }
    out
}

/// A recorded segment as the VOD playlist lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodSegment {
    /// The segment's URI (relative to the playlist).
    pub uri: String,
    pub duration_us: i64,
    /// The URI of the init segment it was packaged under.
    pub init_uri: String,
}

/// An HLS VOD playlist over recorded segments that all share one init segment: see
/// [`vod_playlist_segments`].
pub fn vod_playlist(segments: &[(String, i64)], init_uri: &str, ended: bool) -> String {
    let list: Vec<VodSegment> = segments
        .iter()
        .map(|(uri, d)| VodSegment {
            uri: uri.clone(),
            duration_us: *d,
            init_uri: init_uri.to_string(),
        })
        .collect();
    render_vod(&list, Some(init_uri), ended)
}

/// An HLS VOD playlist over recorded segments: `EXT-X-PLAYLIST-TYPE:EVENT` while the recording
/// grows, `VOD` and `EXT-X-ENDLIST` once `ended` (RFC 8216bis §4.4.3.5). An `EXT-X-MAP` names the
/// first segment's init segment; where a segment's init segment differs from the one before
/// (the codec configuration changed), a new `EXT-X-MAP` precedes it (RFC 8216bis §4.4.4.5).
///
/// No `EXT-X-DISCONTINUITY` there, although §4.4.4.3 says SHOULD for new encoding parameters:
/// the timestamps go on across the change (one origin, one timeline), and the tag makes players
/// re-anchor each run of segments at the sum of the EXTINF durations before it. hls.js then
/// leaves ~120 ms holes at every change and stalls before the end of the recording; without the
/// tag it buffers one continuous range and plays to the end.
pub fn vod_playlist_segments(segments: &[VodSegment], ended: bool) -> String {
    render_vod(segments, None, ended)
}

/// The DVR playlist of a live stream: the recorded segments of its last `window_us` (at least
/// the newest one), as a live playlist without `EXT-X-PLAYLIST-TYPE` whose
/// `EXT-X-MEDIA-SEQUENCE` is the first listed segment's position in `segments`, so it slides
/// once the recording is longer than the window, and stays a valid reload of the playlist
/// before. Once `ended`, the whole recording as a VOD playlist. Its size is bounded by the
/// window, not by the recording.
pub fn dvr_playlist(segments: &[VodSegment], window_us: i64, ended: bool) -> String {
    if ended {
        return render_vod(segments, None, true);
    }
    let mut from = segments.len();
    let mut total = 0i64;
    while from > 0 {
        let d = segments[from - 1].duration_us.max(0);
        if from < segments.len() && total.saturating_add(d) > window_us {
            break;
        }
        total = total.saturating_add(d);
        from -= 1;
    }
    let listed = &segments[from..];
    let mut out = render_vod(listed, None, false);
    // The same header as an EVENT playlist, but the window slides: no playlist type, and the
    // sequence number of the first listed segment.
    out = out
        .replacen("#EXT-X-PLAYLIST-TYPE:EVENT\n", "", 1)
        .replacen(
            "#EXT-X-MEDIA-SEQUENCE:0\n",
            &format!("#EXT-X-MEDIA-SEQUENCE:{from}\n"),
            1,
        );
    out
}

fn render_vod(segments: &[VodSegment], default_init: Option<&str>, ended: bool) -> String {
    let target = segments
        .iter()
        .map(|s| rounded_seconds(s.duration_us))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::with_capacity(64 * segments.len() + 256);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(
        out,
        "#EXT-X-PLAYLIST-TYPE:{}",
        if ended { "VOD" } else { "EVENT" }
    );
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let map = |out: &mut String, uri: &str| {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", uri.replace('"', "%22"));
    };
    let mut current = default_init;
    if let Some(uri) = current {
        map(&mut out, uri);
    }
    for s in segments {
        match current {
            Some(c) if c == s.init_uri => {}
            Some(_) => map(&mut out, &s.init_uri),
            None => map(&mut out, &s.init_uri),
        }
        current = Some(&s.init_uri);
        let _ = writeln!(out, "#EXTINF:{},\n{}", seconds(s.duration_us), s.uri);
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_seconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(seconds(333_333), "0.333333");
        assert_eq!(seconds(2_000_000), "2.000000");
        assert_eq!(rounded_seconds(2_499_999), 2);
        assert_eq!(rounded_seconds(2_500_000), 3);
    }

    #[test]
    fn vod_playlist_event_then_vod() {
        let segs = vec![
            ("seg0.m4s".to_string(), 2_000_000),
            ("seg1.m4s".to_string(), 1_600_000),
        ];
        let p = vod_playlist(&segs, "init.mp4", false);
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(!p.contains("ENDLIST"));
        assert!(p.contains("#EXT-X-TARGETDURATION:2\n"));
        let p = vod_playlist(&segs, "init.mp4", true);
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(
            p.ends_with("#EXTINF:1.600000,\nseg1.m4s\n#EXT-X-ENDLIST\n"),
            "{p}"
        );
    }

    #[test]
    fn dvr_playlist_lists_the_window_and_slides() {
        let seg = |n: u64| VodSegment {
            uri: format!("seg{n}.m4s"),
            duration_us: 2_000_000,
            init_uri: if n < 3 { "init.mp4" } else { "init3.mp4" }.to_string(),
        };
        let list: Vec<VodSegment> = (0..10).map(seg).collect();
        // A window longer than the recording: all of it, from sequence number 0.
        let p = dvr_playlist(&list, 3_600_000_000, false);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{p}");
        assert!(
            !p.contains("PLAYLIST-TYPE") && !p.contains("ENDLIST"),
            "{p}"
        );
        assert_eq!(p.matches("#EXTINF").count(), 10);
        // Three segments' worth: the last three, numbered from 7, under their init segment.
        let p = dvr_playlist(&list, 6_000_000, false);
        let body: Vec<&str> = p
            .lines()
            .skip_while(|l| !l.starts_with("#EXT-X-MEDIA-SEQUENCE"))
            .collect();
        assert_eq!(
            body,
            [
                "#EXT-X-MEDIA-SEQUENCE:7",
                "#EXT-X-INDEPENDENT-SEGMENTS",
                "#EXT-X-MAP:URI=\"init3.mp4\"",
                "#EXTINF:2.000000,",
                "seg7.m4s",
                "#EXTINF:2.000000,",
                "seg8.m4s",
                "#EXTINF:2.000000,",
                "seg9.m4s",
            ]
        );
        // A window shorter than a segment still lists the newest one.
        let p = dvr_playlist(&list, 1, false);
        assert!(
            p.contains("#EXT-X-MEDIA-SEQUENCE:9\n") && p.ends_with("seg9.m4s\n"),
            "{p}"
        );
        // Its size follows the window, not the recording.
        let long: Vec<VodSegment> = (0..20_000).map(seg).collect();
        assert_eq!(
            dvr_playlist(&long, 6_000_000, false).len(),
            dvr_playlist(&list, 6_000_000, false).len() + 3 * 4 + 4 // longer numbers
        );
        // Two hours of 2 s segments, the default window: 3600 segments, about 110 KB.
        let p = dvr_playlist(&long, 7_200_000_000, false);
        assert_eq!(p.matches("#EXTINF").count(), 3600);
        assert!(p.len() < 115_000, "{}", p.len());
        // Ended: the whole recording as VOD.
        let p = dvr_playlist(&list, 6_000_000, true);
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && p.contains("seg0.m4s"));
        assert!(p.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn vod_playlist_maps_each_init_segment() {
        let seg = |n: u64, init: &str| VodSegment {
            uri: format!("seg{n}.m4s"),
            duration_us: 2_000_000,
            init_uri: init.to_string(),
        };
        let list = vec![
            seg(0, "init.mp4"),
            seg(1, "init.mp4"),
            seg(2, "init2.mp4"),
            seg(3, "init3.mp4"),
            seg(4, "init3.mp4"),
        ];
        let p = vod_playlist_segments(&list, true);
        let body: Vec<&str> = p
            .lines()
            .skip_while(|l| !l.starts_with("#EXT-X-MAP"))
            .collect();
        assert_eq!(
            body,
            [
                "#EXT-X-MAP:URI=\"init.mp4\"",
                "#EXTINF:2.000000,",
                "seg0.m4s",
                "#EXTINF:2.000000,",
                "seg1.m4s",
                "#EXT-X-MAP:URI=\"init2.mp4\"",
                "#EXTINF:2.000000,",
                "seg2.m4s",
                "#EXT-X-MAP:URI=\"init3.mp4\"",
                "#EXTINF:2.000000,",
                "seg3.m4s",
                "#EXTINF:2.000000,",
                "seg4.m4s",
                "#EXT-X-ENDLIST",
            ]
        );
        // One init segment: the same playlist as before there were several.
        let one: Vec<(String, i64)> = list[..2]
            .iter()
            .map(|s| (s.uri.clone(), s.duration_us))
            .collect();
        assert_eq!(
            vod_playlist(&one, "init.mp4", false),
            vod_playlist_segments(&list[..2], false)
        );
        assert!(!p.contains("DISCONTINUITY"));
    }
}
