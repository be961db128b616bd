//! Refusals of the token endpoint as RFC 6749 §5.2 (and RFC 8693, RFC 8707) define them: a code, a
//! description safe for any client, and the detail that goes to the log only. `http::oauth` turns
//! them into the wire answer, once.

use crate::error::Error;

/// The `error` codes the token endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2 / RFC 8693 §2.2.2: a `resource` or `audience` the token cannot be issued for.
    InvalidTarget,
    UnsupportedResponseType,
    ServerError,
    TemporarilyUnavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::InvalidClient => "invalid_client",
            Code::InvalidGrant => "invalid_grant",
            Code::UnauthorizedClient => "unauthorized_client",
            Code::UnsupportedGrantType => "unsupported_grant_type",
            Code::InvalidScope => "invalid_scope",
            Code::InvalidTarget => "invalid_target",
            Code::UnsupportedResponseType => "unsupported_response_type",
            Code::ServerError => "server_error",
            Code::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// A refusal. `description` is sent; `detail` is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: Code,
    pub description: String,
    pub detail: String,
    /// Seconds until a client or source that spent its failed-authentication allowance may retry.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(code: Code, description: impl Into<String>, detail: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A malformed request; the description says what is wrong with it (the client wrote it).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        let description = description.into();
        Self::new(Code::InvalidRequest, description.clone(), description)
    }

    /// Client authentication failed: the client learns no more than that.
    pub fn invalid_client(detail: impl Into<String>) -> Self {
        Self::new(Code::InvalidClient, "client authentication failed", detail)
    }

    /// The grant (assertion, subject token) is invalid, expired, revoked or not trusted.
    pub fn invalid_grant(detail: impl Into<String>) -> Self {
        Self::new(
            Code::InvalidGrant,
            "the grant is invalid, expired, revoked or not trusted here",
            detail,
        )
    }

    pub fn unauthorized_client(detail: impl Into<String>) -> Self {
        Self::new(
            Code::UnauthorizedClient,
            "the client may not use this grant type",
            detail,
        )
    }

    pub fn unsupported_grant_type(grant: &str) -> Self {
        Self::new(
            Code::UnsupportedGrantType,
            "grant_type is not supported here",
            format!("grant_type {grant:?}"),
        )
    }

    /// A scope outside the grant, or not a `tool:` scope; the description names it (the client
    /// asked for it).
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        let description = description.into();
        Self::new(Code::InvalidScope, description.clone(), description)
    }

    pub fn invalid_target(description: impl Into<String>) -> Self {
        let description = description.into();
        Self::new(Code::InvalidTarget, description.clone(), description)
    }

    pub fn unsupported_response_type() -> Self {
        Self::new(
            Code::UnsupportedResponseType,
            "this server issues tokens at its token endpoint only; it has no authorization flow",
            "authorization endpoint called",
        )
    }

    /// The endpoint is not configured (`INTENTGATE_PUBLIC_URL` unset).
    pub fn not_configured() -> Self {
        Self::new(
            Code::TemporarilyUnavailable,
            "the authorization server is not configured",
            "INTENTGATE_PUBLIC_URL is not set",
        )
    }

    /// Too many failed client authentications from this client id or source.
    pub fn rate_limited(retry_after: u64, detail: impl Into<String>) -> Self {
        OAuthError {
            retry_after: Some(retry_after),
            ..Self::new(
                Code::InvalidClient,
                format!("too many failed client authentications; retry in {retry_after} s"),
                detail,
            )
        }
    }
}

/// Failures of the control plane itself (the database, a bug) while answering.
impl From<Error> for OAuthError {
    fn from(error: Error) -> Self {
        match error {
            Error::Database(_) | Error::Unavailable(_) => OAuthError::new(
                Code::TemporarilyUnavailable,
                "the authorization server is temporarily unavailable",
                error.to_string(),
            ),
            other => OAuthError::new(Code::ServerError, "internal error", other.to_string()),
        }
    }
}

pub type OAuthResult<T> = std::result::Result<T, OAuthError>;
