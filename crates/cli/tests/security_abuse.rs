//! Abuse of a real `vshare serve`, and the safe behaviour each attack must meet: SMS to
//! strangers (the SMS guard, confirmation codes, sign-up limits and modes), data and
//! capabilities open to anyone (admin lists, subscription ids, listeners, names), correctness
//! under concurrency (sign-ups, sign-in limits, lockout), and the smaller ones (cross-site
//! cookie requests, secret files' modes, revoked keys, private-from-the-start streams, error
//! bodies). SMS go to an in-process SMSC (`vshare_messaging::smsc`) that keeps what no receiver
//! is bound for, so a test counts what each number got.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use vshare_messaging::smsc::{Smsc, SmscOptions};

use common::curl::{Resp, curl};

fn call(method: &str, url: &str, body: Option<&Value>, headers: &[String]) -> Resp {
    curl(None, method, url, body, headers)
}

fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("vshare.toml");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("path").to_string()
}

/// An SMSC in this process; its runtime lives as long as it.
struct TestSmsc {
    smsc: Smsc,
    addr: String,
    _rt: tokio::runtime::Runtime,
}

impl TestSmsc {
    fn start() -> TestSmsc {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let smsc = Smsc::new(SmscOptions::default());
        let (addr, _task) = rt
            .block_on(smsc.clone().spawn("127.0.0.1:0"))
            .expect("SMSC");
        TestSmsc {
            smsc,
            addr: addr.to_string(),
            _rt: rt,
        }
    }

    /// The texts held for `number`.
    fn texts(&self, number: &str) -> Vec<String> {
        self.smsc
            .stored_for(number)
            .iter()
            .map(|sm| String::from_utf8_lossy(sm.payload()).into_owned())
            .collect()
    }

    /// Waits until `number` has `n` messages; returns their texts.
    fn wait_texts(&self, number: &str, n: usize, server: &Server) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let texts = self.texts(number);
            if texts.len() >= n {
                return texts;
            }
            assert!(
                Instant::now() < deadline,
                "{number} got {texts:?}, not {n} SMS; server:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn subscribe_sms(server: &Server, source: &str, number: &str) -> Resp {
    call(
        "POST",
        &format!("{}/api/v1/subscriptions", server.http),
        Some(&json!({ "source": source, "channel": "sms", "address": number })),
        &[],
    )
}

/// The six digits of a confirmation SMS.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

// Class 1: SMS to anyone, for free.
//
// Before: 10 anonymous requests sent 10 SMS to one number, each with a new code and the
// requester's chosen source name in the text; codes had no attempt limit or expiry.
// After: one SMS (a repeat is 409 without an id); fixed words and the code only; 3 wrong codes
// kill the pending subscription (the right code then fails too); per-number and per-address
// limits answer 429 with Retry-After.
#[test]
fn class1_confirmation_sms_pass_one_guard_and_codes_have_a_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for name in ["claim-evil.example.com", "bob", "carol"] {
        create_named_key(&data, name);
    }
    let smsc = TestSmsc::start();
    let conf = config(
        dir.path(),
        "[sms]\nper_number = 2\nper_client = 4\ncode_attempts = 3\n",
    );
    let server = Server::start(
        &data,
        &["--ladder", "none", "--smsc", &smsc.addr, "--config", &conf],
    );
    let victim = "+46700000001";

    let first = subscribe_sms(&server, "claim-evil.example.com", victim);
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["id"].as_str().expect("id").to_string();
    for _ in 0..9 {
        let again = subscribe_sms(&server, "claim-evil.example.com", victim);
        assert_eq!(again.status, 409, "a repeat: {}", again.body);
        assert!(!again.body.contains(&id), "the id went to a second caller");
    }
    let texts = smsc.wait_texts(victim, 1, &server);
    let text = &texts[0];
    assert!(
        !text.contains("claim") && !text.contains("evil") && !text.contains("example"),
        "the requester's words are in the SMS: {text:?}"
    );
    let code = code_in(text);

    // Wrong codes: three, then the pending subscription is dead, the right code too.
    let confirm = |c: &str| {
        call(
            "POST",
            &format!("{}/api/v1/subscriptions/{id}/confirm", server.http),
            Some(&json!({ "code": c })),
            &[],
        )
    };
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..3 {
        assert_eq!(confirm(wrong).status, 403);
    }
    let late = confirm(&code);
    assert_eq!(
        late.status, 403,
        "the right code after the budget: {}",
        late.body
    );

    // Per number: a second source's code goes out (2 per number), a third is refused.
    assert_eq!(subscribe_sms(&server, "bob", victim).status, 201);
    smsc.wait_texts(victim, 2, &server);
    let refused = subscribe_sms(&server, "carol", victim);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some(), "{}", refused.head);

    // Per client address: 4 SMS from this address (two above, two more), then 429.
    assert_eq!(subscribe_sms(&server, "bob", "+46700000002").status, 201);
    assert_eq!(subscribe_sms(&server, "bob", "+46700000003").status, 201);
    let refused = subscribe_sms(&server, "bob", "+46700000004");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    smsc.wait_texts("+46700000003", 1, &server);
    assert_eq!(
        smsc.texts(victim).len(),
        2,
        "the victim got more than the limit"
    );
    assert!(smsc.texts("+46700000004").is_empty());
}

// Class 1: sign-up limited per address, and invite-only as an option.
//
// Before: unlimited sign-ups from one address (two accounts sent 60 SMS in seconds).
// After: the 3rd sign-up from one address within the window is 429; with signup = "invite",
// no account without an admin's invite code, and a code is used once.
#[test]
fn class1_sign_up_is_limited_per_address_and_can_be_invite_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = config(dir.path(), "[accounts]\nsignup_per_ip = 2\n");
    let server = Server::start(
        &dir.path().join("a"),
        &["--ladder", "none", "--config", &conf],
    );
    let up = |name: &str| {
        call(
            "POST",
            &format!("{}/api/v1/accounts", server.http),
            Some(&json!({ "username": name, "password": "a long password" })),
            &[],
        )
    };
    assert_eq!(up("user1").status, 201);
    assert_eq!(up("user2").status, 201);
    let third = up("user3");
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.header("retry-after").is_some());
    drop(server);

    let conf = config(dir.path(), "[accounts]\nsignup = \"invite\"\n");
    let server = Server::start_with_env(
        &dir.path().join("b"),
        &["--ladder", "none", "--config", &conf],
        &[("VSHARE_ADMIN_TOKEN", "admin-secret-1234".to_string())],
    );
    let accounts = format!("{}/api/v1/accounts", server.http);
    let r = call(
        "POST",
        &accounts,
        Some(&json!({ "username": "eve", "password": "a long password" })),
        &[],
    );
    assert_eq!(r.status, 403, "no invite: {}", r.body);
    let invites = format!("{}/api/v1/invites", server.http);
    assert_eq!(call("POST", &invites, None, &[]).status, 401);
    let invite = call(
        "POST",
        &invites,
        None,
        &["Authorization: Bearer admin-secret-1234".into()],
    );
    assert_eq!(invite.status, 201, "{}", invite.body);
    let code = invite.json()["invite"].as_str().expect("code").to_string();
    let with = |name: &str| {
        call(
            "POST",
            &accounts,
            Some(&json!({ "username": name, "password": "a long password", "invite": code })),
            &[],
        )
    };
    assert_eq!(with("friend").status, 201);
    assert_eq!(with("friend2").status, 403, "an invite is used once");
    // The operator can make one without the admin token, on the server's data directory.
    drop(server);
    let out = vshare()
        .args(["keys", "invite", "--data"])
        .arg(dir.path().join("b"))
        .output()
        .expect("keys invite");
    assert!(out.status.success());
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let server = Server::start(
        &dir.path().join("b"),
        &["--ladder", "none", "--config", &conf],
    );
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": "friend3", "password": "a long password", "invite": code })),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

// Class 2: data and capabilities.
//
// Before: without an admin token the lists answered 200 with numbers, URLs and listener ids;
// a repeat subscription returned the existing id; a second `/listen` with someone's id got
// their notifications; a sign-up could take a stream key's name.
// After: the lists are 403 without a configured token and 401 without it presented; a repeat is
// 409 without the id; a listener is bound to its first secret (another secret: 403, none:
// 400); names are one namespace across keys and users (409).
#[test]
fn class2_admin_lists_closed_capabilities_kept_and_names_unique() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    create_named_key(&data, "alice");
    let server = Server::start(&data, &["--ladder", "none"]);
    for list in [
        "/api/v1/subscriptions",
        "/api/v1/notifications?source=alice",
    ] {
        let r = call("GET", &format!("{}{list}", server.http), None, &[]);
        assert_eq!(r.status, 403, "{list} without an admin token: {}", r.body);
    }

    let subs = format!("{}/api/v1/subscriptions", server.http);
    let hook =
        json!({ "source": "alice", "channel": "webhook", "address": "https://example.com/h" });
    let first = call("POST", &subs, Some(&hook), &[]);
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["id"].as_str().expect("id").to_string();
    let second = call("POST", &subs, Some(&hook), &[]);
    assert_eq!(second.status, 409, "{}", second.body);
    assert!(
        !second.body.contains(&id),
        "the capability went to a second caller"
    );

    // Listeners: the first connection binds the id to its secret.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ws = server.http.replace("http://", "ws://");
    let connect = |query: String| {
        rt.block_on(tokio_tungstenite::connect_async(format!(
            "{ws}/api/v1/listen?{query}"
        )))
    };
    let owner = connect("id=phone-a&secret=owner-secret-0123456789&source=alice".into())
        .expect("the owner connects");
    let status_of = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    assert_eq!(
        status_of(connect("id=phone-a&secret=attacker-secret-012345".into())),
        403,
        "another secret opened the listener"
    );
    assert_eq!(status_of(connect("id=phone-a".into())), 400);
    drop(owner);
    assert_eq!(
        status_of(connect("id=phone-a&secret=owner-secret-0123456789".into())),
        101,
        "the owner comes back"
    );

    // Names: one namespace for users and keys.
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": "alice", "password": "a long password" })),
        &[],
    );
    assert_eq!(r.status, 409, "a sign-up took a key's name: {}", r.body);
    drop(server);
    let server = Server::start_with_env(
        &data,
        &["--ladder", "none"],
        &[("VSHARE_ADMIN_TOKEN", "admin-secret-1234".to_string())],
    );
    let admin = "Authorization: Bearer admin-secret-1234".to_string();
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": "dora", "password": "a long password" })),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        "POST",
        &format!("{}/api/v1/keys", server.http),
        Some(&json!({ "name": "dora" })),
        std::slice::from_ref(&admin),
    );
    assert_eq!(r.status, 409, "a key took a user's name: {}", r.body);
    let list = format!("{}/api/v1/subscriptions", server.http);
    assert_eq!(call("GET", &list, None, &[]).status, 401);
    assert_eq!(
        call(
            "GET",
            &list,
            None,
            &["Authorization: Bearer admin-secret-123".into()]
        )
        .status,
        401
    );
    assert_eq!(call("GET", &list, None, &[admin]).status, 200);
}

// Class 5: correctness under concurrency.
//
// Before: 5 of 20 concurrent sign-ups answered 500 ("database is locked"); 20 concurrent wrong
// sign-ins were all checked past the per-user limit of 5; an outsider's failures locked the
// owner out for 600 s.
// After: 20 concurrent sign-ups are 201; of 20 concurrent wrong sign-ins at most 5 are checked
// (401), the rest 429; the owner signs in from another address meanwhile.
#[test]
fn class5_concurrent_sign_ups_and_sign_ins_hold_their_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = config(
        dir.path(),
        "[accounts]\nsignup_per_ip = 100\nsignin_attempts_per_ip = 100\nsignin_failures_per_user = 5\n",
    );
    let server = Server::start(
        &dir.path().join("data"),
        &["--ladder", "none", "--config", &conf],
    );
    let accounts = format!("{}/api/v1/accounts", server.http);
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let url = accounts.clone();
                s.spawn(move || {
                    let r = call(
                        "POST",
                        &url,
                        Some(&json!({ "username": format!("crowd{i}"), "password": "a long password" })),
                        &[],
                    );
                    (r.status, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (status, body) in &statuses {
        assert_eq!(*status, 201, "a concurrent sign-up: {body}");
    }

    let session = format!("{}/api/v1/session", server.http);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let url = session.clone();
                s.spawn(move || {
                    call(
                        "POST",
                        &url,
                        Some(&json!({ "username": "crowd0", "password": "not the password" })),
                        &[],
                    )
                    .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        checked <= 5,
        "{checked} wrong passwords were checked: {statuses:?}"
    );
    assert_eq!(checked + limited, 20, "{statuses:?}");

    // The owner, from another address, is not locked out.
    let owner = curl(
        Some("127.0.0.2"),
        "POST",
        &session,
        Some(&json!({ "username": "crowd0", "password": "a long password" })),
        &[],
    );
    assert_eq!(
        owner.status, 200,
        "the owner was locked out: {}",
        owner.body
    );
    // The outsider still is.
    let outsider = call(
        "POST",
        &session,
        Some(&json!({ "username": "crowd0", "password": "a long password" })),
        &[],
    );
    assert_eq!(outsider.status, 429);
}

// Class 6: cross-site cookie requests, secret files, proxy error bodies.
//
// Before: a cookie POST with a foreign Origin was accepted; proxy-webhook.secret and vapid.key
// were written with the default mode (0644 under the usual umask).
// After: 403 for a foreign Origin or Sec-Fetch-Site: cross-site, same-origin and bearer-only
// requests pass; both files are 0600.
#[test]
fn class6_cross_site_cookie_requests_refused_and_secret_files_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--ladder", "none"]);
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": "olga", "password": "a long password" })),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cookie = format!("Cookie: vshare_session={}", r.session());
    let token = format!("{}/api/v1/me/upload-token", server.http);
    let foreign = call(
        "POST",
        &token,
        None,
        &[cookie.clone(), "Origin: http://evil.example".into()],
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let fetch_site = call(
        "POST",
        &token,
        None,
        &[cookie.clone(), "Sec-Fetch-Site: cross-site".into()],
    );
    assert_eq!(fetch_site.status, 403, "{}", fetch_site.body);
    let own = call(
        "POST",
        &token,
        None,
        &[cookie.clone(), format!("Origin: {}", server.http)],
    );
    assert!(own.status < 300, "same origin: {} {}", own.status, own.body);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["proxy-webhook.secret", "vapid.key"] {
            let mode = std::fs::metadata(data.join(file))
                .expect(file)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is {:o}", mode & 0o777);
        }
    }
}

// Class 6: a revoked key ends a publish in progress.
//
// Before: revoking a key did not stop a publish in progress.
// After: the publish ends within `[limits] key_check_s` (1 s here; the RTMP idle timeout is
// 60 s, so nothing else closes it).
#[test]
fn class6_revoking_a_key_ends_its_publish() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let secret = create_named_key(&data, "revoked-soon");
    let out = vshare()
        .args(["keys", "list", "--data"])
        .arg(&data)
        .output()
        .expect("keys list");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    let id = list
        .lines()
        .find(|l| l.ends_with("revoked-soon"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("no key in {list}"))
        .to_string();
    let conf = config(
        dir.path(),
        "[limits]\nkey_check_s = 1\nrtmp_idle_timeout_s = 60\n",
    );
    let server = Server::start(&data, &["--ladder", "none", "--config", &conf]);
    let (mut socket, _client) = raw_publisher(server.rtmp_port, &secret);
    let out = vshare()
        .args(["keys", "revoke", &id, "--data"])
        .arg(&data)
        .output()
        .expect("keys revoke");
    assert!(out.status.success());
    let revoked = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(20),
            "the publish went on after its key was revoked; server:\n{}",
            server.log()
        );
    }
    server.expect_logged("stream key revoked or rotated");
}

// Class 6: a stream can start private.
//
// Before: every stream started public: listed, and its `live` notification went out before
// the owner could change it.
// After: with `PATCH /api/v1/me/stream-key {"private": true}` the video is private from its
// first frame: not listed, and no notification is queued for the key's subscribers.
#[test]
fn class6_a_stream_can_start_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start_with_env(
        &data,
        &["--ladder", "none"],
        &[("VSHARE_ADMIN_TOKEN", "admin-secret-1234".to_string())],
    );
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": "quiet", "password": "a long password" })),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["stream_key"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    let cookie = format!("Cookie: vshare_session={}", r.session());
    let r = call(
        "PATCH",
        &format!("{}/api/v1/me/stream-key", server.http),
        Some(&json!({ "private": true })),
        std::slice::from_ref(&cookie),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let hook =
        json!({ "source": "quiet", "channel": "webhook", "address": "https://example.invalid/h" });
    let r = call(
        "POST",
        &format!("{}/api/v1/subscriptions", server.http),
        Some(&hook),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);

    let clip = make_clip(dir.path(), "clip.mp4", 2, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&secret));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &secret, &["ready"], Duration::from_secs(30));
    let id = ready["id"].as_str().expect("id").to_string();
    assert_eq!(ready["visibility"], "private", "{ready}");
    let listed = call("GET", &format!("{}/api/v1/videos", server.http), None, &[]);
    assert!(
        !listed.body.contains(&id),
        "a private stream is listed: {}",
        listed.body
    );
    let rows = call(
        "GET",
        &format!("{}/api/v1/notifications?video={id}", server.http),
        None,
        &["Authorization: Bearer admin-secret-1234".into()],
    );
    assert_eq!(rows.status, 200, "{}", rows.body);
    assert_eq!(
        rows.json(),
        json!([]),
        "notifications went out for a private stream"
    );
}

/// Watch page beacons (`POST /api/v1/videos/{id}/watching`): a private video counts only
/// beacons that may read it, a client address gets `beacons_per_ip` per window (429 after), a
/// video counts at most `max_per_video` pages (503 after, nothing counted), and a page stops
/// counting `window_s` after its last beacon. The DVR playlist of the ended video is its VOD.
#[test]
fn class4_watch_beacons_are_bounded_and_counted_only_for_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let conf = config(
        dir.path(),
        "[watching]\nbeacon_s = 1\nwindow_s = 2\nmax_per_video = 2\nbeacons_per_ip = 3\n",
    );
    let server = Server::start(&data, &["--ladder", "none", "--config", &conf]);
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": "counted", "password": "a long password" })),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["stream_key"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    let cookie = format!("Cookie: vshare_session={}", r.session());
    let r = call(
        "PATCH",
        &format!("{}/api/v1/me/stream-key", server.http),
        Some(&json!({ "private": true })),
        std::slice::from_ref(&cookie),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let clip = make_clip(dir.path(), "clip.mp4", 2, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&secret));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &secret, &["ready"], Duration::from_secs(30));
    let id = ready["id"].as_str().expect("id").to_string();
    let beacon_url = format!("{}/api/v1/videos/{id}/watching", server.http);
    let beat = |tab: &str, headers: &[String]| {
        call("POST", &beacon_url, Some(&json!({ "tab": tab })), headers)
    };
    let owner = std::slice::from_ref(&cookie);

    // Someone who may not read the private video: nothing counted, nothing said.
    assert_eq!(beat("stranger-0001", &[]).status, 403);
    // A bad tab id is refused before anything counts.
    assert_eq!(beat("x", owner).status, 400);
    assert_eq!(beat(&"y".repeat(65), owner).status, 400);
    let r = beat("tab-00000001", owner);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["watching"], 1);
    assert_eq!(r.json()["beacon_s"], 1);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    // The last beacon counted: the count may not fall before the window has passed after it.
    let last = Instant::now();
    let r = beat("tab-00000002", owner);
    assert_eq!((r.status, r.json()["watching"].clone()), (200, json!(2)));
    // The video's table is full: a third page is not counted.
    assert_eq!(beat("tab-00000003", owner).status, 503);
    // The address sent its three beacons for this window.
    let r = beat("tab-00000001", owner);
    assert_eq!(r.status, 429, "{}", r.body);
    let video = call(
        "GET",
        &format!("{}/api/v1/videos/{id}", server.http),
        None,
        owner,
    );
    assert_eq!(video.json()["watching"], 2, "{}", video.body);
    assert_eq!(video.json()["watching_beacon_s"], 1);

    // Without beacons the count falls to 0 once the window (2 s) passed (the refused beacons
    // above counted nothing).
    vshare_testkit::wait::wait_for("the count to fall", Duration::from_secs(10), || {
        let v = call(
            "GET",
            &format!("{}/api/v1/videos/{id}", server.http),
            None,
            owner,
        );
        (v.json()["watching"] == 0).then_some(())
    });
    assert!(
        last.elapsed() >= Duration::from_millis(1500),
        "fell after {:?}",
        last.elapsed()
    );

    // The ended video's DVR playlist is its whole recording.
    let dvr = call(
        "GET",
        &format!("{}/vod/{id}/dvr.m3u8", server.http),
        None,
        owner,
    );
    assert_eq!(dvr.status, 200, "{}", dvr.body);
    assert!(
        dvr.body.contains("#EXT-X-PLAYLIST-TYPE:VOD") && dvr.body.ends_with("#EXT-X-ENDLIST\n"),
        "{}",
        dvr.body
    );
    assert_eq!(
        call(
            "GET",
            &format!("{}/vod/{id}/dvr.m3u8", server.http),
            None,
            &[]
        )
        .status,
        403,
        "private without the owner's session"
    );
}
