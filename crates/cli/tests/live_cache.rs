//! Live objects as an HTTP cache in front of the server sees them: immutable init segments,
//! parts and segments, playlists cacheable for about one part target (blocking ones per
//! query), no cookie or `Vary` on public objects, errors never stored; and a request for the
//! preload-hinted part made before the part exists is held and answered with it.

mod common;

use std::time::Duration;

use common::curl::{Resp, curl};
use common::*;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn get(url: &str) -> Resp {
    curl(
        None,
        "GET",
        url,
        None,
        &["Origin: https://elsewhere.example".to_string()],
    )
}

/// The preload hint's part as (msn, index).
fn hint(playlist: &str) -> (u64, u32) {
    let uri = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no preload hint in {playlist}"));
    let (msn, idx) = uri
        .strip_prefix("part")
        .and_then(|r| r.strip_suffix(".m4s"))
        .and_then(|r| r.split_once('.'))
        .unwrap_or_else(|| panic!("hint {uri}"));
    (msn.parse().expect("msn"), idx.parse().expect("part index"))
}

fn held_requests(server: &Server) -> u64 {
    let (_, body) = http_get(&format!("{}/metrics", server.http));
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("vshare_live_held_part_requests_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn assert_public(r: &Resp, cache: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    assert_eq!(r.header("cache-control").as_deref(), Some(cache), "{what}");
    assert_eq!(r.header("set-cookie"), None, "{what}");
    assert_eq!(r.header("vary"), None, "{what}: one copy for every viewer");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*"),
        "{what}"
    );
}

#[test]
fn live_objects_carry_cache_headers_and_the_hinted_part_is_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key, clip) = short_parts_server(dir.path(), 30);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = live["id"].as_str().expect("id").to_string();
    let base = format!("{}/live/{id}", server.http);
    let index = format!("{base}/index.m3u8");

    // The playlist: about one part target (500 ms → 1 s).
    let r = get(&index);
    assert_public(&r, "public, max-age=1", "playlist");
    let (msn, idx) = hint(&r.body);
    // A blocking reload for the hinted part: the same policy, its URL is its cache key.
    let r = get(&format!("{index}?_HLS_msn={msn}&_HLS_part={idx}"));
    assert_public(&r, "public, max-age=1", "blocking playlist");
    // The segment in progress complete: its segment and parts are immutable.
    let r = get(&format!("{index}?_HLS_msn={msn}"));
    assert_public(&r, "public, max-age=1", "blocking playlist (segment)");
    assert!(r.body.contains(&format!("seg{msn}.m4s")), "{}", r.body);
    assert_public(&get(&format!("{base}/init.mp4")), IMMUTABLE, "init");
    assert_public(&get(&format!("{base}/seg{msn}.m4s")), IMMUTABLE, "segment");
    assert_public(&get(&format!("{base}/part{msn}.0.m4s")), IMMUTABLE, "part");

    // A part two segments ahead is not held: 404 at once, and not stored by a cache.
    let before = held_requests(&server);
    let r = get(&format!("{base}/part{}.0.m4s", msn + 3));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(held_requests(&server), before, "a far-future part was held");

    // The preload-hinted part, asked for as soon as the playlist names it: held until it is
    // made, then answered with it (its bytes are the part's). A hint can name a part that is
    // never made (the segment closed first): then 404 once the stream moved past it.
    let mut answered = 0;
    for _ in 0..8 {
        let (_, body) = http_get(&index);
        let (msn, idx) = hint(&String::from_utf8_lossy(&body));
        let part = format!("{base}/part{msn}.{idx}.m4s");
        let (status, bytes) = http_get(&part);
        match status {
            200 => {
                assert!(!bytes.is_empty());
                assert_eq!(http_get(&part), (200, bytes), "{part} changed");
                answered += 1;
            }
            404 => {
                let (_, after) = http_get(&index);
                let after = String::from_utf8_lossy(&after);
                assert!(
                    !after.contains(&format!("\"part{msn}.{idx}.m4s\"")),
                    "{part} is listed yet was 404:\n{after}"
                );
            }
            s => panic!("{part}: HTTP {s}"),
        }
    }
    assert!(answered >= 4, "only {answered} of 8 hinted parts answered");
    assert!(
        held_requests(&server) > before,
        "no hinted part request was held"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}
