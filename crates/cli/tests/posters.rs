//! A picture for every video, end to end against a real `vshare serve` fed by a real-time
//! ffmpeg RTMP publish: the live poster (a JPEG that ffprobe decodes, with the video's aspect
//! ratio) changes while live and stays for the recording; the recording gets a thumbnail sprite
//! with a WebVTT track; the attribute records (JSON and the three message forms) carry the
//! poster's URL; `/watch/<id>` carries Open Graph and Twitter card tags whose image is that
//! JPEG; a private video's poster and tags do not leak.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::curl::{Resp, curl};
use common::*;
use serde_json::{Value, json};
use vshare_testkit::ffmpeg::{decode_errors, ffprobe, stream_of};

/// Posters every second, 320 px wide; a sprite tile every second, 4 to a row.
const CONFIG: &str = "[live]\npart_target_ms = 500\nsegment_target_ms = 1000\n\
    [posters]\nlive_interval_s = 1\nmax_width = 320\nsprite_interval_s = 1\nsprite_columns = 4\n";

fn start(dir: &Path) -> Server {
    let conf = dir.join("vshare.toml");
    std::fs::write(&conf, CONFIG).expect("conf");
    Server::start(
        &dir.join("data"),
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    )
}

/// GET with curl: status, response head, body bytes.
fn fetch(url: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (head, body) = (tmp.path().join("head"), tmp.path().join("body"));
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "30", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body);
    for h in headers {
        cmd.args(["-H", h]);
    }
    assert!(cmd.arg(url).status().expect("curl").success(), "GET {url}");
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, std::fs::read(&body).unwrap_or_default())
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Writes `bytes` and has ffprobe read them as one MJPEG picture that decodes cleanly: its size.
fn probe_jpeg(dir: &Path, name: &str, bytes: &[u8]) -> (u64, u64) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    let probe = ffprobe(&path);
    let v = stream_of(&probe, "video");
    assert_eq!(v["codec_name"], "mjpeg", "{name}: {probe}");
    assert_eq!(decode_errors(&path), "", "{name} decodes cleanly");
    (
        v["width"].as_u64().unwrap_or(0),
        v["height"].as_u64().unwrap_or(0),
    )
}

fn same_aspect((w, h): (u64, u64), video: &Value) -> bool {
    let (vw, vh) = (
        video["width"].as_f64().unwrap_or(0.0),
        video["height"].as_f64().unwrap_or(0.0),
    );
    vh > 0.0 && h > 0 && ((w as f64 / h as f64) - vw / vh).abs() < 0.02
}

/// The `content` of `<meta property|name="key" content="…">` in a page.
fn meta(html: &str, key: &str) -> Option<String> {
    let tag = html.split('<').find(|t| {
        t.starts_with("meta ")
            && (t.contains(&format!("property=\"{key}\""))
                || t.contains(&format!("name=\"{key}\"")))
    })?;
    let v = tag.split("content=\"").nth(1)?.split('"').next()?;
    Some(v.replace("&amp;", "&"))
}

fn records(v: &Value) -> Vec<Value> {
    v["attributes"].as_array().cloned().unwrap_or_default()
}

#[test]
fn live_poster_refreshes_vod_keeps_it_sprite_records_and_preview_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let key = create_key(&server.data);
    let clip = make_clip(dir.path(), "clip.mp4", 10, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));

    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = live["id"].as_str().expect("id").to_string();
    let poster_url = format!("{}/vod/{id}/poster.jpg", server.http);
    let live_rec = records(&live)
        .into_iter()
        .find(|r| r["kind"] == "live")
        .expect("live record");
    assert_eq!(live_rec["poster"], poster_url.as_str(), "{live_rec}");

    // The live poster: stored from the first keyframe, short-lived in caches, replaced while
    // the stream goes on. Bounded by the stream itself: it must change before the stream ends.
    let mut first: Option<Vec<u8>> = None;
    let mut changed = None;
    let mut live_posters = 0;
    while changed.is_none() {
        let state = get_json(&format!("{}/api/v1/videos/{id}", server.http));
        assert_eq!(
            state["state"], "live",
            "the stream ended before its poster changed ({live_posters} posters seen)"
        );
        let (status, head, body) = fetch(&poster_url, &[]);
        if status == 200 {
            live_posters += 1;
            assert_eq!(header(&head, "content-type"), "image/jpeg");
            assert_eq!(header(&head, "cache-control"), "max-age=1", "{head}");
            match &first {
                None => {
                    let size = probe_jpeg(dir.path(), "live0.jpg", &body);
                    assert_eq!(
                        size,
                        (320, 180),
                        "at most max_width, the video's aspect ratio"
                    );
                    first = Some(body);
                }
                Some(f) if *f != body => changed = Some(body),
                Some(_) => {}
            }
        } else {
            assert_eq!(status, 404, "before the first keyframe's poster: {head}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let changed = changed.unwrap_or_default();
    assert_eq!(probe_jpeg(dir.path(), "live1.jpg", &changed), (320, 180));

    // The watch page while live: the preview names the poster and the live stream.
    let (status, _, html) = fetch(&format!("{}/watch/{id}", server.http), &[]);
    assert_eq!(status, 200);
    let html = String::from_utf8_lossy(&html).to_string();
    assert_eq!(
        meta(&html, "og:image").as_deref(),
        Some(poster_url.as_str()),
        "{html}"
    );
    assert_eq!(meta(&html, "og:type").as_deref(), Some("video.other"));
    assert!(
        meta(&html, "og:video").is_some_and(|u| u.ends_with("/index.m3u8")),
        "{html}"
    );

    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(30));

    // The recording keeps a poster, cached long; every VOD record names it.
    let mp4 = records(&ready)
        .into_iter()
        .find(|r| r["format"] == "mp4")
        .expect("mp4 record");
    for r in records(&ready) {
        assert_eq!(r["poster"], poster_url.as_str(), "{r}");
    }
    let (status, head, vod_poster) = fetch(&poster_url, &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "cache-control"), "max-age=3600");
    let size = probe_jpeg(dir.path(), "vod.jpg", &vod_poster);
    assert!(same_aspect(size, &mp4), "poster {size:?} vs {mp4}");
    let (status, _, again) = fetch(&poster_url, &[]);
    assert_eq!(
        (status, &again),
        (200, &vod_poster),
        "the VOD's poster stays"
    );

    // The sprite: one JPEG grid, and a WebVTT track whose cues tile the recording in order.
    let (status, head, sprite) = fetch(&format!("{}/vod/{id}/sprite.jpg", server.http), &[]);
    assert_eq!(status, 200, "{head}");
    let (sw, sh) = probe_jpeg(dir.path(), "sprite.jpg", &sprite);
    let (status, head, vtt) = fetch(&format!("{}/vod/{id}/sprite.vtt", server.http), &[]);
    assert_eq!(status, 200);
    assert!(
        header(&head, "content-type").starts_with("text/vtt"),
        "{head}"
    );
    let vtt = String::from_utf8(vtt).expect("utf-8");
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    let secs = |t: &str| -> f64 {
        let p: Vec<f64> = t.split(':').filter_map(|x| x.parse().ok()).collect();
        p.iter().fold(0.0, |a, x| a * 60.0 + x)
    };
    let mut cues = Vec::new();
    let lines: Vec<&str> = vtt.lines().collect();
    for w in lines.windows(2) {
        if let Some((a, b)) = w[0].split_once(" --> ") {
            let xywh: Vec<u64> = w[1]
                .strip_prefix("sprite.jpg#xywh=")
                .unwrap_or_else(|| panic!("cue payload {:?}", w[1]))
                .split(',')
                .map(|n| n.parse().expect("number"))
                .collect();
            cues.push((secs(a), secs(b), xywh));
        }
    }
    let duration_s = mp4["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    assert!(
        cues.len() >= 5,
        "{} cues for {duration_s} s:\n{vtt}",
        cues.len()
    );
    assert_eq!(cues[0].0, 0.0);
    for c in &cues {
        let (x, y, w, h) = (c.2[0], c.2[1], c.2[2], c.2[3]);
        assert!(x + w <= sw && y + h <= sh, "tile {c:?} outside {sw}x{sh}");
        assert!(same_aspect((w, h), &mp4), "tile {c:?}");
    }
    for w in cues.windows(2) {
        assert!(w[0].1 == w[1].0 && w[1].0 > w[0].0, "{w:?}");
    }
    let end = cues.last().map_or(0.0, |c| c.1);
    assert!(
        (end - duration_s).abs() < 1.5,
        "cues end at {end} of {duration_s} s"
    );

    // The records as the phone gets them: every message form carries the poster.
    let recs: Vec<vshare_attributes::AttributeRecord> =
        serde_json::from_value(ready["attributes"].clone()).expect("records");
    use vshare_attributes::forms::Form;
    for form in [Form::Tlv, Form::Xml, Form::Text] {
        let bytes = form.encode(&recs).expect("encode");
        let back = form.decode(&bytes).expect("decode");
        assert!(back.iter().all(|r| r.poster == poster_url), "{form}");
    }

    // The watch page of the recording: title, image (a JPEG) and the MP4 for previews.
    let (status, head, html) = fetch(&format!("{}/watch/{id}", server.http), &[]);
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").starts_with("text/html"));
    let html = String::from_utf8_lossy(&html).to_string();
    let image = meta(&html, "og:image").expect("og:image");
    assert_eq!(image, poster_url);
    assert_eq!(
        meta(&html, "twitter:image").as_deref(),
        Some(image.as_str())
    );
    assert_eq!(
        meta(&html, "twitter:card").as_deref(),
        Some("summary_large_image")
    );
    assert_eq!(
        meta(&html, "og:video"),
        mp4["url"].as_str().map(String::from)
    );
    assert_eq!(
        meta(&html, "og:url"),
        Some(format!("{}/watch/{id}", server.http))
    );
    assert!(meta(&html, "og:title").is_some_and(|t| !t.is_empty()));
    let (status, head, jpeg) = fetch(&image, &[]);
    assert_eq!(
        (status, header(&head, "content-type").as_str()),
        (200, "image/jpeg")
    );
    probe_jpeg(dir.path(), "og.jpg", &jpeg);
    // And an unknown video gets the page with generic tags.
    let (status, _, html) = fetch(&format!("{}/watch/nosuchvideo", server.http), &[]);
    assert_eq!(status, 200);
    let html = String::from_utf8_lossy(&html).to_string();
    assert!(meta(&html, "og:image").is_none() && meta(&html, "og:title").is_some());
}

fn call(method: &str, url: &str, body: Option<&Value>, session: Option<&str>) -> Resp {
    let cookie = session.map(|s| format!("Cookie: vshare_session={s}"));
    curl(None, method, url, body, cookie.as_slice())
}

#[test]
fn a_private_videos_poster_and_preview_do_not_leak() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let api = |p: &str| format!("{}{p}", server.http);
    let r = call(
        "POST",
        &api("/api/v1/accounts"),
        Some(&json!({ "username": "erin", "password": "a long password" })),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let session = r.session();
    let key = r.json()["stream_key"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    // Streams of this key start private.
    let r = call(
        "PATCH",
        &api("/api/v1/me/stream-key"),
        Some(&json!({ "private": true })),
        Some(&session),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let clip = make_clip(dir.path(), "clip.mp4", 5, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = live["id"].as_str().expect("id").to_string();
    let poster = api(&format!("/vod/{id}/poster.jpg"));
    let cookie = format!("Cookie: vshare_session={session}");
    // The owner sees it (once the first keyframe's poster is stored), no cache keeps it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, head, _) = fetch(&poster, &[&cookie]);
        if status == 200 {
            assert!(
                header(&head, "cache-control").starts_with("private"),
                "{head}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no poster for the owner: {head}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(publisher.wait().expect("ffmpeg").success());
    wait_video_state(&server, &key, &["ready"], Duration::from_secs(30));

    // Without the session or a link: 403, for the poster and the sprite alike.
    for name in ["poster.jpg", "sprite.jpg", "sprite.vtt"] {
        let (status, _, body) = fetch(&api(&format!("/vod/{id}/{name}")), &[]);
        assert_eq!(status, 403, "{name}: {}", String::from_utf8_lossy(&body));
    }
    // The watch page shows nothing of it.
    let (status, _, html) = fetch(&api(&format!("/watch/{id}")), &[]);
    assert_eq!(status, 200);
    let html = String::from_utf8_lossy(&html).to_string();
    assert!(meta(&html, "og:image").is_none(), "{html}");
    assert!(
        !html.contains(&id) && !html.contains("poster.jpg"),
        "{html}"
    );
    // A signed link opens it: the record's poster URL carries the link, and it is a JPEG.
    let link = call(
        "GET",
        &api(&format!("/api/v1/videos/{id}/link")),
        None,
        Some(&session),
    )
    .json();
    let query = link["query"].as_str().expect("query").to_string();
    let v = get_json(&api(&format!("/api/v1/videos/{id}?{query}")));
    let signed = records(&v)
        .into_iter()
        .find_map(|r| r["poster"].as_str().map(String::from))
        .expect("a record with a poster");
    assert_eq!(signed, format!("{poster}?{query}"));
    let (status, head, jpeg) = fetch(&signed, &[]);
    assert_eq!(status, 200, "{head}");
    probe_jpeg(dir.path(), "private.jpg", &jpeg);
}
