//! Temporary directories for a test's files, kept for a look when asked.

use std::path::Path;

/// Runs `f` in a temporary directory; VSHARE_TEST_KEEP=1 keeps it for a look after the run.
pub fn with_dir(f: impl FnOnce(&Path)) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = if std::env::var_os("VSHARE_TEST_KEEP").is_some() {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    eprintln!("files in {}", dir.display());
    f(&dir);
}
