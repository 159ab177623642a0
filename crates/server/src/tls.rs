//! TLS for the HTTP address and the RTMPS listener with rustls, on the aws-lc-rs provider that
//! reqwest already brings: a certificate from PEM files, a self-signed one made on first run
//! and kept in the data directory, or one from ACME ([`crate::acme`]). The certificate sits
//! behind a resolver so that a renewal takes effect on the next handshake, without a restart.
//!
//! [`Tls::accept`] wraps an accepted TCP connection into a TLS stream within the handshake
//! deadline; [`TlsListener`] runs those handshakes off the accept loop for `axum::serve`.

use std::io::Write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{info, warn};

use crate::config::{Config, TlsMode};

/// A self-signed certificate is made again when this many days or fewer remain.
const SELF_SIGNED_RENEW_DAYS: i64 = 30;
/// How long a self-signed certificate is valid.
const SELF_SIGNED_DAYS: i64 = 365;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate the listeners present; empty until ACME has obtained one.
#[derive(Debug, Default)]
pub struct CertSlot(RwLock<Option<Arc<CertifiedKey>>>);

impl CertSlot {
    pub fn set(&self, key: CertifiedKey) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Arc::new(key));
        }
    }

    /// SHA-256 of the leaf certificate the listeners present now.
    pub fn fingerprint(&self) -> Option<String> {
        let slot = self.0.read().ok()?;
        let key = slot.as_ref()?;
        key.cert.first().map(|c| fingerprint(c))
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok()?.clone()
    }
}

/// The TLS side of `vshare serve`: one certificate, an acceptor for https (ALPN http/1.1) and
/// one for RTMPS, and the handshake deadline.
#[derive(Clone)]
pub struct Tls {
    pub certs: Arc<CertSlot>,
    https: TlsAcceptor,
    rtmps: TlsAcceptor,
    handshake_timeout: Duration,
}

impl Tls {
    /// The TLS configuration for `config`, or None with TLS off. Files and self-signed
    /// certificates are loaded (or made) now; ACME fills the slot later.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Tls>> {
        let tls = &config.tls;
        let certs = Arc::new(CertSlot::default());
        match tls.mode {
            TlsMode::Off => return Ok(None),
            TlsMode::Files => {
                let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else {
                    anyhow::bail!("[tls] mode \"files\" needs both `cert` and `key`");
                };
                let cert_pem = read(cert)?;
                let key_pem = read(key)?;
                certs.set(certified_key(&cert_pem, &key_pem)?);
            }
            TlsMode::SelfSigned => {
                let names = self_signed_names(config);
                let (cert_pem, key_pem) = self_signed_files(&tls_dir(config), &names)?;
                certs.set(certified_key(&cert_pem, &key_pem)?);
            }
            TlsMode::Acme => {
                if let Some(key) = crate::acme::stored(config) {
                    certs.set(key);
                }
            }
        }
        Ok(Some(Tls::with_slot(
            certs,
            Duration::from_secs(tls.handshake_timeout_s.max(1)),
        )?))
    }

    fn with_slot(certs: Arc<CertSlot>, handshake_timeout: Duration) -> anyhow::Result<Tls> {
        let server_config = |alpn: &[&[u8]]| -> anyhow::Result<Arc<ServerConfig>> {
            let mut c = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone());
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        Ok(Tls {
            https: TlsAcceptor::from(server_config(&[b"http/1.1"])?),
            rtmps: TlsAcceptor::from(server_config(&[])?),
            certs: certs.clone(),
            handshake_timeout,
        })
    }

    /// The TLS handshake of an https connection, within the handshake deadline.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        handshake(&self.https, tcp, self.handshake_timeout).await
    }

    /// The TLS handshake of an RTMPS connection, within the handshake deadline.
    pub async fn accept_rtmps(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        handshake(&self.rtmps, tcp, self.handshake_timeout).await
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    deadline: Duration,
) -> std::io::Result<TlsStream<TcpStream>> {
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("handshake not finished in {deadline:?}"),
        )),
    }
}

/// A certificate chain and private key in PEM, ready for rustls.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in the PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow::anyhow!("private key PEM: {e}"))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("private key: {e}"))?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match()
        .map_err(|e| anyhow::anyhow!("certificate and key: {e}"))?;
    Ok(key)
}

/// SHA-256 of a DER certificate as browsers show it: `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where the made and obtained certificates and keys live.
pub fn tls_dir(config: &Config) -> PathBuf {
    config.data_dir.join("tls")
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes a file only its owner can read (0600), through a temporary file and a rename so a
/// reader never sees half of it.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The names a self-signed certificate covers: the configured ones, the loopback names, the
/// public URL's host and a specific listen address.
pub fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.tls.names.clone();
    names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    if let Some(host) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
    {
        names.push(host);
    }
    let ip = config.http_listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.to_ascii_lowercase()));
    names
}

/// The self-signed certificate and key in `dir` (PEM), made now when missing, when they do not
/// cover `names` or when they expire within 30 days.
pub fn self_signed_files(dir: &Path, names: &[String]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (cert_path, key_path) = (dir.join("self-signed.crt"), dir.join("self-signed.key"));
    if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) {
        match CertInfo::from_pem(&cert) {
            Ok(info)
                if info.covers(names)
                    && info.days_left() > SELF_SIGNED_RENEW_DAYS
                    && certified_key(&cert, &key).is_ok() =>
            {
                return Ok((cert, key));
            }
            Ok(_) => info!("making a new self-signed certificate (names or expiry)"),
            Err(e) => warn!("{}: {e}; making a new one", cert_path.display()),
        }
    }
    let (cert, key) = make_self_signed(names)?;
    write_private(&key_path, key.as_bytes())?;
    write_private(&cert_path, cert.as_bytes())?;
    info!(names = ?names, path = %cert_path.display(), "made a self-signed certificate");
    Ok((cert.into_bytes(), key.into_bytes()))
}

/// A self-signed ECDSA P-256 certificate for `names` (IP addresses become IP SANs): PEM
/// certificate and PEM PKCS#8 key.
pub fn make_self_signed(names: &[String]) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vshare");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What the server needs to know of a stored certificate: its names and when it expires.
pub struct CertInfo {
    pub dns: Vec<String>,
    pub ips: Vec<std::net::IpAddr>,
    pub not_after: i64,
    pub der: Vec<u8>,
}

impl CertInfo {
    /// The first (leaf) certificate of a PEM chain.
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<CertInfo> {
        let der = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| anyhow::anyhow!("no certificate"))?
            .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
        let mut info = CertInfo {
            dns: Vec::new(),
            ips: Vec::new(),
            not_after: cert.validity().not_after.timestamp(),
            der: der.to_vec(),
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        info.dns.push(d.to_ascii_lowercase())
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            info.ips.push(a.into());
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            info.ips.push(a.into());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(info)
    }

    /// Whether every name (a DNS name or an IP address) is in the certificate.
    pub fn covers(&self, names: &[String]) -> bool {
        names.iter().all(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => self.ips.contains(&ip),
            Err(_) => self.dns.contains(&n.to_ascii_lowercase()),
        })
    }

    pub fn days_left(&self) -> i64 {
        (self.not_after - chrono::Utc::now().timestamp()).div_euclid(24 * 3600)
    }
}

/// `Strict-Transport-Security` for https responses; none for a max-age of 0.
pub fn hsts_header(max_age_s: u64) -> Option<axum::http::HeaderValue> {
    (max_age_s > 0)
        .then(|| axum::http::HeaderValue::from_str(&format!("max-age={max_age_s}")).ok())
        .flatten()
}

/// The plain-HTTP listener's routes: ACME HTTP-01 answers, and 308 to the same path under the
/// https public URL for everything else (the Host header is not trusted for the target).
pub fn redirect_router(public_url: String, challenges: crate::acme::Challenges) -> axum::Router {
    use axum::http::{StatusCode, Uri, header};
    use axum::response::IntoResponse;
    axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(crate::acme::challenge),
        )
        .with_state(challenges)
        .fallback(move |uri: Uri| {
            let base = public_url.clone();
            async move {
                let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                match axum::http::HeaderValue::from_str(&format!("{base}{path}")) {
                    Ok(to) => {
                        (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, to)]).into_response()
                    }
                    Err(_) => StatusCode::BAD_REQUEST.into_response(),
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["localhost".to_string(), "192.0.2.7".to_string()];
        let (cert, key) = self_signed_files(dir.path(), &names).expect("made");
        let info = CertInfo::from_pem(&cert).expect("parse");
        assert!(info.covers(&names));
        assert!(info.days_left() >= SELF_SIGNED_DAYS - 1);
        certified_key(&cert, &key).expect("key matches");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("self-signed.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Reused while it covers the names; made again for a new one.
        let (again, _) = self_signed_files(dir.path(), &names).expect("reused");
        assert_eq!(again, cert);
        let more = vec!["localhost".to_string(), "vshare.lan".to_string()];
        let (other, _) = self_signed_files(dir.path(), &more).expect("remade");
        assert_ne!(other, cert);
        assert!(CertInfo::from_pem(&other).expect("parse").covers(&more));
    }

    #[test]
    fn tls_section_parses_and_https_becomes_the_default_public_url() {
        let c: Config = toml::from_str(
            "[tls]\nmode = \"self-signed\"\nnames = [\"vshare.lan\"]\nrtmps_listen = \"0.0.0.0:443\"\n",
        )
        .expect("parse");
        assert_eq!(c.tls.mode, TlsMode::SelfSigned);
        assert_eq!(c.public_url(), "https://127.0.0.1:8080");
        assert!(self_signed_names(&c).contains(&"vshare.lan".to_string()));
        assert!(toml::from_str::<Config>("[tls]\nmode = \"on\"\n").is_err());
        assert!(toml::from_str::<Config>("[tls]\nhsts = 1\n").is_err());
        assert_eq!(Config::default().public_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let (cert, _) = make_self_signed(&["a.example".into()]).expect("a");
        let (_, key) = make_self_signed(&["b.example".into()]).expect("b");
        assert!(certified_key(cert.as_bytes(), key.as_bytes()).is_err());
        assert!(certified_key(b"not pem", key.as_bytes()).is_err());
    }
}
