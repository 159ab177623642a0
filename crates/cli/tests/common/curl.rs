//! HTTP requests made with curl, an independent client: the answer's status, head and body.

use std::process::Command;

use serde_json::Value;

/// An HTTP answer as curl saw it.
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: HTTP {} {}", self.status, self.body))
    }

    /// The session token from `Set-Cookie`.
    pub fn session(&self) -> String {
        let c = self.header("set-cookie").expect("Set-Cookie");
        c.strip_prefix("vshare_session=")
            .and_then(|v| v.split(';').next())
            .expect("vshare_session cookie")
            .to_string()
    }
}

/// One request: method, URL, JSON body, extra headers, and the local address to connect from
/// (any 127.x address is this machine's loopback).
pub fn curl(
    from: Option<&str>,
    method: &str,
    url: &str,
    body: Option<&Value>,
    headers: &[String],
) -> Resp {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "60", "-X", method]);
    if let Some(ip) = from {
        cmd.args(["--interface", ip]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(b.to_string());
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {url}: no HTTP answer: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
