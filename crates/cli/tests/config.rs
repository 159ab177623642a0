//! Configuration: a TOML file, flags over it, clear errors for bad values; and the key API.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn toml_file_sets_ll_hls_timing_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let conf = dir.path().join("vshare.toml");
    std::fs::write(
        &conf,
        "workers = 3\n[live]\npart_target_ms = 500\nsegment_target_ms = 4000\n",
    )
    .expect("write");
    let clip = make_clip(dir.path(), "clip.mp4", 10, &[]);
    // The flag wins over the file for the segment target; the file's part target stays.
    let server = Server::start(
        &data,
        &[
            "--config",
            conf.to_str().expect("path"),
            "--segment-target-ms",
            "3000",
        ],
    );
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(15));
    // The source's media playlist (the record's URL is the multivariant playlist).
    let url = live["attributes"][0]["url"]
        .as_str()
        .expect("url")
        .replace("master.m3u8", "index.m3u8");
    let (_, body) = http_get(&url);
    let playlist = String::from_utf8_lossy(&body).to_string();
    assert!(
        playlist.contains("#EXT-X-PART-INF:PART-TARGET=0.5"),
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-TARGETDURATION:3"), "{playlist}");
    // `workers` sizes the runtime (the server logs what its runtime reports).
    server.expect_logged("workers=3");
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "[live]\npart_taget_ms = 500\n").expect("write");
    let out = vshare()
        .args(["serve", "--config", conf.to_str().expect("path"), "--data"])
        .arg(dir.path())
        .output()
        .expect("serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("part_taget_ms"),
        "{err}"
    );

    let out = vshare()
        .args(["serve", "--part-target-ms", "5", "--data"])
        .arg(dir.path())
        .output()
        .expect("serve");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--part-target-ms must be 100..=2000, got 5")
    );
}

#[test]
fn stream_keys_over_the_api_need_the_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start_with_env(&data, &[], &[("VSHARE_ADMIN_TOKEN", "admintoken".into())]);
    let url = format!("{}/api/v1/keys", server.http);
    let post = |auth: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-H",
                auth,
                "-d",
                r#"{"name":"phone"}"#,
                &url,
            ])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').expect("status");
        (code.trim().to_string(), body.to_string())
    };
    let (code, _) = post("Authorization: Bearer wrong");
    assert_eq!(code, "401");
    let (code, body) = post("Authorization: Bearer admintoken");
    assert_eq!(code, "201", "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).expect("json");
    let key = created["key"].as_str().expect("key");
    assert!(
        created["rtmp_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(key))
    );
    // The new key publishes.
    let clip = make_clip(dir.path(), "clip.mp4", 4, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(key));
    assert!(publisher.wait().expect("ffmpeg").success());
    wait_video_state(&server, key, &["ready"], Duration::from_secs(10));
}
