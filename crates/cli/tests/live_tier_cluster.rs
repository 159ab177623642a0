//! The topology of docs/deployment.md on loopback, every engine a separate process: PostgreSQL
//! (the shared database), Garage (the shared S3-compatible storage, one node), two video servers
//! (`--roles video,proxy`, each pushing to both live servers), two live servers (`--roles live`)
//! and nginx in front of them with the deployment guide's cache configuration. A publisher on
//! each video server; viewers read both streams through nginx with blocking reloads.
//!
//! `kill -9` of a live server: the viewers go on through the other one, the largest gap between
//! two parts they receive staying within one part and one segment target. `kill -9` of a video
//! server mid-stream: what it recorded up to the kill is in storage and plays from the other
//! video server; the live servers forget its stream `handoff_orphan_s` after the kill;
//! restarted, it finishes the interrupted recording as partial (and only its own: the other
//! video server's stream stays live), and its publisher's next stream works. The guide's
//! configuration files, one per role, are valid configurations.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::garage::Garage;
use common::nginx::{DEPLOYMENT, Nginx, TEMPLATE};
use common::*;
use vshare_testkit::db::{POSTGRES_SKIPPED, fresh_postgres_blocking};
use vshare_testkit::ffmpeg::{decode_errors, frame_count, make_test_clip};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::{wait_exit, wait_for};

const SECRET: &str = "cluster test hand-off secret 0123456789";
const PART_MS: u64 = 250;
const SEGMENT_MS: u64 = 1000;
/// A live server forgets a stream this long after its video server's connection closed.
const ORPHAN_S: u64 = 2;
/// Viewers per stream.
const VIEWERS: usize = 2;

/// What every vshare process of the cluster shares: the database, the storage, the secret.
struct Shared {
    database_url: String,
    storage_env: Vec<(&'static str, String)>,
    config: PathBuf,
}

impl Shared {
    fn start(&self, data: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "--config",
            self.config.to_str().expect("path"),
            "--database-url",
            &self.database_url,
            "--storage-url",
            "s3://recordings/vshare",
        ];
        args.extend_from_slice(extra);
        let mut env = self.storage_env.clone();
        env.push(("VSHARE_LIVE_HANDOFF_SECRET", SECRET.to_string()));
        Server::start_with_env(data, &args, &env)
    }

    fn create_key(&self, data: &Path) -> String {
        keys_create(data, &["--database-url", &self.database_url])
    }
}

/// `ffmpeg -re -stream_loop -1`: publishes the clip over and over until killed.
fn publish_looping(clip: &Path, url: &str) -> Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg")
}

/// (msn, index) of a part URI `part{msn}.{index}.m4s`.
fn part_number(uri: &str) -> Option<(u64, u32)> {
    let (m, i) = uri
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

fn listed_parts(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1))
        .filter_map(|u| u.split('"').next())
        .map(str::to_string)
        .collect()
}

fn hint(playlist: &str) -> Option<(u64, u32)> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .and_then(part_number)
}

/// What a viewer received: when each new part's last byte arrived, and the answers that were
/// not 200.
#[derive(Default)]
struct Watched {
    parts: Vec<(Instant, (u64, u32))>,
    errors: Vec<String>,
}

/// An LL-HLS viewer as hls.js behaves: a blocking reload for the preload-hinted part, then
/// every part the answer lists that it has not had yet.
fn viewer(base: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Watched>>) {
    let mut newest = None;
    let mut next = None;
    while !stop.load(Ordering::Relaxed) {
        let url = match next {
            Some((m, p)) => format!("{base}/index.m3u8?_HLS_msn={m}&_HLS_part={p}"),
            None => format!("{base}/index.m3u8"),
        };
        let (status, body) = http_get(&url);
        if status != 200 {
            log.lock()
                .expect("log")
                .errors
                .push(format!("{url}: {status}"));
            next = None;
            continue;
        }
        let playlist = String::from_utf8_lossy(&body).into_owned();
        for uri in listed_parts(&playlist) {
            let Some(n) = part_number(&uri) else { continue };
            if newest.is_some_and(|seen| n <= seen) {
                continue;
            }
            // Joining: the live edge only, not the window's history.
            if newest.is_some() {
                let (s, bytes) = http_get(&format!("{base}/{uri}"));
                let mut log = log.lock().expect("log");
                if s == 200 && !bytes.is_empty() {
                    log.parts.push((Instant::now(), n));
                } else {
                    log.errors.push(format!("{base}/{uri}: {s}"));
                }
            }
            newest = Some(n);
        }
        if newest.is_none() {
            newest = Some((0, 0));
        }
        if playlist.contains("#EXT-X-ENDLIST") {
            return;
        }
        next = hint(&playlist);
    }
}

/// The largest gap between consecutive part deliveries after `from`.
fn largest_gap_after(w: &Watched, from: Instant) -> Duration {
    w.parts
        .windows(2)
        .filter(|p| p[1].0 > from)
        .map(|p| p[1].0 - p[0].0)
        .max()
        .unwrap_or_default()
}

/// init.mp4 and the given segments of `base` (a `/vod/<id>` URL), concatenated and decoded.
fn decodes(dir: &Path, base: &str, segments: &[String]) -> u64 {
    let (s, mut bytes) = http_get(&format!("{base}/init.mp4"));
    assert_eq!(s, 200, "{base}/init.mp4");
    for seg in segments {
        let (s, media) = http_get(&format!("{base}/{seg}"));
        assert_eq!(s, 200, "{base}/{seg}");
        bytes.extend_from_slice(&media);
    }
    let path = dir.join("recorded.mp4");
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(
        decode_errors(&path),
        "",
        "{base}: the recording does not decode"
    );
    frame_count(&path, "v:0")
}

fn vod_segments(server: &Server, id: &str) -> Vec<String> {
    let (_, body) = http_get(&format!("{}/vod/{id}/index.m3u8", server.http));
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("seg") && l.ends_with(".m4s"))
        .map(str::to_string)
        .collect()
}

fn video_state(server: &Server, id: &str) -> String {
    get_json(&format!("{}/api/v1/videos/{id}", server.http))["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The deployment guide's configuration files (its `toml` blocks) are valid configurations,
/// one per role.
fn deployment_configs_parse(dir: &Path) {
    let blocks: Vec<&str> = DEPLOYMENT
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    let mut roles = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let path = dir.join(format!("deployment-{i}.toml"));
        std::fs::write(&path, block).expect("write");
        let c = vshare_server::config::Config::from_file(&path)
            .unwrap_or_else(|e| panic!("docs/deployment.md, toml block {i}: {e:#}"));
        roles.push(c.roles);
    }
    use vshare_server::config::Role;
    for want in [
        vec![Role::Video, Role::Proxy],
        vec![Role::Live],
        vec![Role::Proxy],
    ] {
        assert!(
            roles.contains(&want),
            "no {want:?} configuration in {roles:?}"
        );
    }
}

#[test]
fn two_video_servers_two_live_servers_and_a_cache_survive_kill_9() {
    let Some(database_url) = fresh_postgres_blocking("vshare_cluster") else {
        eprintln!("{POSTGRES_SKIPPED}");
        return;
    };
    // The cache configuration run here is the one the deployment guide shows.
    assert!(
        DEPLOYMENT.contains(TEMPLATE.trim_end()),
        "docs/deployment.md does not show docs/nginx-live-cache.conf as it is"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    deployment_configs_parse(dir.path());
    let garage = Garage::start(&dir.path().join("garage"), "recordings");
    let storage_env = garage.env.clone();
    let config = dir.path().join("vshare.toml");
    std::fs::write(
        &config,
        format!(
            "[live]\npart_target_ms = {PART_MS}\nsegment_target_ms = {SEGMENT_MS}\n\
             handoff_keepalive_ms = 250\nhandoff_reconnect_max_ms = 250\n\
             handoff_orphan_s = {ORPHAN_S}\n\
             [transcode]\nladder = \"none\"\n"
        ),
    )
    .expect("config");
    let shared = Shared {
        database_url,
        storage_env,
        config,
    };
    let data = |name: &str| dir.path().join(name);

    let handoff = [free_port(), free_port()];
    let mut live: Vec<Server> = handoff
        .iter()
        .enumerate()
        .map(|(i, port)| {
            shared.start(
                &data(&format!("live{i}")),
                &[
                    "--roles",
                    "live",
                    "--live-listen",
                    &format!("127.0.0.1:{port}"),
                ],
            )
        })
        .collect();
    let nginx = Nginx::start(
        &dir.path().join("nginx"),
        &[
            live[0].http.trim_start_matches("http://"),
            live[1].http.trim_start_matches("http://"),
        ],
    );
    let cache_url = nginx.url.clone();
    let push = format!(
        "tcp://127.0.0.1:{},tcp://127.0.0.1:{}",
        handoff[0], handoff[1]
    );
    let video_args = [
        "--roles",
        "video,proxy",
        "--live-push",
        &push,
        "--live-public-url",
        &cache_url,
    ];
    let mut video: Vec<Server> = (0..2)
        .map(|i| shared.start(&data(&format!("video{i}")), &video_args))
        .collect();
    let keys: Vec<String> = (0..2)
        .map(|i| shared.create_key(&data(&format!("video{i}"))))
        .collect();
    let clip = make_test_clip(
        &dir.path().join("clip.mp4"),
        "320x180",
        4,
        Some(44100),
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac", "-ac", "2",
        ],
    );

    // A publisher on each video server; both streams reach both live servers.
    let mut publishers: Vec<Child> = (0..2)
        .map(|i| publish_looping(&clip, &video[i].rtmp_url(&keys[i])))
        .collect();
    let ids: Vec<String> = (0..2)
        .map(|i| {
            let status = wait_video_state(&video[i], &keys[i], &["live"], Duration::from_secs(20));
            let id = status["id"].as_str().expect("id").to_string();
            assert_eq!(
                status["attributes"][0]["url"].as_str(),
                Some(format!("{cache_url}/live/{id}/index.m3u8").as_str()),
                "the live record names the cache"
            );
            id
        })
        .collect();
    for id in &ids {
        for l in &live {
            wait_for(
                "the stream on every live server",
                Duration::from_secs(20),
                || {
                    let (s, body) = http_get(&format!("{}/live/{id}/index.m3u8", l.http));
                    (s == 200 && listed_parts(&String::from_utf8_lossy(&body)).len() >= 4)
                        .then_some(())
                },
            );
        }
    }

    // Viewers of both streams through the cache.
    let stop = Arc::new(AtomicBool::new(false));
    let watched: Vec<Arc<Mutex<Watched>>> = (0..2 * VIEWERS).map(|_| Arc::default()).collect();
    let viewers: Vec<_> = watched
        .iter()
        .enumerate()
        .map(|(v, log)| {
            let base = format!("{cache_url}/live/{}", ids[v % 2]);
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || viewer(base, stop, log))
        })
        .collect();
    let parts_each = |min: usize, since: Instant| {
        watched.iter().all(|w| {
            w.lock()
                .expect("log")
                .parts
                .iter()
                .filter(|p| p.0 > since)
                .count()
                >= min
        })
    };
    let started = Instant::now();
    // Two segments' worth of parts each before the kill.
    let per_two_segments = (2 * SEGMENT_MS / PART_MS) as usize;
    wait_for("viewers to receive parts", Duration::from_secs(30), || {
        parts_each(per_two_segments, started).then_some(())
    });

    // kill -9 one live server: the viewers go on through the other.
    live[0].kill9();
    let killed = Instant::now();
    wait_for(
        "viewers to go on after the kill",
        Duration::from_secs(30),
        || parts_each(per_two_segments, killed).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    for v in viewers {
        v.join().expect("viewer");
    }
    let bound = Duration::from_millis(SEGMENT_MS + PART_MS);
    for (v, w) in watched.iter().enumerate() {
        let w = w.lock().expect("log");
        let before = w
            .parts
            .windows(2)
            .filter(|p| p[1].0 <= killed)
            .map(|p| p[1].0 - p[0].0)
            .max()
            .unwrap_or_default();
        let after = largest_gap_after(&w, killed);
        eprintln!(
            "viewer {v}: {} parts, largest gap {} ms before the kill, {} ms across and after it",
            w.parts.len(),
            before.as_millis(),
            after.as_millis()
        );
        assert!(w.errors.is_empty(), "viewer {v}: {:?}", w.errors);
        assert!(
            after <= bound,
            "viewer {v}: a gap of {after:?} after the kill, over one segment and one part"
        );
        let numbers: Vec<_> = w.parts.iter().map(|p| p.1).collect();
        assert!(
            numbers.windows(2).all(|n| n[0] < n[1]),
            "viewer {v}: parts out of order"
        );
    }
    // The cache used both live servers, then moved what went to the killed one to the other.
    let access = std::fs::read_to_string(dir.path().join("nginx/access.log")).unwrap_or_default();
    let origin = |s: &Server| s.http.trim_start_matches("http://").to_string();
    let (a, b) = (origin(&live[0]), origin(&live[1]));
    let answered = |addr: &str| access.lines().filter(|l| l.ends_with(addr)).count();
    let failed_over = access
        .lines()
        .filter(|l| l.contains(&format!("{a}, {b}")))
        .count();
    eprintln!(
        "nginx: {} requests, {} answered by live server 0, {} by live server 1, {failed_over} \
         moved from the killed one to the other",
        access.lines().count(),
        answered(&a),
        answered(&b)
    );
    assert!(answered(&a) > 0 && answered(&b) > 0, "{access}");

    // kill -9 a video server mid-stream, once it has recorded two segments.
    let surviving = video.pop().expect("video server 1");
    let surviving = &surviving;
    let recorded = wait_for("two recorded segments", Duration::from_secs(20), || {
        let s = vod_segments(surviving, &ids[0]);
        (s.len() >= 2).then_some(s)
    });
    video[0].kill9();
    let video_killed = Instant::now();
    let _ = wait_exit(&mut publishers[0], Duration::from_secs(20));
    // Its recording up to the kill is in storage and plays, from the other video server.
    let stored = vod_segments(surviving, &ids[0]);
    assert!(stored.len() >= recorded.len(), "{stored:?}");
    let frames = decodes(
        dir.path(),
        &format!("{}/vod/{}", surviving.http, ids[0]),
        &stored,
    );
    eprintln!(
        "interrupted recording: {} segments in storage, {frames} video frames decode",
        stored.len()
    );
    assert_eq!(video_state(surviving, &ids[0]), "live");
    // The live servers keep its window (no end of stream: nobody sent one) until
    // `handoff_orphan_s` after its video server's connection closed, then forget it.
    let orphan_url = format!("{}/live/{}/index.m3u8", live[1].http, ids[0]);
    let forgotten = wait_for(
        "the live server to forget the interrupted stream",
        Duration::from_secs(ORPHAN_S * 5),
        || (http_get(&orphan_url).0 == 404).then(Instant::now),
    );
    eprintln!(
        "interrupted stream forgotten by the live server {} ms after the kill",
        (forgotten - video_killed).as_millis()
    );
    assert!(forgotten - video_killed >= Duration::from_secs(ORPHAN_S));

    // Restarted (same data directory, so the same instance id), it finishes its own interrupted
    // recording as partial and leaves the other video server's live stream alone.
    video[0] = shared.start(&data("video0"), &video_args);
    let partial = wait_for(
        "the interrupted recording to be partial",
        Duration::from_secs(20),
        || {
            let v = get_json(&format!("{}/api/v1/videos/{}", surviving.http, ids[0]));
            (v["state"] == "partial").then_some(v)
        },
    );
    assert_eq!(
        video_state(surviving, &ids[1]),
        "live",
        "recovery touched another server's video"
    );
    let mp4 = partial["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .and_then(|r| r["url"].as_str())
        .expect("mp4 record")
        .to_string();
    assert_eq!(decode_errors(&mp4), "", "{mp4}");
    let vod = format!("{}/vod/{}/index.m3u8", surviving.http, ids[0]);
    assert_eq!(decode_errors(&vod), "", "{vod}");

    // The publisher's next stream on the restarted video server works, through the cache.
    let mut again = ffmpeg_publish(&clip, &video[0].rtmp_url(&keys[0]));
    let next = wait_video_state(&video[0], &keys[0], &["live"], Duration::from_secs(20));
    let next_id = next["id"].as_str().expect("id").to_string();
    assert_ne!(next_id, ids[0]);
    wait_for(
        "the next stream through the cache",
        Duration::from_secs(20),
        || {
            let (s, body) = http_get(&format!("{cache_url}/live/{next_id}/index.m3u8"));
            (s == 200 && !listed_parts(&String::from_utf8_lossy(&body)).is_empty()).then_some(())
        },
    );
    let status = wait_exit(&mut again, Duration::from_secs(30)).expect("ffmpeg ends");
    assert!(status.success());
    wait_video_state(&video[0], &keys[0], &["ready"], Duration::from_secs(20));

    // The other publisher stops: its recording is finished as usual.
    let _ = publishers[1].kill();
    let _ = publishers[1].wait();
    wait_video_state(surviving, &keys[1], &["ready"], Duration::from_secs(20));
    drop(nginx);
    let errors = std::fs::read_to_string(dir.path().join("nginx/error.log")).unwrap_or_default();
    assert!(
        !errors.contains("[crit]") && !errors.contains("[alert]") && !errors.contains("[emerg]"),
        "{errors}"
    );
}
