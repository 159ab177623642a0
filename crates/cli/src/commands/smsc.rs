//! `vshare smsc`: a development SMSC (SMPP v3.4 server) that stores and forwards messages
//! between binds by destination number and sends delivery receipts; `--bench` measures
//! submit_sm per second over one bind and encode+decode rates of the message forms.

use std::time::Duration;

use vshare_messaging::bench;
use vshare_messaging::compose::As;
use vshare_messaging::smsc::{Smsc, SmscOptions};
use vshare_smpp::Config;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub listen: String,
    /// system_id in bind responses.
    #[arg(long, default_value = "vshare-smsc")]
    pub system_id: String,
    /// Require this password on bind (default: accept any).
    #[arg(long, env = "VSHARE_SMSC_PASSWORD")]
    pub password: Option<String>,
    /// deliver_sm outstanding per receiver bind.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Answer every Nth submit_sm with throttling (0x58), to test clients' backoff.
    #[arg(long)]
    pub throttle_every: Option<u64>,
    /// Run the benchmark instead of serving: an SMSC on a loopback port (or --bench-target),
    /// one transmitter bind per window size.
    #[arg(long)]
    pub bench: bool,
    /// Windows to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,64")]
    pub bench_windows: Vec<usize>,
    /// Messages per window.
    #[arg(long, default_value_t = 20_000)]
    pub bench_count: usize,
    /// An SMSC to benchmark instead of an in-process one.
    #[arg(long)]
    pub bench_target: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let opts = SmscOptions {
        system_id: args.system_id.clone(),
        password: args.password.clone(),
        config: Config {
            window: args.window.max(1),
            ..Config::default()
        },
        throttle_every: args.throttle_every,
    };
    if args.bench {
        let target = match &args.bench_target {
            Some(t) => t.clone(),
            None => Smsc::new(opts).spawn("127.0.0.1:0").await?.0.to_string(),
        };
        println!(
            "SMPP submit_sm over one bind to {target}, {} messages each:",
            args.bench_count
        );
        for w in &args.bench_windows {
            let r = bench::submit_rate(&target, *w, args.bench_count).await?;
            println!(
                "  window {:>3}: {:>9.0} submit_sm/s ({:.2} s)",
                r.window,
                r.per_second,
                r.elapsed.as_secs_f64()
            );
        }
        println!("encode + decode per core (records → SMS parts → reassembled → records):");
        for form in [As::Text, As::Tlv, As::Xml, As::WapSi, As::WapSl] {
            let rate = bench::form_rate(form, Duration::from_secs(1))?;
            println!("  {form:?}: {rate:>9.0} messages/s");
        }
        return Ok(());
    }
    let smsc = Smsc::new(opts);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!(
        "vshare smsc listening on {} (SMPP v3.4)",
        listener.local_addr()?
    );
    smsc.serve(listener).await
}
