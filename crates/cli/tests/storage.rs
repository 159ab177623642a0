//! Recordings in S3-compatible object storage (s3s-fs, an independent S3 server) instead of the
//! local directory: the same code path, chosen by `--storage-url`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vshare_testkit::ffmpeg::decode_errors;
use vshare_testkit::net::free_port;
use vshare_testkit::wait::wait_for;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn recordings_go_to_s3_compatible_storage() {
    let have = Command::new("s3s-fs")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    assert!(have, "s3s-fs is not installed; run scripts/setup.sh --test");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("recordings")).expect("bucket dir");
    let port = free_port();
    let _s3 = Killed(
        Command::new("s3s-fs")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                "AKTEST",
                "--secret-key",
                "SKTEST",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs"),
    );
    wait_for("s3s-fs to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 5, &[]);
    // Credentials and endpoint for the server process only.
    let server = {
        let envs = [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "AKTEST".into()),
            ("AWS_SECRET_ACCESS_KEY", "SKTEST".into()),
            ("AWS_REGION", "us-east-1".into()),
        ];
        Server::start_with_env(&data, &["--storage-url", "s3://recordings/vshare"], &envs)
    };
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(15));
    let id = ready["id"].as_str().expect("id");
    let mp4 = ready["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .expect("mp4")
        .clone();
    let url = mp4["url"].as_str().expect("url");

    // The objects are in the bucket, not in the local data directory.
    let object = root
        .join("recordings/vshare/videos")
        .join(id)
        .join("video.mp4");
    let stored = std::fs::metadata(&object).unwrap_or_else(|e| panic!("{}: {e}", object.display()));
    assert_eq!(Some(stored.len()), mp4["size"].as_u64());
    assert!(!data.join("media").join("videos").join(id).exists());
    // Served from S3, with ranges, and it plays.
    let (status, body) = http_get_with(url, &["Range: bytes=0-99"]);
    assert_eq!((status, body.len()), (206, 100));
    assert!(decode_errors(url).is_empty());
    assert!(decode_errors(format!("{}/vod/{id}/index.m3u8", server.http)).is_empty());
}
