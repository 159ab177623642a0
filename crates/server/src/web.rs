//! The browser pages: sign-in, studio, watch, library and the landing page (web/, built by
//! `npm run build` into web/dist), embedded into the binary with rust-embed and served from it,
//! so `vshare serve` needs no files and no CDN. docs/web.md describes them.

use std::borrow::Cow;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
struct Assets;

/// Pages may load scripts, styles and workers only from here; media and playlists may come from
/// the absolute URLs of attribute records (another host when `public_url` or storage says so).
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob: http: https:; \
    connect-src 'self' ws: wss: http: https:; worker-src 'self' blob:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Routes of the pages (`/`, `/signin`, `/studio`, `/library`, `/watch/{id}`) and their
/// files under `/app/`. Stateless, so it merges into any router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { page("index.html", &h) }),
        )
        .route(
            "/signin",
            get(|h: HeaderMap| async move { page("signin.html", &h) }),
        )
        .route(
            "/studio",
            get(|h: HeaderMap| async move { page("studio.html", &h) }),
        )
        .route(
            "/library",
            get(|h: HeaderMap| async move { page("library.html", &h) }),
        )
        .route(
            "/watch/{id}",
            get(|h: HeaderMap| async move { page("watch.html", &h) }),
        )
        .route(
            "/app/{*path}",
            get(
                |axum::extract::Path(path): axum::extract::Path<String>, h: HeaderMap| async move {
                    file(&format!("app/{path}"), &h)
                },
            ),
        )
}

fn page(name: &str, headers: &HeaderMap) -> Response {
    let mut resp = file(name, headers);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// One embedded file, revalidated by its SHA-256 (`ETag`, `If-None-Match` → 304).
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(f) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "no such page or file\n").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(f.metadata.sha256_hash()));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if fresh {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let body = match f.data {
        Cow::Borrowed(b) => Bytes::from_static(b),
        Cow::Owned(v) => Bytes::from(v),
    };
    let content_type = HeaderValue::from_str(f.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::ETAG, etag),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_module_is_embedded_with_a_type() {
        for (path, ty) in [
            ("index.html", "text/html"),
            ("studio.html", "text/html"),
            ("watch.html", "text/html"),
            ("library.html", "text/html"),
            ("signin.html", "text/html"),
            ("app/studio.js", "javascript"),
            ("app/upload.js", "javascript"),
            ("app/vendor/hls.mjs", "javascript"),
            ("app/app.css", "text/css"),
            ("app/sw.js", "javascript"),
        ] {
            let resp = file(path, &HeaderMap::new());
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap_or("");
            assert!(ct.contains(ty), "{path}: content type {ct}");
        }
        assert_eq!(
            file("app/nope.js", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_known_etag_gets_304() {
        let first = file("app/app.css", &HeaderMap::new());
        let etag = first.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(file("app/app.css", &h).status(), StatusCode::NOT_MODIFIED);
    }
}
