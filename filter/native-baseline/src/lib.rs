//! The cost of Envoy's dynamic-module machinery alone, for `make bench`: a module that does no work
//! but holds each request's headers until its body is complete (end of stream or trailers), as
//! IntentGate's filter does, then lets the request go. Any buffering filter costs at least this.

use intentgate_envoy_dm::{BodyAction, HeadersAction, HttpFilter, HttpFilterConfig, Stream};

/// Accepts no configuration but an empty one: nothing here is tunable.
fn new_config(
    _init: &mut intentgate_envoy_dm::ConfigInit<'_>,
    _filter_name: &str,
    config: &[u8],
) -> Result<Box<dyn HttpFilterConfig>, Box<dyn std::error::Error + Send + Sync>> {
    match config.trim_ascii() {
        b"" | b"{}" => Ok(Box::new(Baseline)),
        _ => Err("the baseline module takes no configuration (empty or {})".into()),
    }
}

intentgate_envoy_dm::module!(new_config);

struct Baseline;

impl HttpFilterConfig for Baseline {
    fn new_filter(&self) -> Box<dyn HttpFilter> {
        Box::new(Hold)
    }
}

struct Hold;

impl HttpFilter for Hold {
    fn on_request_headers(
        &mut self,
        _stream: &mut Stream<'_>,
        end_of_stream: bool,
    ) -> HeadersAction {
        if end_of_stream {
            HeadersAction::Continue
        } else {
            HeadersAction::Stop
        }
    }

    fn on_request_body(&mut self, _stream: &mut Stream<'_>, end_of_stream: bool) -> BodyAction {
        if end_of_stream {
            BodyAction::Continue
        } else {
            BodyAction::Buffer
        }
    }

    // Trailers end the request: the default lets headers, body and trailers go on together.
}
