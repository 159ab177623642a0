//! FFmpeg (an independent RTMP implementation) publishes to a small tokio adapter around
//! [`ServerConnection`]. Needs the `ffmpeg` binary (Debian package `ffmpeg`, with libx264).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vshare_media::flv::TagDemuxer;
use vshare_media::{MediaEvent, TrackConfig, TrackKind};
use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};
use vshare_testkit::ffmpeg::lavfi_inputs;

#[derive(Debug, Default)]
struct Received {
    keys: Vec<String>,
    events: Vec<MediaEvent>,
    metadata: bool,
    finished: bool,
    error: Option<String>,
}

/// Serves one connection: accepts the publish if the key is `good`.
async fn serve_one(mut sock: TcpStream) -> Received {
    let mut conn = ServerConnection::new(ServerLimits::default());
    let mut demux = TagDemuxer::new();
    let mut got = Received::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut closing = false;
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Err(e) = conn.handle_input(&buf[..n]) {
            got.error = Some(e.to_string());
            break;
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                ServerEvent::PublishRequested {
                    request_id,
                    stream_key,
                    ..
                } => {
                    if stream_key == "good" {
                        conn.accept_publish(request_id).expect("accept");
                    } else {
                        conn.reject_publish(
                            request_id,
                            "NetStream.Publish.BadName",
                            "unknown stream key",
                        )
                        .expect("reject");
                        closing = true;
                    }
                    got.keys.push(stream_key);
                }
                ServerEvent::Video { timestamp_ms, body } => {
                    got.events
                        .extend(demux.video(timestamp_ms, body).expect("video tag"));
                }
                ServerEvent::Audio { timestamp_ms, body } => {
                    got.events
                        .extend(demux.audio(timestamp_ms, body).expect("audio tag"));
                }
                ServerEvent::Metadata(_) => got.metadata = true,
                ServerEvent::PublishFinished => got.finished = true,
                _ => {}
            }
        }
        while let Some(b) = conn.poll_transmit() {
            if sock.write_all(&b).await.is_err() {
                return got;
            }
        }
        if closing {
            break;
        }
    }
    got
}

fn ffmpeg(port: u16, key: &str, seconds: u32) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(lavfi_inputs("640x360", seconds, Some(48000)))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac", "-f", "flv",
        ])
        .arg(format!("rtmp://127.0.0.1:{port}/live/{key}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the ffmpeg binary is needed for this test (apt-get install ffmpeg)")
}

#[tokio::test]
async fn ffmpeg_publishes_h264_and_aac() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let child = ffmpeg(port, "good", 3);
    let (sock, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("ffmpeg connects")
        .expect("accept");
    let got = tokio::time::timeout(Duration::from_secs(30), serve_one(sock))
        .await
        .expect("session ends");
    let out = child.wait_with_output().await.expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got.error, None);
    assert_eq!(got.keys, vec!["good".to_string()]);
    assert!(got.metadata, "onMetaData expected");
    assert!(got.finished, "FCUnpublish/deleteStream expected");

    let avc = got.events.iter().find_map(|e| match e {
        MediaEvent::Config(TrackConfig::Avc(c)) => Some(c.clone()),
        _ => None,
    });
    let avc = avc.expect("AVC sequence header");
    assert_eq!((avc.width, avc.height), (640, 360));
    let aac = got.events.iter().find_map(|e| match e {
        MediaEvent::Config(TrackConfig::Aac(c)) => Some(c.clone()),
        _ => None,
    });
    let aac = aac.expect("AAC sequence header");
    assert_eq!(aac.sample_rate, 48_000);
    let frames = |k| {
        got.events
            .iter()
            .filter(|e| matches!(e, MediaEvent::Frame(f) if f.track == k))
            .count()
    };
    assert_eq!(frames(TrackKind::Video), 90, "3 s at 30 fps");
    // 3 s of 48 kHz in 1024-sample frames: 140.6, and the encoder's priming/flush.
    assert!(
        (139..=143).contains(&frames(TrackKind::Audio)),
        "{}",
        frames(TrackKind::Audio)
    );
    let last_video_dts = got
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Frame(f) if f.track == TrackKind::Video => Some(f.dts),
            _ => None,
        })
        .max()
        .expect("video");
    assert!(
        (2_900_000..=3_000_000).contains(&last_video_dts),
        "{last_video_dts}"
    );
}

#[tokio::test]
async fn rejected_publish_makes_ffmpeg_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let child = ffmpeg(port, "bad", 2);
    let (sock, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("ffmpeg connects")
        .expect("accept");
    let got = tokio::time::timeout(Duration::from_secs(30), serve_one(sock))
        .await
        .expect("session ends");
    assert_eq!(got.keys, vec!["bad".to_string()]);
    assert!(got.events.is_empty());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("ffmpeg exits")
        .expect("ffmpeg");
    assert!(
        !out.status.success(),
        "ffmpeg must fail on a rejected publish"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown stream key"),
        "ffmpeg should print our description: {stderr}"
    );
}
