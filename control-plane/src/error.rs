//! The one error type of the control plane. `http::error` maps it to `{"error": "..."}` bodies;
//! database details go to the log, never to the caller.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid; the message says which field and why.
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// Absent, or belonging to another tenant (the two are indistinguishable on purpose).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A missing or wrong bearer token on an endpoint without admin tokens (discovery, reports).
    #[error("{0}")]
    InvalidToken(String),
    /// Authenticated, but this token may not do that (a tenant admin on a gateway-wide operation).
    #[error("{0}")]
    Forbidden(String),
    /// A dependency failed; the message is safe to show.
    #[error("{0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A bug or a broken invariant; details are logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
