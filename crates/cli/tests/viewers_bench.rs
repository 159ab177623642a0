//! `vshare bench --viewers`: LL-HLS viewers of a real live stream (ffmpeg publishing over RTMP)
//! get every part with no errors, and its report's latencies are bounded by the stream's part
//! target, read from the playlist.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn twenty_viewers_get_the_parts_in_time_with_no_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, key, clip) = short_parts_server(dir.path(), 40);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(20));
    let id = live["id"].as_str().expect("id").to_string();
    let url = format!("{}/live/{id}/index.m3u8", server.http);

    let out = vshare()
        .args([
            "bench",
            "--viewers",
            "20",
            "--duration",
            "6s",
            "--ramp",
            "1s",
        ])
        .args(["--json", &url])
        .output()
        .expect("vshare bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    eprintln!("{r}");
    assert_eq!(r["viewers"], 20);
    assert_eq!(r["errors"], 0, "{r}");
    let part_target = r["part_target_ms"].as_f64().expect("part target");
    assert_eq!(part_target, 500.0, "{r}");
    // 6 s of 500 ms parts is 12 parts per viewer; each viewer also waits for its first.
    let parts = r["parts"].as_u64().expect("parts");
    assert!(parts >= 20 * 8, "{r}");
    let p50 = r["p50_latency_ms"].as_f64().expect("p50");
    let p99 = r["p99_latency_ms"].as_f64().expect("p99");
    // Half the parts reach every viewer within a part target of their publish time; all but
    // 1% within the playlist's PART-HOLD-BACK (three part targets), the lag a player keeps
    // behind the live edge: later than that a player would stall.
    assert!(p50 <= p99 && p50 <= part_target, "{r}");
    assert!(p99 <= 3.0 * part_target, "{r}");
    assert!(r["bytes"].as_u64().expect("bytes") > parts * 1000, "{r}");
    assert!(r["requests"].as_u64().expect("requests") > parts, "{r}");
    let _ = publisher.kill();
    let _ = publisher.wait();
}
