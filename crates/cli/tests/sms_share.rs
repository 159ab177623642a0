//! One SMS per share, end to end against a real `vshare serve` and `vshare smsc`: the compact
//! text and WAP Push arrive as one SMS each (no concatenation) carrying the short link
//! `/w/<id>`; `vshare open` on the link-only SMS fetches the full record from the link and
//! downloads the VOD (ffprobe reads it); the full form still carries every record; the
//! share-preview count equals what is sent; `/w/<id>` redirects browsers, returns the record
//! to clients, 404s unknown ids and keeps private videos' attributes to signed links.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::curl::{Resp, curl};
use common::*;
use serde_json::{Value, json};
use vshare_messaging::receive::{Received, decode_message, user_data_of_sm};
use vshare_messaging::smpp_client::{Client, ClientOptions};
use vshare_smpp::BindKind;
use vshare_smpp::pdu::{Sm, esm};
use vshare_sms::reassembly::Reassembler;
use vshare_testkit::ffmpeg::ffprobe;
use vshare_testkit::net::free_port;

fn call(method: &str, url: &str, body: Option<&Value>, session: Option<&str>) -> Resp {
    let cookie = session.map(|s| format!("Cookie: vshare_session={s}"));
    curl(None, method, url, body, cookie.as_slice())
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first message (not a receipt) the SMSC holds for `number`, as one SMPP PDU.
fn first_sms(smsc: &str, number: &str) -> Sm {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut o = ClientOptions::new(smsc, BindKind::Receiver, "phone", "phone");
        o.address_range = number.trim_start_matches('+').into();
        let mut c = Client::connect(&o).await.expect("bind as the phone");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sm = c
                .recv(Some(deadline))
                .await
                .expect("recv")
                .unwrap_or_else(|| panic!("no SMS for {number}"));
            if sm.esm_class & esm::DELIVERY_RECEIPT == 0 {
                c.unbind().await.ok();
                return sm;
            }
        }
    })
}

/// Decodes one SMS on its own, as a phone would: it must be a whole message.
fn decode_one(sm: &Sm) -> Received {
    let (dcs, ud) = user_data_of_sm(sm).expect("user data");
    assert!(
        ud.header.as_ref().is_none_or(|h| h.concat().is_none()),
        "a part of a concatenated message: {:?}",
        ud.header
    );
    let mut r = Reassembler::new(Duration::from_secs(60));
    let m = r
        .push(Instant::now(), "+1", dcs, ud)
        .expect("one SMS is a whole message");
    decode_message(&m).expect("decodes")
}

#[test]
fn a_share_is_one_sms_with_the_short_link_and_open_downloads_the_vod_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let smsc_addr = format!("127.0.0.1:{}", free_port());
    let _smsc = Kill(
        vshare()
            .args(["smsc", "--listen", &smsc_addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vshare smsc"),
    );
    let conf = dir.path().join("vshare.toml");
    std::fs::write(&conf, "[accounts]\nshare_messages = 20\n").expect("conf");
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
    let r = call(
        "POST",
        &api("/api/v1/accounts"),
        Some(&json!({ "username": "dave", "password": "a long password" })),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let dave = r.session();
    let secret = r.json()["stream_key"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    let clip = make_clip(dir.path(), "clip.mp4", 3, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&secret));
    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &secret, &["ready"], Duration::from_secs(20));
    let id = ready["id"].as_str().expect("id").to_string();
    let mp4 = ready["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["format"] == "mp4"))
        .expect("mp4 record")
        .clone();
    let link = format!("{}/w/{id}", server.http);
    let share_api = api(&format!("/api/v1/videos/{id}/share"));
    let preview = |q: &str| {
        let r = call(
            "GET",
            &api(&format!("/api/v1/videos/{id}/share-preview?{q}")),
            None,
            Some(&dave),
        );
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.json()
    };

    // The dialog's count: one GSM 7-bit SMS by default, more for the full form.
    let p = preview("form=text");
    assert_eq!(
        (p["parts"].as_u64(), p["alphabet"].as_str()),
        (Some(1), Some("gsm7")),
        "{p}"
    );
    let text = p["text"].as_str().expect("text").to_string();
    assert!(
        text.starts_with(&format!("{link}\nVOD 640x360 0:03")),
        "{text}"
    );
    let full_parts = preview("form=text&full=true")["parts"]
        .as_u64()
        .expect("parts");
    assert!(full_parts > 1, "{full_parts}");
    assert_eq!(preview("form=wap-si")["parts"], 1);
    assert_eq!(preview("form=wap-si&full=true")["parts"], 2);

    // Compact text to two numbers: one SMS each, the preview's text.
    let r = call(
        "POST",
        &share_api,
        Some(&json!({ "numbers": ["+46700000001", "+46700000002"] })),
        Some(&dave),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["parts"].as_u64(), r.json()["sent"].as_u64()),
        (Some(1), Some(2))
    );
    let sm = first_sms(&smsc_addr, "+46700000001");
    assert_eq!((sm.data_coding, sm.esm_class & esm::UDHI), (0, 0), "{sm:?}");
    match decode_one(&sm) {
        Received::Link { compact, wap } => {
            assert!(!wap);
            assert_eq!(compact.encode(), text);
            assert_eq!(compact.link, link);
        }
        other => panic!("not the compact form: {other:?}"),
    }

    // `vshare open` on the other number's link-only SMS downloads the VOD named by the link.
    let got = dir.path().join("got.mp4");
    let out = vshare()
        .args(["open", "--smsc", &smsc_addr, "--number", "+46700000002"])
        .args([
            "--timeout",
            "20",
            "--download",
            "--player",
            "none",
            "--output",
        ])
        .arg(&got)
        .stdin(Stdio::null())
        .output()
        .expect("vshare open");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vshare open: {err}");
    assert!(
        err.contains(&format!("message: short link {link} (SMS)")),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&got).expect("downloaded").len(),
        mp4["size"].as_u64().expect("size")
    );
    let probe = ffprobe(&got);
    assert!(
        probe["streams"].as_array().is_some_and(|s| s
            .iter()
            .any(|s| s["codec_type"] == "video" && s["width"] == 640)),
        "{probe}"
    );

    // The compact WAP Push: one SMS of at most 140 octets, its SI's href the short link.
    let r = call(
        "POST",
        &share_api,
        Some(&json!({ "numbers": ["+46700000003"], "form": "wap-si" })),
        Some(&dave),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sm = first_sms(&smsc_addr, "+46700000003");
    assert!(
        sm.short_message.len() <= 140,
        "{} octets",
        sm.short_message.len()
    );
    assert_eq!(sm.data_coding, 0x04);
    match decode_one(&sm) {
        Received::Link { compact, wap } => {
            assert!(wap);
            assert_eq!(compact.link, link);
            assert!(compact.summary().starts_with("VOD 640x360"), "{compact:?}");
        }
        other => panic!("not the compact SI: {other:?}"),
    }

    // The full form still carries every record, in several parts.
    let r = call(
        "POST",
        &share_api,
        Some(&json!({ "numbers": ["+46700000004"], "full": true })),
        Some(&dave),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["parts"].as_u64(), Some(full_parts));
    let out = vshare()
        .args(["open", "--smsc", &smsc_addr, "--number", "+46700000004"])
        .args(["--timeout", "20", "--json", "--player", "none"])
        .stdin(Stdio::null())
        .output()
        .expect("vshare open");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("attribute records, text form"), "{err}");
    let records: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        records.as_array().is_some_and(|a| a
            .iter()
            .any(|r| r["url"] == mp4["url"] && r["size"] == mp4["size"])),
        "{records}"
    );

    // `vshare share` prints one PDU by default, several with --full.
    for (full, want) in [(false, 1), (true, full_parts as usize)] {
        let mut cmd = vshare();
        cmd.args([
            "share",
            &id,
            "--server",
            &server.http,
            "--to",
            "+46700000005",
        ]);
        if full {
            cmd.arg("--full");
        }
        let out = cmd.stdin(Stdio::null()).output().expect("vshare share");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pdus = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(pdus, want, "--full {full}");
    }

    // The short link: browsers go to the watch page, clients get the record.
    let r = call("GET", &link, None, None);
    assert_eq!(r.status, 303, "{}", r.head);
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/watch/{id}").as_str())
    );
    let xml = curl(
        None,
        "GET",
        &link,
        None,
        &["Accept: application/vnd.vshare.attributes+xml".into()],
    );
    assert_eq!(xml.status, 200, "{}", xml.body);
    assert_eq!(
        xml.header("content-type").as_deref(),
        Some("application/vnd.vshare.attributes+xml")
    );
    let records = vshare_attributes::forms::decode_xml(xml.body.as_bytes()).expect("XML form");
    assert!(
        records
            .iter()
            .any(|r| r.url == mp4["url"].as_str().expect("url"))
    );
    let j = call("GET", &format!("{link}?format=json"), None, None);
    assert_eq!(j.status, 200);
    assert!(
        j.json()
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["url"] == mp4["url"]))
    );
    assert_eq!(call("GET", &api("/w/nosuchvideo"), None, None).status, 404);
    assert_eq!(
        call("GET", &format!("{link}?format=tlv"), None, None).status,
        400
    );

    // Private: nothing without a link or the session; a signed link gets signed records.
    let r = call(
        "PATCH",
        &api(&format!("/api/v1/videos/{id}")),
        Some(&json!({ "visibility": "private" })),
        Some(&dave),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let denied = call("GET", &format!("{link}?format=json"), None, None);
    assert_eq!(denied.status, 403);
    assert!(!denied.body.contains("/vod/"), "{}", denied.body);
    assert_eq!(call("GET", &link, None, None).status, 403);
    let p = preview("form=text");
    let signed = p["text"]
        .as_str()
        .and_then(|t| t.lines().next())
        .expect("link line")
        .to_string();
    assert!(
        signed.starts_with(&format!("{link}?exp=")) && signed.contains("sig="),
        "{signed}"
    );
    assert_eq!(p["parts"], 1);
    let j = call("GET", &format!("{signed}&format=json"), None, None);
    assert_eq!(j.status, 200, "{}", j.body);
    assert!(
        j.json().as_array().is_some_and(|a| a
            .iter()
            .all(|r| r["url"].as_str().is_some_and(|u| u.contains("sig=")))),
        "{}",
        j.body
    );
    let r = call("GET", &signed, None, None);
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with(&format!("/watch/{id}?exp="))),
        "{}",
        r.head
    );
}
