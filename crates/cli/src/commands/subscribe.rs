//! `vshare subscribe`: subscribe a target to a source's videos through the server's API — by
//! phone number (SMS or WAP Push, double opt-in), webhook URL, or as a WebSocket listener that
//! prints every video as it comes — and see who got a video's notification.

use vshare_attributes::forms::encode_text;
use vshare_proxy::client::ApiClient;
use vshare_proxy::{Channel, NewSubscription};

#[derive(clap::Args)]
pub struct Args {
    /// The server's HTTP address.
    #[arg(
        long,
        env = "VSHARE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin token, for the lists that show addresses.
    #[arg(long, env = "VSHARE_ADMIN_TOKEN", global = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Subscribe a phone number: a code goes to it by SMS; reply YES <code> (or use `confirm`).
    Number {
        /// Source: a stream key's name or id.
        source: String,
        number: String,
        /// text, tlv or xml (SMS); wap-si or wap-sl (WAP Push).
        #[arg(long, default_value = "text")]
        form: String,
    },
    /// Subscribe a webhook URL (signed POSTs, `x-vshare-signature: sha256=<hex>`).
    Webhook { source: String, url: String },
    /// Listen on a WebSocket as listener ID (subscribing it to SOURCE) and print each video.
    Listen {
        source: String,
        /// Listener id; the same id (with its secret) later gets what arrived while it was
        /// away [default: a new random id].
        #[arg(long)]
        id: Option<String>,
        /// The listener's secret (16 or more characters): the first connection that names a
        /// listener binds it to its secret [default: a new random one, printed].
        #[arg(long, env = "VSHARE_LISTEN_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Stop after this many messages (0: never).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Print the notifications as JSON lines instead of the text form.
        #[arg(long)]
        json: bool,
    },
    /// Confirm a pending phone subscription with the code it received.
    Confirm { id: String, code: String },
    /// Unsubscribe by subscription id.
    Remove { id: String },
    /// List subscriptions (of one source).
    List {
        #[arg(long)]
        source: Option<String>,
    },
    /// Who got a video's notifications, and in what state.
    Status { video: String },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let api = ApiClient::new(&args.server, args.token);
    let show = |s: &vshare_proxy::Subscription| {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            s.id,
            s.state.as_str(),
            s.channel.as_str(),
            s.form,
            s.source,
            s.address
        );
    };
    match args.action {
        Action::Number {
            source,
            number,
            form,
        } => {
            let channel = if form.starts_with("wap") {
                Channel::Wap
            } else {
                Channel::Sms
            };
            let s = api
                .subscribe(&NewSubscription {
                    source,
                    channel,
                    address: number,
                    form: Some(form),
                })
                .await?;
            show(&s);
            println!(
                "a code went to {} by SMS: reply YES <code>, or run `vshare subscribe confirm {} <code>`",
                s.address, s.id
            );
        }
        Action::Webhook { source, url } => show(
            &api.subscribe(&NewSubscription {
                source,
                channel: Channel::Webhook,
                address: url,
                form: None,
            })
            .await?,
        ),
        Action::Listen {
            source,
            id,
            secret,
            count,
            json,
        } => {
            let (id, secret) = listener_identity(id, secret);
            eprintln!("listening as {id} for videos of {source}");
            let mut n = 0u64;
            let mut error = None;
            api.listen(&id, &secret, Some(&source), |m| {
                n += 1;
                if json {
                    match serde_json::to_string(&m) {
                        Ok(line) => println!("{line}"),
                        Err(e) => error = Some(e.into()),
                    }
                } else {
                    match encode_text(&m.records) {
                        Ok(text) => println!("{}", text.trim_end()),
                        Err(e) => error = Some(anyhow::Error::from(e)),
                    }
                }
                error.is_none() && (count == 0 || n < count)
            })
            .await?;
            if let Some(e) = error {
                return Err(e);
            }
        }
        Action::Confirm { id, code } => show(&api.confirm(&id, &code).await?),
        Action::Remove { id } => {
            api.unsubscribe(&id).await?;
            println!("{id}\tstopped");
        }
        Action::List { source } => {
            for s in api.subscriptions(source.as_deref()).await? {
                show(&s);
            }
        }
        Action::Status { video } => {
            for n in api.notifications(&video).await? {
                println!(
                    "{}\t{}\t{}\t{}\tattempts={}\t{}",
                    n.state,
                    n.channel.as_str(),
                    n.address,
                    n.event_id,
                    n.attempts,
                    n.last_error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// The listener id and secret to use: the ones given, or new random ones (printed, so the same
/// listener can come back for what arrived while it was away).
pub fn listener_identity(id: Option<String>, secret: Option<String>) -> (String, String) {
    let id = id.unwrap_or_else(|| format!("l-{}", vshare_proxy::store::random_id(12)));
    let secret = secret.unwrap_or_else(|| {
        let s = vshare_proxy::store::random_id(32);
        eprintln!("listener {id}: secret {s} (give --id {id} --secret … to come back as it)");
        s
    });
    (id, secret)
}
