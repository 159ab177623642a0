//! Format conversion in the server: the default ladder adds transcoded renditions, listed in a
//! multivariant playlist with measured attributes, keyframe-aligned, each recorded as VOD.

mod common;

use std::time::Duration;

use common::*;
use vshare_testkit::ffmpeg::{decode_errors, ffprobe, ffprobe_csv, number, parse_rate, stream_of};
use vshare_testkit::wait::wait_for;

/// Presentation times of the video keyframes of a file or URL, from ffprobe.
fn keyframe_times(input: &str) -> Vec<String> {
    ffprobe_csv(input, "v:0", "packet=pts_time,flags")
        .lines()
        .filter(|l| l.contains(",K"))
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect()
}

#[test]
fn default_ladder_makes_aligned_renditions_with_measured_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    // 640x360 source: of the default ladder only 240p is smaller.
    let clip = make_clip(dir.path(), "clip.mp4", 8, &[]);
    let server = Server::start(&data, &[]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    let live = wait_video_state(&server, &key, &["live"], Duration::from_secs(15));
    let id = live["id"].as_str().expect("id").to_string();
    let master_url = live["attributes"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(master_url, format!("{}/live/{id}/master.m3u8", server.http));

    // The multivariant playlist lists both renditions once the 240p one has a segment.
    let master = wait_for("both variants", Duration::from_secs(15), || {
        let (status, body) = http_get(&master_url);
        let text = String::from_utf8_lossy(&body).to_string();
        (status == 200 && text.contains("240p/index.m3u8")).then_some(text)
    });
    for attr in [
        "BANDWIDTH=",
        "AVERAGE-BANDWIDTH=",
        "RESOLUTION=640x360",
        "RESOLUTION=426x240",
        "FRAME-RATE=30.000",
        "CODECS=\"avc1.",
    ] {
        assert!(
            master.contains(attr),
            "multivariant playlist lacks {attr}:\n{master}"
        );
    }
    // A player opens it and sees two programs' worth of video.
    let probe = ffprobe(&master_url);
    let heights: Vec<u64> = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["height"].as_u64())
        .collect();
    assert!(
        heights.contains(&360) && heights.contains(&240),
        "{heights:?}"
    );

    assert!(publisher.wait().expect("ffmpeg").success());
    let ready = wait_video_state(&server, &key, &["ready"], Duration::from_secs(20));
    let records = ready["attributes"].as_array().expect("records");
    let source = records
        .iter()
        .find(|r| r["format"] == "mp4" && r["height"] == 360)
        .expect("source mp4");
    let low = records
        .iter()
        .find(|r| r["format"] == "mp4" && r["height"] == 240)
        .expect("240p mp4");
    assert!(
        low["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/240p/video.mp4"))
    );
    assert!(records.iter().any(|r| {
        r["format"] == "hls"
            && r["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/240p/index.m3u8"))
    }));

    // The 240p file decodes; its attributes are what ffprobe measures.
    let url = low["url"].as_str().expect("url");
    assert!(decode_errors(url).is_empty());
    let probe = ffprobe(url);
    let v = stream_of(&probe, "video");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (low["width"].as_u64(), low["height"].as_u64())
    );
    assert_eq!(
        low["size"].as_u64(),
        probe["format"]["size"]
            .as_str()
            .and_then(|s| s.parse().ok())
    );
    let ff = number(&probe["format"]["bit_rate"]);
    let ours = low["bitrate"].as_f64().expect("bitrate");
    assert!(
        (ours - ff).abs() / ff < 0.05,
        "bitrate {ours} vs ffprobe {ff}"
    );
    assert!(
        (low["frame_rate"].as_f64().expect("fps")
            - parse_rate(v["avg_frame_rate"].as_str().expect("rate")))
        .abs()
            < 0.05
    );

    // Keyframes at the same media times in both live renditions: players switch without a
    // glitch. (The ended live streams stay readable for a minute.)
    let live_keyframes = |prefix: &str| {
        let base = format!("{}/live/{id}/{prefix}", server.http);
        let (_, init) = http_get(&format!("{base}init.mp4"));
        let mut all = Vec::new();
        for msn in 0..3 {
            let (status, seg) = http_get(&format!("{base}seg{msn}.m4s"));
            assert_eq!(status, 200, "{prefix}seg{msn}");
            let file = dir
                .path()
                .join(format!("{}{msn}.mp4", prefix.replace('/', "_")));
            std::fs::write(&file, [init.as_slice(), seg.as_slice()].concat()).expect("write");
            all.extend(keyframe_times(file.to_str().expect("path")));
        }
        all
    };
    let a = live_keyframes("");
    assert_eq!(
        a.len(),
        6,
        "a keyframe each second over three 2 s segments: {a:?}"
    );
    assert_eq!(
        a,
        live_keyframes("240p/"),
        "live keyframes differ between renditions"
    );
    // In the VOD files too, relative to each file's first keyframe (each file starts at its own
    // earliest sample: the AAC encoder's priming shifts the transcoded audio by 1024 samples).
    let relative = |url: &str| {
        let t: Vec<f64> = keyframe_times(url)
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        t.iter()
            .map(|x| format!("{:.3}", x - t[0]))
            .collect::<Vec<_>>()
    };
    let a = relative(source["url"].as_str().expect("url"));
    assert!(a.len() >= 7, "source keyframes {a:?}");
    assert_eq!(a, relative(url), "VOD keyframes differ between renditions");
}

#[test]
fn webm_and_3gp_vod_files_get_their_own_measured_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = create_key(&data);
    let clip = make_clip(dir.path(), "clip.mp4", 5, &[]);
    let server = Server::start(&data, &["--ladder", "none", "--vod-formats", "webm,3gp"]);
    let mut publisher = ffmpeg_publish(&clip, &server.rtmp_url(&key));
    assert!(publisher.wait().expect("ffmpeg").success());
    // MP4 and HLS are ready first; the other formats join the record list when written.
    let ready = wait_for("webm and 3gp records", Duration::from_secs(60), || {
        let v = wait_video_state(&server, &key, &["ready"], Duration::from_secs(10));
        let formats: Vec<String> = v["attributes"]
            .as_array()?
            .iter()
            .filter_map(|r| r["format"].as_str().map(str::to_string))
            .collect();
        (formats.contains(&"webm".to_string()) && formats.contains(&"3gp".to_string())).then_some(v)
    });
    for (format, vcodec, acodec) in [("webm", "vp9", "opus"), ("3gp", "h263", "aac")] {
        let rec = ready["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["format"] == format))
            .expect("record")
            .clone();
        let url = rec["url"].as_str().expect("url");
        assert!(url.ends_with(&format!("/video.{format}")), "{url}");
        // Every record of the recording names its poster (posters are on by default).
        let poster = rec["poster"].as_str().expect("poster");
        assert_eq!(
            poster,
            url.replace(&format!("video.{format}"), "poster.jpg")
        );
        let errors = decode_errors(url);
        assert!(errors.is_empty(), "{format}: {errors}");
        let probe = ffprobe(url);
        let v = stream_of(&probe, "video");
        assert_eq!(v["codec_name"], vcodec);
        assert_eq!(stream_of(&probe, "audio")["codec_name"], acodec);
        assert_eq!(
            (rec["width"].as_u64(), rec["height"].as_u64()),
            (v["width"].as_u64(), v["height"].as_u64()),
            "{format}"
        );
        assert_eq!(
            rec["size"].as_u64(),
            probe["format"]["size"]
                .as_str()
                .and_then(|s| s.parse().ok()),
            "{format}"
        );
        let ff = number(&probe["format"]["bit_rate"]);
        let ours = rec["bitrate"].as_f64().expect("bitrate");
        assert!(
            (ours - ff).abs() / ff < 0.05,
            "{format}: bitrate {ours} vs ffprobe {ff}"
        );
    }
}
