//! Helpers of tests/tls.rs: a `vshare serve` whose printed lines are kept, a reqwest client
//! that trusts only given roots, ffmpeg publishing over RTMPS, Debian's pebble.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Server, serve_command, vshare};
use sha2::{Digest, Sha256};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::wait_exit;

pub type Lines = Arc<Mutex<Vec<String>>>;

/// Starts `vshare serve` with `extra` flags and keeps every line it prints; returns once the
/// address lines are there (with https, through the studio address and the QR code after it).
pub fn start(data: &Path, extra: &[&str]) -> (Server, Lines) {
    let mut cmd = vshare();
    cmd.args(["serve", "--rtmp", "127.0.0.1:0", "--data"])
        .arg(data);
    if !extra.contains(&"--http") {
        cmd.args(["--http", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .args(extra)
        .env("VSHARE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vshare serve");
    let log = Arc::new(Mutex::new(String::new()));
    let (stderr, log2) = (child.stderr.take().expect("stderr"), log.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = log2.lock().expect("log");
            l.push_str(&line);
            l.push('\n');
        }
    });
    let out: Lines = Arc::default();
    let (stdout, out2) = (child.stdout.take().expect("stdout"), out.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            out2.lock().expect("out").push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = {
            let o = out.lock().expect("out");
            let studio = o.iter().position(|l| l.trim().starts_with("studio:"));
            let plain = o.iter().any(|l| l.trim().starts_with("watch:   http://"))
                && o.iter().any(|l| l.trim().starts_with("API:"));
            plain || studio.is_some_and(|i| o[i..].iter().filter(|l| l.contains('█')).count() >= 10)
        };
        if ready {
            break;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            panic!(
                "server did not start; stdout:\n{}\nlog:\n{}",
                out.lock().expect("out").join("\n"),
                log.lock().expect("log")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rtmp_port = printed(&out, "publish: rtmp://")
        .split(':')
        .nth(1)
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("rtmp port");
    let watch = printed(&out, "watch:");
    let http = watch.split('/').take(3).collect::<Vec<_>>().join("/");
    let server = Server {
        child,
        data: data.to_path_buf(),
        rtmp_port,
        http,
        log,
    };
    (server, out)
}

/// The rest of the printed line that starts with `prefix` (after blanks).
pub fn printed(out: &Lines, prefix: &str) -> String {
    let o = out.lock().expect("out");
    o.iter()
        .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{}", o.join("\n")))
}

/// SHA-256 of the first certificate of a PEM file, as the server prints it.
pub fn fingerprint(pem: &str) -> String {
    Sha256::digest(pem_der(pem))
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The DER of the first certificate of a PEM file.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64_decode(&body)
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A reqwest (rustls) client that trusts only `roots` and follows no redirect.
pub fn client(roots: &[&[u8]], resolve: Option<(&str, SocketAddr)>) -> reqwest::Client {
    let certs = roots
        .iter()
        .map(|pem| reqwest::Certificate::from_pem(pem).expect("certificate PEM"));
    let mut b = reqwest::Client::builder()
        .tls_certs_only(certs)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some((name, addr)) = resolve {
        b = b.resolve(name, addr);
    }
    b.build().expect("client")
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub fn send(rt: &tokio::runtime::Runtime, req: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
    rt.block_on(async {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    })
}

pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ffmpeg -re -i CLIP -c copy -f flv rtmps://…`, verifying the server's certificate against
/// `ca_file`; returns whether it succeeded and what it said.
pub fn publish_rtmps(clip: &Path, url: &str, ca_file: &Path) -> (bool, String) {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(clip)
        .args(["-c", "copy", "-tls_verify", "1", "-ca_file"])
        .arg(ca_file)
        .args(["-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg");
    let mut err = child.stderr.take().expect("stderr");
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_exit(&mut child, Duration::from_secs(120));
    (
        status.is_some_and(|s| s.success()),
        t.join().unwrap_or_default(),
    )
}

/// Polls the key's publish status over https until the video is in `state` with records.
pub fn wait_state(
    rt: &tokio::runtime::Runtime,
    c: &reqwest::Client,
    https: &str,
    key: &str,
    state: &str,
    server: &Server,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = send(
            rt,
            c.get(format!("{https}/api/v1/publish/status"))
                .bearer_auth(key),
        )
        .expect("status");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let records = v["attributes"].as_array().is_some_and(|a| !a.is_empty());
        if r.status == 200 && v["state"] == state && records {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "video not {state}: HTTP {} {v}\nserver log:\n{}",
            r.status,
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Starts Debian's pebble (Let's Encrypt's ACME test server) with pebble-challtestsrv as its
/// DNS (every name is 127.0.0.1), checking HTTP-01 on `http01`. Returns the processes, the
/// directory URL and pebble's management address.
pub fn start_pebble(dir: &Path, http01: u16) -> (Vec<Reaped>, String, u16, std::path::PathBuf) {
    let (cert, key) =
        vshare_server::tls::make_self_signed(&["localhost".into(), "127.0.0.1".into()])
            .expect("pebble's certificate");
    let (cert_path, key_path) = (dir.join("pebble.crt"), dir.join("pebble.key"));
    std::fs::write(&cert_path, cert).expect("write");
    std::fs::write(&key_path, key).expect("write");
    let (dns, acme, mgmt) = (free_port(), free_port(), free_port());
    let config = dir.join("pebble.json");
    let json = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": cert_path,
        "privateKey": key_path,
        "httpPort": http01,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    std::fs::write(&config, json.to_string()).expect("write");
    let dns_addr = format!("127.0.0.1:{dns}");
    let challtestsrv = Reaped(
        Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble-challtestsrv"),
    );
    wait_until_listening(&dns_addr);
    let pebble = Reaped(
        Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &dns_addr])
            // No random waits before validating, no refused nonces, a new authorization for
            // each order: the same path every run.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble"),
    );
    wait_until_listening(&format!("127.0.0.1:{acme}"));
    wait_until_listening(&format!("127.0.0.1:{mgmt}"));
    (
        vec![pebble, challtestsrv],
        format!("https://localhost:{acme}/dir"),
        mgmt,
        cert_path,
    )
}

pub fn wait_until_listening(addr: &str) {
    vshare_testkit::wait::wait_for(addr, Duration::from_secs(30), || {
        TcpStream::connect(addr).ok()
    });
}

/// Polls `GET url` until it answers 200 (the server puts a new certificate in place after it
/// has written it).
pub fn wait_ok(rt: &tokio::runtime::Runtime, c: &reqwest::Client, url: &str, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match send(rt, c.get(url)) {
            Ok(a) if a.status == 200 => return,
            Ok(a) => format!("HTTP {}", a.status),
            Err(e) => format!("{e:?}"),
        };
        assert!(
            Instant::now() < deadline,
            "GET {url}: {last}\nserver log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser test cannot run here, if it cannot (as in tests/browser.rs).
pub fn missing_browser() -> Option<String> {
    if !installed("node") {
        return Some("node is not installed (scripts/setup.sh --test installs it)".into());
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return Some(format!(
            "chromium is not installed at {chromium} (scripts/setup.sh --test installs it)"
        ));
    }
    None
}

/// `vshare serve` with `args` that must not start: returns what it said.
pub fn refused(data: &Path, args: &[&str]) -> String {
    let mut child = serve_command(data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vshare serve");
    let mut err = child.stderr.take().expect("stderr");
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let said = t.join().unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "started with {args:?}: {said}"
    );
    said
}
