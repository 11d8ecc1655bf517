//! The one place where domain errors become HTTP responses (SPEC 3: statuses, JSON bodies,
//! `WWW-Authenticate`, `Retry-After`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use buzzgate_domain::error::Error;

use crate::responses::ErrorBody;

/// A domain error on its way out. `Where` changes the status where RFCs disagree per endpoint.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub at: Where,
}

/// Which family of endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// Token, device-token: every grant error is 400 (RFC 6749 §5.2, RFC 8628 §3.5).
    TokenEndpoint,
    /// Everything else.
    Api,
    /// The edge already chose the status (405, 408, 413, a timeout's 503): only the body
    /// comes from here.
    Status(StatusCode),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            error,
            at: Where::Api,
        }
    }
}

impl ApiError {
    pub fn token(error: Error) -> Self {
        ApiError {
            error,
            at: Where::TokenEndpoint,
        }
    }

    pub fn status(&self) -> StatusCode {
        status_of(&self.error, self.at)
    }
}

/// The status of each wire code.
pub fn status_of(error: &Error, at: Where) -> StatusCode {
    if let Where::Status(s) = at {
        return s;
    }
    match error {
        Error::InvalidClient { basic: true, .. } => StatusCode::UNAUTHORIZED,
        Error::InvalidToken(_) | Error::NoCredentials(_) => StatusCode::UNAUTHORIZED,
        Error::InsufficientScope { .. } | Error::OriginNotAllowed | Error::InsufficientFunds => {
            StatusCode::FORBIDDEN
        }
        Error::AccessDenied(_) if at == Where::Api => StatusCode::FORBIDDEN,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::TemporarilyUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Quotes a value for a `WWW-Authenticate` parameter (RFC 7235 quoted-string).
pub(crate) fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c))
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.error, "server error");
        }
        let mut res = (status, axum::Json(ErrorBody::of(&self.error))).into_response();
        let h = res.headers_mut();
        let www = match &self.error {
            Error::InvalidClient { basic: true, .. } => Some(r#"Basic realm="buzzgate""#.into()),
            Error::InvalidToken(d) => Some(format!(
                r#"Bearer realm="buzzgate", error="invalid_token", error_description="{}""#,
                quoted(d)
            )),
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            Error::NoCredentials(_) => Some(r#"Bearer realm="buzzgate""#.into()),
            Error::InsufficientScope { required, .. } => Some(format!(
                r#"Bearer realm="buzzgate", error="insufficient_scope", scope="{}""#,
                required.bits()
            )),
            _ => None,
        };
        if let Some(v) = www.and_then(|w| HeaderValue::from_str(&w).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        set_retry_after(h, &self.error);
        res
    }
}

/// `Retry-After` on any answer (JSON or page) to an error that has one: a rate limit or an
/// outage (`slow_down` carries its interval in the body instead, RFC 8628 §3.5).
pub(crate) fn set_retry_after(headers: &mut axum::http::HeaderMap, e: &Error) {
    if let Some(secs) = e.retry_after()
        && matches!(
            e,
            Error::RateLimited { .. } | Error::TemporarilyUnavailable { .. }
        )
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use buzzgate_domain::Scope;

    #[test]
    fn statuses_follow_the_contract() {
        let s = |e: Error| status_of(&e, Where::Api).as_u16();
        assert_eq!(s(Error::invalid_client(true)), 401);
        assert_eq!(s(Error::invalid_client(false)), 400);
        assert_eq!(s(Error::invalid_token("x")), 401);
        assert_eq!(
            s(Error::InsufficientScope {
                required: Scope::BUZZ_READ,
                name: "BuzzRead".into()
            }),
            403
        );
        assert_eq!(s(Error::access_denied("x")), 403);
        assert_eq!(s(Error::RateLimited { retry_after: 3 }), 429);
        assert_eq!(s(Error::not_found("x")), 404);
        assert_eq!(
            status_of(&Error::access_denied("x"), Where::TokenEndpoint).as_u16(),
            400
        );
        assert_eq!(
            status_of(&Error::AuthorizationPending, Where::TokenEndpoint).as_u16(),
            400
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope_in_the_header() {
        let res = ApiError::from(Error::InsufficientScope {
            required: Scope::USER_READ,
            name: "UserRead".into(),
        })
        .into_response();
        assert_eq!(res.status(), 403);
        let www = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
        assert!(www.contains(r#"scope="1""#), "{www}");
    }

    #[test]
    fn a_store_outage_is_503_with_retry_after() {
        let e: Error = buzzgate_domain::error::StoreError::Unavailable("down".into()).into();
        let res = ApiError::from(e).into_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn no_credentials_get_a_challenge_without_an_error_code() {
        let res =
            ApiError::from(Error::NoCredentials("Missing bearer token".into())).into_response();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="buzzgate""#
        );
        let res = ApiError::from(Error::invalid_token("Invalid or expired token")).into_response();
        assert!(
            res.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let res = ApiError::from(Error::RateLimited { retry_after: 7 }).into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn quoting_escapes_and_drops_controls() {
        assert_eq!(quoted("a\"b\\c\nd"), "a\\\"b\\\\cd");
    }
}
