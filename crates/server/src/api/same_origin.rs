//! Cross-site request refusal for cookie sessions: a state-changing request (POST, PUT, PATCH,
//! DELETE) that carries the session cookie is refused (403) when the browser says it comes from
//! another site (`Sec-Fetch-Site: cross-site`) or its `Origin` is neither the server's public
//! URL nor the `Host` it was sent to. Requests without the cookie (bearer tokens, scripts) are
//! not affected; SameSite=Lax stays as a second fence.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::session_token;
use super::error::ApiError;

/// The origin (`scheme://host[:port]`, lower case) of a URL.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let origin = u.origin();
    origin
        .is_tuple()
        .then(|| origin.ascii_serialization().to_ascii_lowercase())
}

/// Whether a request with these headers is a cross-site one that must not change state.
pub fn cross_site(method: &Method, headers: &HeaderMap, public_url: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if session_token(headers).is_none() {
        return false;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let Some(origin) = text(header::ORIGIN) else {
        // No Origin: not a browser's cross-site request (browsers send it on every POST, PUT,
        // PATCH and DELETE made by a page).
        return false;
    };
    let Some(origin) = origin_of(origin) else {
        // `Origin: null` (sandboxed pages, some redirects) or garbage.
        return true;
    };
    let own = origin_of(public_url);
    let host = text(header::HOST);
    let same_host = host.is_some_and(|h| {
        ["http", "https"]
            .iter()
            .any(|s| origin_of(&format!("{s}://{h}")).as_deref() == Some(origin.as_str()))
    });
    !(own.as_deref() == Some(origin.as_str()) || same_host)
}

/// The middleware; its state is the server's public URL.
pub async fn same_origin(State(public_url): State<String>, req: Request, next: Next) -> Response {
    if cross_site(req.method(), req.headers(), &public_url) {
        return ApiError::forbidden(
            "a cross-site request with this server's session cookie is refused",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cookie_posts_from_other_sites_are_cross_site() {
        let url = "http://127.0.0.1:8080";
        let cookie = ("cookie", "vshare_session=ss1");
        let post = Method::POST;
        assert!(cross_site(
            &post,
            &headers(&[cookie, ("origin", "http://evil.example")]),
            url
        ));
        assert!(cross_site(
            &post,
            &headers(&[cookie, ("sec-fetch-site", "cross-site")]),
            url
        ));
        assert!(cross_site(
            &post,
            &headers(&[cookie, ("origin", "null")]),
            url
        ));
        assert!(!cross_site(
            &post,
            &headers(&[cookie, ("origin", "http://127.0.0.1:8080")]),
            url
        ));
        assert!(
            !cross_site(
                &post,
                &headers(&[
                    cookie,
                    ("origin", "http://phone.lan:8080"),
                    ("host", "phone.lan:8080")
                ]),
                url
            ),
            "the Host the page was loaded from"
        );
        assert!(!cross_site(&post, &headers(&[cookie]), url), "no Origin");
        assert!(
            !cross_site(
                &post,
                &headers(&[
                    ("authorization", "Bearer t"),
                    ("origin", "http://evil.example")
                ]),
                url
            ),
            "no cookie"
        );
        assert!(!cross_site(
            &Method::GET,
            &headers(&[cookie, ("origin", "http://evil.example")]),
            url
        ));
    }
}
