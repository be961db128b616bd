//! What a native module implements: a filter configuration (one per Envoy filter config, shared by
//! every worker) that makes one filter per HTTP stream. Every method has a default, so a module
//! implements only the events it cares about.

use crate::config::{ConfigHandle, ConfigInit};
use crate::http::{CalloutFailure, CalloutId, CalloutResponse, LocalResponse};
use crate::stream::Stream;

/// Makes the configuration from the filter's `filter_config` (a `StringValue`'s bytes). Runs on
/// Envoy's main thread; an error rejects the configuration, and Envoy logs the message.
pub type NewConfig =
    fn(
        init: &mut ConfigInit<'_>,
        filter_name: &str,
        config: &[u8],
    ) -> Result<Box<dyn HttpFilterConfig>, Box<dyn std::error::Error + Send + Sync>>;

/// One filter configuration. Created and destroyed on the main thread; `new_filter` runs on the
/// workers, so it is shared (`Sync`).
pub trait HttpFilterConfig: Send + Sync + 'static {
    /// The filter of one new HTTP stream, on the stream's worker thread.
    fn new_filter(&self) -> Box<dyn HttpFilter>;

    /// What a stream answers when one of its hooks panicked before its response began.
    fn fail_closed_response(&self) -> LocalResponse {
        LocalResponse::internal_error()
    }

    /// An event committed through a [`crate::Waker`] of this configuration, on the main thread.
    fn on_scheduled(&self, _config: &ConfigHandle, _event: u64) {}

    /// The answer to [`ConfigHandle::callout`], on the main thread.
    fn on_callout_done(
        &self,
        _config: &ConfigHandle,
        _id: CalloutId,
        _result: Result<CalloutResponse, CalloutFailure>,
    ) {
    }
}

/// The filter of one HTTP stream. It lives on that stream's worker thread; Envoy never calls two of
/// its hooks at once.
pub trait HttpFilter: 'static {
    fn on_request_headers(
        &mut self,
        _stream: &mut Stream<'_>,
        _end_of_stream: bool,
    ) -> HeadersAction {
        HeadersAction::Continue
    }

    fn on_request_body(&mut self, _stream: &mut Stream<'_>, _end_of_stream: bool) -> BodyAction {
        BodyAction::Continue
    }

    fn on_request_trailers(&mut self, _stream: &mut Stream<'_>) -> TrailersAction {
        TrailersAction::Continue
    }

    fn on_response_headers(
        &mut self,
        _stream: &mut Stream<'_>,
        _end_of_stream: bool,
    ) -> HeadersAction {
        HeadersAction::Continue
    }

    fn on_response_body(&mut self, _stream: &mut Stream<'_>, _end_of_stream: bool) -> BodyAction {
        BodyAction::Continue
    }

    fn on_response_trailers(&mut self, _stream: &mut Stream<'_>) -> TrailersAction {
        TrailersAction::Continue
    }

    /// The stream is over (answered, reset or cancelled); the last hook with a usable [`Stream`].
    fn on_stream_complete(&mut self, _stream: &mut Stream<'_>) {}

    /// An event committed through this stream's [`crate::Waker`], back on the stream's worker.
    fn on_scheduled(&mut self, _stream: &mut Stream<'_>, _event: u64) {}

    /// The answer to [`Stream::callout`].
    fn on_callout_done(
        &mut self,
        _stream: &mut Stream<'_>,
        _id: CalloutId,
        _result: Result<CalloutResponse, CalloutFailure>,
    ) {
    }
}

/// What to do with the headers (request or response) after a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersAction {
    Continue,
    /// Hold them until [`Stream::resume_request`] / [`Stream::resume_response`] or until a later
    /// body or trailers hook continues.
    Stop,
}

/// What to do with a body chunk after a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyAction {
    Continue,
    /// Keep it with the chunks before it; Envoy enforces its buffer limit (413 / 500).
    Buffer,
    /// Hold it without buffering more; flow control stops the sender.
    Hold,
}

/// What to do with the trailers after a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailersAction {
    Continue,
    Stop,
}
