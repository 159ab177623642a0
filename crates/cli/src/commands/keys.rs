use std::path::PathBuf;

use vshare_server::db::Db;

#[derive(clap::Args)]
pub struct Args {
    /// Data directory of the server [default: ./data].
    #[arg(long, env = "VSHARE_DATA", global = true)]
    pub data: Option<PathBuf>,
    /// Database URL, when the server uses one other than DATA/vshare.db.
    #[arg(long, env = "VSHARE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Create a stream key and print it (shown once; only its hash is stored).
    Create {
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        /// Print only the key, for scripts.
        #[arg(long)]
        quiet: bool,
    },
    /// List keys (names and ids; secrets are not stored).
    List,
    /// Revoke a key by id; publishers using it are refused from then on, and a publish in
    /// progress ends within `[limits] key_check_s`.
    Revoke { id: String },
    /// Make a one-time sign-up invite code (for `[accounts] signup = "invite"`).
    Invite,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = vshare_server::Config::default();
    if let Some(d) = args.data {
        config.data_dir = d;
    }
    config.database_url = args.database_url;
    std::fs::create_dir_all(&config.data_dir)?;
    let db = Db::open(&config.database_url()).await?;
    match args.action {
        Action::Create { name, quiet } => {
            let (key, secret) = db.create_key(&name).await?.ok_or_else(|| {
                anyhow::anyhow!("the name {name:?} is taken (by a user or another key)")
            })?;
            if quiet {
                println!("{secret}");
            } else {
                println!("stream key: {secret}");
                println!("id:         {}", key.id);
                println!("publish to: rtmp://HOST:1935/live/{secret}");
            }
        }
        Action::List => {
            for k in db.list_keys().await? {
                let state = if k.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}\t{}", k.id, state, k.created_at, k.name);
            }
        }
        Action::Revoke { id } => {
            anyhow::ensure!(db.revoke_key(&id).await?, "no stream key with id {id:?}");
            println!("revoked {id}");
        }
        Action::Invite => println!("{}", db.create_invite().await?),
    }
    Ok(())
}
