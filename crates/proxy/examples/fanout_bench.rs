//! Fan-out benchmark of the communication proxy (run by `bench/fanout.sh`):
//!
//! - `fanout_bench sms --count 100000 [--smsc host:port]`: one event to N SMS subscribers
//!   through an SMSC (a `vshare smsc` process, or one in this process without `--smsc`);
//!   prints the time from the event to the last row recorded `sent`, and where the SMS
//!   dispatcher spent its time.
//! - `fanout_bench ws --count 10000`: one event to N WebSocket listeners on loopback (in a second
//!   process it starts, `ws-clients`); prints the time from the event to the last listener's
//!   receipt of the message.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::AsyncBufReadExt;
use vshare_attributes::{AttributeRecord, Kind};
use vshare_proxy::{Channel, Event, EventKind, Proxy, ProxyConfig, SmppConfig};

fn record() -> AttributeRecord {
    AttributeRecord {
        kind: Kind::Live,
        video_id: "bench1".into(),
        url: "http://127.0.0.1:8080/live/bench1/index.m3u8".into(),
        poster: String::new(),
        format: "ll-hls".into(),
        codecs: "avc1.42c01e,mp4a.40.2".into(),
        width: 640,
        height: 360,
        frame_rate: 30.0,
        bitrate: 800_000,
        size: 0,
        duration_ms: 0,
        dvr: 0,
        frames_coming: 0,
        audio_sample_rate: 44_100,
        audio_channels: 2,
        title: "bench".into(),
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let count: usize = arg("--count")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let url = arg("--database")
        .unwrap_or_else(|| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));
    let mut config = ProxyConfig::new(&url);
    config.batch = arg("--batch")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(2000);
    let event = Event::new(
        EventKind::Live,
        "bench1",
        "key1",
        Some("alice"),
        vec![record()],
    );
    match mode.as_str() {
        "sms" => {
            let smsc = match arg("--smsc") {
                Some(a) => a,
                None => {
                    let (a, _h) = vshare_messaging::smsc::Smsc::new(Default::default())
                        .spawn("127.0.0.1:0")
                        .await?;
                    a.to_string()
                }
            };
            let window: usize = arg("--window")
                .map(|c| c.parse())
                .transpose()?
                .unwrap_or(256);
            config.smpp = Some(SmppConfig {
                addr: smsc,
                system_id: "proxy".into(),
                password: "pw".into(),
                number: "+10000".into(),
                window,
            });
            let proxy = Proxy::open(config).await?;
            let numbers: Vec<String> = (0..count).map(|i| format!("+86139{i:08}")).collect();
            let t = Instant::now();
            proxy
                .store
                .bulk_active("alice", Channel::Sms, "text", &numbers, 1)
                .await?;
            println!(
                "setup: {count} subscriptions in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            let _tasks = proxy.spawn();
            let t0 = Instant::now();
            let n = proxy.handle_event(&event).await?;
            let t_event = t0.elapsed();
            loop {
                let counts = proxy.store.state_counts().await?;
                let sent: i64 = counts
                    .iter()
                    .filter(|(s, _)| s != "queued" && s != "sending")
                    .map(|(_, n)| n)
                    .sum();
                if sent as u64 >= n {
                    let total = t0.elapsed();
                    println!("states: {counts:?}");
                    println!(
                        "sms fan-out: {n} notifications; event + outbox rows {:.2} s; last sent after {:.2} s ({:.0} msg/s)",
                        t_event.as_secs_f64(),
                        total.as_secs_f64(),
                        n as f64 / total.as_secs_f64()
                    );
                    let tm = &proxy.sms_timings;
                    let s =
                        |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
                    println!(
                        "dispatcher time: claim {:.2} s, compose {:.2} s, mark handed-over {:.2} s, SMPP submit {:.2} s, record {:.2} s",
                        s(&tm.claim_us),
                        s(&tm.compose_us),
                        s(&tm.mark_us),
                        s(&tm.submit_us),
                        s(&tm.record_us)
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        "ws" => {
            // The listeners run in a second process (each side needs one descriptor per socket).
            let proxy = Proxy::open(config).await?;
            let ids: Vec<String> = (0..count).map(|i| format!("l{i}")).collect();
            proxy
                .store
                .bulk_active("alice", Channel::Websocket, "json", &ids, 1)
                .await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let router = proxy.router(None);
            tokio::spawn(async move { axum::serve(listener, router).await });
            let _tasks = proxy.spawn();
            let mut child = tokio::process::Command::new(std::env::current_exe()?)
                .args([
                    "ws-clients",
                    "--server",
                    &addr.to_string(),
                    "--count",
                    &count.to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("child stdout"))?;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let ready = lines.next_line().await?.unwrap_or_default();
            println!("setup: {ready}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let t0 = unix_us();
            let n = proxy.handle_event(&event).await?;
            let t_event = unix_us() - t0;
            let done = lines.next_line().await?.unwrap_or_default();
            let v: Vec<i64> = done
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            anyhow::ensure!(v.len() == 3, "listeners said {done:?}");
            let s = |us: i64| (us - t0) as f64 / 1e6;
            println!(
                "ws fan-out: {n} notifications; event + outbox rows {:.3} s; first {:.3} s, median {:.3} s, last {:.3} s after the event",
                t_event as f64 / 1e6,
                s(v[0]),
                s(v[1]),
                s(v[2])
            );
            child.wait().await?;
        }
        "ws-clients" => {
            let server = arg("--server").ok_or_else(|| anyhow::anyhow!("--server"))?;
            let t = Instant::now();
            let mut conns = Vec::with_capacity(count);
            for i0 in (0..count).step_by(250) {
                let batch: Vec<_> = (i0..(i0 + 250).min(count))
                    .map(|i| {
                        let url = format!(
                            "ws://{server}/api/v1/listen?id=l{i}&secret=listener-secret-{i:08}"
                        );
                        tokio::spawn(async move { tokio_tungstenite::connect_async(url).await })
                    })
                    .collect();
                for b in batch {
                    conns.push(b.await??.0);
                }
            }
            let received: Arc<Mutex<Vec<i64>>> = Arc::default();
            let mut readers = Vec::with_capacity(count);
            for mut ws in conns {
                let received = received.clone();
                readers.push(tokio::spawn(async move {
                    if let Some(Ok(_)) = ws.next().await {
                        received
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(unix_us());
                    }
                    ws
                }));
            }
            println!(
                "{count} listeners connected in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            let deadline = Instant::now() + Duration::from_secs(120);
            while received.lock().unwrap_or_else(|e| e.into_inner()).len() < count {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "not all listeners got the message"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut times = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
            times.sort_unstable();
            println!(
                "{} {} {}",
                times[0],
                times[times.len() / 2],
                times[times.len() - 1]
            );
        }
        _ => anyhow::bail!(
            "usage: fanout_bench sms|ws --count N [--smsc host:port] [--window W] [--batch B] [--database URL]"
        ),
    }
    Ok(())
}

/// Microseconds since the Unix epoch (both processes read the same clock).
fn unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
