//! Extractors: admin authentication, JSON bodies and query strings, each failing with an
//! [`Error`] that names what is wrong (axum's own rejections are plain text and say less).

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::audit::{ElevationId, Recorder};
use crate::auth::{self, Admin};
use crate::error::Error;
use crate::http::AppState;
use crate::validate;

/// Request bodies larger than this are refused.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let presented = bearer(&parts.headers).ok_or(Error::Unauthorized)?;
        state
            .tokens
            .authenticate(presented)
            .ok_or(Error::Unauthorized)
    }
}

/// The privileged-access ticket an admin request's changes are made under.
pub const ELEVATION_HEADER: &str = "x-intentgate-elevation-id";

/// Where a mutating request's changes are made, with its `X-IntentGate-Elevation-Id` (checked before
/// anything changes: a malformed or repeated one is a 400).
impl FromRequestParts<AppState> for Recorder {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let mut values = parts.headers.get_all(ELEVATION_HEADER).iter();
        let elevation = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(value), None) => Some(ElevationId::parse(value.as_bytes())?),
            (Some(_), Some(_)) => {
                return Err(Error::bad_request(
                    "the elevation id (X-IntentGate-Elevation-Id) may be given once",
                ));
            }
        };
        Ok(state.recorder().with_elevation(elevation))
    }
}

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
}

/// A JSON body, at most 1 MiB, deserialized with the failing field's path in the error.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Error> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                Error::bad_request(format!(
                    "request body exceeds {MAX_BODY_BYTES} bytes or could not be read"
                ))
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::bad_request(
                "request body is required (a JSON object)",
            ));
        }
        parse_json(&bytes).map(Body)
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::bad_request(format!("request body is not valid JSON: {inner}"))
        } else if path == "." {
            Error::bad_request(format!("invalid request body: {inner}"))
        } else {
            Error::bad_request(format!("invalid request body: field `{path}`: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Query parameters; all of ours are strings checked by the handler, so this only fails on a
/// malformed or repeated parameter.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Params(value))
            .map_err(|e: QueryRejection| {
                Error::bad_request(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// The `{id}` path segment.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Segment(id) = Segment::from_request_parts(parts, state).await?;
        validate::id("id", &id).map_err(Error::BadRequest)?;
        Ok(Id(id))
    }
}

/// A route's one path parameter, percent-decoded. One that is not UTF-8 is a JSON 400 like any
/// other bad input, not axum's plain-text rejection; the handler validates what it names.
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(segment) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request(format!("invalid path: {}", e.body_text())))?;
        Ok(Segment(segment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        count: Option<u64>,
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Approve,
    }

    fn message(body: &str) -> String {
        parse_json::<Sample>(body.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert!(message(r#"{"count": 1}"#).contains("missing field `name`"));
        assert!(message(r#"{"name": "a", "count": "x"}"#).contains("field `count`"));
        assert!(message(r#"{"name": "a", "kind": "maybe"}"#).contains("field `kind`"));
        assert!(message(r#"{"name": "a", "extra": 1}"#).contains("unknown field `extra`"));
        assert!(message(r#"{"name": "a"} x"#).contains("not valid JSON"));
        assert!(message(r#"[1]"#).contains("invalid request body"));
    }
}
