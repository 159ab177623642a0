//! `vshare bench`: many real-time RTMP publishers from one pre-encoded FLV clip, read once into
//! memory and shared. Each publisher is a tokio task running vshare-source's RTMP publisher;
//! it loops the clip with continuous timestamps and records how far it fell behind real time.
//! This file holds the arguments and the report. With `--viewers N` it drives LL-HLS viewers
//! instead ([`super::bench_viewers`]), with `--whep-viewers N` WebRTC players
//! ([`super::bench_whep`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::time::Instant;
use vshare_rtmp::RtmpUrl;
use vshare_source::{Clip, LoopedClip, Pacer, PublishStats, RtmpPublisher};

#[derive(clap::Args)]
pub struct Args {
    /// Server application URL: rtmp://HOST[:PORT]/APP (keys come from --key/--keys); with
    /// --viewers, a live media playlist: http://HOST:PORT/live/<id>/index.m3u8; with
    /// --whep-viewers, a WHEP URL.
    pub url: String,
    /// Drive this many LL-HLS viewers of the playlist at URL instead of publishers.
    #[arg(long)]
    pub viewers: Option<usize>,
    /// Drive this many WebRTC players of the stream whose WHEP URL is URL
    /// (http://HOST:PORT/whep/<id>).
    #[arg(long, conflicts_with = "viewers")]
    pub whep_viewers: Option<usize>,
    /// With --whep-viewers: end once every player has this many video frames (--duration is
    /// then the most it may take).
    #[arg(long)]
    pub frames: Option<u64>,
    /// With --whep-viewers: the server's process id, to report its CPU per viewer-second.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A stream key (repeatable); publisher i uses key i.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// File with one stream key per line (added after --key).
    #[arg(long = "keys")]
    pub keys_file: Option<PathBuf>,
    /// Number of publishers.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    /// How long each publisher publishes (media time), or each viewer watches: 60s, 2m.
    #[arg(long, default_value = "60s", value_parser = vshare_source::parse_duration_ms)]
    pub duration: i64,
    /// Pre-encoded H.264/AAC FLV clip, looped (publishers).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Spread the publishers' (or viewers') starts over this long (e.g. 5s).
    #[arg(long, default_value = "2s", value_parser = vshare_source::parse_duration_ms)]
    pub ramp: i64,
    /// A publisher "kept real time" if no tag was sent later than this behind its deadline, ms.
    #[arg(long, default_value_t = 1000.0)]
    pub max_lag_ms: f64,
    /// RTMP chunk size the publishers send with: 4096 (what `vshare publish` uses), or 128
    /// (RTMP's default, which ffmpeg keeps: a chunk header every 128 bytes).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(128..=65536))]
    pub chunk_size: u32,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One publisher's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublisherReport {
    pub index: usize,
    pub ok: bool,
    pub error: Option<String>,
    pub kept_real_time: bool,
    pub tags: u64,
    pub bytes: u64,
    pub media_ms: i64,
    pub max_lag_ms: f64,
    /// Connect + handshake + publish answer, ms.
    pub publish_ms: f64,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub url: String,
    pub publishers: usize,
    pub duration_ms: i64,
    pub ok: usize,
    pub failed: usize,
    pub kept_real_time: usize,
    pub total_mbit_s: f64,
    pub max_lag_ms: f64,
    pub p95_lag_ms: f64,
    pub wall_s: f64,
    /// CPU seconds this bench process used (user + system).
    pub bench_cpu_s: f64,
    pub per_publisher: Vec<PublisherReport>,
}

fn read_keys(args: &Args) -> anyhow::Result<Vec<String>> {
    let mut keys = args.keys.clone();
    if let Some(f) = &args.keys_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if keys.len() < args.publishers {
        bail!(
            "{} publishers need {} distinct stream keys, {} given (--key, --keys FILE)",
            args.publishers,
            args.publishers,
            keys.len()
        );
    }
    Ok(keys)
}

pub(super) fn cpu_seconds() -> f64 {
    // utime + stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 Hz on Linux).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// What one publisher does: how long, from when, how late it may fall, its chunk size.
#[derive(Clone, Copy)]
struct Plan {
    duration_ms: i64,
    start_delay: Duration,
    max_lag_ms: f64,
    chunk_size: u32,
}

async fn publisher(
    index: usize,
    url: Arc<RtmpUrl>,
    key: String,
    clip: Arc<Clip>,
    plan: Plan,
) -> PublisherReport {
    let Plan {
        duration_ms,
        start_delay,
        max_lag_ms,
        chunk_size,
    } = plan;
    tokio::time::sleep(start_delay).await;
    let mut r = PublisherReport {
        index,
        ok: false,
        error: None,
        kept_real_time: false,
        tags: 0,
        bytes: 0,
        media_ms: 0,
        max_lag_ms: 0.0,
        publish_ms: 0.0,
    };
    let t0 = Instant::now();
    let result = async {
        let mut session = RtmpPublisher::new(&url, &key)
            .with_chunk_size(chunk_size)
            .with_timeout(Duration::from_secs(15))
            .publish()
            .await?;
        r.publish_ms = t0.elapsed().as_secs_f64() * 1000.0;
        session.send_now(clip.headers()).await?;
        let mut feed = LoopedClip::new(clip, duration_ms);
        // The counters after each write: what was sent counts even if the server cuts in.
        let mut sent = PublishStats::default();
        let result = session
            .send_in_real_time(&mut feed, &mut Pacer::new(), std::future::pending(), |s| {
                sent = *s
            })
            .await;
        r.tags = sent.video_frames + sent.audio_frames;
        r.bytes = sent.bytes;
        r.media_ms = sent.media_ms;
        r.max_lag_ms = sent.max_lag_ms;
        result?;
        session.close().await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match result {
        Ok(()) => {
            r.ok = true;
            r.kept_real_time = r.max_lag_ms <= max_lag_ms;
        }
        Err(e) => r.error = Some(format!("{e:#}")),
    }
    r
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(viewers) = args.whep_viewers {
        return super::bench_whep::run(
            &args.url,
            viewers,
            args.duration,
            args.ramp,
            args.frames,
            args.server_pid,
            args.json,
        )
        .await;
    }
    if let Some(viewers) = args.viewers {
        return super::bench_viewers::run(&args.url, viewers, args.duration, args.ramp, args.json)
            .await;
    }
    let Some(input) = &args.input else {
        bail!("publishers need --input CLIP.flv");
    };
    let url = RtmpUrl::parse(&args.url).map_err(|e| anyhow!(e))?;
    if url.stream_key.is_some() {
        bail!("give the application URL (rtmp://HOST/APP) and the keys with --key/--keys");
    }
    if args.publishers == 0 {
        bail!("--publishers must be at least 1");
    }
    let keys = read_keys(&args)?;
    let clip = Arc::new(Clip::load(input)?);
    let url = Arc::new(url);
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    if !args.json {
        eprintln!(
            "bench: {} publishers, {:.0} s each, clip {} ({} tags, {:.1} s loop), to {}",
            args.publishers,
            args.duration as f64 / 1000.0,
            input.display(),
            clip.tag_count(),
            clip.period_ms() as f64 / 1000.0,
            url.tc_url()
        );
    }
    let mut tasks = Vec::with_capacity(args.publishers);
    for (i, key) in keys.into_iter().take(args.publishers).enumerate() {
        let delay =
            Duration::from_millis((args.ramp.max(0) as u64 * i as u64) / args.publishers as u64);
        tasks.push(tokio::spawn(publisher(
            i,
            url.clone(),
            key,
            clip.clone(),
            Plan {
                duration_ms: args.duration,
                start_delay: delay,
                max_lag_ms: args.max_lag_ms,
                chunk_size: args.chunk_size,
            },
        )));
    }
    let mut per = Vec::with_capacity(tasks.len());
    for t in tasks {
        per.push(t.await?);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let ok = per.iter().filter(|p| p.ok).count();
    let mut lags: Vec<f64> = per.iter().filter(|p| p.ok).map(|p| p.max_lag_ms).collect();
    lags.sort_by(f64::total_cmp);
    let p95 = lags
        .get(((lags.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let bytes: u64 = per.iter().map(|p| p.bytes).sum();
    let report = BenchReport {
        url: url.tc_url(),
        publishers: per.len(),
        duration_ms: args.duration,
        ok,
        failed: per.len() - ok,
        kept_real_time: per.iter().filter(|p| p.kept_real_time).count(),
        total_mbit_s: bytes as f64 * 8.0 / (args.duration as f64 / 1000.0).max(0.001) / 1e6,
        max_lag_ms: lags.last().copied().unwrap_or(0.0),
        p95_lag_ms: p95,
        wall_s,
        bench_cpu_s: cpu_seconds() - cpu0,
        per_publisher: per,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} publishers: {} ok, {} failed, {} kept real time (lag <= {} ms); {:.1} Mbit/s total; lag max {:.0} ms, p95 {:.0} ms; bench CPU {:.1} s in {:.1} s",
            report.publishers,
            report.ok,
            report.failed,
            report.kept_real_time,
            args.max_lag_ms,
            report.total_mbit_s,
            report.max_lag_ms,
            report.p95_lag_ms,
            report.bench_cpu_s,
            report.wall_s
        );
        for p in report
            .per_publisher
            .iter()
            .filter(|p| !p.ok || !p.kept_real_time)
            .take(10)
        {
            println!(
                "  publisher {}: {}",
                p.index,
                p.error
                    .clone()
                    .unwrap_or_else(|| format!("max lag {:.0} ms", p.max_lag_ms))
            );
        }
    }
    if report.ok == 0 {
        bail!("no publisher succeeded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Four publishers from one clip against in-test RTMP servers (vshare-rtmp's
    //! ServerConnection); the clip is made by the ffmpeg CLI (Debian package `ffmpeg`).

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use vshare_rtmp::{ServerConnection, ServerEvent, ServerLimits};

    /// Accepts connections, counts media per key, and checks timestamps keep increasing.
    async fn server(listener: TcpListener) {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut conn = ServerConnection::new(ServerLimits::default());
                let mut buf = vec![0u8; 65536];
                let mut last_video = -1i64;
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    conn.handle_input(&buf[..n])
                        .expect("valid RTMP from the bench");
                    while let Some(ev) = conn.poll_event() {
                        match ev {
                            ServerEvent::PublishRequested { request_id, .. } => {
                                conn.accept_publish(request_id).expect("accept")
                            }
                            ServerEvent::Video { timestamp_ms, .. } => {
                                assert!(
                                    timestamp_ms > last_video || timestamp_ms == 0,
                                    "{timestamp_ms} after {last_video}"
                                );
                                last_video = timestamp_ms;
                            }
                            _ => {}
                        }
                    }
                    while let Some(b) = conn.poll_transmit() {
                        let _ = sock.write_all(&b).await;
                    }
                }
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishers_loop_the_clip_in_real_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let clip = dir.path().join("clip.flv");
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=30:duration=1",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=sample_rate=48000:duration=1",
                "-c:v",
                "libx264",
            ])
            .args([
                "-preset",
                "ultrafast",
                "-g",
                "30",
                "-c:a",
                "aac",
                "-f",
                "flv",
            ])
            .arg(&clip)
            .output()
            .expect("the ffmpeg binary is needed for this test (apt-get install ffmpeg)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Clip::load(&clip).expect("clip");
        assert_eq!(c.headers().len(), 2);
        assert!((990..=1100).contains(&c.period_ms()), "{}", c.period_ms());

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(server(listener));
        let url = Arc::new(RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live")).expect("url"));
        let clip = Arc::new(c);
        let started = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                tokio::spawn(publisher(
                    i,
                    url.clone(),
                    format!("k{i}"),
                    clip.clone(),
                    Plan {
                        duration_ms: 2500,
                        start_delay: Duration::ZERO,
                        max_lag_ms: 1000.0,
                        // ffmpeg's chunking: the server must take it as well as ours.
                        chunk_size: 128,
                    },
                ))
            })
            .collect();
        for t in tasks {
            let r = t.await.expect("task");
            assert!(r.ok, "{:?}", r.error);
            assert!(r.kept_real_time, "lag {}", r.max_lag_ms);
            // 2.5 s of a 1 s clip: 75 video + ~117 audio tags, in 2.5 s of wall time.
            assert!((185..=200).contains(&r.tags), "{}", r.tags);
            assert!((2400..2500).contains(&r.media_ms), "{}", r.media_ms);
        }
        let wall = started.elapsed().as_secs_f64();
        assert!((2.3..4.0).contains(&wall), "{wall}");
    }
}
