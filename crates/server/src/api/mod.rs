//! The HTTP face of the server: LL-HLS live, VOD files with range requests, the REST API and
//! metrics. Handlers are short functions by resource over the roles and the domain; the state
//! is one struct ([`AppState`]); every error is an [`ApiError`]. Private videos are checked in
//! one middleware ([`private_videos`]) in front of them all. docs/http-api.md lists every route.

mod accounts;
mod auth;
mod error;
mod keys;
mod live;
mod live_first;
mod me;
mod media;
mod private_videos;
mod same_origin;
mod shares;
mod short_link;
mod state;
mod videos;
mod vod;
mod watch;
mod watching;
mod whep;
mod whip;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;
pub use live_first::LiveFirst;
pub use media::{M3U8, MediaMetrics};
pub use same_origin::{cross_site, same_origin};
pub use state::AppState;
pub use vod::{Unsatisfiable, parse_range};

/// Every route of the API, media and metrics, behind the private-video check.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/live/{id}/{file}", get(live::live_file))
        .route(
            "/live/{id}/{rendition}/{file}",
            get(live::live_rendition_file),
        )
        .route("/watch/{id}", get(watch::watch))
        .route("/vod/{id}/{file}", get(vod::vod_file))
        .route("/vod/{id}/{rendition}/{file}", get(vod::vod_rendition_file))
        .route("/api/v1/videos", get(videos::list_videos))
        .route(
            "/api/v1/videos/{id}",
            get(videos::get_video)
                .patch(videos::set_visibility)
                .delete(videos::delete_video),
        )
        .route("/api/v1/videos/{id}/link", get(videos::video_link))
        .route("/api/v1/videos/{id}/watching", post(watching::beacon))
        .route("/api/v1/videos/{id}/share", post(shares::share))
        .route("/api/v1/videos/{id}/share-text", get(shares::share_text))
        .route(
            "/api/v1/videos/{id}/share-preview",
            get(shares::share_preview),
        )
        .route("/w/{id}", get(short_link::short_link))
        .route("/api/v1/streams", get(videos::list_streams))
        .route("/api/v1/publish/status", get(videos::publish_status))
        .route("/api/v1/keys", post(keys::create_key))
        .route("/api/v1/accounts", post(accounts::sign_up))
        .route("/api/v1/invites", post(accounts::create_invite))
        .route(
            "/api/v1/session",
            post(accounts::sign_in).delete(accounts::sign_out),
        )
        .route("/api/v1/me", get(me::me))
        .route(
            "/api/v1/me/stream-key",
            post(me::rotate_key).patch(me::set_key_private),
        )
        .route("/api/v1/me/upload-token", post(me::upload_token))
        .route("/api/v1/me/videos", get(me::my_videos))
        .route(
            "/whep/{id}",
            post(whep::offer).layer(axum::extract::DefaultBodyLimit::max(whep::MAX_OFFER_BYTES)),
        )
        .route("/whep/{id}/{session}", axum::routing::delete(whep::delete))
        .route(
            "/whip",
            post(whip::publish).layer(axum::extract::DefaultBodyLimit::max(whep::MAX_OFFER_BYTES)),
        )
        .route(
            "/whip/{video}/{session}",
            axum::routing::delete(whip::delete),
        )
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            private_videos::private_videos,
        ))
        // `Access-Control-Allow-Origin: *` is the same for every request: no `Vary`, which
        // would make a shared cache keep one copy per `Origin`.
        .layer(CorsLayer::new().allow_origin(Any).vary([]))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(st): state::AppStateRef) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}
