//! The HTTP accept loop: `axum::serve` with what it does not offer — connection caps per client
//! address and in all, a deadline for request headers (which also closes a keep-alive
//! connection left silent), and a bound on the buffered request head.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::conn_limit::ConnLimiter;

/// Read buffer of one connection, bytes: request heads longer than this are refused
/// (431). Bodies stream through it.
const MAX_BUF: usize = 64 * 1024;

pub struct HttpLimits {
    pub connections: ConnLimiter,
    /// Headers of a request must arrive within this long; an idle connection is closed after it.
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, app: Router, limits: HttpLimits) {
    let refused = metrics::counter!("vshare_connections_refused_total", "listener" => "http");
    loop {
        let (socket, peer) = match listener.accept().await {
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
        tokio::spawn(async move {
            let _guard = guard;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_BUF);
            let conn = builder
                .serve_connection(TokioIo::new(socket), TowerToHyperService::new(service))
                .with_upgrades();
            if let Err(e) = conn.await {
                debug!(%peer, "http connection: {e}");
            }
        });
    }
}
