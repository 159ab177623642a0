//! `vshare share`: the source's message management. Takes a video's attribute records from the
//! server, packs them in the chosen form and sends them to one or many numbers: by default one
//! SMS with the short link `/w/<id>` (text and WAP SI), every record with `--full`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use vshare_messaging::compose::{self, As, Extent};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_smpp::{BindKind, Config};
use vshare_sms::split::ConcatRef;
use vshare_wap::pap::PushMessage;

/// How to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// SMPP v3.4 to an SMSC (`vshare smsc`, Kannel's SMSC side, an operator).
    Smpp,
    /// PAP to a WAP Push Proxy Gateway (wap-si / wap-sl only).
    Pap,
    /// Print the SMS-SUBMIT PDUs in hex, one part per line (AT+CMGS PDU mode).
    Print,
    /// Print an sms: link for a phone's own messaging app (text / xml only).
    Uri,
}

#[derive(clap::Args)]
pub struct Args {
    /// The video id (as in the server's /api/v1/videos).
    pub video: String,
    /// The server's HTTP API; `file:PATH` reads a JSON fixture instead.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Recipients, comma-separated: +8613800138000,+8613900139000.
    #[arg(long, value_delimiter = ',', required = true)]
    pub to: Vec<String>,
    /// Message form.
    #[arg(long = "as", value_enum, default_value = "text")]
    pub form: As,
    /// How to send.
    #[arg(long, value_enum, default_value = "print")]
    pub via: Via,
    /// Sender address (a number, or up to 11 letters).
    #[arg(long, default_value = "vshare")]
    pub from: String,
    /// SMSC for --via smpp, host:port.
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub smsc: String,
    #[arg(long, default_value = "vshare")]
    pub system_id: String,
    #[arg(long, default_value = "vshare", env = "VSHARE_SMPP_PASSWORD")]
    pub password: String,
    /// submit_sm outstanding at once.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Ask for delivery receipts and wait this many seconds for them (0: do not ask).
    #[arg(long, default_value_t = 0)]
    pub receipts: u64,
    /// PPG for --via pap.
    #[arg(long, default_value = "http://127.0.0.1:8080/wappush")]
    pub ppg: String,
    #[arg(long)]
    pub ppg_user: Option<String>,
    #[arg(long, env = "VSHARE_PPG_PASSWORD")]
    pub ppg_password: Option<String>,
    /// Which records: all (default), live, or vod.
    #[arg(long, default_value = "all")]
    pub records: String,
    /// Send every record (text, WAP SI) in as many parts as it takes, instead of one SMS with
    /// the short link and the attributes that fit.
    #[arg(long)]
    pub full: bool,
    /// Where the short link points [default: --server, or the records' own host with a
    /// `file:` fixture].
    #[arg(long)]
    pub link_base: Option<String>,
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.to_string(),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let video = vshare_messaging::api::fetch_video(&args.server, &args.video).await?;
    let records: Vec<_> = video
        .attributes
        .iter()
        .filter(|r| match args.records.as_str() {
            "live" => r.kind == vshare_attributes::Kind::Live,
            "vod" => r.kind == vshare_attributes::Kind::Vod,
            _ => true,
        })
        .cloned()
        .collect();
    if records.is_empty() {
        bail!(
            "video {} ({}) has no {} attribute records yet",
            video.id,
            video.state,
            args.records
        );
    }
    eprintln!(
        "video {} \"{}\" ({}): {} record(s)",
        video.id,
        video.title,
        video.state,
        records.len()
    );
    // A concatenation reference that differs from one share to the next.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(1);
    let reference = ConcatRef::Eight(seed as u8);
    let tid = (seed >> 8) as u8;
    let extent = if args.full {
        Extent::Full
    } else {
        let link_base = match &args.link_base {
            Some(b) => b.clone(),
            None if args.server.starts_with("http") => args.server.clone(),
            None => compose::primary(&records)
                .map(|r| origin(&r.url))
                .unwrap_or_default(),
        };
        Extent::Compact { link_base }
    };

    match args.via {
        Via::Uri => println!(
            "{}",
            compose::sms_uri_of(
                &args.to,
                &compose::message_body(&records, args.form, &extent)?
            )
        ),
        Via::Print => {
            let seg = compose::compose_message(&records, args.form, &extent, reference, tid)?;
            for to in &args.to {
                let pdus = compose::to_tpdus(to, &seg, 0)?;
                eprintln!("{to}: {} part(s), DCS 0x{:02X}", pdus.len(), seg.dcs.0);
                for p in pdus {
                    println!("{}", vshare_sms::hex::encode(&p));
                }
            }
        }
        Via::Smpp => {
            let seg = compose::compose_message(&records, args.form, &extent, reference, tid)?;
            eprintln!(
                "{} part(s) per number, {}",
                seg.parts.len(),
                compose::alphabet_name(&seg)
            );
            let mut opts = ClientOptions::new(
                &args.smsc,
                BindKind::Transceiver,
                &args.system_id,
                &args.password,
            );
            opts.config = Config {
                window: args.window.max(1),
                ..Config::default()
            };
            let mut all = Vec::new();
            let mut owners = Vec::new();
            for to in &args.to {
                let sms = compose::to_smpp(&args.from, to, &seg, args.receipts > 0)?;
                owners.extend(std::iter::repeat_n(to.clone(), sms.len()));
                all.extend(sms);
            }
            let (results, mut client) = Client::submit_with_reconnect(&opts, all, 3).await?;
            let mut failed = 0;
            let mut ids = std::collections::HashSet::new();
            for (to, r) in owners.iter().zip(&results) {
                match r {
                    Ok(id) => {
                        println!("{to}: accepted, message id {id}");
                        ids.insert(id.clone());
                    }
                    Err(e) => {
                        eprintln!("{to}: {e}");
                        failed += 1;
                    }
                }
            }
            if args.receipts > 0 && !ids.is_empty() {
                let deadline = Instant::now() + Duration::from_secs(args.receipts);
                while !ids.is_empty() {
                    let Some(sm) = client.recv(Some(deadline)).await? else {
                        break;
                    };
                    if let Some(r) = vshare_smpp::receipt::Receipt::parse(&String::from_utf8_lossy(
                        &sm.short_message,
                    )) && ids.remove(&r.id)
                    {
                        println!("{}: receipt for {}: {}", sm.source.display(), r.id, r.stat);
                    }
                }
                if !ids.is_empty() {
                    eprintln!(
                        "{} part(s) without a receipt after {} s",
                        ids.len(),
                        args.receipts
                    );
                }
            }
            client.unbind().await?;
            if failed > 0 {
                bail!("{failed} of {} part(s) were not accepted", results.len());
            }
        }
        Via::Pap => {
            let (content_type, content) = match args.form {
                As::WapSi => (
                    "text/vnd.wap.si",
                    match &extent {
                        Extent::Full => compose::service_indication(&records)?.to_xml(),
                        Extent::Compact { link_base } => {
                            compose::compact_service_indication(link_base, &records, tid)?.to_xml()
                        }
                    },
                ),
                As::WapSl => {
                    let r = compose::primary(&records).context("no record")?;
                    (
                        "text/vnd.wap.sl",
                        vshare_wap::sl::ServiceLoading::new(&r.url).to_xml(),
                    )
                }
                other => bail!(
                    "--via pap carries WAP Push only: use --as wap-si or wap-sl, not {other:?}"
                ),
            };
            let msg = PushMessage {
                push_id: format!("vshare-{}-{seed:08x}@vshare", video.id),
                recipients: args.to.clone(),
                content_type: content_type.into(),
                content,
            };
            let auth = args
                .ppg_user
                .as_deref()
                .map(|u| (u, args.ppg_password.as_deref().unwrap_or("")));
            let answer = vshare_messaging::pap::push(&args.ppg, &msg, auth).await?;
            println!(
                "PPG accepted push {}: {} {}",
                msg.push_id, answer.code, answer.desc
            );
        }
    }
    Ok(())
}
