//! `vshare publish`: the source phone on the command line. Its arguments and what it prints;
//! vshare-source does the work: the source on its own thread, paced to real time and sent over
//! RTMP (or the upload protocol, `upload.rs`). The attribute data the server returns is polled
//! from its HTTP API (`publish_status.rs`) and printed.

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use tokio::time::Instant;
use vshare_attributes::Kind;
use vshare_rtmp::RtmpUrl;
use vshare_source::{
    Input, Mode, Pacer, PublishStats, RtmpPublisher, SourceInfo, SourceOptions, SourceThread,
};

use super::publish_status::{StatusClient, describe};

#[derive(clap::Args)]
pub struct Args {
    /// Where to publish: rtmp://HOST[:PORT]/APP/STREAM_KEY; with `--protocol upload` the
    /// server's HTTP address, http://HOST:PORT.
    pub url: String,
    /// `rtmp`, or `upload`: the upload protocol over WebSocket, adapting bitrate, frame rate
    /// and picture size to the network (docs/upload-protocol.md).
    #[arg(long, default_value = "rtmp", value_parser = ["rtmp", "upload"])]
    pub protocol: String,
    /// The stream key (or an upload token) for `--protocol upload`.
    #[arg(long, env = "VSHARE_STREAM_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Highest total bitrate the upload may climb to (`--protocol upload`).
    #[arg(long, default_value = "2500k", value_parser = vshare_source::parse_bitrate)]
    pub max_bitrate: u64,
    /// Video frames dropped to keep the live stream real time are kept, up to this many bytes
    /// in memory, and sent late for the recording (`--protocol upload`, the protocol's
    /// `backfill`); 0 keeps none.
    #[arg(long, default_value_t = 64 << 20)]
    pub backfill_max_bytes: u64,
    /// Title of the video (`--protocol upload`).
    #[arg(long, default_value = "")]
    pub title: String,
    /// Media file to publish (remuxed if H.264/AAC, otherwise encoded).
    #[arg(long, conflicts_with = "test_pattern")]
    pub file: Option<PathBuf>,
    /// Publish a generated test pattern (clock, frame counter, 440 Hz tone).
    #[arg(long)]
    pub test_pattern: bool,
    /// Stop after this much media time (30s, 2m, 500ms). Default: the whole file; the test
    /// pattern runs until Ctrl-C.
    #[arg(long, value_parser = vshare_source::parse_duration_ms)]
    pub duration: Option<i64>,
    /// Picture size when encoding, WIDTHxHEIGHT [test pattern: 640x360].
    #[arg(long, value_parser = vshare_source::parse_size)]
    pub size: Option<(u32, u32)>,
    /// Frame rate when encoding [test pattern: 30].
    #[arg(long)]
    pub fps: Option<u32>,
    /// Video bitrate when encoding (1M, 800k).
    #[arg(long, default_value = "1M", value_parser = vshare_source::parse_bitrate)]
    pub bitrate: u64,
    /// Start the file again at its end, with continuous timestamps.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Encode even a file that could be remuxed.
    #[arg(long)]
    pub encode: bool,
    /// The server's HTTP API, polled for the attribute data [default: http://HOST:8080].
    #[arg(long)]
    pub http: Option<String>,
    /// Do not poll the HTTP API.
    #[arg(long, conflicts_with = "http")]
    pub no_status: bool,
    /// Seconds to wait for the VOD records after the stream ends (at most 15).
    #[arg(long, default_value_t = 15)]
    pub vod_wait: u64,
    /// Print one JSON object on stdout at the end (publish statistics, live and VOD video).
    #[arg(long)]
    pub json: bool,
}

/// One line of progress: plain lines when stderr is not a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Cell<Instant>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            bar,
            last_line: Cell::new(Instant::now()),
        }
    }

    fn update(&self, s: &PublishStats, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let msg = format!(
            "sent {:.1} s, {:.2} Mbit/s, {} video + {} audio frames, max lag {:.0} ms",
            s.media_ms as f64 / 1000.0,
            s.bytes as f64 * 8.0 / secs / 1e6,
            s.video_frames,
            s.audio_frames,
            s.max_lag_ms
        );
        match &self.bar {
            Some(b) => b.set_message(msg),
            None if self.last_line.get().elapsed() >= Duration::from_secs(5) => {
                self.last_line.set(Instant::now());
                eprintln!("{msg}");
            }
            None => {}
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.protocol == "upload" {
        return run_upload(args).await;
    }
    let url = RtmpUrl::parse(&args.url).map_err(|e| anyhow!(e))?;
    let Some(key) = url.stream_key.clone() else {
        bail!(
            "{} has no stream key: use rtmp://HOST/APP/STREAM_KEY",
            args.url
        );
    };
    let input = input_of(&args)?;
    let options = SourceOptions {
        size: args.size,
        fps: args.fps,
        video_bitrate: args.bitrate,
        duration_ms: args.duration,
        looping: args.looping,
        force_encode: args.encode,
        ..SourceOptions::default()
    };
    let http = if args.no_status {
        None
    } else {
        Some(
            args.http
                .clone()
                .unwrap_or_else(|| format!("http://{}:8080", url.host)),
        )
    };

    let (info, mut tags) = SourceThread::spawn(input, options).await?;
    let status = http
        .as_ref()
        .map(|h| StatusClient::new(h, &key))
        .transpose()?;

    let mut session = RtmpPublisher::new(&url, &key).publish().await?;
    if !args.json {
        println!(
            "publishing {}x{} {:.2} fps ({}) to {}",
            info.width,
            info.height,
            info.fps,
            mode_name(&info),
            url.tc_url()
        );
    }
    let progress = Progress::new();
    session.send_metadata(&info).await?;
    let started = Instant::now();
    let latest = Cell::new(PublishStats::default());
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No Ctrl-C to wait for: the stream ends with its source.
            std::future::pending::<()>().await;
        }
        progress.println("interrupted: ending the stream");
    };
    let waiting_for_live = async {
        match &status {
            Some(s) => {
                s.wait_for_live(|e| {
                    if !args.json {
                        progress.println(&format!("attribute data not available yet: {e:#}"));
                    }
                })
                .await
            }
            None => std::future::pending().await,
        }
    };
    let mut live = None;
    let mut pacer = Pacer::new();
    let stats = {
        let sending =
            session.send_in_real_time(&mut tags, &mut pacer, interrupted, |s| latest.set(*s));
        tokio::pin!(sending, waiting_for_live);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                biased;
                sent = &mut sending => break sent?,
                video = &mut waiting_for_live, if live.is_none() => {
                    for line in describe(&video, Kind::Live) {
                        progress.println(&line);
                    }
                    live = Some(video);
                }
                _ = tick.tick() => progress.update(&latest.get(), started),
            }
        }
    };
    progress.finish();
    // The stream is over whether or not the goodbye reaches the server.
    let _ = session.close().await;

    let mut vod = None;
    if let Some(s) = &status {
        vod = s
            .wait_for_vod(Duration::from_secs(args.vod_wait.min(15)), args.json)
            .await;
    }
    if args.json {
        let out = serde_json::json!({ "published": stats, "live": live, "vod": vod });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "sent {:.1} s of media: {} video and {} audio frames, {:.2} MB, max lag {:.0} ms",
            stats.media_ms as f64 / 1000.0,
            stats.video_frames,
            stats.audio_frames,
            stats.bytes as f64 / 1e6,
            stats.max_lag_ms
        );
    }
    Ok(())
}

fn mode_name(info: &SourceInfo) -> &'static str {
    match info.mode {
        Mode::Remux => "remuxed",
        Mode::Encode => "encoded",
        Mode::TestPattern => "test pattern",
    }
}

fn input_of(args: &Args) -> anyhow::Result<Input> {
    Ok(match (&args.file, args.test_pattern) {
        (Some(f), false) => Input::File(f.clone()),
        (None, true) => Input::TestPattern,
        _ => bail!("say what to publish: --file PATH or --test-pattern"),
    })
}

async fn run_upload(args: Args) -> anyhow::Result<()> {
    let Some(token) = args.key.clone().filter(|k| !k.is_empty()) else {
        bail!("--protocol upload needs --key STREAM_KEY (or VSHARE_STREAM_KEY)");
    };
    let input = input_of(&args)?;
    let kbps = |b: u64| u32::try_from(b / 1000).unwrap_or(u32::MAX);
    let stats = super::upload::run(super::upload::UploadArgs {
        server: args.url.clone(),
        token,
        input,
        size: args.size.unwrap_or((640, 360)),
        start_kbps: kbps(args.bitrate),
        max_kbps: kbps(args.max_bitrate).max(kbps(args.bitrate)),
        duration_ms: args.duration,
        title: args.title.clone(),
        json: args.json,
        vod_wait: Duration::from_secs(args.vod_wait),
        backfill_max_bytes: args.backfill_max_bytes,
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        println!(
            "sent {:.1} s of media: {} video frames ({} dropped from the live stream, {} of them sent late) and {} audio frames, {:.2} MB of media in {:.2} MB on the wire, {} reconnects",
            stats.media_ms as f64 / 1000.0,
            stats.video_frames,
            stats.dropped_frames,
            stats.backfill_frames,
            stats.audio_frames,
            stats.media_bytes as f64 / 1e6,
            stats.wire_bytes as f64 / 1e6,
            stats.reconnects
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! `vshare publish` against an in-test RTMP server built on vshare-rtmp's ServerConnection;
    //! the received tags are written to FLV and checked by ffprobe (Debian package `ffmpeg`).

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use vshare_media::flv::TagDemuxer;
    use vshare_media::{MediaEvent, TrackConfig, TrackKind};
    use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};

    struct Got {
        video: Vec<(i64, bytes::Bytes)>,
        audio: Vec<(i64, bytes::Bytes)>,
        metadata: bool,
        finished: bool,
    }

    async fn serve(listener: TcpListener, accept: bool) -> Got {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut conn = ServerConnection::new(ServerLimits::default());
        let mut got = Got {
            video: vec![],
            audio: vec![],
            metadata: false,
            finished: false,
        };
        let mut buf = vec![0u8; 65536];
        loop {
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if n == 0 || conn.handle_input(&buf[..n]).is_err() {
                return got;
            }
            let mut close = false;
            while let Some(ev) = conn.poll_event() {
                match ev {
                    ServerEvent::PublishRequested { request_id, .. } if accept => {
                        conn.accept_publish(request_id).expect("accept")
                    }
                    ServerEvent::PublishRequested { request_id, .. } => {
                        conn.reject_publish(request_id, "NetStream.Publish.BadName", "no such key")
                            .expect("reject");
                        close = true;
                    }
                    ServerEvent::Video { timestamp_ms, body } => {
                        got.video.push((timestamp_ms, body))
                    }
                    ServerEvent::Audio { timestamp_ms, body } => {
                        got.audio.push((timestamp_ms, body))
                    }
                    ServerEvent::Metadata(_) => got.metadata = true,
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

    fn args(url: String) -> Args {
        Args {
            url,
            protocol: "rtmp".into(),
            key: None,
            max_bitrate: 2_500_000,
            backfill_max_bytes: 0,
            title: String::new(),
            file: None,
            test_pattern: true,
            duration: Some(3000),
            size: Some((426, 240)),
            fps: Some(24),
            bitrate: 600_000,
            looping: false,
            encode: false,
            http: None,
            no_status: true,
            vod_wait: 0,
            json: true,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_pattern_arrives_in_real_time_and_decodes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, true));
        let started = std::time::Instant::now();
        run(args(format!("rtmp://127.0.0.1:{port}/live/k1")))
            .await
            .expect("publish");
        let wall = started.elapsed().as_secs_f64();
        assert!(
            (2.8..6.0).contains(&wall),
            "3 s of media must take about 3 s, took {wall}"
        );
        let got = server.await.expect("server");
        assert!(got.metadata && got.finished);

        let mut demux = TagDemuxer::new();
        let mut avc = None;
        let mut frames = 0;
        for (ts, body) in &got.video {
            match demux.video(*ts, body.clone()).expect("video tag") {
                Some(MediaEvent::Config(TrackConfig::Avc(c))) => avc = Some(c),
                Some(MediaEvent::Frame(f)) if f.track == TrackKind::Video => frames += 1,
                _ => {}
            }
        }
        let avc = avc.expect("AVC sequence header");
        assert_eq!(
            (avc.width, avc.height, avc.frame_rate),
            (426, 240, Some(24.0))
        );
        assert_eq!(frames, 72, "3 s at 24 fps");

        // ffprobe decodes what the server received.
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("got.flv");
        let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let mut all: Vec<(u8, i64, &bytes::Bytes)> =
            got.video.iter().map(|(t, b)| (9, *t, b)).collect();
        all.extend(got.audio.iter().map(|(t, b)| (8, *t, b)));
        all.sort_by_key(|(_, t, _)| *t);
        for (ty, ts, body) in all {
            let n = body.len() as u32;
            flv.push(ty);
            flv.extend_from_slice(&n.to_be_bytes()[1..]);
            flv.extend_from_slice(&(ts as u32).to_be_bytes()[1..]);
            flv.extend_from_slice(&[0, 0, 0, 0]);
            flv.extend_from_slice(body);
            flv.extend_from_slice(&(n + 11).to_be_bytes());
        }
        std::fs::write(&path, flv).expect("write");
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
            ])
            .args([
                "stream=codec_name,width,height,r_frame_rate,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .expect("the ffprobe binary is needed for this test (apt-get install ffmpeg)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "h264,426,240,24/1,72"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mpeg4_mp3_file_arrives_as_h264_and_aac() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("legacy.avi");
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=20:duration=2",
            ])
            .args(["-f", "lavfi", "-i", "sine=sample_rate=22050:duration=2"])
            .args(["-c:v", "mpeg4", "-c:a", "libmp3lame"])
            .arg(&file)
            .output()
            .expect("the ffmpeg binary is needed for this test (apt-get install ffmpeg)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, true));
        let mut a = args(format!("rtmp://127.0.0.1:{port}/live/k2"));
        a.test_pattern = false;
        a.file = Some(file);
        a.duration = None;
        a.size = None;
        a.fps = None;
        run(a).await.expect("publish");
        let got = server.await.expect("server");
        let mut demux = TagDemuxer::new();
        let (mut avc, mut aac, mut video, mut audio) = (None, None, 0, 0);
        for (ts, body) in &got.video {
            match demux.video(*ts, body.clone()).expect("video tag") {
                Some(MediaEvent::Config(TrackConfig::Avc(c))) => avc = Some(c),
                Some(MediaEvent::Frame(_)) => video += 1,
                _ => {}
            }
        }
        for (ts, body) in &got.audio {
            match demux.audio(*ts, body.clone()).expect("audio tag: AAC") {
                Some(MediaEvent::Config(TrackConfig::Aac(c))) => aac = Some(c),
                Some(MediaEvent::Frame(_)) => audio += 1,
                _ => {}
            }
        }
        let avc = avc.expect("H.264 sequence header");
        assert_eq!(
            (avc.width, avc.height, avc.frame_rate),
            (320, 240, Some(20.0))
        );
        assert_eq!(aac.expect("AAC sequence header").sample_rate, 48_000);
        assert!((39..=41).contains(&video), "{video}");
        assert!((90..=98).contains(&audio), "{audio}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rejected_publish_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(serve(listener, false));
        let e = run(args(format!("rtmp://127.0.0.1:{port}/live/wrong")))
            .await
            .expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "the server rejected the publish: NetStream.Publish.BadName: no such key"
        );
        let got = server.await.expect("server");
        assert!(got.video.is_empty());
    }
}
