//! The one error type of the HTTP API: a status, a plain-text reason (one line, ending in a
//! newline) and for 429 the seconds to wait. The domain's errors map to it here, in one place.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::accounts::{AccessError, CredentialError, DeleteError, SignInError, SignUpError};
use crate::share::ShareError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let mut message = message.into();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        ApiError {
            status,
            message,
            retry_after: None,
        }
    }

    /// 404 `<what> not found`.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn bad_request(why: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, why)
    }

    pub fn unauthorized(why: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, why)
    }

    pub fn forbidden(why: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, why)
    }

    pub fn conflict(why: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, why)
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    pub fn too_many(what: &str, wait: Duration) -> ApiError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{what}; try again in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// A JSON body that did not parse: 400 with axum's reason.
    pub fn bad_json(e: JsonRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                // A 404 for a part that does not exist yet must not stay in a cache.
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.message,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Anything unexpected: logged, and 500 without details.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        warn!("http: {e:#}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Internal(e) => e.into(),
            e => ApiError::forbidden(e.to_string()),
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<SignUpError> for ApiError {
    fn from(e: SignUpError) -> Self {
        match e {
            SignUpError::Closed | SignUpError::BadInvite => ApiError::forbidden(e.to_string()),
            SignUpError::TooMany(wait) => ApiError::too_many(&e.to_string(), wait),
            SignUpError::Invalid(e) => e.into(),
            SignUpError::Taken(_) => ApiError::conflict(e.to_string()),
            SignUpError::Internal(e) => e.into(),
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::TooManyFromAddress(wait) | SignInError::TooManyForUsername(wait) => {
                ApiError::too_many(&e.to_string(), wait)
            }
            SignInError::WrongCredentials => ApiError::unauthorized(e.to_string()),
            SignInError::Internal(e) => e.into(),
        }
    }
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::NotFound => ApiError::not_found("video"),
            DeleteError::Busy { .. } => ApiError::conflict(e.to_string()),
            DeleteError::Internal(e) => e.into(),
        }
    }
}

impl From<ShareError> for ApiError {
    fn from(e: ShareError) -> Self {
        let status = match e {
            ShareError::UnknownForm(_)
            | ShareError::NotText(_)
            | ShareError::BadNumber(_)
            | ShareError::NoNumbers
            | ShareError::TooManyNumbers(_) => StatusCode::BAD_REQUEST,
            ShareError::NoRecords(_) => StatusCode::CONFLICT,
            ShareError::NoSmsc => StatusCode::SERVICE_UNAVAILABLE,
            ShareError::TooManyMessages { wait, .. } => {
                return ApiError::too_many(&e.to_string(), wait);
            }
            ShareError::SmsLimit { refused } => {
                let wait = Duration::from_millis(u64::try_from(refused.wait_ms).unwrap_or(1));
                return ApiError::too_many(&e.to_string(), wait);
            }
            ShareError::DoesNotFit { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ShareError::Internal(e) => return e.into(),
        };
        ApiError::new(status, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_of_text_and_429_says_when() {
        let resp = ApiError::not_found("segment").into_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let e = ApiError::too_many("slow down", Duration::from_millis(1500));
        assert_eq!(e.message, "slow down; try again in 2 s\n");
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            ApiError::too_many("x", Duration::ZERO).retry_after,
            Some(1),
            "at least a second"
        );
    }

    #[test]
    fn domain_errors_keep_their_statuses() {
        let cases: Vec<(ApiError, StatusCode)> = vec![
            (SignUpError::Closed.into(), StatusCode::FORBIDDEN),
            (SignUpError::Taken("al".into()).into(), StatusCode::CONFLICT),
            (CredentialError::Username.into(), StatusCode::BAD_REQUEST),
            (
                SignInError::WrongCredentials.into(),
                StatusCode::UNAUTHORIZED,
            ),
            (
                SignInError::TooManyForUsername(Duration::from_secs(3)).into(),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                AccessError::Private("v".into()).into(),
                StatusCode::FORBIDDEN,
            ),
            (DeleteError::NotFound.into(), StatusCode::NOT_FOUND),
            (ShareError::NoSmsc.into(), StatusCode::SERVICE_UNAVAILABLE),
            (
                ShareError::NoRecords("v".into()).into(),
                StatusCode::CONFLICT,
            ),
            (
                anyhow::anyhow!("disk on fire").into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status, status, "{}", e.message);
            assert!(e.message.ends_with('\n'));
        }
        let e: ApiError = anyhow::anyhow!("disk on fire").into();
        assert_eq!(e.message, "internal error\n", "no details leak");
    }
}
