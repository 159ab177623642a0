//! The pure parts: composing in each form, the SMPP field mapping, sms: links, reading plain
//! text, and choosing a player.

use std::time::{Duration, Instant};

use vshare_attributes::{AttributeRecord, Kind};
use vshare_messaging::compose::{As, TLV_PORT, compose, primary, sms_uri, to_smpp};
use vshare_messaging::player::{Player, choose};
use vshare_messaging::receive::{Received, decode_message, record_from_url, user_data_of_sm};
use vshare_smpp::pdu::Sm;
use vshare_sms::reassembly::Reassembler;
use vshare_sms::split::ConcatRef;

fn rec(kind: Kind, format: &str, url: &str) -> AttributeRecord {
    AttributeRecord {
        kind,
        video_id: "v1".into(),
        url: url.into(),
        poster: String::new(),
        format: format.into(),
        codecs: "avc1.42C01E,mp4a.40.2".into(),
        width: 640,
        height: 360,
        frame_rate: 25.0,
        bitrate: 800_000,
        size: 1_000_000,
        duration_ms: 10_000,
        dvr: 0,
        frames_coming: 0,
        audio_sample_rate: 44_100,
        audio_channels: 2,
        title: String::new(),
    }
}

#[test]
fn smpp_fields_follow_the_docs() {
    let records = vec![rec(Kind::Vod, "mp4", "http://h/vod/v1/video.mp4")];
    let seg = compose(&records, As::Tlv, ConcatRef::Eight(1), 1).unwrap();
    let sms = to_smpp("vshare", "+8613900139000", &seg, true).unwrap();
    assert_eq!(sms.len(), 1);
    let sm = &sms[0];
    assert_eq!(
        (sm.source.ton, sm.source.npi, sm.source.addr.as_str()),
        (5, 0, "vshare")
    );
    assert_eq!(
        (sm.dest.ton, sm.dest.npi, sm.dest.addr.as_str()),
        (1, 1, "8613900139000")
    );
    assert_eq!(
        (sm.esm_class, sm.data_coding, sm.registered_delivery),
        (0x40, 0x04, 1)
    );
    // UDH: ports 16180 → 16180.
    let p = TLV_PORT.to_be_bytes();
    assert_eq!(
        sm.short_message[..7],
        [0x06, 0x05, 0x04, p[0], p[1], p[0], p[1]]
    );
    // Text goes as unpacked septets with data_coding 0 and no UDH when it fits.
    let seg = compose(
        &[rec(Kind::Live, "ll-hls", "http://h/live/v1/index.m3u8")],
        As::Text,
        ConcatRef::Eight(1),
        1,
    )
    .unwrap();
    let sm = &to_smpp("+8613800138000", "8613900139000", &seg, false).unwrap()[0];
    assert_eq!((sm.esm_class, sm.data_coding), (0, 0));
    assert!(
        sm.short_message
            .starts_with(b"http://h/live/v1/index.m3u8\n")
    );
    assert_eq!((sm.source.ton, sm.dest.ton), (1, 0));
}

#[test]
fn push_points_at_live_first_then_mp4() {
    let vod = rec(Kind::Vod, "hls", "http://h/vod/v1/index.m3u8");
    let mp4 = rec(Kind::Vod, "mp4", "http://h/vod/v1/video.mp4");
    let live = rec(Kind::Live, "ll-hls", "http://h/live/v1/index.m3u8");
    assert_eq!(primary(&[vod.clone(), mp4.clone()]).unwrap().format, "mp4");
    assert_eq!(
        primary(&[vod.clone(), live.clone(), mp4]).unwrap().format,
        "ll-hls"
    );
    assert_eq!(primary(&[vod]).unwrap().format, "hls");
    let r = record_from_url("http://h/live/v9/index.m3u8");
    assert_eq!(
        (r.kind, r.format.as_str(), r.video_id.as_str()),
        (Kind::Live, "ll-hls", "v9")
    );
}

#[test]
fn sms_links() {
    let records = vec![rec(Kind::Vod, "mp4", "http://h/v.mp4")];
    let uri = sms_uri(
        &["+8613800138000".into(), "+8613900139000".into()],
        &records,
        As::Text,
    )
    .unwrap();
    assert!(
        uri.starts_with(
            "sms:+8613800138000,+8613900139000?body=http%3A%2F%2Fh%2Fv.mp4%0AVS1%20k%3Dvod"
        ),
        "{uri}"
    );
    assert!(sms_uri(&["+1".into()], &records, As::Tlv).is_err());
}

#[test]
fn plain_text_is_shown_as_text() {
    let sm = Sm::text("+1", "+2", b"see you at 8");
    let (dcs, ud) = user_data_of_sm(&sm).unwrap();
    let m = Reassembler::new(Duration::from_secs(1))
        .push(Instant::now(), "+1", dcs, ud)
        .unwrap();
    assert_eq!(
        decode_message(&m).unwrap(),
        Received::Text("see you at 8".into())
    );
}

#[test]
fn players_match_the_record() {
    let live = rec(Kind::Live, "ll-hls", "http://h/live/v1/index.m3u8");
    let mp4 = rec(Kind::Vod, "mp4", "http://h/v.mp4");
    let all = [Player::Ffplay, Player::Vlc, Player::Mpv];
    assert_eq!(choose(&live, &all), Some(Player::Mpv));
    assert_eq!(
        choose(&live, &[Player::Vlc, Player::Ffplay]),
        Some(Player::Ffplay)
    );
    assert_eq!(
        choose(&mp4, &[Player::Vlc, Player::Ffplay]),
        Some(Player::Vlc)
    );
    let mut av1 = mp4.clone();
    av1.codecs = "av01.0.05M.08,opus".into();
    assert_eq!(choose(&av1, &[Player::Vlc]), None);
    let mut odd = mp4;
    odd.format = "webm".into();
    assert_eq!(choose(&odd, &all), None);
    assert_eq!(
        Player::Ffplay.args("u", &live),
        ["-fflags", "nobuffer", "-autoexit", "u"]
    );
}
