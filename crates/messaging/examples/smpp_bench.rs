//! `cargo run --release -p vshare-messaging --example smpp_bench [COUNT [ADDR]]`: the same
//! figures as `vshare smsc --bench`, without building the whole binary. An in-process
//! `vshare smsc` on loopback (or the SMSC at ADDR, e.g. one started in another process with
//! `smpp_bench serve 127.0.0.1:2775`); one transmitter bind per window; then encode+decode
//! rates per form.

use std::time::Duration;

use vshare_messaging::bench;
use vshare_messaging::compose::As;
use vshare_messaging::smsc::{Smsc, SmscOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let addr = args.get(2).map_or("127.0.0.1:2775", String::as_str);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        return Smsc::new(SmscOptions::default()).serve(listener).await;
    }
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let addr = match args.get(2) {
        Some(a) => a.clone(),
        None => {
            let (a, _h) = Smsc::new(SmscOptions::default())
                .spawn("127.0.0.1:0")
                .await?;
            a.to_string()
        }
    };
    println!("SMPP submit_sm over one bind to vshare smsc at {addr}, {count} messages each:");
    for w in [1, 10, 64] {
        let r = bench::submit_rate(&addr, w, count).await?;
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
