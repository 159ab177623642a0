//! Sharing a video by SMS from the server (the studio's share dialog).

use std::sync::Arc;

use axum::Router;

use crate::http::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
