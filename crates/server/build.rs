//! The browser pages are built by npm (web/, `npm run build` → web/dist) and embedded by
//! src/web.rs. A build without them stops here with the command to run, rather than later
//! with a bare "folder does not exist" from the embedding macro; and a rebuilt web/dist
//! rebuilds this crate.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dist = Path::new(&manifest).join("../../web/dist");
    println!("cargo:rerun-if-changed=../../web/dist");
    if !dist.join("index.html").is_file() {
        eprintln!(
            "\nerror: web/dist is missing: the browser pages that `vshare serve` embeds are \
             built with npm.\n  Run: (cd web && npm ci && npm run build)\n  \
             (scripts/setup.sh, run.sh and test.sh do this for you.)\n"
        );
        std::process::exit(1);
    }
}
