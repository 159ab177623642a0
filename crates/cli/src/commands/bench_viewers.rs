//! `vshare bench --viewers N URL`: N LL-HLS viewers of one live media playlist, each a tokio task
//! on one shared HTTP client (pooled connections), behaving as hls.js and AVPlayer do: blocking
//! playlist reloads for the next part, every new part, the preload-hinted part asked for before
//! it exists, segments where no parts are listed (vshare-source's sans-IO `llhls::Viewer` says
//! what to fetch). Reports per-part delivery latency as JSON like the publisher bench: from
//! the part's publish time — the first moment any viewer learnt it existed (a playlist answer
//! that listed it, or the head of the held answer to a preload-hint request: the server sends
//! that head the moment the part is made) — to this viewer's last byte of it. A server slow to
//! serve all of its viewers shows in the tail; the wait for a part to be made does not.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::{Client, StatusCode, Url};
use tokio::time::Instant;
use vshare_source::llhls::{MediaPlaylist, MediaRef, Viewer};

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewersReport {
    pub url: String,
    pub viewers: usize,
    pub duration_s: f64,
    pub wall_s: f64,
    /// `PART-TARGET` of the playlist, ms (0 without parts).
    pub part_target_ms: f64,
    /// Parts (and fallback segments) delivered whose latency was measured, all viewers.
    pub parts: u64,
    /// Of them, segments fetched because no parts were listed.
    pub segments: u64,
    /// Distinct parts (and segments) delivered: what the stream published meanwhile.
    pub distinct_parts: u64,
    pub p50_latency_ms: f64,
    pub p99_latency_ms: f64,
    pub max_latency_ms: f64,
    /// The p99 from when each viewer itself learnt of the part (its transfer and its own
    /// playlist's lag, without the server's fan-out before it).
    pub p99_own_latency_ms: f64,
    /// Answers other than 200 (a hinted part that was never made excepted) and failed requests.
    pub errors: u64,
    /// Preload-hinted parts answered 404 because the segment closed first (not an error).
    pub hint_misses: u64,
    pub bytes: u64,
    pub requests: u64,
    /// CPU seconds this bench process used (user + system).
    pub bench_cpu_s: f64,
    /// The first few errors, as text.
    pub first_errors: Vec<String>,
}

/// One timed delivery: the part (msn, index; segments: `u32::MAX`), when this viewer learnt it
/// existed, its last byte.
struct Delivery {
    key: (u64, u32),
    known: Instant,
    done: Instant,
}

#[derive(Default)]
struct Stats {
    deliveries: Vec<Delivery>,
    segments: u64,
    errors: u64,
    hint_misses: u64,
    bytes: u64,
    requests: u64,
    first_errors: Vec<String>,
    part_target_s: f64,
}

impl Stats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_errors.len() < 3 {
            self.first_errors.push(what);
        }
    }
}

/// One answer, with when its head and its last byte came.
struct Timed {
    status: StatusCode,
    body: Bytes,
    head: Instant,
    done: Instant,
}

async fn timed_get(client: &Client, url: Url, stats: &mut Stats) -> Result<Timed, String> {
    stats.requests += 1;
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let head = Instant::now();
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    stats.bytes += body.len() as u64;
    Ok(Timed {
        status,
        body,
        head,
        done: Instant::now(),
    })
}

/// What one viewer runs.
#[derive(Clone)]
struct Plan {
    playlist: Url,
    start_delay: Duration,
    until: Instant,
}

/// One viewer until `plan.until` or the end of the stream.
async fn viewer(client: Client, plan: Plan) -> Stats {
    tokio::time::sleep(plan.start_delay).await;
    let mut stats = Stats::default();
    let mut state = Viewer::new();
    let mut query: Option<String> = None;
    let mut hint: Option<MediaRef> = None;
    let mut first = true;
    while Instant::now() < plan.until {
        let mut url = plan.playlist.clone();
        url.set_query(query.as_deref());
        // The blocking reload and the hinted part go out together; both come back when the
        // part is made.
        let hint_url = hint.as_ref().and_then(|h| plan.playlist.join(&h.uri).ok());
        let (pl, hinted) = {
            let mut hint_stats = Stats::default();
            let (pl, hinted) = tokio::join!(timed_get(&client, url, &mut stats), async {
                match hint_url {
                    Some(u) => Some(timed_get(&client, u, &mut hint_stats).await),
                    None => None,
                }
            });
            stats.requests += hint_stats.requests;
            stats.bytes += hint_stats.bytes;
            (pl, hinted)
        };
        let pl = match pl {
            Ok(t) if t.status == StatusCode::OK => t,
            Ok(t) => {
                stats.error(format!("playlist: HTTP {}", t.status));
                query = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                stats.error(e);
                query = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(playlist) = MediaPlaylist::parse(&String::from_utf8_lossy(&pl.body)) else {
            stats.error("the answer is not a media playlist".into());
            break;
        };
        stats.part_target_s = playlist.part_target_s.unwrap_or(0.0);
        if let (Some(h), Some(answer)) = (hint.take(), hinted) {
            let listed = playlist
                .parts
                .iter()
                .any(|p| p.msn == h.msn && p.part == h.part);
            match answer {
                Ok(t) if t.status == StatusCode::OK => {
                    let known = if listed { t.head.min(pl.done) } else { t.head };
                    stats.deliveries.push(Delivery {
                        key: (h.msn, h.part.unwrap_or(u32::MAX)),
                        known,
                        done: t.done,
                    });
                }
                // The segment closed before the hinted part: the server says so once it knows.
                Ok(t) if t.status == StatusCode::NOT_FOUND && !listed => stats.hint_misses += 1,
                Ok(t) => stats.error(format!("{}: HTTP {}", h.uri, t.status)),
                Err(e) => stats.error(e),
            }
        }
        let fetches = state.on_playlist(&playlist);
        if let Some(init) = fetches
            .init
            .as_deref()
            .and_then(|u| plan.playlist.join(u).ok())
        {
            match timed_get(&client, init, &mut stats).await {
                Ok(t) if t.status == StatusCode::OK => {}
                Ok(t) => stats.error(format!("init: HTTP {}", t.status)),
                Err(e) => stats.error(e),
            }
        }
        for m in &fetches.media {
            let Ok(u) = plan.playlist.join(&m.uri) else {
                stats.error(format!("bad URI {}", m.uri));
                continue;
            };
            match timed_get(&client, u, &mut stats).await {
                Ok(t) if t.status == StatusCode::OK => {
                    // The first playlist's backlog was listed before this viewer came.
                    if !first {
                        stats.deliveries.push(Delivery {
                            key: (m.msn, m.part.unwrap_or(u32::MAX)),
                            known: pl.done,
                            done: t.done,
                        });
                        if m.part.is_none() {
                            stats.segments += 1;
                        }
                    }
                }
                Ok(t) => stats.error(format!("{}: HTTP {}", m.uri, t.status)),
                Err(e) => stats.error(e),
            }
        }
        first = false;
        hint = fetches.hint;
        if playlist.ended {
            break;
        }
        query = playlist.next_reload();
        if query.is_none() {
            // No blocking reloads: poll as hls.js does, every part target (or half a target
            // duration).
            let wait = playlist
                .part_target_s
                .unwrap_or(playlist.target_duration_s / 2.0);
            tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.1, 10.0))).await;
        }
    }
    stats
}

fn percentile(sorted: &[f32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

/// Runs `viewers` viewers of `url` for `duration_ms`, starts spread over `ramp_ms`.
pub async fn run(
    url: &str,
    viewers: usize,
    duration_ms: i64,
    ramp_ms: i64,
    json: bool,
) -> anyhow::Result<()> {
    if viewers == 0 {
        bail!("--viewers must be at least 1");
    }
    let playlist: Url = url.parse().with_context(|| format!("URL {url}"))?;
    if !matches!(playlist.scheme(), "http" | "https") {
        bail!("give the live media playlist's http(s) URL (…/live/<id>/index.m3u8)");
    }
    let client = Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        // Below the server's keep-alive limit (its header timeout, 10 s by default): a pooled
        // connection is never reused at the moment the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let duration = Duration::from_millis(duration_ms.max(0) as u64);
    let ramp = Duration::from_millis(ramp_ms.max(0) as u64);
    if !json {
        eprintln!(
            "bench: {viewers} LL-HLS viewers of {url} for {:.0} s",
            duration.as_secs_f64()
        );
    }
    let cpu0 = super::bench::cpu_seconds();
    let started = Instant::now();
    let until = started + ramp + duration;
    let tasks: Vec<_> = (0..viewers)
        .map(|i| {
            let plan = Plan {
                playlist: playlist.clone(),
                start_delay: ramp.mul_f64(i as f64 / viewers as f64),
                until,
            };
            tokio::spawn(viewer(client.clone(), plan))
        })
        .collect();
    let mut all = Stats::default();
    let mut deliveries = Vec::new();
    for t in tasks {
        let s = t.await?;
        deliveries.extend(s.deliveries);
        all.segments += s.segments;
        all.hint_misses += s.hint_misses;
        all.bytes += s.bytes;
        all.requests += s.requests;
        all.part_target_s = all.part_target_s.max(s.part_target_s);
        all.errors += s.errors;
        for e in s.first_errors {
            if all.first_errors.len() < 5 {
                all.first_errors.push(e);
            }
        }
    }
    // A part's publish time: the first moment any viewer knew of it.
    let mut published: HashMap<(u64, u32), Instant> = HashMap::new();
    for d in &deliveries {
        published
            .entry(d.key)
            .and_modify(|t| *t = (*t).min(d.known))
            .or_insert(d.known);
    }
    let ms = |from: Instant, to: Instant| {
        (to.saturating_duration_since(from).as_secs_f64() * 1000.0) as f32
    };
    let mut latencies: Vec<f32> = deliveries
        .iter()
        .map(|d| ms(published.get(&d.key).copied().unwrap_or(d.known), d.done))
        .collect();
    latencies.sort_by(f32::total_cmp);
    let mut own: Vec<f32> = deliveries.iter().map(|d| ms(d.known, d.done)).collect();
    own.sort_by(f32::total_cmp);
    let report = ViewersReport {
        url: url.to_string(),
        viewers,
        duration_s: duration.as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        part_target_ms: all.part_target_s * 1000.0,
        parts: latencies.len() as u64,
        segments: all.segments,
        distinct_parts: published.len() as u64,
        p50_latency_ms: percentile(&latencies, 0.50),
        p99_latency_ms: percentile(&latencies, 0.99),
        max_latency_ms: latencies.last().copied().map_or(0.0, f64::from),
        p99_own_latency_ms: percentile(&own, 0.99),
        errors: all.errors,
        hint_misses: all.hint_misses,
        bytes: all.bytes,
        requests: all.requests,
        bench_cpu_s: super::bench::cpu_seconds() - cpu0,
        first_errors: all.first_errors,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} viewers, {:.0} s: {} parts, latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (part target {:.0} ms); {} errors, {} requests, {:.1} MB; bench CPU {:.1} s",
            report.viewers,
            report.duration_s,
            report.parts,
            report.p50_latency_ms,
            report.p99_latency_ms,
            report.max_latency_ms,
            report.part_target_ms,
            report.errors,
            report.requests,
            report.bytes as f64 / 1e6,
            report.bench_cpu_s
        );
        for e in &report.first_errors {
            println!("  {e}");
        }
    }
    if report.parts == 0 {
        bail!("no part was delivered");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_of_sorted_latencies() {
        let v: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
        assert_eq!(percentile(&[7.0], 0.5), 7.0);
    }
}
