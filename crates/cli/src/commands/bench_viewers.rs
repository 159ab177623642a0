//! `vshare bench --viewers N URL`: N LL-HLS viewers of one live media playlist, each a tokio task
//! with two keep-alive HTTP/1.1 connections of its own (one for playlists, one for media, as a
//! player has; `vshare_viewer::http1` reads the answers), behaving as hls.js and AVPlayer do: blocking
//! playlist reloads for the next part, every new part, the preload-hinted part asked for before
//! it exists, segments where no parts are listed (vshare-viewer's sans-IO `llhls::Viewer` says
//! what to fetch). Reports per-part delivery latency as JSON like the publisher bench: from
//! the part's publish time — the first moment any viewer learnt it existed (a playlist answer
//! that listed it, or the head of the held answer to a preload-hint request: the server sends
//! that head the moment the part is made) — to this viewer's last byte of it. A server slow to
//! serve all of its viewers shows in the tail; the wait for a part to be made does not.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vshare_viewer::http1::{Progress, ResponseReader};
use vshare_viewer::llhls::{MediaPlaylist, MediaRef, Viewer};

/// Longest a request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    status: u16,
    body: Bytes,
    head: Instant,
    done: Instant,
}

/// Where the viewers connect, and the `Host` they name.
#[derive(Clone)]
struct Origin {
    addr: SocketAddr,
    host: String,
}

/// One keep-alive HTTP/1.1 connection of a viewer, opened on first use and again after the
/// server closed it.
struct Conn {
    origin: Origin,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

/// A failed request, and whether it may be sent again on a new connection (nothing of an
/// answer came on a connection that had served before: the server closed it while idle).
struct Failed {
    what: String,
    retry: bool,
}

impl Conn {
    fn new(origin: Origin) -> Self {
        Conn {
            origin,
            stream: None,
            buf: BytesMut::new(),
        }
    }

    /// GET `url`, timed. Only a playlist's body is kept (`keep`); media bodies are counted as
    /// they arrive and dropped.
    async fn get(&mut self, url: &Url, keep: bool, stats: &mut Stats) -> Result<Timed, String> {
        stats.requests += 1;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        for _ in 0..2 {
            let attempt =
                tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(&target, keep, stats));
            let failed = match attempt.await {
                Ok(Ok(t)) => return Ok(t),
                Ok(Err(f)) => f,
                Err(_) => Failed {
                    what: format!("no answer within {REQUEST_TIMEOUT:?}"),
                    retry: false,
                },
            };
            self.stream = None;
            self.buf.clear();
            if !failed.retry {
                return Err(format!("{url}: {}", failed.what));
            }
        }
        Err(format!("{url}: the server closed two connections at once"))
    }

    async fn exchange(
        &mut self,
        target: &str,
        keep: bool,
        stats: &mut Stats,
    ) -> Result<Timed, Failed> {
        let reused = self.stream.is_some();
        let fail = |what: String, got_bytes: bool| Failed {
            what,
            retry: reused && !got_bytes,
        };
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.origin.addr)
                    .await
                    .map_err(|e| fail(format!("connect: {e}"), true))?;
                let _ = s.set_nodelay(true);
                self.stream.insert(s)
            }
        };
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vshare-bench\r\n\r\n",
            self.origin.host
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| fail(format!("send: {e}"), false))?;
        let mut reader = ResponseReader::new(false);
        let mut head = None;
        let mut body = BytesMut::new();
        loop {
            let progress = reader
                .advance(&mut self.buf)
                .map_err(|e| fail(e.to_string(), true))?;
            match progress {
                Progress::NeedMore => {
                    self.buf.reserve(64 * 1024);
                    let n = stream
                        .read_buf(&mut self.buf)
                        .await
                        .map_err(|e| fail(format!("receive: {e}"), head.is_some()))?;
                    if n == 0 {
                        match reader.closed() {
                            Ok(_) => break,
                            Err(e) => return Err(fail(e.to_string(), head.is_some())),
                        }
                    }
                }
                Progress::Head { status, keep_alive } => {
                    head = Some((status, keep_alive, Instant::now()));
                }
                Progress::Data(d) => {
                    stats.bytes += d.len() as u64;
                    if keep {
                        body.extend_from_slice(&d);
                    }
                }
                Progress::Done => break,
            }
        }
        let Some((status, keep_alive, head)) = head else {
            return Err(fail("no response head".into(), false));
        };
        if !keep_alive {
            self.stream = None;
            self.buf.clear();
        }
        Ok(Timed {
            status,
            body: body.freeze(),
            head,
            done: Instant::now(),
        })
    }
}

/// What one viewer runs.
#[derive(Clone)]
struct Plan {
    playlist: Url,
    start_delay: Duration,
    until: Instant,
}

/// One viewer until `plan.until` or the end of the stream.
async fn viewer(origin: Origin, plan: Plan) -> Stats {
    tokio::time::sleep(plan.start_delay).await;
    let mut playlists = Conn::new(origin.clone());
    let mut media = Conn::new(origin);
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
            let (pl, hinted) = tokio::join!(playlists.get(&url, true, &mut stats), async {
                match hint_url {
                    Some(u) => Some(media.get(&u, false, &mut hint_stats).await),
                    None => None,
                }
            });
            stats.requests += hint_stats.requests;
            stats.bytes += hint_stats.bytes;
            (pl, hinted)
        };
        let pl = match pl {
            Ok(t) if t.status == 200 => t,
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
                Ok(t) if t.status == 200 => {
                    let known = if listed { t.head.min(pl.done) } else { t.head };
                    stats.deliveries.push(Delivery {
                        key: (h.msn, h.part.unwrap_or(u32::MAX)),
                        known,
                        done: t.done,
                    });
                }
                // The segment closed before the hinted part: the server says so once it knows.
                Ok(t) if t.status == 404 && !listed => stats.hint_misses += 1,
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
            match media.get(&init, false, &mut stats).await {
                Ok(t) if t.status == 200 => {}
                Ok(t) => stats.error(format!("init: HTTP {}", t.status)),
                Err(e) => stats.error(e),
            }
        }
        for m in &fetches.media {
            let Ok(u) = plan.playlist.join(&m.uri) else {
                stats.error(format!("bad URI {}", m.uri));
                continue;
            };
            match media.get(&u, false, &mut stats).await {
                Ok(t) if t.status == 200 => {
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
    if playlist.scheme() != "http" {
        bail!(
            "give the live media playlist's http:// URL (…/live/<id>/index.m3u8): the viewers \
             speak plain HTTP/1.1, to a live server or to the cache in front of it"
        );
    }
    let host = playlist.host_str().context("the URL names no host")?;
    let port = playlist.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let origin = Origin {
        addr,
        host: match playlist.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        },
    };
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
            tokio::spawn(viewer(origin.clone(), plan))
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
