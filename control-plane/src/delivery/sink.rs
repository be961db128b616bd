//! What a destination is to the delivery worker: a name, its batch limits, and `send`, whose
//! error says whether to retry the same batch later or that the destination refused its content.
//! [`post`] maps an HTTP answer to that for every HTTP destination.

use std::future::Future;
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Client, RequestBuilder, StatusCode};

use super::config::{Selection, Settings};
use super::event::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_events: usize,
    /// Upper bound on the summed size of the events' canonical JSON in one request.
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not delivered, through no fault of the events (network, 5xx, 429, credentials, a
    /// destination misconfiguration): send the same events again later.
    #[error("{message}")]
    Retry {
        message: String,
        /// What the destination asked for (`Retry-After`), if anything.
        after: Option<Duration>,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
    },
    /// The destination refused the request's content (malformed, too large).
    #[error("{0}")]
    Rejected(String),
}

impl SendError {
    pub fn retry(message: impl Into<String>) -> Self {
        SendError::Retry {
            message: message.into(),
            after: None,
            status: None,
        }
    }
}

/// What every destination is built with.
#[derive(Debug, Clone)]
pub struct Shared {
    /// One HTTP client (connection pool, timeouts, user agent) for every HTTP destination.
    pub client: Client,
    pub settings: Settings,
}

pub trait Sink: Send + Sync + Sized + 'static {
    /// The destination's configuration, as [`super::config`] reads it.
    type Config;
    /// Fails when the configuration cannot be used (a TLS CA file that does not load).
    fn build(config: &Self::Config, shared: &Shared) -> Result<Self, String>;
    /// Which events the configuration sends this destination.
    fn selection(config: &Self::Config) -> Selection;
    /// The destination's name in `GET /v1/admin/integrations` and in the database.
    fn name(&self) -> &'static str;
    /// Where events go, without secrets.
    fn endpoint(&self) -> String;
    fn limits(&self) -> Limits;
    /// Delivers `events` (in chain order, at least one) or says why not.
    fn send(&self, events: &[Event]) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Sends a request and classifies the answer: 2xx delivered; 400, 413 and 422 (and whatever
/// `refused` recognises in a 400 body) refused content; everything else, transport errors
/// included, worth retrying. `refused` sees the status and body of a 400 and says whether the
/// payload (rather than the configuration) is at fault.
pub async fn post(
    what: &str,
    request: RequestBuilder,
    refused: impl Fn(&str) -> bool,
) -> Result<(), SendError> {
    let response = request
        .send()
        .await
        .map_err(|e| SendError::retry(format!("{what}: {}", transport(&e))))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let after = retry_after(&response);
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    let message = format!("{what} answered {status}: {}", body.trim());
    match status {
        StatusCode::BAD_REQUEST if refused(&body) => Err(SendError::Rejected(message)),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => {
            Err(SendError::Rejected(message))
        }
        _ => Err(SendError::Retry {
            message,
            after,
            status: Some(status.as_u16()),
        }),
    }
}

/// `Retry-After` in seconds (the form every destination here uses).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A transport error without the URL (which a webhook may carry a token in).
pub fn transport(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(inner) = source {
        detail = inner.to_string();
        source = inner.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// `scheme://host[:port]` and, when `with_path`, the path: enough to tell destinations apart,
/// never a query string or credentials.
pub fn describe(url: &reqwest::Url, with_path: bool) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if with_path {
        out.push_str(url.path());
    }
    out
}
