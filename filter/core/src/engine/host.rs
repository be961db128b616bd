//! What the engine needs from the proxy it runs in, and what it asks the proxy to do. A host (the
//! proxy-wasm filter, a native module, the tests' fake) implements [`Host`] and applies [`Step`]s.
//! Every method of `Host` is one call into the proxy: the engine calls them sparingly, and the
//! tests count them.

use crate::engine::settings::ControlPlaneConfig;

/// A callout's handle, as the host numbers them; answers name it.
pub type CallId = u32;

/// Levels the engine logs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
    Critical,
}

/// The control plane's unary methods (`intentgate.v1.FilterSync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    IngestAudit,
    LeaseBudget,
    CreateApproval,
    AwaitApproval,
    UseApproval,
    EndApproval,
}

impl Rpc {
    pub const fn name(self) -> &'static str {
        match self {
            Rpc::IngestAudit => "IngestAudit",
            Rpc::LeaseBudget => "LeaseBudget",
            Rpc::CreateApproval => "CreateApproval",
            Rpc::AwaitApproval => "AwaitApproval",
            Rpc::UseApproval => "UseApproval",
            Rpc::EndApproval => "EndApproval",
        }
    }
}

/// An HTTP callout (the intent extractor): a JSON POST to a cluster of the proxy.
#[derive(Debug, Clone, Copy)]
pub struct HttpCallout<'a> {
    pub cluster: &'a str,
    pub path: &'a str,
    pub authority: &'a str,
    pub body: &'a [u8],
    pub timeout_ms: u64,
}

/// A callout's answer, read by the host when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `status` is `None` when the call failed outright (reset, no upstream).
    Http { status: Option<u16>, body: Vec<u8> },
    /// `status` is the gRPC status; 0 is OK.
    Grpc { status: u32, message: Vec<u8> },
}

/// Why a shared counter could not be updated; the budget check then fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared counter: {0}")]
pub struct CounterError(pub String);

/// The proxy's facilities. Implementations must not block and must not panic.
pub trait Host {
    /// Wall-clock time, unix nanoseconds.
    fn now_ns(&mut self) -> u64;
    fn log(&mut self, level: Level, message: &str);
    /// The proxy's own log level: audit lines are written at least at this level, so a proxy that
    /// only prints warnings still prints them.
    fn log_level(&mut self) -> Level;

    // --- the current exchange ---
    /// The request's headers (lower-case names), or `Err` naming the first whose value is not UTF-8.
    fn request_headers(&mut self) -> Result<Vec<(String, String)>, String>;
    /// The downstream peer's address, without the port.
    fn source_address(&mut self) -> String;
    /// The first `size` bytes of the buffered request body.
    fn request_body(&mut self, size: usize) -> Option<Vec<u8>>;
    /// One response header (`:status`, `content-type`), decoded lossily.
    fn response_header(&mut self, name: &str) -> Option<String>;
    fn response_body(&mut self, size: usize) -> Option<Vec<u8>>;

    // --- shared by every worker of this proxy ---
    /// Applies `step` to the counter `key` of `window` atomically (compare-and-swap, retried on a
    /// race): `step` gets the count, `None` when there is none for this window (absent, or stored
    /// for another), and returns the new count, or `None` to leave the counter as it is.
    fn update_counter(
        &mut self,
        key: &str,
        window: u64,
        step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
    ) -> Result<(), CounterError>;

    // --- callouts; the answer arrives later as an event naming the returned id ---
    /// `None` when the call could not be dispatched.
    fn http_callout(&mut self, callout: &HttpCallout<'_>) -> Option<CallId>;
    fn grpc_call(
        &mut self,
        to: &ControlPlaneConfig,
        rpc: Rpc,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<CallId>;
    /// Opens `FilterSync/Sync` and sends its first message.
    fn open_sync(&mut self, to: &ControlPlaneConfig, first: &[u8]) -> Option<CallId>;
    fn send_sync(&mut self, stream: CallId, message: &[u8]) -> bool;
    fn close_sync(&mut self, stream: CallId);
}

/// Which side of the exchange an edit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A change to the exchange the host carries out before the step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Set a header, or remove it (`None`).
    Header {
        side: Side,
        name: &'static str,
        value: Option<String>,
    },
    /// Replace the first `size` bytes of the buffered body of `side`.
    Body {
        side: Side,
        size: usize,
        body: Vec<u8>,
    },
}

/// An answer the gateway gives itself; nothing (more) goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnswer {
    pub status: u16,
    /// JSON; empty for no body.
    pub body: String,
    /// Headers the answer carries besides `content-type` (JSON when the body is not empty): the
    /// `www-authenticate` challenge of a 401, the `allow` of a 405.
    pub headers: Vec<(&'static str, String)>,
}

impl LocalAnswer {
    pub fn new(status: u16, body: String) -> Self {
        LocalAnswer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// 503 with -32603: the gateway itself cannot decide (`detail`, a fixed text, says why), so
    /// nothing is forwarded.
    pub fn unavailable(detail: &'static str) -> Self {
        LocalAnswer::new(
            503,
            format!(
                r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32603,"message":"Gateway unavailable","data":{{"upstream_status":null,"detail":"{detail}"}}}}}}"#
            ),
        )
    }
}

/// What the host does once the edits are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let the exchange go on: continue the callback's side, or, for an event that is not a stream
    /// callback (a callout's answer), resume the held request.
    Continue,
    /// Hold the exchange: more is awaited (the rest of the body, a callout's answer).
    Pause,
    /// Answer locally and hold the exchange.
    Respond(LocalAnswer),
}

/// What the engine decided on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub edits: Vec<Edit>,
    pub outcome: Outcome,
}

/// The proxy calls that carry a [`Step`] out on the current stream, implemented by each host.
pub trait StepTarget {
    /// Makes one edit; `false` when the proxy refused it.
    fn edit(&mut self, edit: &Edit) -> bool;
    /// Answers locally; a host whose proxy refuses the answer resets the stream instead.
    fn respond(&mut self, answer: &LocalAnswer);
    /// Resumes the held request.
    fn resume_request(&mut self);
    fn log(&mut self, level: Level, message: &str);
}

/// What the callback tells the proxy once its step is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let this side of the exchange go on.
    Continue,
    /// Keep holding it (buffer what arrives).
    Hold,
}

impl Step {
    /// Makes the edits, then the outcome. `resume`: the event is not a callback of the stream
    /// itself (a callout's answer), so continuing means resuming the held request. A request body
    /// that cannot be replaced must not go as it was: the request is answered 503 instead.
    pub fn carry_out(self, target: &mut dyn StepTarget, resume: bool) -> Flow {
        for edit in &self.edits {
            if target.edit(edit) {
                continue;
            }
            if let Edit::Body {
                side: Side::Request,
                ..
            } = edit
            {
                target.log(
                    Level::Error,
                    "intentgate: could not replace the request body, refusing request",
                );
                target.respond(&LocalAnswer::unavailable("gateway state unavailable"));
                return Flow::Hold;
            }
            target.log(Level::Error, "intentgate: could not edit the exchange");
        }
        match self.outcome {
            Outcome::Continue => {
                if resume {
                    target.resume_request();
                }
                Flow::Continue
            }
            Outcome::Pause => Flow::Hold,
            Outcome::Respond(answer) => {
                target.respond(&answer);
                Flow::Hold
            }
        }
    }

    pub fn go() -> Self {
        Step {
            edits: Vec::new(),
            outcome: Outcome::Continue,
        }
    }

    pub fn pause() -> Self {
        Step {
            edits: Vec::new(),
            outcome: Outcome::Pause,
        }
    }

    pub fn answer(answer: LocalAnswer) -> Self {
        Step {
            edits: Vec::new(),
            outcome: Outcome::Respond(answer),
        }
    }

    /// The same step with `edits` made first.
    pub fn after(mut self, mut edits: Vec<Edit>) -> Self {
        edits.append(&mut self.edits);
        self.edits = edits;
        self
    }
}

/// The address part of a peer address as proxies print it (`127.0.0.1:5000`, `[::1]:5000`).
pub fn without_port(address: &str) -> &str {
    match address.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_address_loses_its_port_and_brackets() {
        assert_eq!(without_port("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(without_port("[::1]:5000"), "::1");
        assert_eq!(without_port("10.0.0.1"), "10.0.0.1");
        assert_eq!(without_port("unix:/tmp/sock"), "unix:/tmp/sock");
    }

    /// Records what a step asked of the proxy; refuses edits of `refused`.
    #[derive(Default)]
    struct Recorder {
        refused: Option<Side>,
        calls: Vec<String>,
    }

    impl StepTarget for Recorder {
        fn edit(&mut self, edit: &Edit) -> bool {
            let side = match edit {
                Edit::Header { side, .. } | Edit::Body { side, .. } => *side,
            };
            self.calls.push(format!("edit {edit:?}"));
            self.refused != Some(side)
        }
        fn respond(&mut self, answer: &LocalAnswer) {
            self.calls.push(format!("respond {}", answer.status));
        }
        fn resume_request(&mut self) {
            self.calls.push("resume".into());
        }
        fn log(&mut self, level: Level, _message: &str) {
            self.calls.push(format!("log {level:?}"));
        }
    }

    fn body_edit(side: Side) -> Edit {
        Edit::Body {
            side,
            size: 3,
            body: b"new".to_vec(),
        }
    }

    #[test]
    fn a_request_body_that_cannot_be_replaced_is_answered_503_not_forwarded() {
        let mut proxy = Recorder {
            refused: Some(Side::Request),
            ..Recorder::default()
        };
        let flow = Step::go()
            .after(vec![body_edit(Side::Request)])
            .carry_out(&mut proxy, true);
        assert_eq!(flow, Flow::Hold);
        assert_eq!(proxy.calls.last().map(String::as_str), Some("respond 503"));
        assert!(!proxy.calls.iter().any(|c| c == "resume"));
    }

    #[test]
    fn a_refused_response_edit_is_logged_and_the_exchange_goes_on() {
        let mut proxy = Recorder {
            refused: Some(Side::Response),
            ..Recorder::default()
        };
        let flow = Step::go()
            .after(vec![body_edit(Side::Response)])
            .carry_out(&mut proxy, false);
        assert_eq!(flow, Flow::Continue);
        assert!(proxy.calls.iter().any(|c| c == "log Error"));
    }

    #[test]
    fn continuing_after_an_answer_resumes_the_request_and_an_answer_holds() {
        let mut proxy = Recorder::default();
        assert_eq!(Step::go().carry_out(&mut proxy, true), Flow::Continue);
        assert_eq!(proxy.calls, ["resume"]);
        let mut proxy = Recorder::default();
        assert_eq!(Step::pause().carry_out(&mut proxy, true), Flow::Hold);
        let step = Step::answer(LocalAnswer::new(403, "{}".into()));
        assert_eq!(step.carry_out(&mut proxy, false), Flow::Hold);
        assert_eq!(proxy.calls, ["respond 403"]);
    }
}
