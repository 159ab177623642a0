//! TLS end to end against a real `vshare serve` (docs/security.md, "TLS"): a self-signed
//! certificate made on first run (its file, key mode and printed fingerprint; a QR code of the
//! studio's https address), https with HSTS checked by reqwest (rustls) trusting only that
//! certificate, the plain-HTTP redirect, `Secure` session cookies, https URLs in attribute
//! records, the handshake deadline; RTMPS ingest published by ffmpeg (GnuTLS, verifying the
//! certificate) and the VOD read by ffprobe over https; a certificate from Debian's `pebble`
//! ACME server with the HTTP-01 challenge, kept and renewed; and headless Chromium seeing the
//! studio over https as a secure context (camera and WebCodecs for phones).

mod common;
mod tls_support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{Server, create_key, make_clip};
use tls_support::*;
use vshare_testkit::ffmpeg::{ffprobe_json, number, stream_of};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::run_with_limit;

#[test]
fn self_signed_https_redirect_hsts_secure_cookie_and_rtmps_publish() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let key = create_key(&data);
    let config = tmp.path().join("vshare.toml");
    // A small handshake deadline, so the test of it is quick.
    std::fs::write(&config, "[tls]\nhandshake_timeout_s = 5\n").expect("config");
    let (redirect, rtmps) = (free_port(), free_port());
    let (server, out) = start(
        &data,
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--tls",
            "self-signed",
            "--http-redirect",
            &format!("127.0.0.1:{redirect}"),
            "--rtmps",
            &format!("127.0.0.1:{rtmps}"),
            "--ladder",
            "none",
        ],
    );
    let https = server.http.clone();
    assert!(https.starts_with("https://127.0.0.1:"), "{https}");
    let port: u16 = https
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // The certificate and key are in the data directory, the key readable by its owner only,
    // and the fingerprint printed is the certificate's.
    let cert_path = data.join("tls/self-signed.crt");
    let cert_pem = std::fs::read_to_string(&cert_path).expect("certificate file");
    assert_eq!(mode(&data.join("tls/self-signed.key")), 0o600);
    let want = fingerprint(&cert_pem);
    assert_eq!(printed(&out, "certificate SHA-256:"), want);
    assert_eq!(
        printed(&out, "studio:").split_whitespace().next(),
        Some(&*format!("{https}/studio"))
    );
    assert_eq!(
        printed(&out, "publish over TLS:"),
        format!("rtmps://127.0.0.1:{rtmps}/live/<stream key>")
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let trusted = client(&[cert_pem.as_bytes()], None);
    let api = send(&rt, trusted.get(format!("{https}/api/v1/videos"))).expect("https GET");
    assert_eq!(api.status, 200);
    assert_eq!(api.header("strict-transport-security"), "max-age=15552000");
    // A client that trusts another certificate is refused: the server's is the one checked.
    let (other, _) = vshare_server::tls::make_self_signed(&["127.0.0.1".into()]).expect("cert");
    let untrusted = client(&[other.as_bytes()], None);
    assert!(send(&rt, untrusted.get(format!("{https}/api/v1/videos"))).is_err());
    // Plain HTTP on the https port gets no page.
    let (plain, _) = common::http_get(&format!("http://127.0.0.1:{port}/api/v1/videos"));
    assert_ne!(plain, 200);

    // The plain-HTTP listener answers 308 to the same path on https, whatever Host says.
    let r = send(
        &rt,
        trusted
            .get(format!("http://127.0.0.1:{redirect}/studio?from=qr"))
            .header("Host", "evil.example"),
    )
    .expect("redirect");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), format!("{https}/studio?from=qr"));
    assert_eq!(r.header("strict-transport-security"), "");

    // Session cookies are Secure over https.
    let r = send(
        &rt,
        trusted
            .post(format!("{https}/api/v1/accounts"))
            .json(&serde_json::json!({"username": "phone", "password": "a long enough password"})),
    )
    .expect("sign up");
    assert!(
        r.status < 300,
        "sign-up: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let cookie = r.header("set-cookie");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // The signed-in user is told the RTMPS address.
    let session = cookie.split(';').next().expect("cookie").to_string();
    let me = send(
        &rt,
        trusted
            .get(format!("{https}/api/v1/me"))
            .header("Cookie", session),
    )
    .expect("me")
    .json();
    assert_eq!(
        me["rtmps_url"],
        format!("rtmps://127.0.0.1:{rtmps}/live"),
        "{me}"
    );

    // A TLS handshake that never comes is closed at the deadline, and does not hold up others.
    let silent = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let api =
        send(&rt, trusted.get(format!("{https}/api/v1/videos"))).expect("GET while one waits");
    assert_eq!(api.status, 200);
    // The same for RTMPS. (Each read times out after 30 s, long after the 5 s deadline.)
    let rtmps_silent = TcpStream::connect(("127.0.0.1", rtmps)).expect("connect");
    rtmps_silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    for mut socket in [silent, rtmps_silent] {
        let n = socket.read(&mut [0u8; 64]).expect("closed, not timed out");
        assert_eq!(n, 0, "closed without an answer");
    }

    // RTMPS: ffmpeg refuses a server whose certificate it cannot verify, then publishes with it.
    let clip = make_clip(tmp.path(), "clip.flv", 6, &[]);
    let url = format!("rtmps://127.0.0.1:{rtmps}/live/{key}");
    let other_ca = tmp.path().join("other.crt");
    std::fs::write(&other_ca, &other).expect("write");
    let (ok, said) = publish_rtmps(&clip, &url, &other_ca);
    assert!(!ok, "ffmpeg published to an unverified server: {said}");
    let publisher = {
        let (clip, url, ca) = (clip.clone(), url.clone(), cert_path.clone());
        std::thread::spawn(move || publish_rtmps(&clip, &url, &ca))
    };
    // Live while it publishes: the LL-HLS playlist comes over https.
    let live = wait_state(&rt, &trusted, &https, &key, "live", &server);
    let playlist = live["attributes"][0]["url"].as_str().expect("live url");
    assert!(
        playlist.starts_with(&format!("{https}/live/")),
        "{playlist}"
    );
    let r = send(&rt, trusted.get(playlist)).expect("live playlist");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"#EXTM3U"));
    // Live media requests skip the router (api::LiveFirst): HSTS and CORS are still there.
    assert_eq!(r.header("strict-transport-security"), "max-age=15552000");
    assert_eq!(r.header("access-control-allow-origin"), "*");
    let (ok, said) = publisher.join().expect("publisher");
    assert!(
        ok,
        "rtmps publish failed: {said}\nserver log:\n{}",
        server.log()
    );
    let status = wait_state(&rt, &trusted, &https, &key, "ready", &server);
    // Attribute records carry https URLs.
    let records = status["attributes"].as_array().expect("attributes");
    assert!(!records.is_empty());
    for r in records {
        let u = r["url"].as_str().expect("url");
        assert!(u.starts_with(&format!("{https}/")), "{u}");
    }
    let mp4 = records
        .iter()
        .find(|r| r["format"] == "mp4")
        .expect("mp4 record");
    // ffprobe (GnuTLS, verifying the certificate) reads the recording over https.
    let url = mp4["url"].as_str().expect("url");
    let probe = ffprobe_json(
        &[
            "-tls_verify",
            "1",
            "-ca_file",
            cert_path.to_str().expect("utf-8"),
            "-show_format",
            "-show_streams",
        ],
        url,
    );
    assert_eq!(stream_of(&probe, "video")["codec_name"], "h264");
    let duration = number(&probe["format"]["duration"]);
    assert!((duration - 6.0).abs() < 0.5, "duration {duration}");
    let body = send(&rt, trusted.get(url)).expect("VOD over https");
    assert_eq!(body.status, 200);
    assert_eq!(body.body.len() as u64, mp4["size"].as_u64().expect("size"));

    // A second run keeps the certificate.
    drop(server);
    let (again, out) = start(&data, &["--tls", "self-signed"]);
    assert_eq!(
        std::fs::read_to_string(&cert_path).expect("certificate"),
        cert_pem
    );
    assert_eq!(printed(&out, "certificate SHA-256:"), want);
    drop(again);
}

#[test]
fn acme_certificate_from_pebble_is_served_kept_and_renewed() {
    if !installed("pebble") || !installed("pebble-challtestsrv") {
        eprintln!(
            "skipping the ACME test: Debian's pebble is not installed (scripts/setup.sh --test installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let http01 = free_port();
    let (_pebble, directory, mgmt, pebble_cert) = start_pebble(tmp.path(), http01);
    let data = tmp.path().join("data");
    let redirect = format!("127.0.0.1:{http01}");
    let flags = [
        "--tls",
        "acme",
        "--tls-name",
        "vshare.test",
        "--http-redirect",
        &redirect,
        "--acme-directory",
        &directory,
        "--acme-ca",
        pebble_cert.to_str().expect("utf-8"),
    ];
    let (server, _) = start(&data, &flags);
    assert!(
        server.http.starts_with("https://vshare.test:"),
        "{}",
        server.http
    );

    // Pebble's root for this run, from its management interface.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pebble_pem = std::fs::read(&pebble_cert).expect("pebble cert");
    let root = send(
        &rt,
        client(&[&pebble_pem], None).get(format!("https://localhost:{mgmt}/roots/0")),
    )
    .expect("pebble root");
    assert_eq!(root.status, 200);
    // A client that trusts only pebble's root and finds vshare.test at this run's port.
    let trusting = |server: &Server| {
        let port: u16 = server
            .http
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let api = format!("{}/api/v1/videos", server.http);
        (client(&[&root.body], Some(("vshare.test", at))), api)
    };
    let (trusted, api) = trusting(&server);
    wait_ok(&rt, &trusted, &api, &server);
    server.expect_logged("ACME certificate obtained");
    let tls = data.join("tls");
    for f in ["acme.key", "acme.crt", "acme-account.json"] {
        assert_eq!(mode(&tls.join(f)), 0o600, "{f}");
    }
    let first = std::fs::read_to_string(tls.join("acme.crt")).expect("certificate");
    // The answer to pebble's HTTP-01 request came from our plain-HTTP listener, which
    // redirects everything else.
    let r = send(
        &rt,
        trusted.get(format!(
            "http://{redirect}/.well-known/acme-challenge/unknown"
        )),
    )
    .expect("challenge");
    assert_eq!(r.status, 404);
    drop(server);

    // A second run serves the stored certificate from the start, without asking the CA.
    let (server, out) = start(&data, &flags);
    assert_eq!(printed(&out, "certificate SHA-256:"), fingerprint(&first));
    let (trusted, api) = trusting(&server);
    wait_ok(&rt, &trusted, &api, &server);
    assert!(!server.log().contains("ACME certificate obtained"));
    assert_eq!(
        std::fs::read_to_string(tls.join("acme.crt")).expect("certificate"),
        first
    );
    drop(server);

    // With the renewal window larger than the certificate's lifetime the certificate is due:
    // a new one is obtained and served, once.
    let config = tmp.path().join("renew.toml");
    std::fs::write(&config, "[tls]\nacme_renew_days = 100000\n").expect("config");
    let mut renew = flags.to_vec();
    renew.extend(["--config", config.to_str().expect("utf-8")]);
    let (server, _) = start(&data, &renew);
    let (trusted, api) = trusting(&server);
    vshare_testkit::wait::wait_for("the renewal", Duration::from_secs(60), || {
        server
            .log()
            .contains("ACME certificate obtained")
            .then_some(())
    });
    wait_ok(&rt, &trusted, &api, &server);
    let second = std::fs::read_to_string(tls.join("acme.crt")).expect("certificate");
    assert_ne!(second, first, "a new certificate");
    assert_eq!(server.log().matches("ACME certificate obtained").count(), 1);
}

/// What a phone needs: the studio at a LAN name over https, signed in (the Secure cookie kept),
/// is a secure context (camera, WebCodecs) in Chromium that trusts the self-signed certificate
/// by its SPKI pin, while the studio of a server without TLS at the same name is not, and
/// without the pin the https page does not load.
#[test]
fn studio_over_https_is_a_secure_context_in_chromium() {
    if let Some(why) = missing_browser() {
        eprintln!("skipping the browser test: {why}");
        return;
    }
    assert!(
        root()
            .join("web/node_modules/playwright-core/package.json")
            .is_file(),
        "web/node_modules/playwright-core is missing: run `npm ci` in web/ (scripts/setup.sh --test does)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let (port, redirect) = (free_port(), free_port());
    let (server, _) = start(
        &tmp.path().join("data"),
        &[
            "--http",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &format!("https://vshare.lan:{port}"),
            "--tls",
            "self-signed",
            "--tls-name",
            "vshare.lan",
            "--http-redirect",
            &format!("127.0.0.1:{redirect}"),
        ],
    );
    // The same studio without TLS, as before.
    let plain_port = free_port();
    let (plain, _) = start(
        &tmp.path().join("plain"),
        &[
            "--http",
            &format!("127.0.0.1:{plain_port}"),
            "--public-url",
            &format!("http://vshare.lan:{plain_port}"),
        ],
    );
    let mut node = Command::new("node");
    node.arg(root().join("tests/browser/secure_context.mjs"))
        .current_dir(root())
        .env("VSHARE_HTTP", &server.http)
        .env("PLAIN", &plain.http)
        .env("CERT", server.data.join("tls/self-signed.crt"))
        .env("MAP", "vshare.lan 127.0.0.1");
    let (ok, out, err) = run_with_limit(node, Duration::from_secs(120));
    assert!(
        ok,
        "secure_context.mjs failed:\n{out}\n{err}\nserver log:\n{}",
        server.log()
    );
    let r: serde_json::Value = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no RESULT line:\n{out}\n{err}"));
    eprintln!("chromium: {r}");
    assert!(
        r["untrusted"]
            .as_str()
            .is_some_and(|e| e.contains("ERR_CERT")),
        "{r}"
    );
    assert_eq!(r["plain"]["secure"], false, "{r}");
    assert!(r["signup"].as_u64().is_some_and(|s| s < 300), "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["path"], "/studio", "signed in, the studio stays: {r}");
    assert_eq!(r["protocol"], "https:", "{r}");
    assert_eq!(r["secure"], true, "{r}");
    assert_eq!(r["video_encoder"], "function", "{r}");
    assert_eq!(r["tracks"], serde_json::json!(["audio", "video"]), "{r}");
    assert_eq!(r["hsts"], "max-age=15552000", "{r}");
}

#[test]
fn files_mode_serves_the_given_certificate_and_bad_tls_settings_do_not_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let names = ["127.0.0.1".to_string()];
    let (cert, key) = vshare_server::tls::make_self_signed(&names).expect("cert");
    let (_, other_key) = vshare_server::tls::make_self_signed(&names).expect("cert");
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_string()
    };
    let (cert_file, key_file, other_file) = (
        write("cert.pem", &cert),
        write("key.pem", &key),
        write("other.pem", &other_key),
    );

    let said = refused(
        &data,
        &[
            "--tls",
            "files",
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &other_file,
        ],
    );
    assert!(said.contains("certificate and key"), "{said}");
    let said = refused(&data, &["--tls", "files", "--tls-cert", &cert_file]);
    assert!(said.contains("needs both `cert` and `key`"), "{said}");
    let said = refused(&data, &["--rtmps", "127.0.0.1:0"]);
    assert!(said.contains("rtmps_listen needs TLS on"), "{said}");
    let said = refused(&data, &["--tls", "acme", "--tls-name", "vshare.test"]);
    assert!(said.contains("needs `redirect_listen`"), "{said}");
    let said = refused(
        &data,
        &[
            "--tls",
            "acme",
            "--tls-name",
            "10.0.0.1",
            "--http-redirect",
            "127.0.0.1:0",
        ],
    );
    assert!(said.contains("DNS names"), "{said}");
    let said = refused(&data, &["--tls", "sometimes"]);
    assert!(said.contains("unknown TLS mode"), "{said}");

    let (server, out) = start(
        &data,
        &[
            "--tls",
            "files",
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
        ],
    );
    assert_eq!(printed(&out, "certificate SHA-256:"), fingerprint(&cert));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = send(
        &rt,
        client(&[cert.as_bytes()], None).get(format!("{}/api/v1/videos", server.http)),
    )
    .expect("https GET");
    assert_eq!(api.status, 200);
    // Nothing of its own in the data directory: the files are the operator's.
    assert!(!data.join("tls").exists());
}
