//! The one mapping from [`Error`] to HTTP: a status and `{"error": "..."}`. Internal and database
//! details are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Error::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, self.to_string()),
            Error::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Error::Conflict(m) => (StatusCode::CONFLICT, m),
            Error::InvalidToken(m) => (StatusCode::UNAUTHORIZED, m),
            Error::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, m)
            }
            Error::Database(err) => {
                tracing::error!(error = %err, "database error");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable".into(),
                )
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
