//! The OAuth wire: `GET /.well-known/oauth-authorization-server` (RFC 8414), `POST /oauth/token`
//! (form-encoded) and `/oauth/authorize` (no authorization flow: `unsupported_response_type`). Every
//! refusal is mapped here, once, to RFC 6749 §5.2's answer: its status, `{"error",
//! "error_description"}`, `WWW-Authenticate: Basic` on `invalid_client`, `Retry-After` when the
//! failure limit refuses; the detail goes to the log. Token answers are never cached.

use std::net::SocketAddr;

use axum::body::Body as RequestBody;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::extract::Segment;
use crate::http::AppState;
use crate::oauth::request::{Form, MAX_FORM_BYTES};
use crate::oauth::{Code, OAuthError, TokenRequest, metadata};

pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(METADATA_PATH, get(metadata_at_root))
        .route(&format!("{METADATA_PATH}/{{*path}}"), get(metadata_at_path))
        .route("/oauth/token", post(token))
        .route("/oauth/authorize", get(authorize).post(authorize))
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match (self.code, self.retry_after) {
            (_, Some(_)) => StatusCode::TOO_MANY_REQUESTS,
            (Code::InvalidClient, None) => StatusCode::UNAUTHORIZED,
            (Code::ServerError, _) => StatusCode::INTERNAL_SERVER_ERROR,
            (Code::TemporarilyUnavailable, _) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        if status.is_server_error() {
            tracing::error!(error = self.code.as_str(), detail = %self.detail, "token endpoint failed");
        } else {
            tracing::warn!(error = self.code.as_str(), detail = %self.detail, "token request refused");
        }
        let body = json!({ "error": self.code.as_str(), "error_description": self.description });
        let mut response = no_store((status, Json(body)).into_response());
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"intentgate\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// RFC 6749 §5.1: token answers (and refusals) are not to be stored by any cache.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn issuer(state: &AppState) -> Result<&crate::oauth::settings::Issuer, OAuthError> {
    state
        .oauth
        .as_ref()
        .and_then(|server| server.settings.issuer.as_ref())
        .ok_or_else(OAuthError::not_configured)
}

async fn metadata_at_root(State(state): State<AppState>) -> Response {
    match issuer(&state) {
        Ok(issuer) if issuer.path().is_empty() => Json(metadata::document(issuer)).into_response(),
        Ok(_) => no_such_metadata(),
        Err(e) => e.into_response(),
    }
}

/// RFC 8414 §3: an issuer with a path has its metadata at the well-known name followed by it.
async fn metadata_at_path(State(state): State<AppState>, Segment(path): Segment) -> Response {
    match issuer(&state) {
        Ok(issuer) if issuer.path() == format!("/{path}") => {
            Json(metadata::document(issuer)).into_response()
        }
        Ok(_) => no_such_metadata(),
        Err(e) => e.into_response(),
    }
}

fn no_such_metadata() -> Response {
    crate::error::Error::not_found("no authorization server metadata here").into_response()
}

async fn authorize() -> Response {
    OAuthError::unsupported_response_type().into_response()
}

async fn token(State(state): State<AppState>, request: Request<RequestBody>) -> Response {
    match answer(&state, request).await {
        Ok(body) => no_store(Json(body).into_response()),
        Err(refused) => refused.into_response(),
    }
}

async fn answer(
    state: &AppState,
    request: Request<RequestBody>,
) -> Result<crate::oauth::TokenResponse, OAuthError> {
    let server = state
        .oauth
        .as_ref()
        .ok_or_else(OAuthError::not_configured)?;
    let (parts, body) = request.into_parts();
    let form_encoded = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_encoded {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            OAuthError::invalid_request(format!(
                "the request body exceeds {MAX_FORM_BYTES} bytes or could not be read"
            ))
        })?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let request = TokenRequest {
        form: Form::parse(&bytes)?,
        authorization: authorization(&parts.headers)?,
        source: server.settings.source(peer, &forwarded_for(&parts.headers)),
    };
    server
        .token(&state.recorder(), &state.signing.active(), request)
        .await
}

fn authorization(headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(|v| Some(v.to_owned()))
            .map_err(|_| OAuthError::invalid_client("the Authorization header is not text")),
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "the Authorization header is given more than once",
        )),
    }
}

fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}
