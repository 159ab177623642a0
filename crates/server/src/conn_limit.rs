//! Open-connection caps, in all and per client address, for one listener. Our own code: a
//! counter map with a drop guard is smaller than adapting tower's limits, which count requests,
//! not connections, and know no client addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections; [`ConnLimiter::admit`] hands out a guard per admitted one.
#[derive(Clone)]
pub struct ConnLimiter {
    inner: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_client: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total(usize),
    PerClient(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Total(n) => write!(f, "{n} connections open in all"),
            Refused::PerClient(n) => write!(f, "{n} connections open from this address"),
        }
    }
}

/// One admitted connection; dropping it frees its place.
pub struct ConnGuard {
    limiter: ConnLimiter,
    client: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = self.limiter.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.client);
            }
        }
    }
}

/// The address a client is counted under: IPv4 (also when mapped into IPv6) as it is, IPv6 by
/// its /64, which one subscriber usually holds whole.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
        }
    }

    /// Admits a connection from `ip`, or says which cap it would pass.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnGuard, Refused> {
        let client = client_key(ip);
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(Refused::Total(c.total));
        }
        let n = c.per_client.entry(client).or_default();
        if *n >= self.max_per_client {
            return Err(Refused::PerClient(*n));
        }
        *n += 1;
        c.total += 1;
        Ok(ConnGuard {
            limiter: self.clone(),
            client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "::ffff:10.0.0.2".parse().expect("ip");
        let g1 = l.admit(a).expect("first");
        let _g2 = l.admit(a).expect("second");
        assert_eq!(l.admit(a).err(), Some(Refused::PerClient(2)));
        let _g3 = l.admit(b).expect("other client");
        assert_eq!(
            l.admit("10.0.0.2".parse().expect("ip")).err(),
            Some(Refused::Total(3))
        );
        drop(g1);
        assert!(l.admit(a).is_ok());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let k = |s: &str| client_key(s.parse().expect("ip"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::7"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), k("192.0.2.7"));
    }
}
