//! Accounts, the library, private videos and sharing, end to end against a real `vshare serve`:
//! sign-up and sign-in with a session cookie, argon2id hashes in the database, sign-in limits,
//! upload tokens, stream key rotation; a video published over RTMP with the rotated key made
//! private (403 without a link, 200 with one, 403 once expired; ffprobe plays the signed HLS
//! VOD) and deleted (its files and rows gone); and SMS sent through a real `vshare smsc`, read
//! back and decoded by `vshare open`.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use vshare_testkit::db::sqlite_url;
use vshare_testkit::ffmpeg::{decode_errors, ffprobe, number, stream_of};
use vshare_testkit::net::free_port;
use vshare_testkit::wait::wait_for;

use common::curl::{Resp, curl};

/// One request with curl (an independent client): method, URL, JSON body, session token.
fn call(method: &str, url: &str, body: Option<&Value>, session: Option<&str>) -> Resp {
    let cookie = session.map(|s| format!("Cookie: theme=dark; vshare_session={s}"));
    curl(None, method, url, body, cookie.as_slice())
}

fn sign_up(server: &Server, username: &str, password: &str) -> (String, Value) {
    let r = call(
        "POST",
        &format!("{}/api/v1/accounts", server.http),
        Some(&json!({ "username": username, "password": password })),
        None,
    );
    assert_eq!(r.status, 201, "sign-up {username}: {}", r.body);
    (r.session(), r.json())
}

fn db_of(data: &Path) -> (tokio::runtime::Runtime, vshare_server::db::Db) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = sqlite_url(data, "vshare.db");
    let db = rt
        .block_on(vshare_server::db::Db::open(&url))
        .expect("open the server's database");
    (rt, db)
}

#[test]
fn sign_up_sign_in_sessions_limits_tokens_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let conf = dir.path().join("vshare.toml");
    std::fs::write(&conf, "[accounts]\nsignin_attempts_per_ip = 10\n").expect("conf");
    let server = Server::start(
        &data,
        &["--ladder", "none", "--config", conf.to_str().expect("path")],
    );
    let api = |p: &str| format!("{}{p}", server.http);

    // Sign-up: the cookie is a session cookie with the right attributes.
    let r = call(
        "POST",
        &api("/api/v1/accounts"),
        Some(&json!({ "username": "Alice", "password": "correct horse" })),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cookie = r.header("set-cookie").expect("cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let session = r.session();
    let signup = r.json();
    assert_eq!(signup["user"]["username"], "alice", "names are lower case");
    let first_secret = signup["stream_key"]["key"]
        .as_str()
        .expect("key")
        .to_string();

    // Bad sign-ups are refused with their reason.
    for (body, status, words) in [
        (
            json!({"username": "alice", "password": "another one"}),
            409,
            "taken",
        ),
        (
            json!({"username": "al", "password": "long enough"}),
            400,
            "3 to 32",
        ),
        (
            json!({"username": "al ice", "password": "long enough"}),
            400,
            "3 to 32",
        ),
        (
            json!({"username": "bob", "password": "short"}),
            400,
            "at least 8",
        ),
        (json!({"username": "bob"}), 400, "password"),
    ] {
        let r = call("POST", &api("/api/v1/accounts"), Some(&body), None);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(words), "{body}: {}", r.body);
    }

    // /me needs the session.
    assert_eq!(call("GET", &api("/api/v1/me"), None, None).status, 401);
    assert_eq!(
        call("GET", &api("/api/v1/me"), None, Some("ssforged")).status,
        401
    );
    let me = call("GET", &api("/api/v1/me"), None, Some(&session));
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(me["stream_key"]["id"], signup["stream_key"]["id"]);
    assert!(
        me["rtmp_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("rtmp://127.0.0.1:")),
        "{me}"
    );

    // The database keeps an argon2id hash that is not the password and verifies.
    let (rt, db) = db_of(&data);
    let (user, hash) = rt
        .block_on(db.user_by_name("alice"))
        .expect("query")
        .expect("alice");
    assert_eq!(Value::from(user.id.clone()), me["user"]["id"]);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("correct horse"));
    assert!(vshare_server::accounts::verify_password(
        "correct horse",
        &hash
    ));
    assert!(!vshare_server::accounts::verify_password(
        "correct horsf",
        &hash
    ));

    // Sign-in gives a second session; sign-out ends one of them only.
    let r = call(
        "POST",
        &api("/api/v1/session"),
        Some(&json!({ "username": "alice", "password": "correct horse" })),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let session2 = r.session();
    assert_ne!(session, session2);
    let r = call("DELETE", &api("/api/v1/session"), None, Some(&session2));
    assert_eq!(r.status, 204);
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "sign-out clears the cookie"
    );
    assert_eq!(
        call("GET", &api("/api/v1/me"), None, Some(&session2)).status,
        401
    );
    assert_eq!(
        call("GET", &api("/api/v1/me"), None, Some(&session)).status,
        200
    );

    // Upload tokens: only for a session; the token stands for the user's key.
    assert_eq!(
        call("POST", &api("/api/v1/me/upload-token"), None, None).status,
        401
    );
    let r = call(
        "POST",
        &api("/api/v1/me/upload-token"),
        None,
        Some(&session),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["token"].as_str().expect("token").to_string();
    let key = rt
        .block_on(db.find_key_for_token(&token))
        .expect("query")
        .expect("the token finds the key");
    assert_eq!(Value::from(key.id.clone()), me["stream_key"]["id"]);
    assert_eq!(key.user_id.as_deref(), Some(user.id.as_str()));

    // Rotation: a new secret, once; the old secret and the token stop working.
    let r = call("POST", &api("/api/v1/me/stream-key"), None, Some(&session));
    assert_eq!(r.status, 200, "{}", r.body);
    let rotated = r.json();
    let new_secret = rotated["key"].as_str().expect("key");
    assert_ne!(new_secret, first_secret);
    assert_eq!(rotated["id"], me["stream_key"]["id"], "same key id");
    assert!(
        rotated["publish_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(new_secret))
    );
    assert!(
        rt.block_on(db.find_key_for_token(&first_secret))
            .expect("q")
            .is_none()
    );
    assert!(
        rt.block_on(db.find_key_for_token(&token))
            .expect("q")
            .is_none()
    );
    assert!(
        rt.block_on(db.find_key_for_token(new_secret))
            .expect("q")
            .is_some()
    );

    // Wrong passwords: 401 with a clear reason; the sixth failure in a row is 429, and then
    // even the right password waits.
    let wrong = json!({ "username": "alice", "password": "wrong password" });
    for i in 0..5 {
        let r = call("POST", &api("/api/v1/session"), Some(&wrong), None);
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
        assert!(r.body.contains("wrong username or password"), "{}", r.body);
    }
    for body in [
        &wrong,
        &json!({ "username": "alice", "password": "correct horse" }),
    ] {
        let r = call("POST", &api("/api/v1/session"), Some(body), None);
        assert_eq!(r.status, 429, "{}", r.body);
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=600).contains(&retry), "Retry-After {retry}");
    }
    // An unknown user is told the same as a wrong password.
    let r = call(
        "POST",
        &api("/api/v1/session"),
        Some(&json!({ "username": "nobody", "password": "whatever1" })),
        None,
    );
    assert_eq!(r.status, 401);
    assert!(r.body.contains("wrong username or password"));
    // That was the ninth attempt from this address; the tenth is the last the limit allows.
    let other = json!({ "username": "nobody", "password": "whatever2" });
    assert_eq!(
        call("POST", &api("/api/v1/session"), Some(&other), None).status,
        401
    );
    let r = call("POST", &api("/api/v1/session"), Some(&other), None);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("address"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
}

/// Signs up, rotates the key, publishes `seconds` of test pattern with the rotated secret.
fn publish_as(
    server: &Server,
    dir: &Path,
    username: &str,
    seconds: u32,
) -> (String, String, Child) {
    let (session, signup) = sign_up(server, username, "a long password");
    let r = call(
        "POST",
        &format!("{}/api/v1/me/stream-key", server.http),
        None,
        Some(&session),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r.json()["key"].as_str().expect("key").to_string();
    // The secret given at sign-up no longer publishes.
    let old = signup["stream_key"]["key"].as_str().expect("old key");
    let (status, _) = http_get_with(
        &format!("{}/api/v1/publish/status", server.http),
        &[&format!("Authorization: Bearer {old}")],
    );
    assert_eq!(status, 401);
    let clip = make_clip(dir, &format!("{username}.mp4"), seconds, &[]);
    let publisher = ffmpeg_publish(&clip, &server.rtmp_url(&secret));
    (session, secret, publisher)
}

#[test]
fn private_videos_signed_links_library_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--ladder", "none"]);
    let api = |p: &str| format!("{}{p}", server.http);
    let (bob, secret, mut publisher) = publish_as(&server, dir.path(), "bob", 6);
    let (carol, _) = sign_up(&server, "carol", "another password");

    // While live, the video cannot be deleted.
    let live = wait_video_state(&server, &secret, &["live"], Duration::from_secs(20));
    let id = live["id"].as_str().expect("id").to_string();
    let r = call(
        "DELETE",
        &api(&format!("/api/v1/videos/{id}")),
        None,
        Some(&bob),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("live"), "{}", r.body);
    // A private live stream through a signed link: the LL-HLS playlist lists its parts,
    // preload hint and init segment with the link, and they open.
    let video_api = api(&format!("/api/v1/videos/{id}"));
    let r = call(
        "PATCH",
        &video_api,
        Some(&json!({"visibility": "private"})),
        Some(&bob),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let live_index = format!("{}/live/{id}/index.m3u8", server.http);
    assert_eq!(http_get(&live_index).0, 403);
    let link = call(
        "GET",
        &api(&format!("/api/v1/videos/{id}/link")),
        None,
        Some(&bob),
    )
    .json();
    let live_url = link["url"].as_str().expect("url").to_string();
    assert!(
        live_url.starts_with(&format!("{live_index}?exp=")),
        "{link}"
    );
    let query = link["query"].as_str().expect("query");
    let (status, body) = http_get(&live_url);
    assert_eq!(status, 200);
    let playlist = String::from_utf8_lossy(&body).to_string();
    let part = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|l| l.split('"').next())
        .unwrap_or_else(|| panic!("no part in {playlist}"));
    assert!(part.ends_with(query), "{part}");
    assert!(
        playlist.contains(&format!("URI=\"init.mp4?{query}\"")),
        "{playlist}"
    );
    assert!(
        playlist
            .lines()
            .any(|l| l.starts_with("#EXT-X-PRELOAD-HINT") && l.contains(query)),
        "{playlist}"
    );
    assert_eq!(
        http_get(&format!("{}/live/{id}/{part}", server.http)).0,
        200
    );
    let r = call(
        "PATCH",
        &video_api,
        Some(&json!({"visibility": "public"})),
        Some(&bob),
    );
    assert_eq!(r.status, 200);
    assert!(publisher.wait().expect("ffmpeg").success());
    wait_video_state(&server, &secret, &["ready"], Duration::from_secs(20));

    // The library lists it with its attributes, state and visibility.
    assert_eq!(
        call("GET", &api("/api/v1/me/videos"), None, None).status,
        401
    );
    let mine = call("GET", &api("/api/v1/me/videos"), None, Some(&bob)).json();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine[0]["id"], id.as_str());
    assert_eq!(mine[0]["state"], "ready");
    assert_eq!(mine[0]["visibility"], "public");
    assert!(
        mine[0]["attributes"]
            .as_array()
            .is_some_and(|a| a.len() >= 2)
    );
    let others = call("GET", &api("/api/v1/me/videos"), None, Some(&carol)).json();
    assert_eq!(others, json!([]));

    // A server without an SMSC says so when asked to send.
    let r = call(
        "POST",
        &api(&format!("/api/v1/videos/{id}/share")),
        Some(&json!({ "numbers": ["+46700000001"] })),
        Some(&bob),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("SMSC"), "{}", r.body);

    // Only the owner changes visibility.
    let private = json!({ "visibility": "private" });
    assert_eq!(call("PATCH", &video_api, Some(&private), None).status, 401);
    assert_eq!(
        call("PATCH", &video_api, Some(&private), Some(&carol)).status,
        403
    );
    let r = call(
        "PATCH",
        &video_api,
        Some(&json!({"visibility": "secret"})),
        Some(&bob),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("\"public\" or \"private\""), "{}", r.body);
    let r = call("PATCH", &video_api, Some(&private), Some(&bob));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["visibility"], "private");

    // Private: not listed, and 403 without a link or the owner's session.
    let listed = call("GET", &api("/api/v1/videos"), None, None).body;
    assert!(!listed.contains(&id), "listed: {listed}");
    let index = call("GET", &api("/"), None, None).body;
    assert!(!index.contains(&id), "on the index page");
    for path in [
        format!("/vod/{id}/index.m3u8"),
        format!("/vod/{id}/video.mp4"),
        format!("/vod/{id}/init.mp4"),
        format!("/live/{id}/index.m3u8"),
        format!("/api/v1/videos/{id}"),
    ] {
        let r = call("GET", &api(&path), None, None);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("private"), "{path}: {}", r.body);
        assert_eq!(
            call("GET", &api(&path), None, Some(&carol)).status,
            403,
            "{path}"
        );
    }
    // The owner's session opens it, and shared caches are told to keep out.
    let r = call(
        "GET",
        &api(&format!("/vod/{id}/index.m3u8")),
        None,
        Some(&bob),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("cache-control")
            .is_some_and(|c| c.starts_with("private")),
        "{:?}",
        r.header("cache-control")
    );
    assert!(!r.body.contains("sig="), "no link to carry for the owner");
    assert_eq!(call("GET", &video_api, None, Some(&bob)).status, 200);

    // A signed link: only the owner gets one; it opens the playlist, every URI in it, the
    // video's JSON and its files.
    let link_api = api(&format!("/api/v1/videos/{id}/link?ttl=600"));
    assert_eq!(call("GET", &link_api, None, None).status, 401);
    assert_eq!(call("GET", &link_api, None, Some(&carol)).status, 403);
    assert_eq!(
        call(
            "GET",
            &api(&format!("/api/v1/videos/{id}/link?ttl=0")),
            None,
            Some(&bob)
        )
        .status,
        400
    );
    let link = call("GET", &link_api, None, Some(&bob));
    assert_eq!(link.status, 200, "{}", link.body);
    let link = link.json();
    let url = link["url"].as_str().expect("url").to_string();
    assert!(url.contains(&format!("/vod/{id}/index.m3u8?exp=")), "{url}");
    let query = link["query"].as_str().expect("query").to_string();
    // Cacheable per link by a shared cache (the URL carries the link), never past its expiry.
    let r = call("GET", &url, None, None);
    let cache = r.header("cache-control").unwrap_or_default();
    let age: u64 = cache
        .strip_prefix("public, max-age=")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("signed playlist's Cache-Control: {cache:?}"));
    assert!((1..=600).contains(&age), "{cache}");
    assert!(r.header("set-cookie").is_none() && r.header("vary").is_none());
    let (status, body) = http_get(&url);
    assert_eq!(status, 200);
    let playlist = String::from_utf8_lossy(&body).to_string();
    let uris: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(uris.len() >= 3, "{playlist}");
    assert!(uris.iter().all(|u| u.ends_with(&query)), "{playlist}");
    assert!(
        playlist.contains(&format!("#EXT-X-MAP:URI=\"init.mp4?{query}\"")),
        "{playlist}"
    );
    for uri in uris.iter().take(2) {
        let (status, _) = http_get(&format!("{}/vod/{id}/{uri}", server.http));
        assert_eq!(status, 200, "{uri}");
    }
    let signed_json = get_json(&format!("{}/api/v1/videos/{id}?{query}", server.http));
    let mp4 = signed_json["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .and_then(|r| r["url"].as_str())
        .expect("mp4 record")
        .to_string();
    assert!(mp4.ends_with(&query), "{mp4}");
    let (status, bytes) = http_get(&mp4);
    assert_eq!(status, 200);
    assert!(bytes.len() > 10_000);

    // ffprobe and ffmpeg follow the signed HLS VOD like any player would.
    let probe = ffprobe(&url);
    let duration = number(&probe["format"]["duration"]);
    assert!(
        (5.0..7.5).contains(&duration),
        "duration {duration}: {probe}"
    );
    assert_eq!(stream_of(&probe, "video")["codec_name"], "h264");
    let errors = decode_errors(&url);
    assert!(
        errors.trim().is_empty(),
        "decoding the signed HLS: {errors}"
    );

    // A forged or altered signature, and an expired link, are refused.
    let forged = url.replace("sig=", "sig=0");
    assert_eq!(http_get(&forged).0, 403);
    let other_video = url.replace(&id, "aaaaaaaaaaaa");
    assert_ne!(http_get(&other_video).0, 200);
    let short = call(
        "GET",
        &api(&format!("/api/v1/videos/{id}/link?ttl=1")),
        None,
        Some(&bob),
    )
    .json();
    let short_url = short["url"].as_str().expect("url").to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let r = call("GET", &short_url, None, None);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("expired"), "{}", r.body);

    // Public again: listed and open.
    let r = call(
        "PATCH",
        &video_api,
        Some(&json!({"visibility": "public"})),
        Some(&bob),
    );
    assert_eq!(r.status, 200);
    assert!(
        call("GET", &api("/api/v1/videos"), None, None)
            .body
            .contains(&id)
    );
    assert_eq!(
        http_get(&format!("{}/vod/{id}/index.m3u8", server.http)).0,
        200
    );

    // Delete: only the owner; afterwards the files and the rows are gone.
    let media = data.join("media").join("videos").join(&id);
    assert!(media.join("video.mp4").is_file(), "{}", media.display());
    assert_eq!(call("DELETE", &video_api, None, None).status, 401);
    assert_eq!(call("DELETE", &video_api, None, Some(&carol)).status, 403);
    let r = call("DELETE", &video_api, None, Some(&bob));
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!media.exists(), "{} still exists", media.display());
    assert_eq!(call("DELETE", &video_api, None, Some(&bob)).status, 404);
    assert_eq!(
        http_get(&format!("{}/vod/{id}/index.m3u8", server.http)).0,
        404
    );
    assert_eq!(call("GET", &video_api, None, None).status, 404);
    let (rt, db) = db_of(&data);
    assert!(rt.block_on(db.get_video(&id)).expect("q").is_none());
    assert!(rt.block_on(db.segments(&id, "")).expect("q").is_empty());
    assert!(rt.block_on(db.deleted_videos()).expect("q").is_empty());
    assert_eq!(
        call("GET", &api("/api/v1/me/videos"), None, Some(&bob)).json(),
        json!([])
    );
}

/// `vshare open` bound as a receiver for `number`: the records of the first message it gets.
fn open_received(smsc: &str, number: &str) -> Value {
    let out = vshare()
        .args([
            "open",
            "--smsc",
            smsc,
            "--number",
            number,
            "--timeout",
            "20",
            "--json",
            "--player",
            "none",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("vshare open");
    assert!(
        out.status.success(),
        "vshare open for {number}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("records as JSON")
}

#[test]
fn share_sends_sms_through_vshare_smsc_and_each_number_decodes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let smsc_addr = format!("127.0.0.1:{}", free_port());
    let mut smsc = vshare()
        .args(["smsc", "--listen", &smsc_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vshare smsc");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _smsc = Kill(&mut smsc);
    let conf = dir.path().join("vshare.toml");
    std::fs::write(
        &conf,
        "[accounts]\nshare_messages = 6\nshare_window_s = 600\n",
    )
    .expect("conf");
    let server = Server::start(
        &data,
        &[
            "--ladder",
            "none",
            "--smsc",
            &smsc_addr,
            "--config",
            conf.to_str().expect("path"),
        ],
    );
    let api = |p: &str| format!("{}{p}", server.http);
    let (dave, secret, mut publisher) = publish_as(&server, dir.path(), "dave", 3);
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &secret, &["ready"], Duration::from_secs(20));
    let id = ready["id"].as_str().expect("id").to_string();
    let share_api = api(&format!("/api/v1/videos/{id}/share"));

    // Signed-in users only; bad requests say what is wrong.
    let two = json!({ "numbers": ["+46700000001", "+46700000002"], "form": "text" });
    let r = call("POST", &share_api, Some(&two), None);
    assert_eq!(r.status, 401, "{}", r.body);
    for (body, words) in [
        (json!({ "numbers": ["0700000001"] }), "international"),
        (json!({ "numbers": [] }), "at least one"),
        (
            json!({ "numbers": (0..11).map(|i| format!("+4670000010{i}")).collect::<Vec<_>>() }),
            "at most 10",
        ),
        (
            json!({ "numbers": ["+46700000001"], "form": "mms" }),
            "form must be",
        ),
    ] {
        let r = call("POST", &share_api, Some(&body), Some(&dave));
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains(words), "{body}: {}", r.body);
    }
    assert_eq!(
        call(
            "POST",
            &api("/api/v1/videos/nosuchvideo/share"),
            Some(&two),
            Some(&dave)
        )
        .status,
        404
    );

    // Text to two numbers: each gets a message that decodes to the video's records.
    let r = call("POST", &share_api, Some(&two), Some(&dave));
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["sent"], 2, "{answer}");
    for res in answer["results"].as_array().expect("results") {
        assert_eq!(res["ok"], true, "{res}");
        assert!(
            res["message_ids"]
                .as_array()
                .is_some_and(|ids| !ids.is_empty()),
            "{res}"
        );
    }
    for number in ["+46700000001", "+46700000002"] {
        let records = open_received(&smsc_addr, number);
        let mp4 = records
            .as_array()
            .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
            .unwrap_or_else(|| panic!("{number}: no mp4 record in {records}"));
        assert_eq!(mp4["video_id"], id.as_str());
        assert!(
            mp4["url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("/vod/{id}/video.mp4"))),
            "{mp4}"
        );
    }

    // A WAP Push SI, made private first: the receiver's link carries a signature that opens it.
    let r = call(
        "PATCH",
        &api(&format!("/api/v1/videos/{id}")),
        Some(&json!({ "visibility": "private" })),
        Some(&dave),
    );
    assert_eq!(r.status, 200);
    let r = call(
        "POST",
        &share_api,
        Some(&json!({ "numbers": ["+46700000003"], "form": "wap-si" })),
        Some(&dave),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["links_expire_at"].is_string());
    let records = open_received(&smsc_addr, "+46700000003");
    let url = records[0]["url"].as_str().expect("url").to_string();
    assert!(
        url.contains(&format!("/{id}/")) && url.contains("sig="),
        "{records}"
    );
    assert_eq!(http_get(&url).0, 200, "{url}");
    let unsigned = url.split('?').next().expect("url");
    assert_eq!(http_get(unsigned).0, 403);

    // Someone else may not share a private video of dave's.
    let (erin, _) = sign_up(&server, "erin", "erin's password");
    let r = call(
        "POST",
        &share_api,
        Some(&json!({ "numbers": ["+46700000009"] })),
        Some(&erin),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // The text for the phone's own app, with an sms: link.
    let t = call(
        "GET",
        &api(&format!(
            "/api/v1/videos/{id}/share-text?form=text&to=%2B46700000004"
        )),
        None,
        Some(&dave),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    assert!(t["text"].as_str().is_some_and(|s| s.contains(&id)), "{t}");
    assert!(
        t["sms_uri"]
            .as_str()
            .is_some_and(|s| s.starts_with("sms:+46700000004?body=")),
        "{t}"
    );
    assert_eq!(
        call(
            "GET",
            &api(&format!("/api/v1/videos/{id}/share-text")),
            None,
            None
        )
        .status,
        403,
        "private: no text without a link or the session"
    );
    let r = call(
        "GET",
        &api(&format!("/api/v1/videos/{id}/share-text?form=tlv")),
        None,
        Some(&dave),
    );
    assert_eq!(r.status, 400);

    // Three messages sent of six allowed: four more are too many, with the wait to retry.
    let four =
        json!({ "numbers": ["+46700000005", "+46700000006", "+46700000007", "+46700000008"] });
    let r = call("POST", &share_api, Some(&four), Some(&dave));
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=600).contains(&retry), "{retry}");
    // Three still fit.
    let three =
        json!({ "numbers": ["+46700000005", "+46700000006", "+46700000007"], "form": "tlv" });
    let r = call("POST", &share_api, Some(&three), Some(&dave));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sent"], 3);
    let records = open_received(&smsc_addr, "+46700000007");
    assert!(
        records
            .as_array()
            .is_some_and(|a| a.iter().all(|r| r["video_id"] == id.as_str())),
        "{records}"
    );

    // A deletion cut short after its first step (marked, files still stored) is finished by
    // the next start.
    let mut server = server;
    server.kill9();
    let media = data.join("media").join("videos").join(&id);
    assert!(media.join("video.mp4").is_file());
    {
        let (rt, db) = db_of(&data);
        assert_eq!(
            rt.block_on(db.mark_deleted(&id)).expect("mark"),
            vshare_server::db::MarkDeleted::Marked
        );
    }
    let _server = Server::start(&data, &["--ladder", "none"]);
    wait_for("the purge at start", Duration::from_secs(15), || {
        (!media.exists()).then_some(())
    });
    let (rt, db) = db_of(&data);
    wait_for("the rows to go", Duration::from_secs(5), || {
        rt.block_on(db.deleted_videos())
            .expect("q")
            .is_empty()
            .then_some(())
    });
}

/// A share made while the SMSC is down waits in the proxy's outbox (202, on its way) and goes
/// out when the SMSC comes up: the number receives it once, whole.
#[test]
fn a_share_while_the_smsc_is_down_goes_out_when_it_comes_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let smsc_addr = format!("127.0.0.1:{port}");
    let conf = dir.path().join("vshare.toml");
    std::fs::write(&conf, "[accounts]\nshare_wait_ms = 1000\n").expect("conf");
    let server = Server::start(
        &data,
        &[
            "--ladder",
            "none",
            "--smsc",
            &smsc_addr,
            "--config",
            conf.to_str().expect("path"),
        ],
    );
    let (frank, secret, mut publisher) = publish_as(&server, dir.path(), "frank", 3);
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &secret, &["ready"], Duration::from_secs(20));
    let id = ready["id"].as_str().expect("id").to_string();
    let r = call(
        "POST",
        &format!("{}/api/v1/videos/{id}/share", server.http),
        Some(&json!({ "numbers": ["+46700000021"], "form": "text" })),
        Some(&frank),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let answer = r.json();
    assert_eq!(
        (answer["sent"].clone(), answer["pending"].clone()),
        (json!(0), json!(1)),
        "{answer}"
    );
    let result = &answer["results"][0];
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        ["queued", "sending"].contains(&result["state"].as_str().unwrap_or("")),
        "{result}"
    );

    let mut smsc = vshare()
        .args(["smsc", "--listen", &smsc_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vshare smsc");
    let records = open_received(&smsc_addr, "+46700000021");
    let _ = smsc.kill();
    let _ = smsc.wait();
    let mp4 = records
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .unwrap_or_else(|| panic!("no mp4 record in {records}"));
    assert_eq!(mp4["video_id"], id.as_str());
}
