//! Where the proxy may send HTTP requests for a subscriber (webhooks, Web Push endpoints):
//! public unicast addresses only, unless the operator allows more. The check is made on the
//! addresses a name resolves to, at connect time (a resolver for reqwest), so a name that
//! resolves to a public address when subscribed and to an internal one later (DNS rebinding)
//! is still refused; literal IP URLs, which reqwest does not resolve, are checked before the
//! request. No redirects are followed. The classification is ours: `std`'s `is_global` and
//! friends are unstable, and the list of special ranges is short (RFC 6890 and its updates).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// The special-purpose range `ip` is in, or None for a public unicast address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0/8)",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local (cloud metadata)",
        (192, 0, 0) => "IETF protocol assignments",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        // IPv4-compatible (deprecated) and the NAT64 well-known prefix: the IPv4 inside
        // decides (NAT64 of a public address is public).
        [0, 0, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            return match special_v4(v4) {
                Some(c) => Some(c),
                None if s[0] == 0 => Some("IPv4-compatible"),
                None => None,
            };
        }
        [0x64, 0xff9b, 1, ..] => "NAT64 local-use",
        [0x100, 0, 0, 0, ..] => "discard-only",
        [0x2001, 0x0db8, ..] => "documentation",
        [0x2001, 0..=0x1ff, ..] => "IETF protocol assignments",
        [0x2002, ..] => "6to4",
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique-local",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local",
        [x, ..] if x & 0xffc0 == 0xfec0 => "site-local",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// A destination the policy refused, carried through reqwest's error chain so that the
/// outcome can name it without echoing anything else.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0} address")]
pub struct Refused(pub &'static str);

/// The operator's word on destinations.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Every address may be reached (tests, a proxy on a private network).
    pub allow_private: bool,
    /// Ranges allowed although special (an internal webhook receiver).
    pub allowed: Vec<IpNet>,
    /// URLs the operator configured (the server's own webhook): not checked.
    pub trusted_urls: Vec<String>,
}

impl EgressPolicy {
    /// Parses `allowed` CIDRs (`10.1.2.0/24`, `fd00::/8`, or a single address).
    pub fn new(allow_private: bool, allowed: &[String]) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("allowed destination {s:?} is not an address or CIDR"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allow_private,
            allowed,
            trusted_urls: Vec::new(),
        })
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        match special_range(ip) {
            None => Ok(()),
            Some(_) if self.allow_private => Ok(()),
            Some(_) if self.allowed.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(class) => Err(Refused(class)),
        }
    }

    pub fn is_trusted(&self, url: &str) -> bool {
        self.trusted_urls.iter().any(|t| t == url)
    }

    /// What can be told from the URL alone: an http(s) URL with a host, not a literal address
    /// in a refused range nor a `localhost` name. Names are checked again when resolved.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        if self.is_trusted(url) {
            return Ok(());
        }
        let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("not an http(s) URL".into());
        }
        let refused = |r: Refused| r.to_string();
        match u.host() {
            None => Err("no host".into()),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map_err(refused),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map_err(refused),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !self.allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                    return Err(refused(Refused("loopback")));
                }
                Ok(())
            }
        }
    }

    /// A client for subscribers' destinations: resolved addresses checked at connect time,
    /// no redirects, no proxy from the environment (it would resolve names for us).
    pub fn client(self: &Arc<Self>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Resolver(self.clone())))
            .build()
    }

    /// A client for the operator's own destinations: no checks, no redirects.
    pub fn trusted_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }
}

/// Resolves with the system resolver, then keeps only the addresses the policy allows.
struct Resolver(Arc<EgressPolicy>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused = Some(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some(r) => Box::new(r),
                    None => format!("{host}: no address").into(),
                };
                return Err(e);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A delivery error as subscribers' owners may see it: its class, never the URL, a remote body
/// or a resolver's words.
pub fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return r.to_string();
        }
        source = s.source();
    }
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() {
        "redirect not followed".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        special_range(s.parse().expect("address"))
    }

    #[test]
    fn special_ranges() {
        for s in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "fec0::1",
        ] {
            assert!(class(s).is_some(), "{s} should be special");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(s), None, "{s} should be public");
        }
        assert_eq!(
            class("169.254.169.254"),
            Some("link-local (cloud metadata)")
        );
        assert_eq!(class("::ffff:127.0.0.1"), Some("loopback"));
    }

    #[test]
    fn policy_allows_what_the_operator_says() {
        let strict = EgressPolicy::default();
        assert!(strict.check_ip("10.1.2.3".parse().expect("ip")).is_err());
        assert!(
            strict
                .check_ip("93.184.216.34".parse().expect("ip"))
                .is_ok()
        );
        let some =
            EgressPolicy::new(false, &["10.1.2.0/24".into(), "fd00::7".into()]).expect("policy");
        assert!(some.check_ip("10.1.2.3".parse().expect("ip")).is_ok());
        assert!(some.check_ip("10.1.3.3".parse().expect("ip")).is_err());
        assert!(some.check_ip("fd00::7".parse().expect("ip")).is_ok());
        assert!(EgressPolicy::new(false, &["nonsense".into()]).is_err());
        let open = EgressPolicy::new(true, &[]).expect("policy");
        assert!(open.check_ip("127.0.0.1".parse().expect("ip")).is_ok());
    }

    #[test]
    fn urls_refused_before_any_lookup() {
        let p = EgressPolicy::default();
        for u in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://a.localhost/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:7f00:1]/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "ftp://example.org/",
            "not a url",
        ] {
            assert!(p.check_url(u).is_err(), "{u} should be refused");
        }
        assert!(p.check_url("https://push.example.org/x").is_ok());
        assert!(p.check_url("http://93.184.216.34/hook").is_ok());
        let mut trusting = EgressPolicy::default();
        trusting.trusted_urls.push("http://127.0.0.1:9/hook".into());
        assert!(trusting.check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(trusting.check_url("http://127.0.0.1:9/other").is_err());
    }
}
