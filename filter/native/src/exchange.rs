//! One HTTP stream: each of Envoy's hooks becomes one event of the engine's [`Stream`], and each
//! step the engine returns is carried out on Envoy's stream. Answers to the stream's callouts (the
//! intent extractor, through Envoy) and gRPC calls (leases and approvals, through the background
//! thread) come back on the stream's own worker and become the engine's `on_answer` events.

use std::sync::Arc;

use intentgate_core::engine::{Flow, Runtime, Step, Stream};
use intentgate_envoy_dm::{
    BodyAction, CalloutFailure, CalloutId, CalloutResponse, Direction, HeadersAction, HttpFilter,
    Stream as Envoy, TrailersAction,
};

use crate::background;
use crate::host::{Calls, StreamHost};
use crate::process::Process;

pub struct Exchange {
    process: Arc<Process>,
    stream: Stream,
    calls: Calls,
}

impl Exchange {
    pub fn new(process: Arc<Process>) -> Self {
        Exchange {
            stream: Stream::new(&process.runtime),
            process,
            calls: Calls::default(),
        }
    }

    /// Runs one engine event and carries its step out. `resume`: the event is an answer, not a
    /// callback of the stream, so continuing resumes the held request.
    fn event(
        &mut self,
        envoy: &mut Envoy<'_>,
        resume: bool,
        event: impl FnOnce(&mut Stream, &Runtime, &mut StreamHost<'_, '_>) -> Step,
    ) -> Flow {
        let mut host = StreamHost {
            stream: envoy,
            calls: &mut self.calls,
            process: &self.process,
        };
        let step = event(&mut self.stream, &self.process.runtime, &mut host);
        step.carry_out(&mut host, resume)
    }
}

fn headers(flow: Flow) -> HeadersAction {
    match flow {
        Flow::Continue => HeadersAction::Continue,
        Flow::Hold => HeadersAction::Stop,
    }
}

fn body(flow: Flow) -> BodyAction {
    match flow {
        Flow::Continue => BodyAction::Continue,
        Flow::Hold => BodyAction::Buffer,
    }
}

fn trailers(flow: Flow) -> TrailersAction {
    match flow {
        Flow::Continue => TrailersAction::Continue,
        Flow::Hold => TrailersAction::Stop,
    }
}

impl HttpFilter for Exchange {
    fn on_request_headers(&mut self, envoy: &mut Envoy<'_>, end_of_stream: bool) -> HeadersAction {
        headers(self.event(envoy, false, |s, rt, h| {
            s.on_request_headers(rt, h, end_of_stream)
        }))
    }

    fn on_request_body(&mut self, envoy: &mut Envoy<'_>, end_of_stream: bool) -> BodyAction {
        let size = envoy.body_len(Direction::Request);
        body(self.event(envoy, false, |s, rt, h| {
            s.on_request_body(rt, h, size, end_of_stream)
        }))
    }

    fn on_request_trailers(&mut self, envoy: &mut Envoy<'_>) -> TrailersAction {
        trailers(self.event(envoy, false, |s, rt, h| s.on_request_trailers(rt, h)))
    }

    fn on_response_headers(&mut self, envoy: &mut Envoy<'_>, end_of_stream: bool) -> HeadersAction {
        headers(self.event(envoy, false, |s, rt, h| {
            s.on_response_headers(rt, h, end_of_stream)
        }))
    }

    fn on_response_body(&mut self, envoy: &mut Envoy<'_>, end_of_stream: bool) -> BodyAction {
        let size = envoy.body_len(Direction::Response);
        body(self.event(envoy, false, |s, rt, h| {
            s.on_response_body(rt, h, size, end_of_stream)
        }))
    }

    fn on_response_trailers(&mut self, envoy: &mut Envoy<'_>) -> TrailersAction {
        trailers(self.event(envoy, false, |s, rt, h| s.on_response_trailers(rt, h)))
    }

    /// The background thread answered gRPC calls of this stream.
    fn on_scheduled(&mut self, envoy: &mut Envoy<'_>, _event: u64) {
        let answers = self
            .calls
            .inbox
            .as_ref()
            .map(|inbox| inbox.take())
            .unwrap_or_default();
        for (call, answer) in answers {
            self.event(envoy, true, |s, rt, h| s.on_answer(rt, h, call, answer));
        }
    }

    fn on_callout_done(
        &mut self,
        envoy: &mut Envoy<'_>,
        id: CalloutId,
        result: Result<CalloutResponse, CalloutFailure>,
    ) {
        if let Some((call, answer)) = self.calls.callout_answer(id, result) {
            self.event(envoy, true, |s, rt, h| s.on_answer(rt, h, call, answer));
        }
    }

    /// The stream is over: its audit events go to the runtime; answers still on their way are
    /// refused from now on (a budget lease among them is given back).
    fn on_stream_complete(&mut self, _envoy: &mut Envoy<'_>) {
        self.stream.on_end(&self.process.runtime);
        if let Some(inbox) = &self.calls.inbox {
            background::refuse(&self.process, inbox);
        }
    }
}
