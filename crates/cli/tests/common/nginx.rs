//! Debian's nginx as the HTTP cache in front of live servers, with the configuration
//! docs/deployment.md shows (docs/nginx-live-cache.conf, its `@…@` names filled in).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vshare_testkit::net::free_port;
use vshare_testkit::process::require_tool;
use vshare_testkit::wait::wait_for;

pub const NGINX: &str = "/usr/sbin/nginx";
pub const TEMPLATE: &str = include_str!("../../../../docs/nginx-live-cache.conf");
pub const DEPLOYMENT: &str = include_str!("../../../../docs/deployment.md");

/// nginx in the foreground with its own prefix in `dir`; stopped on drop.
pub struct Nginx {
    child: Child,
    pub url: String,
}

impl Nginx {
    /// Starts nginx in front of `origins` (`host:port` each) and waits until it answers.
    pub fn start(dir: &Path, origins: &[&str]) -> Nginx {
        require_tool(NGINX);
        std::fs::create_dir_all(dir).expect("nginx dir");
        // Started as root, nginx's workers run as `nobody`: they must reach the cache (in the
        // test's directory).
        for d in [dir.parent().expect("test dir"), dir] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        }
        let port = free_port();
        let upstreams: Vec<String> = origins.iter().map(|o| format!("server {o};")).collect();
        let conf = TEMPLATE
            .replace("@DIR@", dir.to_str().expect("path"))
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@ORIGINS@", &upstreams.join(" "));
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let url = format!("http://127.0.0.1:{port}");
        let mut nginx = Nginx { child, url };
        wait_for("nginx to listen", Duration::from_secs(20), || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                );
            }
            (super::http_get(&format!("{}/metrics", nginx.url)).0 == 200).then_some(())
        });
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
