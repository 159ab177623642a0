//! Merged reads for publishing RTMP connections: every publisher's socket is read at the same
//! ticks, a few tens of milliseconds apart, instead of whenever a packet lands. The kernel is
//! told not to report the socket readable for small amounts (`SO_RCVLOWAT`), so a tick is one
//! wake-up that reads every publisher, not one per packet per publisher. SRS has the same idea
//! ("merged read"); the cost is at most one tick of extra latency.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes a socket holds before the kernel wakes anyone for it: more than a tick of any real
/// stream at the default tick, far below the receive buffer (raised to twice this by Linux).
const LOW_WATER_BYTES: i32 = 1 << 20;

/// The next tick: ticks are multiples of `every` from one instant of the process, so every
/// connection's timer falls in the same slot and fires in the same turn of the runtime.
pub fn next_tick(every: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let every_ns = every.as_nanos().max(1);
    let since = Instant::now().duration_since(epoch).as_nanos();
    let ticks = since / every_ns + 1;
    epoch + Duration::from_nanos((ticks * every_ns).min(u64::MAX as u128) as u64)
}

/// Asks the kernel to wake no one for this socket until `LOW_WATER_BYTES` are waiting. Where
/// that fails the reads still happen at the ticks, only with more wake-ups.
pub fn quiet_until_tick(socket: &TcpStream) {
    set_low_water(socket, LOW_WATER_BYTES);
}

/// Undoes [`quiet_until_tick`]: the runtime is woken for every arrival again (a connection that
/// stopped publishing is read as data arrives).
pub fn wake_on_every_arrival(socket: &TcpStream) {
    set_low_water(socket, 1);
}

fn set_low_water(socket: &TcpStream, bytes: libc::c_int) {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int on the stack; the
    // descriptor belongs to `socket`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("SO_RCVLOWAT: {}", std::io::Error::last_os_error());
    }
}

/// What one read at a tick found.
#[derive(Debug, PartialEq, Eq)]
pub enum TickRead {
    /// This many bytes (the buffer's size: more may be waiting).
    Data(usize),
    /// Nothing has arrived since the last read.
    Nothing,
    /// The peer closed the connection.
    Closed,
}

/// Reads what is waiting without waiting (the socket is non-blocking). It bypasses tokio's
/// readiness, which the raised low-water mark keeps from being told of small arrivals.
pub fn read_waiting(socket: &TcpStream, buf: &mut [u8]) -> std::io::Result<TickRead> {
    let sock = socket2::SockRef::from(socket);
    loop {
        return match (&*sock).read(buf) {
            Ok(0) => Ok(TickRead::Closed),
            Ok(n) => Ok(TickRead::Data(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(TickRead::Nothing),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn ticks_are_shared_and_ahead() {
        let every = Duration::from_millis(40);
        let a = next_tick(every);
        let b = next_tick(every);
        assert!(a > Instant::now() - Duration::from_millis(1));
        assert!(b == a || b == a + every, "{a:?} {b:?}");
    }

    #[tokio::test]
    async fn reads_what_waits_then_nothing_then_the_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        quiet_until_tick(&server);
        let mut buf = [0u8; 64];
        assert_eq!(read_waiting(&server, &mut buf).unwrap(), TickRead::Nothing);
        client.write_all(b"hello").await.unwrap();
        assert_eq!(next_read(&server, &mut buf).await, TickRead::Data(5));
        assert_eq!(&buf[..5], b"hello");
        drop(client);
        assert_eq!(next_read(&server, &mut buf).await, TickRead::Closed);
    }

    fn low_water(socket: &TcpStream) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into a live c_int and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        value
    }

    #[tokio::test]
    async fn leaving_tick_mode_wakes_the_runtime_for_small_arrivals_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(low_water(&server), 1);
        quiet_until_tick(&server);
        assert_eq!(low_water(&server), LOW_WATER_BYTES);
        wake_on_every_arrival(&server);
        assert_eq!(low_water(&server), 1);
        client.write_all(b"publish").await.unwrap();
        // The runtime hears of 7 bytes: a bound far above any scheduling delay.
        tokio::time::timeout(Duration::from_secs(30), server.readable())
            .await
            .expect("readable within 30 s")
            .unwrap();
    }

    /// The first read that finds something. Loopback delivers within the sender's call; the
    /// loop only covers a busy machine.
    async fn next_read(socket: &TcpStream, buf: &mut [u8]) -> TickRead {
        for _ in 0..2000 {
            let got = read_waiting(socket, buf).unwrap();
            if got != TickRead::Nothing {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        TickRead::Nothing
    }
}
