//! The HTTP accept loop: `axum::serve` with what it does not offer — connection caps per client
//! address and in all, a deadline for request headers (which also closes a keep-alive
//! connection left silent), a bound on the buffered request head, and a deadline on writes
//! that make no progress (a client that stopped reading), and a graceful stop (no new
//! connections; requests in progress are answered, then each connection closes).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::conn_limit::ConnLimiter;
use crate::shutdown::Stopping;
use crate::tls::Tls;

/// Read buffer of one connection, bytes: request heads longer than this are refused
/// (431). Bodies stream through it.
const MAX_BUF: usize = 64 * 1024;

pub struct HttpLimits {
    pub connections: ConnLimiter,
    /// Headers of a request must arrive within this long; an idle connection is closed after it.
    pub header_timeout: Duration,
    /// A connection whose writes make no progress for this long is closed.
    pub write_stall_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` is set; with `tls`, each connection's TLS
/// handshake comes first (within its deadline, counted against the connection caps). At the
/// stop it accepts no more, lets every connection finish the request it is answering, and
/// returns once all are closed (upgraded ones, WebSockets, are their handlers' business).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: HttpLimits,
    tls: Option<Tls>,
    stop: Stopping,
) where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let refused = metrics::counter!("vshare_connections_refused_total", "listener" => "http");
    // Every connection task holds a sender: the channel closes when the last one ends.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait() => break,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: let others finish before trying again.
                warn!("http accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let guard = match limits.connections.admit(peer.ip()) {
            Ok(g) => g,
            Err(why) => {
                refused.increment(1);
                debug!(%peer, "http: refused, {why}");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let service = app.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
        let header_timeout = limits.header_timeout;
        let stall = limits.write_stall_timeout;
        let tls = tls.clone();
        let (open, stop) = (open.clone(), stop.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let _open = open;
            let result = match tls {
                None => {
                    serve_connection(
                        StallGuard::new(socket, stall),
                        service,
                        header_timeout,
                        &stop,
                    )
                    .await
                }
                Some(tls) => match tls.accept(socket).await {
                    Ok(stream) => {
                        serve_connection(
                            StallGuard::new(stream, stall),
                            service,
                            header_timeout,
                            &stop,
                        )
                        .await
                    }
                    Err(e) => {
                        debug!(%peer, "TLS handshake: {e}");
                        return;
                    }
                },
            };
            if let Err(e) = result {
                debug!(%peer, "http connection: {e}");
            }
        });
    }
    drop((listener, open));
    let _ = all_closed.recv().await;
}

/// One HTTP/1.1 connection (upgrades included) over any byte stream.
async fn serve_connection<T, S>(
    io: T,
    service: S,
    header_timeout: Duration,
    stop: &Stopping,
) -> Result<(), hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_BUF);
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = stop.wait() => {}
    }
    // The request in progress is answered; an idle keep-alive connection closes now.
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Fails writes that have made no progress for `limit`: a client that stopped reading (a
/// response, or a WebSocket after the upgrade) holds its connection no longer than that.
/// Reads pass through untouched: a quiet client is the header deadline's business.
struct StallGuard<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// After the inner write returned `r`: arms the timer on Pending, clears it on progress.
    fn track<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no write progress for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.track(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_reader_that_stops_is_cut_off_and_one_that_reads_is_not() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = StallGuard::new(a, Duration::from_secs(1));
        // The peer reads for a while: writes go on past many stall limits' worth of buffer.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            while got < 64 * 1024 {
                got += b.read(&mut buf).await.expect("read");
            }
            b
        });
        for _ in 0..64 {
            w.write_all(&[7u8; 1024]).await.expect("write while read");
        }
        let _b = reader.await.expect("reader");
        // Now it stops reading: the write fails once the buffer is full and the limit passes.
        let e = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Err(e) = w.write_all(&[7u8; 1024]).await {
                    return e;
                }
            }
        })
        .await
        .expect("a stalled write should fail");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
