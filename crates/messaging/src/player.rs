//! Picking and launching a media player for a record (mpv, ffplay, VLC).

use std::path::PathBuf;

use vshare_attributes::AttributeRecord;

/// A player vshare knows how to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Player {
    Mpv,
    Ffplay,
    Vlc,
}

impl Player {
    pub fn program(self) -> &'static str {
        match self {
            Player::Mpv => "mpv",
            Player::Ffplay => "ffplay",
            Player::Vlc => "vlc",
        }
    }

    /// Arguments to play `target` (a URL or a file) and exit at the end.
    pub fn args(self, target: &str, record: &AttributeRecord) -> Vec<String> {
        let live = record.format == "ll-hls";
        let mut a: Vec<String> = match self {
            Player::Mpv if live => vec!["--profile=low-latency".into(), "--cache=no".into()],
            Player::Mpv => vec![],
            Player::Ffplay if live => vec!["-fflags".into(), "nobuffer".into(), "-autoexit".into()],
            Player::Ffplay => vec!["-autoexit".into()],
            Player::Vlc => vec!["--play-and-exit".into()],
        };
        if !record.title.is_empty() {
            match self {
                Player::Mpv => a.push(format!("--title={}", record.title)),
                Player::Ffplay => a.extend(["-window_title".into(), record.title.clone()]),
                Player::Vlc => a.extend(["--meta-title".into(), record.title.clone()]),
            }
        }
        a.push(target.into());
        a
    }

    /// How well this player suits a record: higher is better, `None` if it cannot play it.
    /// mpv and ffplay play LL-HLS with low latency; VLC lags on live HLS; all play MP4/HLS with
    /// AVC, HEVC, AAC; only mpv and ffplay are reliable with AV1 or Opus in MP4.
    /// Above 1080p, mpv (hardware decoding by default) is preferred further.
    pub fn score(self, r: &AttributeRecord) -> Option<u32> {
        let codecs = r.codecs.to_ascii_lowercase();
        let exotic = codecs.contains("av01") || codecs.contains("opus");
        let big = u64::from(r.width) * u64::from(r.height) > 1920 * 1080;
        let bonus = if big && self == Player::Mpv { 10 } else { 0 };
        let base = match (self, r.format.as_str()) {
            (_, f) if !matches!(f, "mp4" | "hls" | "ll-hls" | "unknown") => None,
            (Player::Vlc, _) if exotic => None,
            (Player::Mpv, "ll-hls") => Some(30),
            (Player::Ffplay, "ll-hls") => Some(20),
            (Player::Vlc, "ll-hls") => Some(5),
            (Player::Mpv, _) => Some(25),
            (Player::Vlc, _) => Some(15),
            (Player::Ffplay, _) => Some(10),
        };
        base.map(|b| b + bonus)
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The players installed here.
pub fn installed() -> Vec<Player> {
    [Player::Mpv, Player::Ffplay, Player::Vlc]
        .into_iter()
        .filter(|p| on_path(p.program()).is_some())
        .collect()
}

/// The best installed player for a record.
pub fn choose(r: &AttributeRecord, installed: &[Player]) -> Option<Player> {
    installed
        .iter()
        .copied()
        .filter_map(|p| p.score(r).map(|s| (s, p)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, p)| p)
}

/// Starts the player and waits for it.
pub async fn play(player: Player, target: &str, r: &AttributeRecord) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(player.program())
        .args(player.args(target, r))
        .status()
        .await
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", player.program()))?;
    if !status.success() {
        anyhow::bail!("{} exited with {status}", player.program());
    }
    Ok(())
}
