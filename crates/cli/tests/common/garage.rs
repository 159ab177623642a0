//! Garage, a distributed S3-compatible object store, as one node on loopback: the setup
//! docs/deployment.md shows (a config file, the node's role in the layout, a key, a bucket the
//! key may use). Stopped on drop.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use vshare_testkit::net::free_port;
use vshare_testkit::process::require_tool;
use vshare_testkit::wait::{wait_exit, wait_for};

pub const GARAGE: &str = "garage";
/// The region Garage's S3 API answers for (its `s3_region`).
pub const REGION: &str = "garage";

pub struct Garage {
    child: Child,
    config: std::path::PathBuf,
    /// `AWS_*` variables for `object_store`'s S3 client: endpoint, region, the key.
    pub env: Vec<(&'static str, String)>,
}

impl Garage {
    /// Starts a single-node Garage under `dir` with bucket `bucket` and a key allowed on it.
    pub fn start(dir: &Path, bucket: &str) -> Garage {
        require_tool(GARAGE);
        std::fs::create_dir_all(dir).expect("garage dir");
        let (rpc, s3) = (free_port(), free_port());
        let config = dir.join("garage.toml");
        let secret: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n",
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
            ),
        )
        .expect("garage.toml");
        let child = Command::new(GARAGE)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start garage");
        let mut garage = Garage {
            child,
            config,
            env: Vec::new(),
        };
        // The node answers its own CLI once its RPC is up.
        let node = wait_for("garage to answer", Duration::from_secs(60), || {
            let out = garage.cli(&["node", "id", "-q"]);
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let id = text.split('@').next().unwrap_or_default().to_string();
            (out.status.success() && id.len() >= 16).then_some(id)
        });
        garage.ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.ok(&["layout", "apply", "--version", "1"]);
        let key = garage.ok(&["key", "create", "vshare-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in garage's answer: {key}"))
        };
        let (key_id, key_secret) = (field("Key ID:"), field("Secret key:"));
        garage.ok(&["bucket", "create", bucket]);
        garage.ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "vshare-test",
        ]);
        wait_for("garage's S3 API to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", s3)).ok()
        });
        garage.env = vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{s3}")),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", key_id),
            ("AWS_SECRET_ACCESS_KEY", key_secret),
            ("AWS_REGION", REGION.into()),
        ];
        garage
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(GARAGE)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run garage")
    }

    /// Runs a CLI command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
