//! External programs the tests drive: presence checks and runs that must succeed.

use std::process::{Command, Stdio};

/// Fails the test with a clear message when an external tool is missing.
pub fn require_tool(name: &str) {
    let ok = Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "{name} is not installed; run scripts/setup.sh");
}

/// The standard output of a tool that must succeed.
pub fn run_tool(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed for this test (scripts/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run_tool`]'s output as text.
pub fn run_tool_text(tool: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run_tool(tool, args)).into_owned()
}
