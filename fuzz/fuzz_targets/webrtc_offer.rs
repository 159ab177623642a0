//! SDP offers to WHEP and WHIP (`Viewer::answer`, `Ingest::answer`), from the HTTP body as a
//! player or publisher sends it: arbitrary text, and real offers (str0m's, made as a player
//! and as a publisher make them) with lines replaced, deleted or inserted as the input says.
//! The first byte picks the offer (text, a player's, a publisher's) and the side that answers
//! (WHEP or WHIP). Either an answer that parses as SDP and names the server's candidate, or an
//! `OfferError` with its reason — never a panic.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vshare_webrtc::str0m::change::SdpAnswer;
use vshare_webrtc::str0m::media::{Direction, MediaKind};
use vshare_webrtc::str0m::{Candidate, Rtc};
use vshare_webrtc::{Host, Ingest, OfferError, Viewer};

const SERVER: &str = "127.0.0.1:8189";

/// A player's offer (receives video and audio) and a publisher's (sends them), as SDP lines.
fn offers() -> &'static (Vec<String>, Vec<String>) {
    static OFFERS: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    OFFERS.get_or_init(|| {
        let make = |dir: Direction| {
            let now = Instant::now();
            let mut rtc = Rtc::new(now);
            let addr: SocketAddr = "127.0.0.1:50000".parse().expect("address");
            rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
            let mut change = rtc.sdp_api();
            change.add_media(MediaKind::Video, dir, None, None, None);
            change.add_media(MediaKind::Audio, dir, None, None, None);
            let (offer, _) = change.apply().expect("an offer");
            offer.to_sdp_string().lines().map(String::from).collect()
        };
        (make(Direction::RecvOnly), make(Direction::SendOnly))
    })
}

/// The server's side, made once (as the server makes it once at start).
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new(SERVER.parse().expect("address")).expect("a certificate"))
}

/// The offer with the input's edits: records split at 0x00, each `[line, op, text…]`.
fn edited(lines: &[String], edits: &[u8]) -> String {
    let mut lines = lines.to_vec();
    for record in edits.split(|b| *b == 0) {
        let [at, op, text @ ..] = record else {
            continue;
        };
        let text = String::from_utf8_lossy(text).into_owned();
        let at = usize::from(*at) % (lines.len() + 1);
        match op % 3 {
            0 if at < lines.len() => lines[at] = text,
            1 if at < lines.len() => {
                lines.remove(at);
            }
            _ => lines.insert(at, text),
        }
    }
    let mut sdp = lines.join("\r\n");
    sdp.push_str("\r\n");
    sdp
}

fn check(answered: Result<String, OfferError>) {
    match answered {
        Ok(answer) => {
            SdpAnswer::from_sdp_string(&answer).expect("the answer parses as SDP");
            assert!(answer.contains("127.0.0.1 8189"), "{answer}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (player, publisher) = offers();
    let offer = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => edited(player, rest),
        _ => edited(publisher, rest),
    };
    // One answer a run, either side (a negotiation is most of a run's time).
    let now = Instant::now();
    match mode / 3 % 2 {
        0 => check(Viewer::answer(&offer, host(), 0x42e01f, now).map(|(_, answer)| answer)),
        _ => check(Ingest::answer(&offer, host(), Duration::from_secs(2), now).map(|(_, a)| a)),
    }
});
