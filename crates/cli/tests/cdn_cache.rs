//! Debian's nginx as a caching reverse proxy in front of a live server, with the configuration
//! docs/deployment.md shows (docs/nginx-live-cache.conf, read here): many viewers ask at once
//! for the preload-hinted part and the blocking reload that lists it; one or two requests per
//! object reach the server, every viewer gets the part's bytes, and the cache keeps the
//! server's Cache-Control.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::curl::curl;
use common::nginx::{DEPLOYMENT, NGINX, Nginx, TEMPLATE};
use common::*;
use vshare_testkit::process::require_tool;

const VIEWERS: usize = 50;

/// `vshare_live_requests_total{file="…"}` at the origin.
fn origin_requests(server: &Server, file: &str) -> u64 {
    let (_, body) = http_get(&format!("{}/metrics", server.http));
    let prefix = format!("vshare_live_requests_total{{file=\"{file}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// The preload hint's URI.
fn hint(playlist: &str) -> String {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no preload hint in {playlist}"))
        .to_string()
}

/// Requests nginx sent to a live server for `uri`, from its access log.
fn upstream_requests(log: &str, uri: &str) -> usize {
    log.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.first() == Some(&uri) && f.get(3).is_some_and(|a| *a != "-")
        })
        .count()
}

#[test]
fn viewers_through_nginx_cost_the_origin_one_request_per_object() {
    require_tool(NGINX);
    // The configuration the test runs is the one the deployment guide shows.
    assert!(
        DEPLOYMENT.contains(TEMPLATE.trim_end()),
        "docs/deployment.md does not show docs/nginx-live-cache.conf as it is"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key, clip) = short_parts_server(dir.path(), 40);
    let cache_dir = dir.path().join("nginx");
    let nginx = Nginx::start(&cache_dir, &[server.http.trim_start_matches("http://")]);

    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = live["id"].as_str().expect("id").to_string();
    let path = format!("/live/{id}");

    // A round: every viewer asks for the hinted part and for the blocking reload that lists
    // it, half of them part first (AVPlayer's preload), half playlist first (hls.js).
    let mut rounds_with_the_part = 0;
    for round in 0..6 {
        let (_, body) = http_get(&format!("{}{path}/index.m3u8", nginx.url));
        let part_uri = hint(&String::from_utf8_lossy(&body));
        let (msn, idx) = part_uri
            .strip_prefix("part")
            .and_then(|r| r.strip_suffix(".m4s"))
            .and_then(|r| r.split_once('.'))
            .expect("part name");
        let part_path = format!("{path}/{part_uri}");
        let blocking_path = format!("{path}/index.m3u8?_HLS_msn={msn}&_HLS_part={idx}");
        let parts_before = origin_requests(&server, "part");
        let blocking_before = origin_requests(&server, "blocking_playlist");
        let start = Arc::new(Barrier::new(VIEWERS));
        let viewers: Vec<_> = (0..VIEWERS)
            .map(|v| {
                let start = start.clone();
                let part = format!("{}{part_path}", nginx.url);
                let blocking = format!("{}{blocking_path}", nginx.url);
                std::thread::spawn(move || {
                    start.wait();
                    if v % 2 == 0 {
                        let p = http_get(&part);
                        (p, http_get(&blocking))
                    } else {
                        let b = http_get(&blocking);
                        (http_get(&part), b)
                    }
                })
            })
            .collect();
        let answers: Vec<_> = viewers
            .into_iter()
            .map(|v| v.join().expect("viewer"))
            .collect();
        let parts = origin_requests(&server, "part") - parts_before;
        let blocking = origin_requests(&server, "blocking_playlist") - blocking_before;
        eprintln!(
            "round {round}: {VIEWERS} viewers of {part_uri}: {parts} part and {blocking} \
             blocking-reload requests reached the origin"
        );
        assert!(
            parts <= 2,
            "round {round}: {parts} part requests reached the origin"
        );
        assert!(
            blocking <= 2,
            "round {round}: {blocking} blocking reloads reached the origin"
        );
        let access = std::fs::read_to_string(cache_dir.join("access.log")).unwrap_or_default();
        assert!(upstream_requests(&access, &part_path) <= 2, "{access}");
        assert!(upstream_requests(&access, &blocking_path) <= 2, "{access}");
        for ((_, playlist), _) in answers.iter().map(|(p, b)| (b, p)) {
            assert!(
                String::from_utf8_lossy(playlist).contains("#EXTM3U"),
                "round {round}: blocking reload answered {}",
                String::from_utf8_lossy(playlist)
            );
        }
        // The hint can name a part that is never made (its segment closed first): then every
        // viewer got 404 and the round proves only the request counts.
        let (direct_status, direct) = http_get(&format!("{}{part_path}", server.http));
        if direct_status != 200 {
            assert!(
                answers.iter().all(|((s, _), _)| *s == 404),
                "round {round}: {part_path} is {direct_status} at the origin"
            );
            continue;
        }
        for ((status, bytes), (_, playlist)) in &answers {
            assert_eq!(*status, 200, "round {round}: {part_path}");
            assert!(*bytes == direct, "round {round}: a viewer got other bytes");
            assert!(
                String::from_utf8_lossy(playlist).contains(&format!("URI=\"{part_uri}\"")),
                "round {round}: the blocking reload does not list {part_uri}"
            );
        }
        rounds_with_the_part += 1;

        // The cache passes the server's policy on, and answers from itself.
        let r = curl(None, "GET", &format!("{}{part_path}", nginx.url), None, &[]);
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(r.header("x-cache").as_deref(), Some("HIT"));
        assert_eq!(r.header("set-cookie"), None);
        let r = curl(
            None,
            "GET",
            &format!("{}{blocking_path}", nginx.url),
            None,
            &[],
        );
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("public, max-age=1")
        );
        if rounds_with_the_part >= 2 {
            break;
        }
    }
    assert!(
        rounds_with_the_part >= 2,
        "the hinted part was never made in six rounds"
    );
    drop(nginx);
    let errors = std::fs::read_to_string(cache_dir.join("error.log")).unwrap_or_default();
    assert!(
        !errors.contains("[crit]") && !errors.contains("[alert]") && !errors.contains("[emerg]"),
        "{errors}"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}
