//! Certificates from an ACME CA (RFC 8555) with the HTTP-01 challenge, through instant-acme:
//! the account and the certificate live in `<data_dir>/tls/` (0600), the challenge answers are
//! served by the plain-HTTP listener (`/.well-known/acme-challenge/{token}`), and a
//! certificate is renewed when `acme_renew_days` or fewer remain.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tracing::{info, warn};

use crate::config::Config;
use crate::tls::{CertInfo, CertSlot, certified_key, write_private};

/// Key authorizations of the HTTP-01 challenges in progress, by token.
#[derive(Clone, Default)]
pub struct Challenges(Arc<Mutex<HashMap<String, String>>>);

impl Challenges {
    fn set(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(token.to_string(), key_authorization.to_string());
        }
    }

    fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0.lock().ok()?.get(token).cloned()
    }
}

/// `GET /.well-known/acme-challenge/{token}` on the plain-HTTP listener.
pub async fn challenge(
    State(challenges): State<Challenges>,
    Path(token): Path<String>,
) -> axum::response::Response {
    match challenges.get(&token) {
        Some(answer) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            answer,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Keeps the certificate in `certs` valid: loads the stored one, obtains one when there is none
/// (or it does not cover the names, or is due), and renews it before it expires. Runs until
/// the process ends.
pub async fn run(config: Arc<Config>, certs: Arc<CertSlot>, challenges: Challenges) {
    let acme = Acme::new(&config);
    let mut retry = Duration::from_secs(5);
    let mut just_obtained = false;
    loop {
        // A stored certificate is served while it is valid, also while its renewal is due.
        let mut due = true;
        if let Some((info, cert, key)) = acme.current()
            && info.covers(&acme.names)
        {
            match certified_key(&cert, &key) {
                Ok(k) if info.days_left() > 0 => certs.set(k),
                Ok(_) => {}
                Err(e) => warn!("stored ACME certificate: {e}"),
            }
            due = info.days_left() <= acme.renew_days;
        }
        if due && just_obtained {
            warn!(
                renew_days = acme.renew_days,
                "the new ACME certificate is due for renewal already (its lifetime is shorter \
                 than acme_renew_days); looking again in a day"
            );
        }
        if !due || just_obtained {
            just_obtained = false;
            // Looked at again daily: renewal is due in whole days.
            retry = Duration::from_secs(5);
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            continue;
        }
        match acme.obtain(&challenges).await {
            Ok(()) => {
                let fingerprint = acme
                    .current()
                    .map(|(i, _, _)| crate::tls::fingerprint(&i.der));
                info!(names = ?acme.names, fingerprint = ?fingerprint, "ACME certificate obtained");
                retry = Duration::from_secs(5);
                just_obtained = true;
            }
            Err(e) => {
                warn!(names = ?acme.names, "ACME: {e:#}; trying again in {retry:?}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(3600));
            }
        }
        challenges.clear();
    }
}

/// `acme-account.json`: the account key and URL, and the directory it belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

struct Acme {
    names: Vec<String>,
    renew_days: i64,
    directory: String,
    contact: Vec<String>,
    ca_file: Option<PathBuf>,
    account_path: PathBuf,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl Acme {
    fn new(config: &Config) -> Acme {
        let dir = crate::tls::tls_dir(config);
        let tls = &config.tls;
        Acme {
            names: acme_names(config),
            renew_days: tls.acme_renew_days as i64,
            directory: tls.acme_directory.clone(),
            contact: tls.acme_contact.clone(),
            ca_file: tls.acme_ca_file.clone(),
            account_path: dir.join("acme-account.json"),
            cert_path: dir.join("acme.crt"),
            key_path: dir.join("acme.key"),
        }
    }

    /// The stored certificate, if there is one that parses.
    fn current(&self) -> Option<(CertInfo, Vec<u8>, Vec<u8>)> {
        let cert = std::fs::read(&self.cert_path).ok()?;
        let key = std::fs::read(&self.key_path).ok()?;
        Some((CertInfo::from_pem(&cert).ok()?, cert, key))
    }

    async fn account(&self) -> anyhow::Result<Account> {
        let builder = || match &self.ca_file {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        // The account is the directory's: another directory (staging, then production) gets
        // an account of its own.
        if let Ok(text) = std::fs::read(&self.account_path)
            && let Ok(stored) = serde_json::from_slice::<StoredAccount>(&text)
            && stored.directory == self.directory
        {
            return Ok(builder()?.from_credentials(stored.credentials).await?);
        }
        let contact: Vec<&str> = self.contact.iter().map(String::as_str).collect();
        let (account, creds) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await?;
        let stored = StoredAccount {
            directory: self.directory.clone(),
            credentials: creds,
        };
        write_private(&self.account_path, &serde_json::to_vec(&stored)?)?;
        info!(directory = %self.directory, "ACME account created");
        Ok(account)
    }

    async fn obtain(&self, challenges: &Challenges) -> anyhow::Result<()> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => anyhow::bail!("authorization is {other:?}"),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow::anyhow!("the CA offers no http-01 challenge"))?;
            challenges.set(&challenge.token, challenge.key_authorization().as_str());
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&RetryPolicy::default()).await?;
        anyhow::ensure!(status == OrderStatus::Ready, "order is {status:?}");
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(self.names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&RetryPolicy::default()).await?;
        let key_pem = key.serialize_pem();
        certified_key(chain.as_bytes(), key_pem.as_bytes())?;
        write_private(&self.key_path, key_pem.as_bytes())?;
        write_private(&self.cert_path, chain.as_bytes())?;
        Ok(())
    }
}

/// The stored ACME certificate, when it covers the names and has not expired: served from the
/// first handshake on, before [`run`] looks at renewal.
pub fn stored(config: &Config) -> Option<rustls::sign::CertifiedKey> {
    let acme = Acme::new(config);
    let (info, cert, key) = acme.current()?;
    (info.covers(&acme.names) && info.days_left() > 0)
        .then(|| certified_key(&cert, &key).ok())
        .flatten()
}

/// The DNS names to obtain a certificate for: `[tls] names`, else the public URL's host.
pub fn acme_names(config: &Config) -> Vec<String> {
    if !config.tls.names.is_empty() {
        return config.tls.names.clone();
    }
    config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .into_iter()
        .collect()
}

/// Why the ACME configuration cannot work, if it cannot.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let names = acme_names(config);
    anyhow::ensure!(
        !names.is_empty(),
        "[tls] mode \"acme\" needs `names` (or a public URL with a host name)"
    );
    for n in &names {
        anyhow::ensure!(
            n.parse::<std::net::IpAddr>().is_err(),
            "[tls] names: ACME certificates are for DNS names, not {n}"
        );
    }
    anyhow::ensure!(
        config.tls.redirect_listen.is_some(),
        "[tls] mode \"acme\" needs `redirect_listen` (port 80 of the names) for the HTTP-01 challenge"
    );
    Ok(())
}
