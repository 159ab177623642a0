//! Accounts and what a signed-in user does: sign-up and sign-in (argon2id), a session cookie, a
//! stream key per user, upload tokens, the library (visibility, deletion), and private videos
//! behind signed, expiring links (HMAC-SHA256 over the video id and the expiry). The HTTP API is
//! described in docs/http-api.md.
//!
//! The `Cookie` header is read by hand: one cookie is all we read, which does not merit a
//! cookie-jar crate. The rate limiter is a few lines over a map (no crate keys limits the way
//! sharing needs: n messages at once, with the wait until they fit).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::config::{AccountsConfig, Config};
use crate::db::{Db, MarkDeleted, User, Video, VideoAccess, VideoState, Visibility};
use crate::http::AppState;
use crate::storage::Storage;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vshare_session";
/// How long an upload token stands for its stream key.
pub const UPLOAD_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Longest validity of a signed link.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a video's visibility and owner are cached for the media paths (live parts are
/// requested several times a second per viewer). A change made on this server applies at once.
const ACCESS_CACHE_TTL: Duration = Duration::from_secs(2);

type AppStateRef = State<Arc<AppState>>;

/// An API error: a status, a plain-text reason, and for 429 the seconds to wait.
#[derive(Debug)]
pub struct Error {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        let mut message = message.into();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        Error {
            status,
            message,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    pub fn too_many(what: &str, wait: Duration) -> Error {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        let mut e = Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{what}; try again in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        warn!("http: {e:#}");
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

pub(crate) fn bad_json(e: JsonRejection) -> Error {
    Error::new(StatusCode::BAD_REQUEST, e.body_text())
}

fn unauthorized() -> Error {
    Error::new(
        StatusCode::UNAUTHORIZED,
        "not signed in: POST /api/v1/session with your username and password first",
    )
}

pub(crate) fn not_found() -> Error {
    Error::new(StatusCode::NOT_FOUND, "video not found")
}

/// A sliding-window limit per key: at most `max` events in any `window`.
pub struct RateLimiter {
    max: usize,
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            max,
            window,
            events: Mutex::default(),
        }
    }

    /// Whether `n` more events fit now; if not, how long until they do.
    pub fn check(&self, key: &str, n: usize, now: Instant) -> Result<(), Duration> {
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = map.get_mut(key) else {
            return if n <= self.max {
                Ok(())
            } else {
                Err(self.window)
            };
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() + n <= self.max {
            return Ok(());
        }
        if n > self.max {
            return Err(self.window);
        }
        // The events that must age out first: the oldest (len + n - max).
        let must_expire = q.len() + n - self.max;
        let t = q[must_expire - 1];
        Err((t + self.window).saturating_duration_since(now))
    }

    /// Counts `n` events now.
    pub fn record(&self, key: &str, n: usize, now: Instant) {
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            // Forget keys whose events have all aged out, so the map cannot grow without end.
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let q = map.entry(key.to_string()).or_default();
        q.extend(std::iter::repeat_n(now, n));
    }

    /// [`check`](Self::check), then [`record`](Self::record) if it fits.
    pub fn acquire(&self, key: &str, n: usize, now: Instant) -> Result<(), Duration> {
        self.check(key, n, now)?;
        self.record(key, n, now);
        Ok(())
    }
}

/// The SMSC that users' shares go through (`[proxy] smsc`, `smsc_system_id`, `smsc_password`;
/// the sender is the proxy's `number`, where replies such as SUB arrive).
#[derive(Debug, Clone)]
pub struct SmscTarget {
    pub addr: String,
    pub system_id: String,
    pub password: String,
    pub from: String,
}

/// Accounts' state in the server: the link key, the limits, and a short cache of who may read
/// which video.
pub struct Accounts {
    pub config: AccountsConfig,
    pub smsc: Option<SmscTarget>,
    link_secret: String,
    secure_cookie: bool,
    public_url: String,
    signin_user: RateLimiter,
    signin_ip: RateLimiter,
    pub share: RateLimiter,
    access_cache: Mutex<HashMap<String, (Instant, Option<VideoAccess>)>>,
}

impl Accounts {
    /// Reads (or makes, the first time) the key that signs private links.
    pub async fn new(db: &Db, config: &Config) -> anyhow::Result<Accounts> {
        let a = &config.accounts;
        let public_url = config.public_url();
        Ok(Accounts {
            link_secret: db.server_secret("link-signing").await?,
            secure_cookie: public_url.starts_with("https://"),
            public_url,
            signin_user: RateLimiter::new(
                a.signin_failures_per_user,
                Duration::from_secs(a.signin_window_s),
            ),
            signin_ip: RateLimiter::new(
                a.signin_attempts_per_ip,
                Duration::from_secs(a.signin_window_s),
            ),
            share: RateLimiter::new(a.share_messages, Duration::from_secs(a.share_window_s)),
            config: a.clone(),
            smsc: config.proxy.smsc.as_ref().map(|addr| SmscTarget {
                addr: addr.clone(),
                system_id: config.proxy.smsc_system_id.clone(),
                password: config.proxy.smsc_password.clone(),
                from: config.proxy.number.clone(),
            }),
            access_cache: Mutex::default(),
        })
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

    /// The hex HMAC-SHA256 of `<video id>:<expiry>` under the server's link key.
    fn signature(&self, video_id: &str, exp: i64) -> String {
        let s =
            vshare_proxy::ip::signature(&self.link_secret, format!("{video_id}:{exp}").as_bytes());
        s.trim_start_matches("sha256=").to_string()
    }

    /// The query (`exp=…&sig=…`) that opens a private video until `exp` (Unix seconds).
    pub fn link_query(&self, video_id: &str, exp: i64) -> String {
        format!("exp={exp}&sig={}", self.signature(video_id, exp))
    }

    /// Checks a link's `exp` and `sig` for a video at Unix time `now`.
    pub fn verify_link(
        &self,
        video_id: &str,
        exp: &str,
        sig: &str,
        now: i64,
    ) -> Result<i64, Error> {
        let exp_n: i64 = exp
            .parse()
            .map_err(|_| Error::new(StatusCode::FORBIDDEN, "the link's exp is not a Unix time"))?;
        let want = self.signature(video_id, exp_n);
        if !constant_time_eq(want.as_bytes(), sig.as_bytes()) {
            return Err(Error::new(
                StatusCode::FORBIDDEN,
                "the link's signature is not valid for this video",
            ));
        }
        if exp_n <= now {
            return Err(Error::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this link expired at {}; ask the video's owner for a new one",
                    rfc3339(exp_n)
                ),
            ));
        }
        Ok(exp_n)
    }

    fn session_cookie(&self, token: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let value = format!(
            "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Adds a link query to the URLs of this server in a video's attribute records.
    pub fn sign_records(&self, v: &mut Video, query: &str) {
        for r in &mut v.attributes {
            if r.url.starts_with(&self.public_url) {
                r.url = with_query(&r.url, query);
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rfc3339(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix_s.to_string())
}

fn rfc3339_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix_ms.to_string())
}

/// `uri` with `query` added (after `?`, or `&` when it has a query already).
pub fn with_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// Adds `query` to every URI of an HLS playlist, so a player that follows them carries the
/// link's signature: URI lines, and the quoted `URI="…"` attribute of tags (EXT-X-MAP,
/// EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-MEDIA; RFC 8216bis §4).
pub fn sign_playlist(text: &str, query: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.split_inclusive('\n') {
        let (body, end) = line.split_at(line.trim_end_matches(['\r', '\n']).len());
        if body.starts_with('#') {
            let mut rest = body;
            while let Some(i) = rest.find("URI=\"") {
                let start = i + 5;
                out.push_str(&rest[..start]);
                rest = &rest[start..];
                match rest.find('"') {
                    Some(j) => {
                        out.push_str(&with_query(&rest[..j], query));
                        rest = &rest[j..];
                    }
                    None => break,
                }
            }
            out.push_str(rest);
        } else if body.trim().is_empty() {
            out.push_str(body);
        } else {
            out.push_str(&with_query(body.trim(), query));
        }
        out.push_str(end);
    }
    out
}

/// The value of the session cookie in a request.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The signed-in user of a request, if any.
pub async fn current_user(st: &AppState, headers: &HeaderMap) -> Result<Option<User>, Error> {
    match session_token(headers) {
        Some(token) => Ok(st.db.session_user(token).await?),
        None => Ok(None),
    }
}

/// The signed-in user, or 401.
pub async fn require_user(st: &AppState, headers: &HeaderMap) -> Result<User, Error> {
    current_user(st, headers).await?.ok_or_else(unauthorized)
}

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

/// Decides whether a request may read video `id`: None when there is no such video, 403 when
/// it is private and the request has neither a valid link nor the owner's session.
pub async fn authorize(
    st: &AppState,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<(VideoAccess, Grant)>, Error> {
    let Some(access) = st.accounts.access(&st.db, id).await? else {
        return Ok(None);
    };
    if access.visibility == Visibility::Public {
        return Ok(Some((access, Grant::Public)));
    }
    let (mut exp, mut sig) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "exp" => exp = Some(v.into_owned()),
            "sig" => sig = Some(v.into_owned()),
            _ => {}
        }
    }
    let link_error = match (&exp, &sig) {
        (Some(exp), Some(sig)) => {
            match st
                .accounts
                .verify_link(id, exp, sig, chrono::Utc::now().timestamp())
            {
                Ok(exp) => {
                    let q = st.accounts.link_query(id, exp);
                    return Ok(Some((access, Grant::Signed(q))));
                }
                Err(e) => Some(e),
            }
        }
        _ => None,
    };
    if let Some(user) = current_user(st, headers).await?
        && access.owner.as_deref() == Some(user.id.as_str())
    {
        return Ok(Some((access, Grant::Owner)));
    }
    Err(link_error.unwrap_or_else(|| {
        Error::new(
            StatusCode::FORBIDDEN,
            format!(
                "video {id} is private: open it with a signed link (…?exp=…&sig=…) or sign in as its owner"
            ),
        )
    }))
}

/// Which video a guarded path is about: `/live/{id}/…`, `/vod/{id}/…` and (for reads)
/// `/api/v1/videos/{id}`.
fn guarded_video(path: &str, read: bool) -> Option<&str> {
    if let Some(rest) = path
        .strip_prefix("/live/")
        .or_else(|| path.strip_prefix("/vod/"))
    {
        let (id, file) = rest.split_once('/')?;
        return (!id.is_empty() && !file.is_empty()).then_some(id);
    }
    let id = path.strip_prefix("/api/v1/videos/")?;
    (read && !id.is_empty() && !id.contains('/')).then_some(id)
}

/// Middleware in front of the media and video API paths: private videos answer 403 unless the
/// request carries a valid signed link or the owner's session. Playlists served under a link
/// get the link on every URI they list, and the video's JSON on its record URLs, so players and
/// pages that follow them stay inside the link. Responses about private videos are marked
/// `Cache-Control: private` so shared caches never keep them.
pub async fn private_videos(State(st): AppStateRef, req: Request, next: Next) -> Response {
    let read = req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD;
    let Some(id) = guarded_video(req.uri().path(), read).map(str::to_string) else {
        return next.run(req).await;
    };
    let grant = match authorize(&st, &id, req.headers(), req.uri().query()).await {
        Ok(Some((_, grant))) => grant,
        Ok(None) => return not_found().into_response(),
        Err(e) => return e.into_response(),
    };
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if grant == Grant::Public {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let cache = parts
        .headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("private, {v}"))
        .unwrap_or_else(|| "private, no-cache".into());
    if let Ok(v) = HeaderValue::from_str(&cache) {
        parts.headers.insert(header::CACHE_CONTROL, v);
    }
    let Grant::Signed(query) = grant else {
        return Response::from_parts(parts, body);
    };
    let playlist = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == crate::http::M3U8.as_bytes());
    if parts.status != StatusCode::OK || !(playlist || api) {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(b) => b,
        Err(e) => return Error::from(anyhow::anyhow!("reading a response: {e}")).into_response(),
    };
    let rewritten = if playlist {
        sign_playlist(&String::from_utf8_lossy(&bytes), &query).into_bytes()
    } else {
        match serde_json::from_slice::<Video>(&bytes) {
            Ok(mut v) => {
                st.accounts.sign_records(&mut v, &query);
                serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec())
            }
            Err(_) => bytes.to_vec(),
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(rewritten))
}

// --- passwords ---

/// An argon2id PHC string (the crate's defaults: 19 MiB, 2 passes, 1 lane; OWASP's minimum).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

/// Whether `password` matches a PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the username does not exist, so that the answer takes as long
/// as for a wrong password and does not tell which names exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("no such user").unwrap_or_default());

async fn verify_blocking(password: String, phc: Option<String>) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => {
            verify_password(&password, &DUMMY_HASH);
            false
        }
    })
    .await?)
}

/// Usernames: 3–32 of `a-z 0-9 _ . -`.
pub fn valid_username(name: &str) -> Result<(), Error> {
    let ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            StatusCode::BAD_REQUEST,
            "username must be 3 to 32 characters of a-z, 0-9, '_', '.' and '-'",
        ))
    }
}

/// Passwords: at least 8 characters (at most 1024 bytes, to bound the hashing work).
pub fn valid_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < 8 {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "password must have at least 8 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "password must be at most 1024 bytes",
        ));
    }
    Ok(())
}

fn client_ip(ext: &Extensions) -> Option<String> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

// --- handlers ---

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/accounts", post(sign_up))
        .route("/api/v1/session", post(sign_in).delete(sign_out))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/stream-key", post(rotate_key))
        .route("/api/v1/me/upload-token", post(upload_token))
        .route("/api/v1/me/videos", get(my_videos))
        .route(
            "/api/v1/videos/{id}",
            axum::routing::patch(set_visibility).delete(delete_video),
        )
        .route("/api/v1/videos/{id}/link", get(video_link))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

fn user_json(u: &User) -> serde_json::Value {
    json!({ "id": u.id, "username": u.username })
}

async fn start_session(st: &AppState, user: &User) -> Result<HeaderValue, Error> {
    let ttl = Duration::from_secs(st.accounts.config.session_days.max(1) * 24 * 3600);
    let (token, _) = st.db.create_session(&user.id, ttl).await?;
    Ok(st.accounts.session_cookie(&token, ttl))
}

/// `POST /api/v1/accounts`: creates an account and its stream key, and signs in.
async fn sign_up(
    State(st): AppStateRef,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, Error> {
    if !st.accounts.config.signup {
        return Err(Error::new(
            StatusCode::FORBIDDEN,
            "sign-up is closed on this server; ask its administrator for an account",
        ));
    }
    let Json(c) = body.map_err(bad_json)?;
    let username = c.username.trim().to_ascii_lowercase();
    valid_username(&username)?;
    valid_password(&c.password)?;
    let password = c.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(anyhow::Error::from)??;
    let Some((user, key, secret)) = st.db.create_user(&username, &hash).await? else {
        return Err(Error::new(
            StatusCode::CONFLICT,
            format!("the username {username:?} is taken"),
        ));
    };
    info!(user = %user.username, "account created");
    let cookie = start_session(&st, &user).await?;
    let body = json!({
        "user": user_json(&user),
        "stream_key": { "id": key.id, "name": key.name, "key": secret },
        "rtmp_url": st.rtmp_url,
        "publish_url": format!("{}/{secret}", st.rtmp_url),
    });
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(body),
    )
        .into_response())
}

/// `POST /api/v1/session`: signs in; rate limited per username (failures) and per address.
async fn sign_in(
    State(st): AppStateRef,
    ext: Extensions,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, Error> {
    let Json(c) = body.map_err(bad_json)?;
    let username = c.username.trim().to_ascii_lowercase();
    let now = Instant::now();
    let acc = &st.accounts;
    if let Some(ip) = client_ip(&ext) {
        acc.signin_ip
            .acquire(&ip, 1, now)
            .map_err(|wait| Error::too_many("too many sign-in attempts from this address", wait))?;
    }
    acc.signin_user
        .check(&username, 1, now)
        .map_err(|wait| Error::too_many("too many failed sign-ins for this username", wait))?;
    let found = st.db.user_by_name(&username).await?;
    let phc = found.as_ref().map(|(_, h)| h.clone());
    if !verify_blocking(c.password, phc).await? {
        acc.signin_user.record(&username, 1, now);
        return Err(Error::new(
            StatusCode::UNAUTHORIZED,
            "wrong username or password",
        ));
    }
    let Some((user, _)) = found else {
        return Err(Error::new(
            StatusCode::UNAUTHORIZED,
            "wrong username or password",
        ));
    };
    let cookie = start_session(&st, &user).await?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "user": user_json(&user) })),
    )
        .into_response())
}

/// `DELETE /api/v1/session`: signs out (ends the session and clears the cookie).
async fn sign_out(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, Error> {
    if let Some(token) = session_token(&headers) {
        st.db.delete_session(token).await?;
    }
    let cookie = st.accounts.session_cookie("", Duration::ZERO);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `GET /api/v1/me`.
async fn me(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, Error> {
    let user = require_user(&st, &headers).await?;
    let key = st.db.user_key(&user.id).await?;
    Ok(Json(json!({
        "user": user_json(&user),
        "stream_key": key.map(|k| json!({ "id": k.id, "name": k.name, "revoked": k.revoked })),
        "rtmp_url": st.rtmp_url,
    }))
    .into_response())
}

/// The signed-in user's stream key, usable for publishing.
async fn usable_key(st: &AppState, user: &User) -> Result<crate::db::StreamKey, Error> {
    match st.db.user_key(&user.id).await? {
        Some(k) if !k.revoked => Ok(k),
        Some(_) => Err(Error::new(
            StatusCode::CONFLICT,
            "your stream key was revoked by an administrator",
        )),
        None => Err(Error::new(StatusCode::CONFLICT, "you have no stream key")),
    }
}

/// `POST /api/v1/me/stream-key`: a new secret for the user's key, shown this once.
async fn rotate_key(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, Error> {
    let user = require_user(&st, &headers).await?;
    let key = usable_key(&st, &user).await?;
    let secret = st.db.rotate_key(&key.id).await?;
    info!(user = %user.username, key = %key.id, "stream key rotated");
    Ok(Json(json!({
        "id": key.id,
        "name": key.name,
        "key": secret,
        "rtmp_url": st.rtmp_url,
        "publish_url": format!("{}/{secret}", st.rtmp_url),
    }))
    .into_response())
}

/// `POST /api/v1/me/upload-token`: a one-hour token for the upload protocol.
async fn upload_token(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, Error> {
    let user = require_user(&st, &headers).await?;
    let key = usable_key(&st, &user).await?;
    let (token, expires_ms) = st.db.create_upload_token(&key.id, UPLOAD_TOKEN_TTL).await?;
    Ok(Json(json!({
        "token": token,
        "expires_at": rfc3339_ms(expires_ms),
        "expires_in": UPLOAD_TOKEN_TTL.as_secs(),
        "key_id": key.id,
    }))
    .into_response())
}

/// `GET /api/v1/me/videos`: the user's videos, newest first.
async fn my_videos(State(st): AppStateRef, headers: HeaderMap) -> Result<Response, Error> {
    let user = require_user(&st, &headers).await?;
    let videos: Vec<Video> = st
        .db
        .user_videos(&user.id)
        .await?
        .into_iter()
        .map(|v| st.videos.with_live_record(v))
        .collect();
    Ok(Json(videos).into_response())
}

/// The signed-in owner of video `id`: 401 signed out, 404 no video, 403 someone else's.
async fn require_owner(
    st: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(User, VideoAccess), Error> {
    let user = require_user(st, headers).await?;
    let access = st.db.video_access(id).await?.ok_or_else(not_found)?;
    if access.owner.as_deref() != Some(user.id.as_str()) {
        return Err(Error::new(StatusCode::FORBIDDEN, "this video is not yours"));
    }
    Ok((user, access))
}

#[derive(Deserialize)]
struct VideoPatch {
    visibility: String,
}

/// `PATCH /api/v1/videos/{id}`: makes a video public or private.
async fn set_visibility(
    State(st): AppStateRef,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<VideoPatch>, JsonRejection>,
) -> Result<Response, Error> {
    let Json(p) = body.map_err(bad_json)?;
    require_owner(&st, &headers, &id).await?;
    let visibility = Visibility::parse(&p.visibility).ok_or_else(|| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!(
                "visibility must be \"public\" or \"private\", not {:?}",
                p.visibility
            ),
        )
    })?;
    st.db.set_visibility(&id, visibility).await?;
    st.accounts.forget(&id);
    let v = st.db.get_video(&id).await?.ok_or_else(not_found)?;
    Ok(Json(st.videos.with_live_record(v)).into_response())
}

/// `DELETE /api/v1/videos/{id}`.
///
/// In two steps, so that no reader ever sees half a video: first the video is marked deleted
/// (one statement; from then on every path answers 404), then its objects are removed from
/// storage and, last, its rows in one transaction. Each step can be repeated; a server stopped
/// between them finishes the job at its next start ([`purge_deleted`]). Deleting rows first
/// would leave objects nothing points at if the server stopped; deleting objects first would
/// leave a listed video whose files are gone.
async fn delete_video(
    State(st): AppStateRef,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let (user, _) = require_owner(&st, &headers, &id).await?;
    match st.db.mark_deleted(&id).await? {
        MarkDeleted::Marked => {}
        MarkDeleted::NotFound => return Err(not_found()),
        MarkDeleted::Busy(state) => {
            let what = match state {
                VideoState::Live => "is live: stop publishing first",
                _ => "is still being finished: try again in a few seconds",
            };
            return Err(Error::new(
                StatusCode::CONFLICT,
                format!("video {id} {what}"),
            ));
        }
    }
    st.accounts.forget(&id);
    info!(video = %id, user = %user.username, "video deleted");
    match purge(&st.db, &st.storage, &id).await {
        Ok(n) => {
            info!(video = %id, objects = n, "video purged");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => {
            warn!(video = %id, "objects of a deleted video not removed yet: {e:#}");
            Ok((
                StatusCode::ACCEPTED,
                "deleted; its stored files will be removed at the server's next start\n",
            )
                .into_response())
        }
    }
}

/// Removes a deleted video's objects, then its rows.
async fn purge(db: &Db, storage: &Storage, id: &str) -> anyhow::Result<usize> {
    let n = storage.delete_video(id).await?;
    db.purge_video(id).await?;
    Ok(n)
}

/// Finishes deletions that a stopped server left half done.
pub async fn purge_deleted(db: Db, storage: Storage) {
    let ids = match db.deleted_videos().await {
        Ok(ids) => ids,
        Err(e) => {
            warn!("deleted videos: {e:#}");
            return;
        }
    };
    for id in ids {
        match purge(&db, &storage, &id).await {
            Ok(n) => info!(video = %id, objects = n, "deleted video purged"),
            Err(e) => warn!(video = %id, "deleted video not purged: {e:#}"),
        }
    }
}

#[derive(Deserialize)]
struct LinkParams {
    ttl: Option<String>,
}

/// `GET /api/v1/videos/{id}/link?ttl=3600`: a signed link for the owner to hand out.
async fn video_link(
    State(st): AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<LinkParams>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let ttl = match q.ttl.as_deref() {
        None => 3600,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (1..=MAX_LINK_TTL.as_secs()).contains(t))
            .ok_or_else(|| {
                Error::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "ttl must be a number of seconds from 1 to {}",
                        MAX_LINK_TTL.as_secs()
                    ),
                )
            })?,
    };
    require_owner(&st, &headers, &id).await?;
    let mut v = st.db.get_video(&id).await?.ok_or_else(not_found)?;
    v = st.videos.with_live_record(v);
    let exp = chrono::Utc::now().timestamp() + ttl as i64;
    let query = st.accounts.link_query(&id, exp);
    let public = st.accounts.public_url.clone();
    let url = match v.state {
        VideoState::Live => v
            .attributes
            .iter()
            .find(|r| r.kind == vshare_attributes::Kind::Live)
            .map(|r| r.url.clone())
            .unwrap_or_else(|| format!("{public}/live/{id}/index.m3u8")),
        _ => format!("{public}/vod/{id}/index.m3u8"),
    };
    st.accounts.sign_records(&mut v, &query);
    Ok(Json(json!({
        "url": with_query(&url, &query),
        "expires_at": rfc3339(exp),
        "query": query,
        "video": format!("{public}/api/v1/videos/{id}?{query}"),
        "attributes": v.attributes,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_carry_the_link_on_every_uri() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg0.m4s\n\
                    #EXT-X-PART:DURATION=0.33,URI=\"part1.0.m4s\",INDEPENDENT=YES\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.1.m4s\"\n\
                    #EXT-X-RENDITION-REPORT:URI=\"../240p/index.m3u8\",LAST-MSN=1\n\
                    240p/index.m3u8?x=1\n\n#EXT-X-ENDLIST\n";
        let out = sign_playlist(text, "exp=9&sig=ab");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?exp=9&sig=ab\"\n#EXTINF:2.0,\nseg0.m4s?exp=9&sig=ab\n\
             #EXT-X-PART:DURATION=0.33,URI=\"part1.0.m4s?exp=9&sig=ab\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.1.m4s?exp=9&sig=ab\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../240p/index.m3u8?exp=9&sig=ab\",LAST-MSN=1\n\
             240p/index.m3u8?x=1&exp=9&sig=ab\n\n#EXT-X-ENDLIST\n"
        );
        // CRLF line ends stay as they were.
        assert_eq!(
            sign_playlist("#EXTM3U\r\na.m4s\r\n", "q=1"),
            "#EXTM3U\r\na.m4s?q=1\r\n"
        );
    }

    #[test]
    fn rate_limiter_counts_a_sliding_window() {
        let l = RateLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(l.acquire("u", 2, t0).is_ok());
        assert!(l.acquire("u", 1, t0 + Duration::from_secs(4)).is_ok());
        // Full: one more fits when the first two age out, at t0 + 10 s.
        assert_eq!(
            l.check("u", 1, t0 + Duration::from_secs(5)),
            Err(Duration::from_secs(5))
        );
        // Two more need the third event gone too (t0 + 14 s).
        assert_eq!(
            l.check("u", 3, t0 + Duration::from_secs(5)),
            Err(Duration::from_secs(9))
        );
        assert!(l.check("v", 3, t0).is_ok(), "keys are apart");
        assert!(
            l.check("v", 4, t0).is_err(),
            "more than the limit never fits"
        );
        assert!(l.acquire("u", 2, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a phc string"));
        assert_ne!(h, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn names_passwords_cookies_and_paths() {
        assert!(valid_username("alice_01.b-c").is_ok());
        for bad in ["al", "Alice", "a b c", "ali/ce", &"a".repeat(33), "ålice"] {
            assert!(valid_username(bad).is_err(), "{bad}");
        }
        assert!(valid_password("12345678").is_ok());
        assert!(valid_password("1234567").is_err());
        assert!(valid_password("ééééééé").is_err(), "counted in characters");

        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vshare_session=ss123 ; b=2"),
        );
        assert_eq!(session_token(&h), Some("ss123"));
        h.insert(header::COOKIE, HeaderValue::from_static("vshare_session="));
        assert_eq!(session_token(&h), None);

        assert_eq!(guarded_video("/vod/abc/index.m3u8", true), Some("abc"));
        assert_eq!(
            guarded_video("/live/abc/240p/part1.0.m4s", true),
            Some("abc")
        );
        assert_eq!(guarded_video("/api/v1/videos/abc", true), Some("abc"));
        assert_eq!(guarded_video("/api/v1/videos/abc", false), None);
        assert_eq!(guarded_video("/api/v1/videos/abc/link", true), None);
        assert_eq!(guarded_video("/api/v1/videos", true), None);
        assert_eq!(guarded_video("/vod/abc", true), None);
    }
}
