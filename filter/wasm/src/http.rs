//! One HTTP exchange: Envoy's callbacks become the engine's events, and each [`Step`] the engine
//! returns becomes the calls that carry it out.

use std::sync::Arc;

use intentgate_core::engine::{Answer, Flow, LocalAnswer, Runtime, Step, Stream};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::host::{self, Envoy};

pub struct Http {
    runtime: Arc<Runtime>,
    stream: Stream,
}

impl Http {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Http {
            stream: Stream::new(&runtime),
            runtime,
        }
    }

    /// Carries the step out on Envoy. `resume`: the event is not a callback of the stream itself
    /// (a callout's answer), so continuing means resuming the held request.
    fn apply(step: Step, resume: bool) -> Action {
        match step.carry_out(&mut Envoy, resume) {
            Flow::Continue => Action::Continue,
            Flow::Hold => Action::Pause,
        }
    }

    fn answer(&mut self, token: u32, answer: Answer) {
        let step = self
            .stream
            .on_answer(&self.runtime, &mut Envoy, token, answer);
        Self::apply(step, true);
    }
}

impl Context for Http {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        let (status, body) = host::http_call_answer(body_size);
        self.answer(token, Answer::Http { status, body });
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let message = host::grpc_message(size);
        self.answer(token, Answer::Grpc { status, message });
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let step = self
            .stream
            .on_request_headers(&self.runtime, &mut Envoy, end_of_stream);
        Self::apply(step, false)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let step = self
            .stream
            .on_request_body(&self.runtime, &mut Envoy, body_size, end_of_stream);
        Self::apply(step, false)
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        let step = self.stream.on_request_trailers(&self.runtime, &mut Envoy);
        Self::apply(step, false)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let step = self
            .stream
            .on_response_headers(&self.runtime, &mut Envoy, end_of_stream);
        Self::apply(step, false)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let step =
            self.stream
                .on_response_body(&self.runtime, &mut Envoy, body_size, end_of_stream);
        Self::apply(step, false)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        let step = self.stream.on_response_trailers(&self.runtime, &mut Envoy);
        Self::apply(step, false)
    }

    fn on_log(&mut self) {
        self.stream.on_end(&self.runtime);
    }
}

/// The context when the configuration failed: every request is refused.
pub struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        host::respond(&LocalAnswer::unavailable("gateway not configured"));
        Action::Pause
    }
}
