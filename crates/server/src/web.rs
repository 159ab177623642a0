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
    img-src 'self' data: blob: http: https:; media-src 'self' blob: http: https:; \
    connect-src 'self' ws: wss: http: https:; worker-src 'self' blob:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Routes of the pages (`/`, `/signin`, `/studio`, `/library`) and their files under `/app/`.
/// Stateless, so it merges into any router. `/watch/{id}` is rendered per video
/// ([`watch_page`], routed with the API).
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

/// What a link preview (Open Graph, Twitter card) shows of a public video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageMeta {
    pub title: String,
    pub description: String,
    /// The watch page's absolute URL.
    pub url: String,
    /// The poster: absolute URL, width, height.
    pub image: Option<(String, u32, u32)>,
    /// Something a preview may play: absolute URL and its type.
    pub video: Option<(String, &'static str)>,
}

/// `&`, `<`, `>`, `"` and `'` as character references, for text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `<title>` and the preview tags of a watch page: a public video's own, or generic ones
/// (a private or unknown video shows nothing of itself).
pub fn watch_head(meta: Option<&PageMeta>) -> String {
    let mut out = String::new();
    let mut tag = |attr: &str, name: &str, content: &str| {
        out.push_str(&format!(
            "<meta {attr}=\"{name}\" content=\"{}\">\n",
            escape_html(content)
        ));
    };
    let Some(m) = meta else {
        tag("property", "og:type", "website");
        tag("property", "og:site_name", "vshare");
        tag("property", "og:title", "A video on vshare");
        tag("name", "twitter:card", "summary");
        tag("name", "twitter:title", "A video on vshare");
        return format!("<title>Watch · vshare</title>\n{out}");
    };
    tag("property", "og:type", "video.other");
    tag("property", "og:site_name", "vshare");
    tag("property", "og:title", &m.title);
    tag("property", "og:description", &m.description);
    tag("property", "og:url", &m.url);
    if let Some((url, w, h)) = &m.image {
        tag("property", "og:image", url);
        tag("property", "og:image:type", "image/jpeg");
        tag("property", "og:image:width", &w.to_string());
        tag("property", "og:image:height", &h.to_string());
    }
    if let Some((url, ty)) = &m.video {
        tag("property", "og:video", url);
        tag("property", "og:video:type", ty);
    }
    let card = if m.image.is_some() {
        "summary_large_image"
    } else {
        "summary"
    };
    tag("name", "twitter:card", card);
    tag("name", "twitter:title", &m.title);
    tag("name", "twitter:description", &m.description);
    if let Some((url, _, _)) = &m.image {
        tag("name", "twitter:image", url);
    }
    format!("<title>{} · vshare</title>\n{out}", escape_html(&m.title))
}

/// The watch page with its head for one video: `watch.html` with its `<title>` replaced,
/// revalidated by the SHA-256 of what was rendered.
pub fn watch_page(meta: Option<&PageMeta>, headers: &HeaderMap) -> Response {
    let Some(f) = Assets::get("watch.html") else {
        return (StatusCode::NOT_FOUND, "no such page or file\n").into_response();
    };
    let html = String::from_utf8_lossy(&f.data);
    let body = html.replacen("<title>Watch · vshare</title>\n", &watch_head(meta), 1);
    let etag = {
        use sha2::Digest;
        format!("\"{}\"", hex::encode(sha2::Sha256::digest(body.as_bytes())))
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = revalidated(
        fresh,
        &etag,
        HeaderValue::from_static("text/html; charset=utf-8"),
        Bytes::from(body),
    );
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
    if fresh {
        return revalidated(true, &etag, HeaderValue::from_static(""), Bytes::new());
    }
    let body = match f.data {
        Cow::Borrowed(b) => Bytes::from_static(b),
        Cow::Owned(v) => Bytes::from(v),
    };
    let content_type = HeaderValue::from_str(f.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    revalidated(false, &etag, content_type, body)
}

/// 304 with the `ETag` when the client's copy is `fresh`; else `body` with its type, the tag,
/// `no-cache` (revalidate each time) and `nosniff`.
fn revalidated(fresh: bool, etag: &str, content_type: HeaderValue, body: Bytes) -> Response {
    let etag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    if fresh {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
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
    fn watch_pages_carry_escaped_preview_tags() {
        let meta = PageMeta {
            title: "Harbour \"at\" <dusk> & 'more'".into(),
            description: "Live now".into(),
            url: "https://v.example/watch/abc".into(),
            image: Some(("https://v.example/vod/abc/poster.jpg".into(), 640, 360)),
            video: Some(("https://v.example/vod/abc/video.mp4".into(), "video/mp4")),
        };
        let resp = watch_page(Some(&meta), &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::OK);
        let head = watch_head(Some(&meta));
        assert!(head.contains(
            "<meta property=\"og:image\" content=\"https://v.example/vod/abc/poster.jpg\">"
        ));
        assert!(head.contains("<meta name=\"twitter:card\" content=\"summary_large_image\">"));
        assert!(head.contains("<meta property=\"og:type\" content=\"video.other\">"));
        assert!(
            head.contains("content=\"Harbour &quot;at&quot; &lt;dusk&gt; &amp; &#39;more&#39;\"")
        );
        assert!(!head.contains("<dusk>"));
        let generic = watch_head(None);
        assert!(!generic.contains("og:image") && generic.contains("og:title"));
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
