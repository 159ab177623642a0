//! The `vshare` binary: one subcommand per role of the system.

mod commands;

use clap::{Parser, Subcommand};

/// Share the video you are filming — live, and as a recording that is ready when you stop —
/// with other phones by SMS, WAP Push or subscription.
#[derive(Parser)]
#[command(name = "vshare", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the video server: RTMP ingest, LL-HLS live, VOD recording, HTTP API.
    Serve(Box<commands::serve::Args>),
    /// Manage stream keys (the secrets publishers use).
    Keys(commands::keys::Args),
    /// Publish a media file or a test pattern to a server in real time (the source phone).
    Publish(commands::publish::Args),
    /// Drive many real-time RTMP publishers, or LL-HLS viewers (--viewers), for benchmarks.
    Bench(commands::bench::Args),
    /// Send a video's attributes to phones by SMS or WAP Push (the source's message management).
    Share(commands::share::Args),
    /// Read a shared message and play the video (the target's information agent and player).
    Open(commands::open::Args),
    /// Run a development SMSC (SMPP v3.4 server) that forwards messages between binds.
    Smsc(commands::smsc::Args),
    /// Subscribe a phone, webhook or listener to a source's videos (the communication proxy).
    Subscribe(commands::subscribe::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VSHARE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The server's config says how many threads serve it, so it is read before the runtime
    // exists.
    let command = match cli.command {
        Command::Serve(a) => {
            let config = a.into_config()?;
            anyhow::ensure!(
                config.workers <= 1024,
                "workers = {}: at most 1024 (0 = one per CPU core)",
                config.workers
            );
            let rt = runtime(config.workers)?;
            let result = rt.block_on(commands::serve::run(config));
            // After a graceful stop: background work still running (other VOD formats) does
            // not hold the exit up.
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
            return result;
        }
        other => other,
    };
    runtime(0)?.block_on(async move {
        match command {
            Command::Serve(_) => unreachable!("serve runs above, on a runtime of its own size"),
            Command::Keys(a) => commands::keys::run(a).await,
            Command::Publish(a) => commands::publish::run(a).await,
            Command::Bench(a) => commands::bench::run(a).await,
            Command::Share(a) => commands::share::run(a).await,
            Command::Open(a) => commands::open::run(a).await,
            Command::Smsc(a) => commands::smsc::run(a).await,
            Command::Subscribe(a) => commands::subscribe::run(a).await,
        }
    })
}

/// The async runtime: `workers` threads, or one per CPU core for 0.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}
