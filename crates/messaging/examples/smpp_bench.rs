//! `cargo run --release -p vshare-messaging --example smpp_bench [COUNT]`: the same figures as
//! `vshare smsc --bench`, without building the whole binary. An in-process `vshare smsc` on
//! loopback; one transmitter bind per window; then encode+decode rates per form.

use std::time::Duration;

use vshare_messaging::bench;
use vshare_messaging::compose::As;
use vshare_messaging::smsc::{Smsc, SmscOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let (addr, _h) = Smsc::new(SmscOptions::default())
        .spawn("127.0.0.1:0")
        .await?;
    println!("SMPP submit_sm over one bind to vshare smsc at {addr}, {count} messages each:");
    for w in [1, 10, 64] {
        let r = bench::submit_rate(&addr.to_string(), w, count).await?;
        println!(
            "  window {:>3}: {:>9.0} submit_sm/s ({:.2} s)",
            r.window,
            r.per_second,
            r.elapsed.as_secs_f64()
        );
    }
    println!("encode + decode, one core (records → SMS parts → reassembled → records):");
    for form in [As::Text, As::Tlv, As::Xml, As::WapSi, As::WapSl] {
        println!(
            "  {form:?}: {:>9.0} messages/s",
            bench::form_rate(form, Duration::from_secs(2))?
        );
    }
    Ok(())
}
