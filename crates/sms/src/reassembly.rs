//! Reassembling concatenated parts at the target (3GPP TS 23.040 §9.2.3.24.1): in any order,
//! duplicates dropped, and a message whose parts stop coming handed out incomplete after a
//! timeout. Sans-IO: the caller passes the current time and asks when to wake up next.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::{Dcs, SmsError, UserData, user_data::decode_text};

/// What identifies one concatenated message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageKey {
    /// The sender (TP-OA, or the SMPP source address).
    pub originator: String,
    pub reference: u16,
    pub sixteen_bit: bool,
    pub total: u8,
    /// Destination port, when the parts carry port addressing.
    pub port: Option<u16>,
}

/// A message put back together (or a single-part message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub originator: String,
    pub dcs: Dcs,
    /// (destination, originator) ports.
    pub ports: Option<(u16, u16)>,
    /// Septets (GSM 7-bit) or octets of all parts joined.
    pub payload: Vec<u8>,
    /// How many parts it came in.
    pub parts: u8,
    /// Sequence numbers that never arrived (empty when complete).
    pub missing: Vec<u8>,
}

impl Message {
    /// The payload as text in the DCS's alphabet.
    pub fn text(&self) -> Result<String, SmsError> {
        let a = self.dcs.alphabet().ok_or(SmsError::Invalid {
            offset: 0,
            field: "TP-DCS",
            reason: format!("0x{:02X} has no alphabet", self.dcs.0),
        })?;
        decode_text(&self.payload, a)
    }

    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

struct Pending {
    dcs: Dcs,
    ports: Option<(u16, u16)>,
    first_seen: Instant,
    parts: BTreeMap<u8, Vec<u8>>,
}

/// Collects parts until a message is whole. At most `max_pending` messages wait at once (a
/// sender cannot make it grow without bound); when full, the oldest is handed out incomplete
/// by the next [`Reassembler::handle_timeout`].
pub struct Reassembler {
    timeout: Duration,
    max_pending: usize,
    pending: HashMap<MessageKey, Pending>,
    /// Messages pushed out by the limit, with when that happened.
    evicted: Vec<(Instant, Message)>,
    /// Messages handed out recently, to drop late duplicates of their parts.
    done: HashMap<MessageKey, Instant>,
    duplicates: u64,
}

impl Reassembler {
    /// `timeout`: how long to wait for the missing parts of a message, from its first part.
    pub fn new(timeout: Duration) -> Reassembler {
        Reassembler::with_limit(timeout, 1024)
    }

    /// Like [`Reassembler::new`], with at most `max_pending` incomplete messages.
    pub fn with_limit(timeout: Duration, max_pending: usize) -> Reassembler {
        Reassembler {
            timeout,
            max_pending: max_pending.max(1),
            pending: HashMap::new(),
            evicted: Vec::new(),
            done: HashMap::new(),
            duplicates: 0,
        }
    }

    /// Parts dropped as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Messages waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes one part. Returns the message when this part completes it (at once for a part
    /// without a concatenation header).
    pub fn push(
        &mut self,
        now: Instant,
        originator: &str,
        dcs: Dcs,
        ud: UserData,
    ) -> Option<Message> {
        let ports = ud.header.as_ref().and_then(|h| h.ports());
        let Some(c) = ud.header.as_ref().and_then(|h| h.concat()) else {
            return Some(Message {
                originator: originator.into(),
                dcs,
                ports,
                payload: ud.payload,
                parts: 1,
                missing: vec![],
            });
        };
        let key = MessageKey {
            originator: originator.into(),
            reference: c.reference,
            sixteen_bit: c.sixteen_bit,
            total: c.total,
            port: ports.map(|p| p.0),
        };
        if self.done.contains_key(&key) {
            self.duplicates += 1;
            return None;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= self.max_pending {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest
                && let Some(old) = self.pending.remove(&k)
            {
                self.done.insert(k.clone(), now);
                self.evicted.push((now, Self::incomplete(k, old)));
            }
        }
        let p = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            dcs,
            ports,
            first_seen: now,
            parts: BTreeMap::new(),
        });
        if p.parts.contains_key(&c.sequence) {
            self.duplicates += 1;
            return None;
        }
        p.parts.insert(c.sequence, ud.payload);
        if p.parts.len() < usize::from(c.total) {
            return None;
        }
        let p = self.pending.remove(&key)?;
        self.done.insert(key.clone(), now);
        Some(Message {
            originator: key.originator,
            dcs: p.dcs,
            ports: p.ports,
            payload: p.parts.into_values().flatten().collect(),
            parts: c.total,
            missing: vec![],
        })
    }

    /// When [`Reassembler::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.first_seen + self.timeout)
            .chain(self.done.values().map(|&t| t + self.timeout))
            .chain(self.evicted.iter().map(|(t, _)| *t))
            .min()
    }

    /// Hands out the messages whose parts stopped coming (with what did arrive and the list of
    /// missing sequence numbers), and forgets old completed ones.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Message> {
        let timeout = self.timeout;
        self.done.retain(|_, &mut t| now < t + timeout);
        let expired: Vec<MessageKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.first_seen + timeout)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Message> = self.evicted.drain(..).map(|(_, m)| m).collect();
        for key in expired {
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            self.done.insert(key.clone(), now);
            out.push(Self::incomplete(key, p));
        }
        out
    }

    fn incomplete(key: MessageKey, p: Pending) -> Message {
        let missing = (1..=key.total)
            .filter(|s| !p.parts.contains_key(s))
            .collect();
        Message {
            originator: key.originator,
            dcs: p.dcs,
            ports: p.ports,
            payload: p.parts.into_values().flatten().collect(),
            parts: key.total,
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::{ConcatRef, split_text};

    #[test]
    fn out_of_order_with_duplicates() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(8);
        let seg = split_text(&text, None, ConcatRef::Eight(42)).unwrap();
        assert_eq!(seg.parts.len(), 3);
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(60));
        assert!(r.push(t0, "+1", seg.dcs, seg.parts[2].clone()).is_none());
        assert!(r.push(t0, "+1", seg.dcs, seg.parts[0].clone()).is_none());
        assert!(r.push(t0, "+1", seg.dcs, seg.parts[0].clone()).is_none());
        // The same reference from another sender is another message.
        assert!(r.push(t0, "+2", seg.dcs, seg.parts[1].clone()).is_none());
        let m = r.push(t0, "+1", seg.dcs, seg.parts[1].clone()).unwrap();
        assert_eq!(m.text().unwrap(), text);
        assert!(m.is_complete());
        assert!(r.push(t0, "+1", seg.dcs, seg.parts[1].clone()).is_none());
        assert_eq!(r.duplicates(), 2);
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn pending_messages_are_bounded() {
        let t0 = Instant::now();
        let mut r = Reassembler::with_limit(Duration::from_secs(60), 2);
        for reference in 0..5u8 {
            let seg = split_text(&"y".repeat(200), None, ConcatRef::Eight(reference)).unwrap();
            let t = t0 + Duration::from_secs(reference.into());
            r.push(t, "+1", seg.dcs, seg.parts[0].clone());
        }
        assert_eq!(r.pending(), 2);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        let out = r.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|m| m.missing == vec![2]));
    }

    #[test]
    fn missing_part_times_out() {
        let seg = split_text(&"x".repeat(400), None, ConcatRef::Sixteen(7)).unwrap();
        let t0 = Instant::now();
        let mut r = Reassembler::new(Duration::from_secs(30));
        r.push(t0, "+1", seg.dcs, seg.parts[0].clone());
        r.push(
            t0 + Duration::from_secs(5),
            "+1",
            seg.dcs,
            seg.parts[2].clone(),
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        assert!(r.handle_timeout(t0 + Duration::from_secs(29)).is_empty());
        let out = r.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].missing, vec![2]);
        assert_eq!(out[0].payload.len(), 152 + (400 - 304));
        // A late part of the expired message is dropped, not a new message.
        assert!(
            r.push(
                t0 + Duration::from_secs(31),
                "+1",
                seg.dcs,
                seg.parts[1].clone()
            )
            .is_none()
        );
        assert!(r.handle_timeout(t0 + Duration::from_secs(120)).is_empty());
        assert_eq!(r.poll_timeout(), None);
    }
}
