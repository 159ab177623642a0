//! The share flow end to end, driven by the scripts in tests/messaging: server, publisher,
//! `vshare smsc`, `vshare share` and `vshare open`; and WAP Push through Kannel's PPG.

use std::path::PathBuf;
use std::process::Command;

fn run_script(name: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("tests/messaging").join(name))
        .env("VSHARE", env!("CARGO_BIN_EXE_vshare"))
        .output()
        .expect("bash");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed:\n{text}");
}

#[test]
fn share_by_smpp_to_vshare_smsc_and_open_downloads_the_vod() {
    run_script("full_flow.sh");
}

#[test]
fn wap_push_through_kannel_ppg_decodes_at_the_target() {
    run_script("kannel_pap.sh");
}
