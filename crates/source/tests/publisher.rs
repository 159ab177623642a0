//! The RTMP publisher against an in-test server built on vshare-rtmp's ServerConnection over
//! tokio sockets: publish, real-time pacing of a looped clip, chunk size, rejection, stop.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vshare_rtmp::{RtmpUrl, ServerConnection, ServerEvent, ServerLimits};
use vshare_source::{
    Clip, LoopedClip, Pacer, PublishError, PublishStats, RtmpPublisher, Tag, TagKind,
};

/// What the in-test server received on one connection.
#[derive(Default)]
struct Received {
    /// (video?, timestamp ms, body length)
    media: Vec<(bool, i64, usize)>,
    finished: bool,
    wire_bytes: usize,
}

/// Serves one connection; accepts the publish unless the key is `wrong`.
async fn serve_one(listener: TcpListener) -> Received {
    let (mut sock, _) = listener.accept().await.expect("accept");
    let mut conn = ServerConnection::new(ServerLimits::default());
    let mut got = Received::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = sock.read(&mut buf).await.unwrap_or(0);
        if n == 0 || conn.handle_input(&buf[..n]).is_err() {
            return got;
        }
        got.wire_bytes += n;
        let mut close = false;
        while let Some(ev) = conn.poll_event() {
            match ev {
                ServerEvent::PublishRequested {
                    request_id,
                    stream_key,
                    ..
                } if stream_key == "wrong" => {
                    conn.reject_publish(request_id, "NetStream.Publish.BadName", "no such key")
                        .expect("reject");
                    close = true;
                }
                ServerEvent::PublishRequested { request_id, .. } => {
                    conn.accept_publish(request_id).expect("accept")
                }
                ServerEvent::Video { timestamp_ms, body } => {
                    got.media.push((true, timestamp_ms, body.len()))
                }
                ServerEvent::Audio { timestamp_ms, body } => {
                    got.media.push((false, timestamp_ms, body.len()))
                }
                ServerEvent::PublishFinished => got.finished = true,
                _ => {}
            }
        }
        while let Some(b) = conn.poll_transmit() {
            let _ = sock.write_all(&b).await;
        }
        if close {
            return got;
        }
    }
}

async fn listen() -> (TcpListener, RtmpUrl) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live")).expect("url");
    (listener, url)
}

fn tag(kind: TagKind, timestamp_ms: i64, len: usize, config: bool) -> Tag {
    Tag {
        kind,
        timestamp_ms,
        body: Bytes::from(vec![0x17; len]),
        key: true,
        config,
    }
}

/// 200 ms: 5 video and 5 audio frames of 40 ms, after two sequence headers.
fn clip(video_len: usize) -> Arc<Clip> {
    let mut tags = vec![
        tag(TagKind::Video, 0, 40, true),
        tag(TagKind::Audio, 0, 4, true),
    ];
    tags.extend((0..5).map(|i| tag(TagKind::Video, i * 40, video_len, false)));
    tags.extend((0..5).map(|i| tag(TagKind::Audio, i * 40, 50, false)));
    Arc::new(Clip::from_tags(tags).expect("clip"))
}

/// Publishes `duration_ms` of the looped clip and closes.
async fn publish_clip(
    publisher: RtmpPublisher,
    clip: Arc<Clip>,
    duration_ms: i64,
) -> Result<PublishStats, PublishError> {
    let mut session = publisher.publish().await?;
    session.send_now(clip.headers()).await?;
    let mut feed = LoopedClip::new(clip, duration_ms);
    let stats = session
        .send_in_real_time(&mut feed, &mut Pacer::new(), std::future::pending(), |_| {})
        .await?;
    session.close().await?;
    Ok(stats)
}

#[tokio::test]
async fn a_looped_clip_is_sent_in_real_time_with_continuous_timestamps() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(serve_one(listener));
    let started = std::time::Instant::now();
    let stats = publish_clip(RtmpPublisher::new(&url, "k1"), clip(1000), 600)
        .await
        .expect("publish");
    let wall = started.elapsed().as_secs_f64();
    let got = server.await.expect("server");

    assert!(got.finished, "the close ends the publish");
    assert_eq!((stats.video_frames, stats.audio_frames), (15, 15));
    assert_eq!(stats.media_ms, 560);
    assert!(stats.max_lag_ms < 200.0, "lag {}", stats.max_lag_ms);
    // The last tag is due 560 ms after the first.
    assert!((0.55..2.0).contains(&wall), "600 ms of media took {wall} s");

    let video: Vec<i64> = got
        .media
        .iter()
        .filter(|(v, _, len)| *v && *len == 1000)
        .map(|(_, t, _)| *t)
        .collect();
    let want: Vec<i64> = (0..15).map(|i| i * 40).collect();
    assert_eq!(video, want, "three passes, 200 ms apart");
    assert_eq!(got.media.len(), 2 + 30, "headers once, then the media");
}

#[tokio::test]
async fn the_chunk_size_is_what_goes_on_the_wire() {
    let mut wire = Vec::new();
    for chunk_size in [4096, 128] {
        let (listener, url) = listen().await;
        let server = tokio::spawn(serve_one(listener));
        publish_clip(
            RtmpPublisher::new(&url, "k").with_chunk_size(chunk_size),
            clip(3000),
            200,
        )
        .await
        .expect("publish");
        let got = server.await.expect("server");
        assert_eq!(got.media.len(), 12);
        wire.push(got.wire_bytes);
    }
    // A 3000-byte frame in 128-byte chunks carries 23 more one-byte chunk headers (RTMP
    // 5.3.1.2.4, type 3) than in one 4096-byte chunk: five frames 115 bytes more, less the
    // 16-byte Set Chunk Size message (5.4.1) that RTMP's default size needs not.
    assert!(wire[1] >= wire[0] + 5 * 23 - 16, "{wire:?}");
}

#[tokio::test]
async fn a_rejected_publish_is_an_error_that_says_why() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(serve_one(listener));
    let e = RtmpPublisher::new(&url, "wrong")
        .publish()
        .await
        .err()
        .expect("must fail");
    assert_eq!(
        e.to_string(),
        "the server rejected the publish: NetStream.Publish.BadName: no such key"
    );
    assert!(server.await.expect("server").media.is_empty());
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error() {
    let (listener, url) = listen().await;
    drop(listener);
    let e = RtmpPublisher::new(&url, "k")
        .with_timeout(Duration::from_secs(2))
        .publish()
        .await
        .err()
        .expect("must fail");
    assert!(matches!(e, PublishError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn stop_ends_the_publish_early_and_progress_sees_the_counters() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(serve_one(listener));
    let clip = clip(500);
    let mut session = RtmpPublisher::new(&url, "k2")
        .publish()
        .await
        .expect("publish");
    session.send_now(clip.headers()).await.expect("headers");
    let mut feed = LoopedClip::new(clip, 60_000);
    let mut seen = PublishStats::default();
    let stats = session
        .send_in_real_time(
            &mut feed,
            &mut Pacer::new(),
            tokio::time::sleep(Duration::from_millis(300)),
            |s| seen = *s,
        )
        .await
        .expect("send");
    session.close().await.expect("close");
    let got = server.await.expect("server");
    assert!(got.finished);
    assert!(
        (200..=340).contains(&stats.media_ms),
        "stopped after 300 ms, sent {} ms",
        stats.media_ms
    );
    assert_eq!(seen.media_ms, stats.media_ms, "progress saw the last write");
    assert_eq!(
        got.media.len() as u64,
        2 + stats.video_frames + stats.audio_frames
    );
}
