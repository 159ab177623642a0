//! `vshare bench --whep-viewers N URL`: N WebRTC players of one live stream over WHEP, each a
//! str0m `Rtc` (a full ICE agent, controlling, as a browser is) on a UDP socket of its own,
//! receiving and decrypting everything as a player does but not decoding it. Reports frames,
//! bytes and per-frame delivery delay (the frame's time on the server's sender-report clock →
//! its arrival here, both on this machine's clock), and the server's CPU per viewer-second
//! when given its PID. With `--frames N` the run ends as soon as every player has N video
//! frames (each keeps its session until then): a bound from what was sent, not from the clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use tokio::net::UdpSocket;
use vshare_webrtc::str0m::change::SdpAnswer;
use vshare_webrtc::str0m::media::{Direction, MediaKind};
use vshare_webrtc::str0m::net::{Protocol, Receive};
use vshare_webrtc::str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// What the viewers got.
#[derive(Debug, Default, serde::Serialize)]
pub struct WhepReport {
    pub viewers: usize,
    /// Viewers whose ICE and DTLS came up.
    pub connected: usize,
    /// Viewers that received video frames and audio packets.
    pub playing: usize,
    /// Viewers that received the --frames asked for.
    pub reached: usize,
    pub seconds: f64,
    pub video_frames: u64,
    pub audio_packets: u64,
    /// The fewest video frames a viewer that connected received.
    pub min_video_frames: u64,
    pub bytes: u64,
    /// Time from the offer to the first video frame, ms (p50, max).
    pub p50_first_frame_ms: f64,
    pub max_first_frame_ms: f64,
    /// Per video frame: arrival − the frame's time on the sender-report clock, ms.
    pub p50_delay_ms: f64,
    pub p99_delay_ms: f64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// CPU seconds this bench process used.
    pub bench_cpu_s: f64,
    /// CPU seconds the server used while every viewer was watching (with --server-pid).
    pub server_cpu_s: Option<f64>,
    /// Server CPU per viewer-second, ms (with --server-pid).
    pub server_cpu_ms_per_viewer_s: Option<f64>,
}

/// When the players may stop: all have their frames, or failed.
#[derive(Default)]
struct Progress {
    finished: AtomicUsize,
    stop: AtomicBool,
}

#[derive(Default)]
struct Stats {
    /// Counted in [`Progress::finished`].
    finished: bool,
    connected: bool,
    video_frames: u64,
    audio_packets: u64,
    bytes: u64,
    first_frame: Option<Duration>,
    delays_ms: Vec<f32>,
    error: Option<String>,
}

/// Runs `viewers` WHEP players of `url` (`http://HOST:PORT/whep/<id>`) for `duration_ms`,
/// starting them over `ramp_ms`.
pub async fn run(
    url: &str,
    viewers: usize,
    duration_ms: i64,
    ramp_ms: i64,
    frames: Option<u64>,
    server_pid: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    if viewers == 0 {
        bail!("--whep-viewers must be at least 1");
    }
    if !url.starts_with("http://") && !url.starts_with("https://") {
        bail!("give the stream's WHEP URL: http://HOST:PORT/whep/<id>");
    }
    let duration = Duration::from_millis(duration_ms.max(0) as u64);
    let ramp = Duration::from_millis(ramp_ms.max(0) as u64);
    if !json {
        eprintln!(
            "bench: {viewers} WHEP viewers of {url} for {:.0} s",
            duration.as_secs_f64()
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let cpu0 = super::bench::cpu_seconds();
    let started = Instant::now();
    let until = started + ramp + duration;
    // The server's CPU is measured while all are watching: from the end of the ramp (plus a
    // second for the last to connect) to the end.
    let window_start = started + ramp + Duration::from_secs(1);
    let server_cpu = tokio::spawn(async move {
        let pid = server_pid?;
        tokio::time::sleep_until(window_start.into()).await;
        let a = process_cpu_seconds(pid)?;
        let t = Instant::now();
        tokio::time::sleep_until(until.into()).await;
        Some((process_cpu_seconds(pid)? - a, t.elapsed().as_secs_f64()))
    });
    let progress = Arc::new(Progress::default());
    if frames.is_some() {
        let progress = progress.clone();
        tokio::spawn(async move {
            while progress.finished.load(Ordering::Relaxed) < viewers {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            progress.stop.store(true, Ordering::Relaxed);
        });
    }
    let tasks: Vec<_> = (0..viewers)
        .map(|i| {
            let delay = ramp.mul_f64(i as f64 / viewers as f64);
            let http = http.clone();
            let url = url.to_string();
            let progress = progress.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut s = Stats::default();
                let goal = Goal {
                    until,
                    frames,
                    progress: &progress,
                };
                if let Err(e) = viewer(&http, &url, &goal, &mut s).await {
                    s.error = Some(format!("{e:#}"));
                }
                if !s.finished {
                    progress.finished.fetch_add(1, Ordering::Relaxed);
                }
                s
            })
        })
        .collect();
    let mut report = WhepReport {
        viewers,
        min_video_frames: u64::MAX,
        ..WhepReport::default()
    };
    let mut first = Vec::new();
    let mut delays = Vec::new();
    for t in tasks {
        let s = t.await?;
        report.connected += usize::from(s.connected);
        report.playing += usize::from(s.video_frames > 0 && s.audio_packets > 0);
        report.reached += usize::from(frames.is_some_and(|f| s.video_frames >= f));
        report.video_frames += s.video_frames;
        report.audio_packets += s.audio_packets;
        if s.connected {
            report.min_video_frames = report.min_video_frames.min(s.video_frames);
        }
        report.bytes += s.bytes;
        first.extend(s.first_frame.map(|d| d.as_secs_f64() * 1000.0));
        delays.extend(s.delays_ms);
        if let Some(e) = s.error {
            report.errors += 1;
            if report.first_errors.len() < 3 {
                report.first_errors.push(e);
            }
        }
    }
    if report.connected == 0 {
        report.min_video_frames = 0;
    }
    report.seconds = started.elapsed().as_secs_f64();
    first.sort_by(f64::total_cmp);
    delays.sort_by(f32::total_cmp);
    report.p50_first_frame_ms = quantile(&first, 0.5);
    report.max_first_frame_ms = first.last().copied().unwrap_or(0.0);
    let delays: Vec<f64> = delays.into_iter().map(f64::from).collect();
    report.p50_delay_ms = quantile(&delays, 0.5);
    report.p99_delay_ms = quantile(&delays, 0.99);
    report.bench_cpu_s = super::bench::cpu_seconds() - cpu0;
    if let Some((cpu, seconds)) = server_cpu.await? {
        report.server_cpu_s = Some(cpu);
        report.server_cpu_ms_per_viewer_s = Some(cpu * 1000.0 / (seconds * viewers as f64));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!(
            "{} of {} viewers connected, {} playing; {} video frames (fewest {}), delay p50 {:.1} ms p99 {:.1} ms; {} errors",
            report.connected,
            report.viewers,
            report.playing,
            report.video_frames,
            report.min_video_frames,
            report.p50_delay_ms,
            report.p99_delay_ms,
            report.errors
        );
    }
    Ok(())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((q * n as f64) as usize).min(n - 1)],
    }
}

/// utime + stime of process `pid`, seconds (Linux).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// How long a player plays.
struct Goal<'a> {
    until: Instant,
    /// Video frames after which it counts itself finished.
    frames: Option<u64>,
    progress: &'a Progress,
}

/// One player: offer, answer, then media until the goal's end; DELETE at the end.
async fn viewer(
    http: &reqwest::Client,
    url: &str,
    goal: &Goal<'_>,
    s: &mut Stats,
) -> anyhow::Result<()> {
    let until = goal.until;
    // A socket on the address that reaches the server (loopback on one machine).
    let host = reqwest::Url::parse(url)?;
    let server_ip = tokio::net::lookup_host((
        host.host_str().context("no host")?,
        host.port_or_known_default().unwrap_or(80),
    ))
    .await?
    .next()
    .context("no address")?
    .ip();
    let bind: SocketAddr = match server_ip.is_loopback() {
        true => SocketAddr::new(server_ip, 0),
        false => "0.0.0.0:0".parse()?,
    };
    let socket = UdpSocket::bind(bind).await?;
    let local = socket.local_addr()?;
    let begun = Instant::now();
    let mut rtc = Rtc::new(begun);
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().context("no offer")?;
    let r = http
        .post(url)
        .header("Content-Type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await?;
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.text().await?;
    if status.as_u16() != 201 {
        bail!("POST {url}: {status} {}", body.trim());
    }
    let answer = SdpAnswer::from_sdp_string(&body)?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    let mut buf = vec![0u8; 2048];
    let result = loop {
        let timeout = match drain(&mut rtc, &socket, begun, s).await {
            Ok(t) => t,
            Err(e) => break Err(e),
        };
        if !s.finished && goal.frames.is_some_and(|f| s.video_frames >= f) {
            s.finished = true;
            goal.progress.finished.fetch_add(1, Ordering::Relaxed);
        }
        let stop = goal.progress.stop.load(Ordering::Relaxed);
        if stop || Instant::now() >= until || !rtc.is_alive() {
            break Ok(());
        }
        // Woken at least every 100 ms to see whether the run is over.
        let wake = timeout
            .min(until)
            .min(Instant::now() + Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                if let Ok(rcv) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                    rtc.handle_input(Input::Receive(Instant::now(), rcv))?;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    };
    if let Some(location) = location
        && let Ok(resource) = reqwest::Url::parse(url).and_then(|u| u.join(&location))
    {
        let _ = http.delete(resource).send().await;
    }
    let stopped = goal.progress.stop.load(Ordering::Relaxed);
    if !rtc.is_alive() && result.is_ok() && Instant::now() < until && !stopped {
        bail!("the session ended early");
    }
    result
}

/// Sends what the `Rtc` has queued and takes its events; its next timeout.
async fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    begun: Instant,
    s: &mut Stats,
) -> anyhow::Result<Instant> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination).await;
            }
            Output::Event(Event::Connected) => s.connected = true,
            Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                rtc.disconnect();
            }
            Output::Event(Event::MediaData(d)) => {
                s.bytes += d.data.len() as u64;
                if rtc
                    .media(d.mid)
                    .is_some_and(|m| m.kind() == MediaKind::Video)
                {
                    s.video_frames += 1;
                    s.first_frame.get_or_insert_with(|| begun.elapsed());
                    if let Some(sr) = d.last_sender_info {
                        // The frame's time on the sender's clock: its SR anchor plus the RTP
                        // time since.
                        let rate = f64::from(d.time.denom().max(1));
                        let since =
                            (d.time.numer() as i64 - sr.rtp_time.numer() as i64) as f64 / rate;
                        let shift = Duration::from_secs_f64(since.abs());
                        let sent = match since >= 0.0 {
                            true => sr.ntp_time + shift,
                            false => sr.ntp_time - shift,
                        };
                        if let Ok(delay) = SystemTime::now().duration_since(sent) {
                            s.delays_ms.push((delay.as_secs_f64() * 1000.0) as f32);
                        }
                    }
                } else {
                    s.audio_packets += 1;
                }
            }
            Output::Event(_) => {}
        }
    }
}
