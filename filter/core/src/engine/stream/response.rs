//! The upstream's answer: passed on as it is, unless the decision planned a rewrite (`tools/list`
//! results filtered to the token's tools, errors answered locally merged into a batch's answer), or
//! the upstream failed with a 5xx (then -32603 for each forwarded request).

use super::Stream;
use crate::engine::host::{Edit, Host, Side, Step};
use crate::engine::runtime::Runtime;
use crate::exchange::ResponsePlan;

const JSON: &str = "application/json";

/// What happens to the upstream's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    PassThrough,
    Rewrite,
    /// The upstream accepted what it got (202: only notifications were forwarded, which get no
    /// answer) while the gateway refused requests of the batch: the refusals are the answer, a JSON
    /// 200, since clients ignore a 202's body.
    Accepted,
    /// The upstream failed with this status: answer -32603 instead.
    UpstreamFailure(u16),
}

#[derive(Debug, Default)]
pub(super) struct ResponseState {
    pub(super) plan: ResponsePlan,
    mode: Mode,
    content_type: String,
    pub(super) upstream_status: u16,
    /// Bytes of an answer held to be rewritten while its end has not come.
    open: Option<usize>,
}

fn header(name: &'static str, value: Option<&str>) -> Edit {
    Edit::Header {
        side: Side::Response,
        name,
        value: value.map(str::to_owned),
    }
}

impl Stream {
    pub fn on_response_headers(
        &mut self,
        _rt: &Runtime,
        host: &mut dyn Host,
        end_of_stream: bool,
    ) -> Step {
        if self.answered_locally {
            return Step::go();
        }
        let response = &mut self.response;
        response.upstream_status = host
            .response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if response.upstream_status >= 500 && !response.plan.forwarded_ids.is_empty() {
            response.mode = Mode::UpstreamFailure(response.upstream_status);
        } else if response.plan.rewrites_body() && response.upstream_status == 202 {
            response.content_type = JSON.to_owned();
            response.mode = Mode::Accepted;
        } else if response.plan.rewrites_body() {
            // Read only when needed: every header read is a call into the proxy.
            response.content_type = host.response_header("content-type").unwrap_or_default();
            response.mode = Mode::Rewrite;
        } else {
            return Step::go();
        }
        if end_of_stream {
            // No body will follow to rewrite (a failure, or the 202 that answers forwarded
            // notifications): what the client is owed is answered as a fresh local reply, under
            // the upstream's status when that was an error, as a rewritten body would be.
            let status = response.upstream_status;
            let (status, body) = match (response.mode, &self.auth) {
                (Mode::UpstreamFailure(status), _) => (200, response.plan.upstream_failure(status)),
                (_, Ok(token)) => (
                    if (200..300).contains(&status) {
                        200
                    } else {
                        status
                    },
                    response
                        .plan
                        .rewrite(&response.content_type, b"", token)
                        .map(|b| String::from_utf8_lossy(&b).into_owned()),
                ),
                (_, Err(_)) => (200, None),
            };
            return match body {
                Some(body) if !body.is_empty() => self.respond(status, body),
                _ => Step::go(),
            };
        }
        let mut edits = Vec::with_capacity(3);
        if let Mode::UpstreamFailure(_) | Mode::Accepted = response.mode {
            edits.push(header(":status", Some("200")));
            edits.push(header("content-type", Some(JSON)));
        }
        response.open = Some(0);
        edits.push(header("content-length", None));
        Step::go().after(edits)
    }

    /// A chunk of the upstream's answer; `size` is all of it buffered so far.
    pub fn on_response_body(
        &mut self,
        _rt: &Runtime,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Step {
        let response = &mut self.response;
        response.open = None;
        if response.mode == Mode::PassThrough || self.answered_locally {
            return Step::go();
        }
        if !end_of_stream {
            response.open = Some(size);
            return Step::pause();
        }
        let replacement = match (response.mode, &self.auth) {
            (Mode::UpstreamFailure(status), _) => response
                .plan
                .upstream_failure(status)
                .map(String::into_bytes),
            // A 202 carries no JSON-RPC answer: whatever body it has is not the client's.
            (Mode::Accepted, Ok(token)) => response.plan.rewrite(JSON, b"", token),
            (_, Ok(token)) => {
                let body = host.response_body(size).unwrap_or_default();
                response.plan.rewrite(&response.content_type, &body, token)
            }
            (_, Err(_)) => None,
        };
        match replacement {
            Some(body) => Step::go().after(vec![Edit::Body {
                side: Side::Response,
                size,
                body,
            }]),
            None => Step::go(),
        }
    }

    /// Trailers end an answer whose last data frame did not (HTTP/2): a held answer is rewritten
    /// here, exactly as at its end.
    pub fn on_response_trailers(&mut self, rt: &Runtime, host: &mut dyn Host) -> Step {
        match self.response.open {
            Some(size) => self.on_response_body(rt, host, size, true),
            None => Step::go(),
        }
    }
}
