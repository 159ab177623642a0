//! Sending a session's datagrams: the ones queued together for one address go out in one
//! system call where the kernel segments them (UDP GSO, through quinn-udp), which is most of a
//! video frame's RTP packets — the same size but the last.

use std::net::SocketAddr;

use quinn_udp::{Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;
use vshare_webrtc::Peer;

/// The most bytes one segmented send carries (an IP datagram's limit, less headers).
const MAX_BATCH_BYTES: usize = 65_000;

/// The shared socket with what the kernel lets it batch.
pub(super) struct Sender {
    pub(super) socket: UdpSocket,
    state: UdpSocketState,
    /// `[webrtc] udp_gso`.
    gso: bool,
    batch: Batch,
}

impl Sender {
    pub(super) fn new(socket: UdpSocket, gso: bool) -> std::io::Result<Sender> {
        let state = UdpSocketState::new((&socket).into())?;
        Ok(Sender {
            socket,
            state,
            gso,
            batch: Batch::default(),
        })
    }

    /// Sends what a session has queued.
    pub(super) async fn flush(&mut self, peer: &mut Peer) {
        let max_segments = match self.gso {
            true => self.state.max_gso_segments().max(1),
            false => 1,
        };
        while let Some((to, data)) = peer.poll_transmit() {
            if !self.batch.takes(to, &data, max_segments) {
                self.send().await;
            }
            self.batch.push(to, &data);
        }
        self.send().await;
    }

    async fn send(&mut self) {
        let Some(to) = self.batch.to else { return };
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: &self.batch.bytes,
            segment_size: (self.batch.count > 1).then_some(self.batch.segment),
            src_ip: None,
        };
        let (socket, state) = (&self.socket, &self.state);
        // quinn-udp logs and drops what the kernel refuses (UDP is lossy; NACKs and PLIs
        // repair), and stops segmenting where the kernel cannot.
        let sent = socket
            .async_io(Interest::WRITABLE, || state.send(socket.into(), &transmit))
            .await;
        if let Err(e) = sent {
            debug!(%to, "WebRTC send: {e}");
        }
        self.batch.clear();
    }
}

/// Datagrams for one address, every one `segment` bytes long but the last.
#[derive(Default)]
struct Batch {
    to: Option<SocketAddr>,
    bytes: Vec<u8>,
    segment: usize,
    count: usize,
}

impl Batch {
    /// Whether `data` for `to` can join: same address, no longer than the first, and every
    /// datagram before it full size.
    fn takes(&self, to: SocketAddr, data: &[u8], max_segments: usize) -> bool {
        match self.to {
            None => true,
            Some(dest) => {
                dest == to
                    && data.len() <= self.segment
                    && self.bytes.len() == self.segment * self.count
                    && self.count < max_segments
                    && self.bytes.len() + data.len() <= MAX_BATCH_BYTES
            }
        }
    }

    fn push(&mut self, to: SocketAddr, data: &[u8]) {
        if self.to.is_none() {
            self.to = Some(to);
            self.segment = data.len();
        }
        self.bytes.extend_from_slice(data);
        self.count += 1;
    }

    fn clear(&mut self) {
        self.to = None;
        self.bytes.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams, in order, as batches of (destination, sizes).
    fn batches(datagrams: &[(SocketAddr, usize)], max: usize) -> Vec<(SocketAddr, Vec<usize>)> {
        let mut out: Vec<(SocketAddr, Vec<usize>)> = Vec::new();
        let mut batch = Batch::default();
        let mut sizes = Vec::new();
        for (to, len) in datagrams {
            let data = vec![0u8; *len];
            if !batch.takes(*to, &data, max) {
                out.extend(batch.to.map(|t| (t, std::mem::take(&mut sizes))));
                batch.clear();
            }
            batch.push(*to, &data);
            sizes.push(*len);
        }
        out.extend(batch.to.map(|t| (t, sizes)));
        out
    }

    #[test]
    fn a_frames_packets_go_together_and_the_rest_alone() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let sent = [
            (a, 1200),
            (a, 1200),
            (a, 700),
            (a, 1200), // after a short one: a new batch
            (a, 1300), // longer than the first: a new batch
            (b, 1300), // another address
            (b, 90),
            (b, 90), // after a short one
        ];
        assert_eq!(
            batches(&sent, 64),
            vec![
                (a, vec![1200, 1200, 700]),
                (a, vec![1200]),
                (a, vec![1300]),
                (b, vec![1300, 90]),
                (b, vec![90]),
            ]
        );
        // Where the kernel cannot segment, every datagram alone.
        assert_eq!(batches(&sent, 1).len(), sent.len());
        // Never more bytes than one send carries.
        let many = vec![(a, 1200); 100];
        let sizes: Vec<usize> = batches(&many, 64).iter().map(|(_, s)| s.len()).collect();
        assert_eq!(sizes, vec![54, 46]);
    }
}
