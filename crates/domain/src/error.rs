//! The one error type of the domain. Each variant is a wire error code of SPEC section 3 and
//! carries its human description; the HTTP crate maps variants to statuses in one place.

use std::borrow::Cow;

use crate::scope::Scope;

/// A description shown to the client as `error_description`.
pub type Description = Cow<'static, str>;

/// Every error a use case can return. Variants are the RFC / Civitai wire codes (`code()`),
/// never HTTP types. Descriptions must not contain secrets (tokens, codes, passwords).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `invalid_request`: a parameter is missing, duplicated, malformed or out of range.
    #[error("invalid_request: {0}")]
    InvalidRequest(Description),
    /// `invalid_client`: unknown client, or client authentication failed.
    /// `basic` records whether the client tried HTTP Basic (the HTTP layer answers 401 then).
    #[error("invalid_client: {description}")]
    InvalidClient {
        description: Description,
        basic: bool,
    },
    /// `invalid_grant`: a code, refresh token or device code is invalid, expired, revoked or
    /// was issued to another client or redirect URI.
    #[error("invalid_grant: {0}")]
    InvalidGrant(Description),
    /// `unauthorized_client`: the client may not use this grant.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Description),
    /// `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(Description),
    /// `unsupported_response_type`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(Description),
    /// `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(Description),
    /// `invalid_redirect_uri` (RFC 7591 §3.2.2): a dynamic registration's redirect URI.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(Description),
    /// `invalid_client_metadata` (RFC 7591 §3.2.2): any other unacceptable registration field.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(Description),
    /// `invalid_target` (RFC 8707 §2): a `resource` that is not an absolute URI without a
    /// fragment, or one the grant does not cover.
    #[error("invalid_target: {0}")]
    InvalidTarget(Description),
    /// `access_denied`: the user denied, the app is disabled or limited to testers, or the
    /// caller may not do this.
    #[error("access_denied: {0}")]
    AccessDenied(Description),
    /// `invalid_token`: a bearer token is unknown, expired or revoked.
    #[error("invalid_token: {0}")]
    InvalidToken(Description),
    /// The request carried no credentials at all. The body says `invalid_token`; the
    /// `WWW-Authenticate` challenge carries no error code (RFC 6750 §3.1).
    #[error("invalid_token (no credentials): {0}")]
    NoCredentials(Description),
    /// `insufficient_scope`: the token lacks `required`, which the catalogue calls `name`
    /// ([`crate::catalogue::Need`]).
    #[error("insufficient_scope: token does not have {name} ({required:?})")]
    InsufficientScope { required: Scope, name: String },
    /// `authorization_pending` (device flow).
    #[error("authorization_pending")]
    AuthorizationPending,
    /// `slow_down` (device flow); `interval` is the new polling interval in seconds.
    #[error("slow_down")]
    SlowDown { interval: u64 },
    /// `expired_token` (device flow).
    #[error("expired_token: {0}")]
    ExpiredToken(Description),
    /// `origin_not_allowed`: a public client's browser Origin is not registered.
    #[error("origin_not_allowed")]
    OriginNotAllowed,
    /// `insufficient_funds`: over a Buzz budget or over the balance (deliberately the same).
    #[error("insufficient_funds")]
    InsufficientFunds,
    /// `rate_limited`, with the seconds after which a retry may succeed.
    #[error("rate_limited: retry after {retry_after}s")]
    RateLimited { retry_after: u64 },
    /// `not_found`: a management resource (client, consent, API key, spend) does not exist
    /// or is not the caller's.
    #[error("not_found: {0}")]
    NotFound(Description),
    /// `conflict`: an idempotency key was reused with different parameters.
    #[error("conflict: {0}")]
    Conflict(Description),
    /// `temporarily_unavailable`: a store is down; retry after the given seconds.
    #[error("temporarily_unavailable: {description}")]
    TemporarilyUnavailable {
        description: Description,
        retry_after: u64,
    },
    /// `server_error`: a broken invariant. Never used for bad input or races.
    #[error("server_error: {0}")]
    ServerError(Description),
}

/// Every wire code the domain can produce, in a stable order (docs and tests iterate it).
pub const ALL_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "unsupported_response_type",
    "invalid_scope",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_target",
    "access_denied",
    "invalid_token",
    "insufficient_scope",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "origin_not_allowed",
    "insufficient_funds",
    "rate_limited",
    "not_found",
    "conflict",
    "temporarily_unavailable",
    "server_error",
];

impl Error {
    /// The wire code (`error` field).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::InvalidClient { .. } => "invalid_client",
            Error::InvalidGrant(_) => "invalid_grant",
            Error::UnauthorizedClient(_) => "unauthorized_client",
            Error::UnsupportedGrantType(_) => "unsupported_grant_type",
            Error::UnsupportedResponseType(_) => "unsupported_response_type",
            Error::InvalidScope(_) => "invalid_scope",
            Error::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Error::InvalidClientMetadata(_) => "invalid_client_metadata",
            Error::InvalidTarget(_) => "invalid_target",
            Error::AccessDenied(_) => "access_denied",
            Error::InvalidToken(_) | Error::NoCredentials(_) => "invalid_token",
            Error::InsufficientScope { .. } => "insufficient_scope",
            Error::AuthorizationPending => "authorization_pending",
            Error::SlowDown { .. } => "slow_down",
            Error::ExpiredToken(_) => "expired_token",
            Error::OriginNotAllowed => "origin_not_allowed",
            Error::InsufficientFunds => "insufficient_funds",
            Error::RateLimited { .. } => "rate_limited",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TemporarilyUnavailable { .. } => "temporarily_unavailable",
            Error::ServerError(_) => "server_error",
        }
    }

    /// The human description (`error_description` field).
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Error::InvalidRequest(d)
            | Error::InvalidClient { description: d, .. }
            | Error::InvalidGrant(d)
            | Error::UnauthorizedClient(d)
            | Error::UnsupportedGrantType(d)
            | Error::UnsupportedResponseType(d)
            | Error::InvalidScope(d)
            | Error::InvalidRedirectUri(d)
            | Error::InvalidClientMetadata(d)
            | Error::InvalidTarget(d)
            | Error::AccessDenied(d)
            | Error::InvalidToken(d)
            | Error::NoCredentials(d)
            | Error::ExpiredToken(d)
            | Error::NotFound(d)
            | Error::Conflict(d)
            | Error::TemporarilyUnavailable { description: d, .. }
            | Error::ServerError(d) => d.clone(),
            Error::InsufficientScope { name, .. } => {
                Cow::Owned(format!("Token does not have {name} scope"))
            }
            Error::AuthorizationPending => {
                Cow::Borrowed("The user has not yet approved or denied the request")
            }
            Error::SlowDown { .. } => Cow::Borrowed("Polling too fast; increase the interval"),
            Error::OriginNotAllowed => {
                Cow::Borrowed("Origin is not in the registered allowedOrigins for this client.")
            }
            Error::InsufficientFunds => {
                Cow::Borrowed("Insufficient funds: the spend exceeds the balance or a spend limit")
            }
            Error::RateLimited { .. } => Cow::Borrowed("Too many requests"),
        }
    }

    /// Seconds after which a retry may succeed (`Retry-After`), where the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after }
            | Error::TemporarilyUnavailable { retry_after, .. } => Some(*retry_after),
            Error::SlowDown { interval } => Some(*interval),
            _ => None,
        }
    }

    pub fn invalid_request(d: impl Into<Description>) -> Self {
        Error::InvalidRequest(d.into())
    }
    pub fn invalid_grant(d: impl Into<Description>) -> Self {
        Error::InvalidGrant(d.into())
    }
    pub fn invalid_scope(d: impl Into<Description>) -> Self {
        Error::InvalidScope(d.into())
    }
    pub fn invalid_target(d: impl Into<Description>) -> Self {
        Error::InvalidTarget(d.into())
    }
    pub fn access_denied(d: impl Into<Description>) -> Self {
        Error::AccessDenied(d.into())
    }
    pub fn invalid_token(d: impl Into<Description>) -> Self {
        Error::InvalidToken(d.into())
    }
    pub fn not_found(d: impl Into<Description>) -> Self {
        Error::NotFound(d.into())
    }
    /// `invalid_client` with Civitai's wording; `basic` when HTTP Basic was attempted.
    pub fn invalid_client(basic: bool) -> Self {
        Error::InvalidClient {
            description: Cow::Borrowed("Invalid client: client is invalid"),
            basic,
        }
    }
    pub fn unknown_client() -> Self {
        Error::InvalidClient {
            description: Cow::Borrowed("Unknown client_id"),
            basic: false,
        }
    }
}

/// Errors of the ports. Adapters translate their driver errors into these; services turn them
/// into [`Error`] (`Unavailable` becomes `temporarily_unavailable`, never a 500 for a race).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing store cannot be reached or timed out. Retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint was violated (duplicate username, client id, idempotency key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything else: a broken invariant in the adapter.
    #[error("store error: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Error::TemporarilyUnavailable {
                description: Cow::Borrowed("A backing store is unavailable; retry shortly"),
                retry_after: 1,
            },
            StoreError::Conflict(what) => Error::Conflict(Cow::Owned(what)),
            StoreError::Internal(_) => Error::ServerError(Cow::Borrowed("Internal error")),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<Error> {
        vec![
            Error::invalid_request("x"),
            Error::invalid_client(false),
            Error::invalid_grant("x"),
            Error::UnauthorizedClient("x".into()),
            Error::UnsupportedGrantType("x".into()),
            Error::UnsupportedResponseType("x".into()),
            Error::invalid_scope("x"),
            Error::InvalidRedirectUri("x".into()),
            Error::InvalidClientMetadata("x".into()),
            Error::invalid_target("x"),
            Error::access_denied("x"),
            Error::invalid_token("x"),
            Error::InsufficientScope {
                required: Scope::USER_READ,
                name: "UserRead".into(),
            },
            Error::AuthorizationPending,
            Error::SlowDown { interval: 10 },
            Error::ExpiredToken("x".into()),
            Error::OriginNotAllowed,
            Error::InsufficientFunds,
            Error::RateLimited { retry_after: 3 },
            Error::not_found("x"),
            Error::Conflict("x".into()),
            Error::TemporarilyUnavailable {
                description: "x".into(),
                retry_after: 1,
            },
            Error::ServerError("x".into()),
        ]
    }

    #[test]
    fn every_variant_has_a_distinct_listed_code() {
        let codes: Vec<_> = one_of_each().iter().map(Error::code).collect();
        assert_eq!(codes, ALL_CODES);
    }

    #[test]
    fn insufficient_scope_description_names_the_scope() {
        let e = Error::InsufficientScope {
            required: Scope::MODELS_WRITE,
            name: "ModelsWrite".into(),
        };
        assert_eq!(e.description(), "Token does not have ModelsWrite scope");
    }

    #[test]
    fn retry_after_is_carried_by_rate_limit_and_unavailable_only() {
        assert_eq!(Error::RateLimited { retry_after: 7 }.retry_after(), Some(7));
        assert_eq!(
            Error::from(StoreError::Unavailable("db".into())).retry_after(),
            Some(1)
        );
        assert_eq!(Error::invalid_grant("x").retry_after(), None);
    }

    #[test]
    fn store_errors_map_to_wire_codes_without_leaking_details() {
        let e = Error::from(StoreError::Internal("password=hunter2".into()));
        assert_eq!(e.code(), "server_error");
        assert!(!e.description().contains("hunter2"));
        assert_eq!(
            Error::from(StoreError::Unavailable("x".into())).code(),
            "temporarily_unavailable"
        );
        assert_eq!(
            Error::from(StoreError::Conflict("dup".into())).code(),
            "conflict"
        );
    }
}
