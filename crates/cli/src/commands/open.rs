//! `vshare open`: the target's information agent and player. Reads a message (hex PDU parts, a
//! file of them, an SMPP receiver bind, a UDP datagram, or the proxy's WebSocket), reassembles
//! and decodes it, shows the attributes, and downloads, streams or plays live with a matching
//! player. A compact message carries only the short link (`/w/<id>`) and a summary: the full
//! records are fetched from the link.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use vshare_attributes::{AttributeRecord, Kind};
use vshare_messaging::player::{self, Player};
use vshare_messaging::receive::{
    Received, decode_message, parse_hex_pdu, reassemble_all, user_data_of_sm,
};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_smpp::BindKind;
use vshare_sms::reassembly::Reassembler;

#[derive(clap::Args)]
pub struct Args {
    /// SMS PDUs in hex (SMS-DELIVER or SMS-SUBMIT, with or without SMSC address), one per part.
    pub pdus: Vec<String>,
    /// A file of hex PDUs, one per line (`-` for stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Receive over SMPP: bind as receiver at this SMSC (host:port)…
    #[arg(long)]
    pub smsc: Option<String>,
    /// …for this number.
    #[arg(long, requires = "smsc")]
    pub number: Option<String>,
    #[arg(long, default_value = "phone")]
    pub system_id: String,
    #[arg(long, default_value = "phone", env = "VSHARE_SMPP_PASSWORD")]
    pub password: String,
    /// Receive over IP instead. `HOST:PORT`: wait for one UDP datagram on this address (WDP
    /// port 2948 carries a WSP push; our TLV, XML or text forms are read as they are).
    /// `http://…` or `ws://…` (a vshare server): listen on the communication proxy's WebSocket
    /// as listener `--id`, subscribed to `--source`, until a message carries what was asked
    /// for (the VOD with --download or --stream, the live stream with --live, else any).
    #[arg(long, conflicts_with = "smsc")]
    pub listen: Option<String>,
    /// With --listen on a server: the source to subscribe to (a stream key's name or id).
    #[arg(long, requires = "listen")]
    pub source: Option<String>,
    /// With --listen on a server: the listener id; the same id (with its secret) later gets
    /// what arrived while it was away [default: a new random id].
    #[arg(long, requires = "listen")]
    pub id: Option<String>,
    /// With --listen on a server: the listener's secret (16 or more characters), which the
    /// first connection that names a listener binds it to [default: a new random one].
    #[arg(
        long,
        requires = "listen",
        env = "VSHARE_LISTEN_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// Seconds to wait for a complete message over SMPP or --listen.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Fetch the VOD file, check its size against the attributes, then play it.
    #[arg(long, conflicts_with_all = ["stream", "live"])]
    pub download: bool,
    /// Where --download writes [default: ./<video id>.<format>].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Play the VOD over HTTP.
    #[arg(long, conflicts_with = "live")]
    pub stream: bool,
    /// Play the live stream.
    #[arg(long)]
    pub live: bool,
    /// Player: auto (best installed match), none (fetch only, no window), or a name.
    #[arg(long, default_value = "auto")]
    pub player: String,
    /// Ask which installed player to use.
    #[arg(long)]
    pub choose: bool,
    /// Print the decoded records as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

async fn receive(args: &Args) -> anyhow::Result<Vec<Received>> {
    let mut parts = Vec::new();
    for p in &args.pdus {
        parts.push(parse_hex_pdu(p)?);
    }
    if let Some(path) = &args.file {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut text)?;
        } else {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        for (i, line) in text
            .lines()
            .map(str::trim)
            .enumerate()
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        {
            parts.push(
                parse_hex_pdu(line)
                    .with_context(|| format!("{} line {}", path.display(), i + 1))?,
            );
        }
    }
    if !parts.is_empty() {
        let messages = reassemble_all(parts, Instant::now());
        return messages.iter().map(decode_message).collect();
    }
    if let Some(addr) = &args.listen {
        if is_server_url(addr) {
            return listen_proxy(args, addr).await;
        }
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding UDP {addr}"))?;
        eprintln!(
            "listening on UDP {}; waiting up to {} s",
            sock.local_addr()?,
            args.timeout
        );
        let mut buf = vec![0u8; 65_536];
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(args.timeout), sock.recv_from(&mut buf))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("no datagram on {addr} within {} s", args.timeout)
                })??;
        eprintln!("{n} bytes from {from}");
        return Ok(vec![vshare_messaging::receive::decode_datagram(&buf[..n])?]);
    }
    let (Some(smsc), Some(number)) = (&args.smsc, &args.number) else {
        bail!("give PDUs, --file, --listen, or --smsc with --number");
    };
    let mut opts = ClientOptions::new(smsc, BindKind::Receiver, &args.system_id, &args.password);
    opts.address_range = number.clone();
    let mut client = Client::connect(&opts).await?;
    eprintln!(
        "bound to {smsc} as receiver for {number}; waiting up to {} s",
        args.timeout
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut r = Reassembler::new(Duration::from_secs(args.timeout.max(1)));
    let message = loop {
        let Some(sm) = client.recv(Some(deadline)).await? else {
            let partial =
                r.handle_timeout(Instant::now() + Duration::from_secs(args.timeout.max(1)));
            if let Some(m) = partial.first() {
                bail!(
                    "only parts {:?} missing {:?} of a {}-part message arrived",
                    m.parts,
                    m.missing,
                    m.parts
                );
            }
            bail!("no message for {number} within {} s", args.timeout);
        };
        if sm.esm_class & vshare_smpp::pdu::esm::DELIVERY_RECEIPT != 0 {
            continue;
        }
        let (dcs, ud) = user_data_of_sm(&sm)?;
        if let Some(m) = r.push(Instant::now(), &sm.source.display(), dcs, ud) {
            break m;
        }
    };
    client.unbind().await.ok();
    Ok(vec![decode_message(&message)?])
}

/// Whether `--listen` names a vshare server (its proxy's WebSocket) rather than a UDP address.
fn is_server_url(addr: &str) -> bool {
    ["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|p| addr.starts_with(p))
}

/// Whether a message's records answer what the options ask for.
fn has_wanted(args: &Args, records: &[AttributeRecord]) -> bool {
    if args.live {
        records.iter().any(|r| r.kind == Kind::Live)
    } else if args.stream {
        records.iter().any(|r| r.kind == Kind::Vod)
    } else if args.download {
        records
            .iter()
            .any(|r| r.kind == Kind::Vod && r.format == "mp4")
    } else {
        !records.is_empty()
    }
}

/// Listens on the proxy's WebSocket (`/api/v1/listen`) until a notification carries what the
/// options ask for; earlier ones (the live record while waiting for the VOD) are shown and
/// acknowledged as they come.
async fn listen_proxy(args: &Args, base: &str) -> anyhow::Result<Vec<Received>> {
    let http_base = if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        base.to_string()
    };
    // The client adds the path itself; accept a base given with it.
    let http_base = http_base
        .trim_end_matches('/')
        .trim_end_matches("/api/v1/listen")
        .to_string();
    let api = vshare_proxy::client::ApiClient::new(&http_base, None);
    let (id, secret) = super::subscribe::listener_identity(args.id.clone(), args.secret.clone());
    match &args.source {
        Some(s) => eprintln!(
            "listening on {http_base} as {id} for videos of {s}; waiting up to {} s",
            args.timeout
        ),
        None => eprintln!(
            "listening on {http_base} as {id}; waiting up to {} s",
            args.timeout
        ),
    }
    let mut wanted = None;
    let listening = api.listen(&id, &secret, args.source.as_deref(), |m| {
        eprintln!(
            "notification {} from {}: video {}",
            m.notification, m.source, m.video_id
        );
        if has_wanted(args, &m.records) {
            wanted = Some(m.records);
            false
        } else {
            for r in &m.records {
                show(r);
            }
            true
        }
    });
    tokio::time::timeout(Duration::from_secs(args.timeout), listening)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no notification with what was asked for from {http_base} within {} s",
                args.timeout
            )
        })??;
    let records = wanted.context("the listener stopped without a notification")?;
    Ok(vec![Received::Records {
        form: vshare_attributes::forms::Form::Text,
        records,
    }])
}

fn show(r: &AttributeRecord) {
    let kind = if r.kind == Kind::Live { "live" } else { "vod" };
    println!("{kind} {} {}", r.format, r.url);
    let mut facts = Vec::new();
    if r.width > 0 {
        facts.push(format!("{}x{}", r.width, r.height));
    }
    if r.frame_rate > 0.0 {
        facts.push(format!("{} fps", r.frame_rate));
    }
    if r.bitrate > 0 {
        facts.push(format!("{} kb/s", r.bitrate / 1000));
    }
    if !r.codecs.is_empty() {
        facts.push(r.codecs.clone());
    }
    if r.size > 0 {
        facts.push(format!("{} bytes", r.size));
    }
    if r.duration_ms > 0 {
        facts.push(format!("{:.1} s", r.duration_ms as f64 / 1000.0));
    }
    if r.audio_sample_rate > 0 {
        facts.push(format!("{} Hz × {}", r.audio_sample_rate, r.audio_channels));
    }
    if !r.title.is_empty() {
        facts.push(format!("\"{}\"", r.title));
    }
    if !facts.is_empty() {
        println!("    {}", facts.join(", "));
    }
}

fn pick_player(args: &Args, record: &AttributeRecord) -> anyhow::Result<Option<Player>> {
    if args.player == "none" {
        return Ok(None);
    }
    let installed = player::installed();
    if args.choose {
        if installed.is_empty() {
            bail!("no player installed (mpv, ffplay or vlc)");
        }
        for (i, p) in installed.iter().enumerate() {
            eprintln!("  {}) {}", i + 1, p.program());
        }
        eprint!("player [1]: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let i: usize = line.trim().parse().unwrap_or(1);
        return Ok(installed.get(i.saturating_sub(1)).copied());
    }
    if args.player != "auto" {
        let p = <Player as clap::ValueEnum>::from_str(&args.player, true)
            .map_err(|e| anyhow::anyhow!("--player: {e}"))?;
        return Ok(Some(p));
    }
    match player::choose(record, &installed) {
        Some(p) => Ok(Some(p)),
        None => bail!(
            "no installed player plays {} ({}); install mpv, ffplay or vlc, or use --player none",
            record.format,
            record.codecs
        ),
    }
}

async fn download(record: &AttributeRecord, output: &PathBuf) -> anyhow::Result<u64> {
    let mut resp = reqwest::get(&record.url)
        .await
        .with_context(|| format!("GET {}", record.url))?;
    if !resp.status().is_success() {
        bail!("GET {}: HTTP {}", record.url, resp.status());
    }
    let total = resp
        .content_length()
        .or((record.size > 0).then_some(record.size));
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total.unwrap_or(0));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut file = tokio::fs::File::create(output)
        .await
        .with_context(|| format!("creating {}", output.display()))?;
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        file.write_all(&chunk).await?;
        n += chunk.len() as u64;
        bar.set_position(n);
    }
    file.flush().await?;
    bar.finish_and_clear();
    if record.size > 0 && n != record.size {
        bail!(
            "downloaded {n} bytes but the attributes say {} — the file is incomplete or changed",
            record.size
        );
    }
    Ok(n)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let received = receive(&args).await?;
    let mut records = Vec::new();
    for r in &received {
        match r {
            Received::Records { .. } if args.listen.as_deref().is_some_and(is_server_url) => {
                eprintln!("message: attribute records, from the proxy's WebSocket")
            }
            Received::Records { form, .. } => eprintln!("message: attribute records, {form} form"),
            Received::ServiceIndication { si, .. } => {
                eprintln!("message: WAP Push SI {}", si.si_id.as_deref().unwrap_or(""))
            }
            Received::ServiceLoading { .. } => eprintln!("message: WAP Push SL"),
            Received::Text(t) => eprintln!("message: plain text: {t}"),
            Received::Link { compact, wap } => {
                let via = if *wap { "WAP Push SI" } else { "SMS" };
                eprintln!(
                    "message: short link {} ({via}) {}",
                    compact.link,
                    compact.summary()
                );
                match vshare_messaging::api::fetch_link(&compact.link).await {
                    Ok(full) => {
                        eprintln!("fetched {} record(s) from {}", full.len(), compact.link);
                        records.extend(full);
                    }
                    Err(e) if args.download || args.stream || args.live => {
                        return Err(e.context("fetching the records from the short link"));
                    }
                    Err(e) => {
                        eprintln!("could not fetch the records: {e:#}");
                        records.extend(r.records());
                    }
                }
                continue;
            }
        }
        records.extend(r.records());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        for r in &records {
            show(r);
        }
    }
    let wanted = if args.live {
        records
            .iter()
            .find(|r| r.kind == Kind::Live)
            .context("the message has no live stream")?
    } else if args.stream {
        records
            .iter()
            .find(|r| r.kind == Kind::Vod && r.format == "hls")
            .or_else(|| records.iter().find(|r| r.kind == Kind::Vod))
            .context("the message has no VOD record to stream")?
    } else if args.download {
        records
            .iter()
            .find(|r| r.kind == Kind::Vod && r.format == "mp4")
            .context("the message has no MP4 to download")?
    } else {
        return Ok(());
    };
    let player = pick_player(&args, wanted)?;
    let target = if args.download {
        let ext = if wanted.format == "mp4" { "mp4" } else { "bin" };
        let out = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.{ext}", wanted.video_id)));
        let n = download(wanted, &out).await?;
        eprintln!(
            "downloaded {} ({n} bytes, size matches the attributes)",
            out.display()
        );
        out.display().to_string()
    } else {
        wanted.url.clone()
    };
    match player {
        Some(p) => {
            eprintln!("playing with {}", p.program());
            player::play(p, &target, wanted).await
        }
        None if !args.download => {
            // Headless: fetch the playlist or file head to show it is reachable.
            let resp = reqwest::get(&target)
                .await
                .with_context(|| format!("GET {target}"))?;
            if !resp.status().is_success() {
                bail!("GET {target}: HTTP {}", resp.status());
            }
            eprintln!(
                "{target} is reachable (HTTP {}); --player none: not playing",
                resp.status()
            );
            Ok(())
        }
        None => Ok(()),
    }
}
