//! The server's outermost HTTP service: a public stream's live media GETs are answered before
//! the router ([`super::live::public_live_get`]); everything else goes to the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tower::Service;

use super::live::public_live_get;
use super::state::AppState;

/// The router, with live viewers' requests taken first.
#[derive(Clone)]
pub struct LiveFirst {
    router: Router,
    st: Arc<AppState>,
    /// `Strict-Transport-Security`, which the router's own layer adds to everything else.
    hsts: Option<HeaderValue>,
}

impl LiveFirst {
    pub fn new(router: Router, st: Arc<AppState>, hsts: Option<HeaderValue>) -> Self {
        LiveFirst { router, st, hsts }
    }
}

impl Service<Request> for LiveFirst {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if !req.uri().path().starts_with("/live/") {
            return Box::pin(self.router.call(req));
        }
        let (st, mut router, hsts) = (self.st.clone(), self.router.clone(), self.hsts.clone());
        Box::pin(async move {
            match public_live_get(&st, req.method(), req.uri()).await {
                Some(mut resp) => {
                    if let Some(h) = hsts {
                        resp.headers_mut()
                            .insert(header::STRICT_TRANSPORT_SECURITY, h);
                    }
                    Ok(resp)
                }
                None => router.call(req).await,
            }
        })
    }
}
