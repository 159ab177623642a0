//! Benchmarks: SMPP submit_sm per second over one bind against an SMSC, and encode + decode
//! rates of each message form.

use std::time::{Duration, Instant};

use vshare_attributes::{AttributeRecord, Kind};
use vshare_smpp::pdu::Sm;
use vshare_smpp::{BindKind, Config};
use vshare_sms::split::ConcatRef;

use crate::compose::{As, compose, to_smpp};
use crate::receive::{decode_message, user_data_of_sm};
use crate::smpp_client::{Client, ClientOptions};

/// The record the benchmarks share.
pub fn sample_record() -> AttributeRecord {
    AttributeRecord {
        kind: Kind::Vod,
        video_id: "v7Kq2".into(),
        url: "http://127.0.0.1:8080/vod/v7Kq2/video.mp4".into(),
        poster: String::new(),
        format: "mp4".into(),
        codecs: "avc1.64001F,mp4a.40.2".into(),
        width: 1280,
        height: 720,
        frame_rate: 30.0,
        bitrate: 2_500_000,
        size: 18_874_368,
        duration_ms: 62_040,
        dvr: 0,
        frames_coming: 0,
        audio_sample_rate: 48_000,
        audio_channels: 2,
        title: "Harbour at dusk".into(),
    }
}

/// One submit-rate measurement.
#[derive(Debug, Clone, Copy)]
pub struct SubmitRate {
    pub window: usize,
    pub count: usize,
    pub elapsed: Duration,
    pub per_second: f64,
}

/// Binds one transmitter to `addr` and submits `count` single-part messages with `window`
/// outstanding; all must be accepted.
pub async fn submit_rate(addr: &str, window: usize, count: usize) -> anyhow::Result<SubmitRate> {
    let mut opts = ClientOptions::new(addr, BindKind::Transmitter, "bench", "bench");
    opts.config = Config {
        window,
        ..Config::default()
    };
    let mut c = Client::connect(&opts).await?;
    let seg = compose(&[sample_record()], As::Tlv, ConcatRef::Eight(1), 1)?;
    let sm: Sm = to_smpp("+8613800138000", "+8613999999999", &seg, false)?.remove(0);
    // Warm up the connection and the SMSC's routing tables.
    c.submit_many(vec![sm.clone(); window.min(count)]).await?;
    let start = Instant::now();
    let results = c.submit_many(vec![sm; count]).await?;
    let elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {count} submits failed");
    }
    c.unbind().await?;
    Ok(SubmitRate {
        window,
        count,
        elapsed,
        per_second: count as f64 / elapsed.as_secs_f64(),
    })
}

/// Encode + decode round trips per second for one form, on one core: records → SMS parts (SMPP
/// short_message) → reassembled → records.
pub fn form_rate(form: As, min_time: Duration) -> anyhow::Result<f64> {
    let records = vec![sample_record()];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min_time {
        for _ in 0..200 {
            let seg = compose(&records, form, ConcatRef::Eight(n as u8), 1)?;
            let sms = to_smpp("+8613800138000", "+8613900139000", &seg, false)?;
            let mut r = vshare_sms::reassembly::Reassembler::new(Duration::from_secs(60));
            let now = Instant::now();
            let mut done = None;
            for sm in &sms {
                let (dcs, ud) = user_data_of_sm(sm)?;
                done = r.push(now, "+8613800138000", dcs, ud).or(done);
            }
            let got = decode_message(&done.ok_or_else(|| anyhow::anyhow!("not reassembled"))?)?;
            std::hint::black_box(got);
            n += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
