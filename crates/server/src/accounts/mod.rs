//! Accounts and what a signed-in user does, without HTTP: sign-up and sign-in ([`credentials`]:
//! argon2id), sessions, a stream key per user, upload tokens, the library (visibility,
//! deletion: [`library`]), and private videos behind signed, expiring [`links`]. Sign-in is
//! rate limited ([`limiter`]). The HTTP face is `api`; docs/http-api.md describes it.

pub mod credentials;
pub mod library;
pub mod limiter;
pub mod links;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::config::{AccountsConfig, Config, SignupMode};
use crate::db::{CreateUser, Db, StreamKey, User, Video, VideoAccess, Visibility};
use crate::storage::Storage;
pub use credentials::{
    CredentialError, hash_password, valid_password, valid_username, verify_password,
};
use credentials::{hash_password_blocking, verify_password_blocking};
pub use library::{DeleteError, Deleted, purge_deleted};
pub use limiter::RateLimiter;
pub use links::{LinkError, LinkSigner, MAX_LINK_TTL};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vshare_session";
/// How long an upload token stands for its stream key.
pub const UPLOAD_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How long a video's visibility and owner are cached for the media paths (live parts are
/// requested several times a second per viewer). A change made on this server applies at once.
const ACCESS_CACHE_TTL: Duration = Duration::from_secs(2);

/// How a request may read a video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The video is public.
    Public,
    /// The owner's session.
    Owner,
    /// A valid signed link; the query to carry on (`exp=…&sig=…`).
    Signed(String),
}

/// Why a request may not read a video.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Link(LinkError),
    #[error(
        "video {0} is private: open it with a signed link (…?exp=…&sig=…) or sign in as its owner"
    )]
    Private(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("too many sign-in attempts from this address")]
    TooManyFromAddress(Duration),
    #[error("too many failed sign-ins for this username")]
    TooManyForUsername(Duration),
    #[error("wrong username or password")]
    WrongCredentials,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Why no account was made.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("sign-up is closed on this server; ask its administrator for an account")]
    Closed,
    #[error("sign-up on this server needs an invite code from its administrator (\"invite\")")]
    BadInvite,
    #[error("too many sign-ups from this address")]
    TooMany(Duration),
    #[error(transparent)]
    Invalid(#[from] CredentialError),
    #[error("the username {0:?} is taken")]
    Taken(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A new account: its user, its stream key (with the secret, shown this once) and the
/// `Set-Cookie` value of its first session.
pub struct NewAccount {
    pub user: User,
    pub key: StreamKey,
    pub key_secret: String,
    pub session_cookie: String,
}

/// Accounts' state in the server: the link key, the limits, and a short cache of who may read
/// which video.
pub struct Accounts {
    pub config: AccountsConfig,
    links: LinkSigner,
    secure_cookie: bool,
    public_url: String,
    /// Failed sign-ins per username, all addresses together (the slow backstop).
    signin_user: RateLimiter,
    /// Failed sign-ins per username and address (what locks an outsider out, not the owner).
    signin_user_ip: RateLimiter,
    signin_ip: RateLimiter,
    signup_ip: RateLimiter,
    access_cache: Mutex<HashMap<String, (Instant, Option<VideoAccess>)>>,
}

impl Accounts {
    /// Reads (or makes, the first time) the key that signs private links.
    pub async fn new(db: &Db, config: &Config) -> anyhow::Result<Accounts> {
        let a = &config.accounts;
        let public_url = config.public_url();
        Ok(Accounts {
            links: LinkSigner::new(db.server_secret("link-signing").await?),
            secure_cookie: public_url.starts_with("https://"),
            public_url,
            signin_user: RateLimiter::new(
                a.signin_failures_per_user_global,
                Duration::from_secs(a.signin_window_s),
            ),
            signin_user_ip: RateLimiter::new(
                a.signin_failures_per_user,
                Duration::from_secs(a.signin_window_s),
            ),
            signin_ip: RateLimiter::new(
                a.signin_attempts_per_ip,
                Duration::from_secs(a.signin_window_s),
            ),
            signup_ip: RateLimiter::new(a.signup_per_ip, Duration::from_secs(a.signup_window_s)),
            config: a.clone(),
            access_cache: Mutex::default(),
        })
    }

    /// The server's public base URL, as attribute records carry it.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Who may read a video, from a cache of a couple of seconds.
    pub async fn access(&self, db: &Db, id: &str) -> anyhow::Result<Option<VideoAccess>> {
        let now = Instant::now();
        if let Some((at, a)) = self
            .access_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            && now.duration_since(*at) < ACCESS_CACHE_TTL
        {
            return Ok(a.clone());
        }
        let a = db.video_access(id).await?;
        let mut cache = self.access_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| now.duration_since(*at) < ACCESS_CACHE_TTL);
        }
        cache.insert(id.to_string(), (now, a.clone()));
        Ok(a)
    }

    /// Drops a video from the cache after its visibility changed or it was deleted.
    fn forget(&self, id: &str) {
        self.access_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The query (`exp=…&sig=…`) that opens a private video until `exp` (Unix seconds).
    pub fn link_query(&self, video_id: &str, exp: i64) -> String {
        self.links.query(video_id, exp)
    }

    /// Adds a link query to the URLs of this server in a video's attribute records.
    pub fn sign_records(&self, v: &mut Video, query: &str) {
        links::sign_records(v, &self.public_url, query);
    }

    /// Decides whether a request may read video `id`, given the `exp` and `sig` of its link and
    /// its session token, at Unix time `now`: None when there is no such video, an error when
    /// it is private and the request has neither a valid link nor the owner's session.
    pub async fn authorize(
        &self,
        db: &Db,
        id: &str,
        link: Option<(&str, &str)>,
        session_token: Option<&str>,
        now: i64,
    ) -> Result<Option<(VideoAccess, Grant)>, AccessError> {
        let Some(access) = self.access(db, id).await? else {
            return Ok(None);
        };
        if access.visibility == Visibility::Public {
            return Ok(Some((access, Grant::Public)));
        }
        let link_error = match link {
            Some((exp, sig)) => match self.links.verify(id, exp, sig, now) {
                Ok(exp) => {
                    let q = self.links.query(id, exp);
                    return Ok(Some((access, Grant::Signed(q))));
                }
                Err(e) => Some(e),
            },
            None => None,
        };
        if let Some(token) = session_token
            && let Some(user) = db.session_user(token).await?
            && access.owner.as_deref() == Some(user.id.as_str())
        {
            return Ok(Some((access, Grant::Owner)));
        }
        Err(match link_error {
            Some(e) => AccessError::Link(e),
            None => AccessError::Private(id.to_string()),
        })
    }

    /// The `Set-Cookie` value of a session (an empty token and zero age clear it).
    pub fn session_cookie(&self, token: &str, max_age: Duration) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!(
            "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        )
    }

    /// Starts a session for `user`; returns its `Set-Cookie` value.
    pub async fn start_session(&self, db: &Db, user: &User) -> anyhow::Result<String> {
        let ttl = Duration::from_secs(self.config.session_days.max(1) * 24 * 3600);
        let (token, _) = db.create_session(&user.id, ttl).await?;
        Ok(self.session_cookie(&token, ttl))
    }

    /// Refuses sign-up when the configuration closed it.
    pub fn ensure_signup_open(&self) -> Result<(), SignUpError> {
        if self.config.signup == SignupMode::Closed {
            Err(SignUpError::Closed)
        } else {
            Ok(())
        }
    }

    /// Creates an account and its stream key, and signs in. Limited per client address; with
    /// `signup = "invite"` an unused invite code is needed (and spent).
    pub async fn sign_up(
        &self,
        db: &Db,
        client_ip: Option<&str>,
        username: &str,
        password: String,
        invite: Option<&str>,
    ) -> Result<NewAccount, SignUpError> {
        self.ensure_signup_open()?;
        let invite = match self.config.signup {
            SignupMode::Invite => Some(invite.ok_or(SignUpError::BadInvite)?),
            _ => None,
        };
        let username = username.trim().to_ascii_lowercase();
        valid_username(&username)?;
        valid_password(&password)?;
        if let Some(ip) = client_ip {
            self.signup_ip
                .acquire(ip, 1, Instant::now())
                .map_err(SignUpError::TooMany)?;
        }
        let hash = hash_password_blocking(password).await?;
        let (user, key, key_secret) = match db.create_user(&username, &hash, invite).await? {
            CreateUser::Created(user, key, secret) => (user, key, secret),
            CreateUser::Taken => return Err(SignUpError::Taken(username)),
            CreateUser::BadInvite => return Err(SignUpError::BadInvite),
        };
        info!(user = %user.username, "account created");
        let session_cookie = self.start_session(db, &user).await?;
        Ok(NewAccount {
            user,
            key,
            key_secret,
            session_cookie,
        })
    }

    /// Signs in; limited per client address (attempts), per username and address (failures)
    /// and per username from every address (failures, a larger budget). Each attempt is counted
    /// before the password is checked, so concurrent guesses cannot pass the limits; a right
    /// password gives its count back. Returns the user and the `Set-Cookie` value of the new
    /// session.
    pub async fn sign_in(
        &self,
        db: &Db,
        client_ip: Option<&str>,
        username: &str,
        password: String,
        now: Instant,
    ) -> Result<(User, String), SignInError> {
        let username = username.trim().to_ascii_lowercase();
        if let Some(ip) = client_ip {
            self.signin_ip
                .acquire(ip, 1, now)
                .map_err(SignInError::TooManyFromAddress)?;
        }
        let user_ip = format!("{username}\n{}", client_ip.unwrap_or(""));
        self.signin_user_ip
            .acquire(&user_ip, 1, now)
            .map_err(SignInError::TooManyForUsername)?;
        if let Err(wait) = self.signin_user.acquire(&username, 1, now) {
            self.signin_user_ip.release(&user_ip);
            return Err(SignInError::TooManyForUsername(wait));
        }
        let Some((user, phc)) = db.user_by_name(&username).await? else {
            // As long as a wrong password, so the answer does not tell which names exist.
            verify_password_blocking(password, None).await?;
            return Err(SignInError::WrongCredentials);
        };
        if !verify_password_blocking(password, Some(phc)).await? {
            return Err(SignInError::WrongCredentials);
        }
        self.signin_user_ip.release(&user_ip);
        self.signin_user.release(&username);
        let cookie = self.start_session(db, &user).await?;
        Ok((user, cookie))
    }

    /// Makes a video public or private.
    pub async fn set_visibility(
        &self,
        db: &Db,
        id: &str,
        visibility: Visibility,
    ) -> anyhow::Result<()> {
        db.set_visibility(id, visibility).await?;
        self.forget(id);
        Ok(())
    }

    /// Deletes a video (see [`library`]); `by` names the user, for the log.
    pub async fn delete_video(
        &self,
        db: &Db,
        storage: &Storage,
        id: &str,
        by: &str,
    ) -> Result<Deleted, DeleteError> {
        library::mark_deleted(db, id).await?;
        self.forget(id);
        info!(video = %id, user = %by, "video deleted");
        Ok(library::purge_marked(db, storage, id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_and_secure_over_https() {
        let accounts = |public_url: &str| Accounts {
            config: AccountsConfig::default(),
            links: LinkSigner::new("k".into()),
            secure_cookie: public_url.starts_with("https://"),
            public_url: public_url.into(),
            signin_user: RateLimiter::new(1, Duration::from_secs(1)),
            signin_user_ip: RateLimiter::new(1, Duration::from_secs(1)),
            signin_ip: RateLimiter::new(1, Duration::from_secs(1)),
            signup_ip: RateLimiter::new(1, Duration::from_secs(1)),
            access_cache: Mutex::default(),
        };
        assert_eq!(
            accounts("http://h").session_cookie("t1", Duration::from_secs(60)),
            "vshare_session=t1; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            accounts("https://h").session_cookie("", Duration::ZERO),
            "vshare_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
