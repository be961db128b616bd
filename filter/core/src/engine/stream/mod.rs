//! One exchange, from the request's headers to the stream's end. The request is decided when its
//! body is complete (its last data frame, or its trailers): parsed once, then, when needed, held for
//! the intent extractor's answer, for budget leases, or for a human's approval. The upstream's
//! answer is rewritten when the decision says so. The audit events go to the runtime when the
//! stream ends, with the upstream's status.
//!
//! Host calls on the way of one allowed `tools/call` (README lists them): the request headers,
//! the removal of the gateway-only headers sent, the clock, the peer's address, the body, the
//! clock again when decided, the upstream's status; a sampled exchange reads the clock once more.

mod approval;
mod response;
mod wait;

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use super::budget::EngineBudget;
use super::host::{Answer, CallId, Edit, Host, Level, LocalAnswer, Outcome, Side, Step};
use super::lock;
use super::metrics::Metric;
use super::runtime::Runtime;
use crate::audit::AuditEvent;
use crate::config::Gateway;
use crate::decision::{AuditDecision, Denial, ErrorCode};
use crate::exchange::{self, Action, Disposition, Env};
use crate::headers;
use crate::intent::IntentSource;
use crate::jsonrpc::{self, MAX_BODY_BYTES, Message};
use crate::pipeline::{RequestContext, policy_headers};
use crate::resource_server::{self, Challenge, MetadataAnswer};
use crate::routing_headers::RoutingHeaders;
use crate::token::{self, PublicKeys, TokenCache, TokenError, TokenVerifier, VerifiedToken};

use approval::Approval;
use response::ResponseState;
use wait::Waiting;

/// One exchange in this many is sampled for the timing histograms (the first one included).
pub const SAMPLE_EVERY: u64 = 16;

/// What the request's headers said that the decision needs later.
#[derive(Debug, Default)]
struct Head {
    authorization: Option<String>,
    tenant: Option<String>,
    prompt: Option<String>,
    /// `X-IntentGate-Approval-Id`: a retry of a call a human approved.
    approval_id: Option<String>,
    /// `Mcp-Method` / `Mcp-Name`, to hold against the body.
    routing: RoutingHeaders,
}

/// Where the request is.
#[derive(Debug)]
enum State {
    /// Headers or body on their way.
    Open,
    /// A complete body waits for the extractor or for leases.
    Waiting(Box<Waiting>),
    /// A call waits on the approval service.
    Approval(Box<Approval>),
    /// Decided.
    Decided,
}

#[derive(Debug)]
pub struct Stream {
    gateway: Arc<Gateway>,
    head: Head,
    ctx: RequestContext,
    auth: Result<Arc<VerifiedToken>, Denial>,
    /// When the callback deciding the request started, unix nanoseconds.
    started_ns: u64,
    sampled: bool,
    /// A sampled exchange: when its token was verified, unix nanoseconds.
    verified_ns: Option<u64>,
    state: State,
    answered_locally: bool,
    /// Bytes of a request body held so far while its end has not come.
    request_open: Option<usize>,
    response: ResponseState,
    events: Vec<AuditEvent>,
}

/// The runtime's token cache, shared by every exchange: a signature is verified outside the lock.
struct SharedTokens<'a>(&'a Mutex<TokenCache>);

impl TokenVerifier for SharedTokens<'_> {
    fn verify(&mut self, text: &str, keys: &PublicKeys) -> Result<Arc<VerifiedToken>, TokenError> {
        if let Some(hit) = lock(self.0).get(text, keys) {
            return hit;
        }
        let verified = Arc::new(token::verify(text, keys)?);
        lock(self.0).insert(text, Arc::clone(&verified));
        Ok(verified)
    }
}

fn now_ms(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

fn micros(from_ns: u64, to_ns: u64) -> u64 {
    to_ns.saturating_sub(from_ns) / 1000
}

impl Stream {
    pub fn new(rt: &Runtime) -> Self {
        Stream {
            gateway: rt.gateway(),
            head: Head::default(),
            ctx: RequestContext::default(),
            auth: Err(Denial::capability("missing bearer token")),
            started_ns: 0,
            sampled: rt.next_exchange().is_multiple_of(SAMPLE_EVERY),
            verified_ns: None,
            state: State::Open,
            answered_locally: false,
            request_open: None,
            response: ResponseState::default(),
            events: Vec::new(),
        }
    }

    /// The request's headers are in. A POST with a body is held until the body is complete; a GET
    /// or DELETE (a Streamable HTTP session's stream or end) is decided here.
    pub fn on_request_headers(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        end_of_stream: bool,
    ) -> Step {
        let received = match host.request_headers() {
            Ok(received) => received,
            Err(name) => {
                // Decoding it lossily would let the policy see other bytes than the tool server.
                let denial = Denial::envelope(
                    ErrorCode::InvalidRequest,
                    format!("request header {name} is not valid UTF-8"),
                );
                return self.respond(400, jsonrpc::error_body(None, &denial));
            }
        };
        let find = |name: &str| {
            received
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let method = find(":method").unwrap_or_default();
        let declared = find("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        self.head = Head {
            authorization: find(headers::AUTHORIZATION),
            tenant: find(headers::TENANT),
            prompt: find(headers::INTENT_PROMPT),
            approval_id: find(headers::APPROVAL_ID).filter(|id| !id.trim().is_empty()),
            routing: RoutingHeaders::read(received.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        };
        self.ctx = RequestContext {
            http_method: method.clone(),
            path: find(":path").unwrap_or_default(),
            remote_ip: String::new(),
            session_id: find(headers::MCP_SESSION_ID).unwrap_or_default(),
            memory_provenance: find(headers::MEMORY_PROVENANCE),
            headers: policy_headers(received.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            now_ms: 0,
        };
        // The tool server never sees them; only those sent are removed (each removal is a call).
        let mut edits: Vec<Edit> = headers::GATEWAY_ONLY
            .iter()
            .filter(|name| received.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|name| Edit::Header {
                side: Side::Request,
                name,
                value: None,
            })
            .collect();
        if let Some(answer) = resource_server::metadata_answer(
            rt.settings.protected_resource.as_ref(),
            &method,
            &self.ctx.path,
        ) {
            return self.answer_metadata(answer);
        }
        let step = match method.as_str() {
            "POST" if end_of_stream => self.decide_body(rt, host, Vec::new()),
            "POST" if declared > MAX_BODY_BYTES => {
                self.begin(rt, host);
                self.decide_now(rt, host, |env| exchange::decide_oversized(env, declared))
            }
            "POST" => {
                self.request_open = Some(0);
                if rt.settings.hold_headers {
                    // Held until the whole body is in and decided.
                    Step::pause()
                } else {
                    // Without Envoy's allow_on_headers_stop_iteration (Istio's WasmPlugin cannot
                    // set it), the headers go on now and the body is held instead. The length
                    // goes, so a reduced batch can still be sent; a refused call is answered
                    // locally and Envoy resets the upstream request before any body reached it.
                    edits.push(Edit::Header {
                        side: Side::Request,
                        name: "content-length",
                        value: None,
                    });
                    Step::go()
                }
            }
            "GET" | "DELETE" => {
                self.begin(rt, host);
                self.decide_now(rt, host, |env| exchange::decide_bodyless(env, &method))
            }
            other => {
                let reason = format!("HTTP method {other} is not served; use POST, GET or DELETE");
                let denial = Denial::envelope(ErrorCode::InvalidRequest, reason);
                let mut answer = LocalAnswer::new(405, jsonrpc::error_body(None, &denial));
                // RFC 9110 requires a 405 to name the methods served.
                answer
                    .headers
                    .push(("allow", "GET, POST, DELETE".to_owned()));
                self.answer_locally(answer)
            }
        };
        step.after(edits)
    }

    /// A chunk of the request body; `size` is all of it buffered so far.
    pub fn on_request_body(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Step {
        self.request_open = None;
        if self.answered_locally || !matches!(self.state, State::Open) {
            return Step::pause();
        }
        if size > MAX_BODY_BYTES {
            self.begin(rt, host);
            return self.decide_now(rt, host, |env| exchange::decide_oversized(env, size));
        }
        if !end_of_stream {
            self.request_open = Some(size);
            return Step::pause();
        }
        let body = host.request_body(size).unwrap_or_default();
        self.decide_body(rt, host, body)
    }

    /// Trailers end a request whose last data frame did not (HTTP/2): the held body is decided
    /// here, exactly as at its end. Continuing would release it unchecked.
    pub fn on_request_trailers(&mut self, rt: &Runtime, host: &mut dyn Host) -> Step {
        match self.request_open {
            Some(size) => self.on_request_body(rt, host, size, true),
            None if self.answered_locally || !matches!(self.state, State::Decided) => Step::pause(),
            None => Step::go(),
        }
    }

    /// The answer to a callout this exchange made. [`Outcome::Continue`] resumes the request.
    pub fn on_answer(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        call: CallId,
        answer: Answer,
    ) -> Step {
        match std::mem::replace(&mut self.state, State::Decided) {
            State::Waiting(waiting) => self.on_wait_answer(rt, host, *waiting, call, answer),
            State::Approval(flow) => self.on_approval_answer(rt, host, *flow, call, answer),
            other => {
                self.state = other;
                Step::pause()
            }
        }
    }

    /// The stream is over: its audit events go to the runtime, with the upstream's status. A call
    /// still waiting for a human is abandoned.
    pub fn on_end(&mut self, rt: &Runtime) {
        self.abandon(rt);
        let status = self.response.upstream_status;
        for mut event in self.events.drain(..) {
            if event.decision == AuditDecision::Allow && !self.answered_locally {
                event.upstream_status = status;
            }
            rt.audit.push(&event, &rt.metrics);
        }
    }

    /// The decision's clock: the time, the peer and the token, read in the callback that decides.
    fn begin(&mut self, rt: &Runtime, host: &mut dyn Host) {
        self.started_ns = host.now_ns();
        self.ctx.now_ms = now_ms(self.started_ns);
        self.ctx.remote_ip = host.source_address();
        self.authenticate(rt);
        if self.sampled {
            let verified_ns = host.now_ns();
            rt.metrics
                .record(Metric::VerifyUs, micros(self.started_ns, verified_ns));
            self.verified_ns = Some(verified_ns);
        }
    }

    /// The capability check of the request as a whole, against the gateway this exchange uses.
    /// A token bound to a resource is refused for any other when the gateway knows its own.
    fn authenticate(&mut self, rt: &Runtime) {
        self.auth = self
            .gateway
            .authenticate(
                &mut SharedTokens(&rt.tokens),
                self.head.authorization.as_deref(),
                self.head.tenant.as_deref(),
                self.ctx.now_secs(),
            )
            .and_then(|token| match &rt.settings.protected_resource {
                Some(resource) => resource.admits(&token, &self.ctx.path).map(|()| token),
                None => Ok(token),
            });
    }

    /// A complete body, in the callback where it completed: parsed once, then decided at once or
    /// held for what it waits for.
    fn decide_body(&mut self, rt: &Runtime, host: &mut dyn Host, body: Vec<u8>) -> Step {
        self.begin(rt, host);
        self.state = State::Decided;
        let message = match jsonrpc::parse(&body) {
            Ok(message) => message,
            Err(denial) => {
                return self.decide_now(rt, host, |env| exchange::decide_unparsable(env, denial));
            }
        };
        // Part of the envelope: checked before the token, like the body's own shape.
        if let Err(reason) = self.head.routing.check(&message) {
            return self.decide_now(rt, host, |env| {
                exchange::decide_header_mismatch(env, &message, reason)
            });
        }
        let planned = exchange::plans(&message, &self.auth);
        let evaluations = exchange::evaluations(&planned);
        let intent = if evaluations > 0 {
            self.intent_for(rt)
        } else {
            Some(IntentSource::NotDeclared)
        };
        // The usual way: nothing to wait for, decided in this callback on this one parse.
        if self.head.approval_id.is_none()
            && !self.needs_leases(rt, evaluations)
            && let Some(intent) = &intent
        {
            let disposition = self.with_env(rt, host, None, |env| {
                exchange::decide_planned(env, &message, planned, &body, intent)
            });
            return self.decided_body(rt, host, disposition, &body, intent, true);
        }
        drop(planned);
        drop(message);
        let asks_extractor = intent.is_none();
        let mut waiting = Waiting::new(body, intent, evaluations);
        if asks_extractor {
            self.ask_extractor(rt, host, &mut waiting);
        }
        self.advance(rt, host, waiting)
    }

    /// Runs one whole-request decision now (no body to hold) and carries it out.
    fn decide_now(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        decide: impl FnOnce(&mut Env<'_>) -> Disposition,
    ) -> Step {
        self.state = State::Decided;
        let disposition = self.with_env(rt, host, None, decide);
        self.decided_body(rt, host, disposition, b"", &IntentSource::NotDeclared, true)
    }

    /// Decides a parsed body; `approved` sets aside the escalation of a rule a human approved.
    #[allow(clippy::too_many_arguments)]
    fn decide_message(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        message: &Message<'_>,
        body: &[u8],
        intent: &IntentSource,
        approved: Option<&Option<String>>,
        in_callback: bool,
    ) -> Step {
        let disposition = self.with_env(rt, host, approved, |env| {
            exchange::decide_message(env, message, body, intent)
        });
        let mut disposition = disposition;
        if approved.is_some() && disposition.action == Action::Escalate {
            // Another rule escalating now is denied: one approval lets one escalation through.
            let rule = disposition
                .escalations
                .first()
                .and_then(|e| e.escalation.rule.clone());
            let denial = Denial::policy(
                "escalated again after its approval (by another rule); ask for a new approval",
                rule,
            );
            disposition.deny_escalations(body, &denial);
        }
        self.decided_body(rt, host, disposition, body, intent, in_callback)
    }

    /// Decides a body that was held: parsed again (the held bytes outlive no parse).
    fn decide_held(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        body: &[u8],
        intent: &IntentSource,
        approved: Option<&Option<String>>,
    ) -> Step {
        match jsonrpc::parse(body) {
            Ok(message) => self.decide_message(rt, host, &message, body, intent, approved, false),
            Err(denial) => {
                self.decide_now(rt, host, |env| exchange::decide_unparsable(env, denial))
            }
        }
    }

    /// Runs `decide` with the runtime's facilities.
    fn with_env<T>(
        &self,
        rt: &Runtime,
        host: &mut dyn Host,
        approved: Option<&Option<String>>,
        decide: impl FnOnce(&mut Env<'_>) -> T,
    ) -> T {
        let budget = EngineBudget {
            rt,
            host: RefCell::new(host),
            now_ms: self.ctx.now_ms,
        };
        let now_ms = self.ctx.now_ms;
        let mut next_id = || rt.next_id(now_ms);
        let mut env = Env {
            gateway: &self.gateway,
            ctx: &self.ctx,
            auth: &self.auth,
            budget: &budget,
            next_id: &mut next_id,
            approvals: rt.settings.control_plane.is_some(),
            approved_rule: approved,
        };
        decide(&mut env)
    }

    /// Stamps a decision's latency (the clock's second read in the deciding callback) and records
    /// a sampled exchange's timings, then carries the decision out.
    fn decided_body(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        mut disposition: Disposition,
        body: &[u8],
        intent: &IntentSource,
        in_callback: bool,
    ) -> Step {
        let end_ns = host.now_ns();
        disposition.stamp_latency(end_ns.saturating_sub(self.started_ns) as f64 / 1e6);
        if let (true, Some(verified_ns)) = (in_callback, self.verified_ns.take()) {
            rt.metrics
                .record(Metric::EvalUs, micros(verified_ns, end_ns));
            rt.metrics
                .record(Metric::FilterUs, micros(self.started_ns, end_ns));
        }
        self.carry_out(rt, host, disposition, body, intent)
    }

    /// Forwards, forwards a reduced body, answers, or starts asking for approvals.
    fn carry_out(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        mut disposition: Disposition,
        body: &[u8],
        intent: &IntentSource,
    ) -> Step {
        if disposition.action == Action::Escalate {
            return self.escalate(rt, host, disposition, body, intent);
        }
        self.record(rt, &mut disposition);
        self.state = State::Decided;
        match disposition.action {
            Action::Forward => {
                self.response.plan = disposition.response;
                Step::go()
            }
            Action::ForwardBody(reduced) => {
                let mut edits = Vec::with_capacity(2);
                if rt.settings.hold_headers {
                    edits.push(Edit::Header {
                        side: Side::Request,
                        name: "content-length",
                        value: Some(reduced.len().to_string()),
                    });
                }
                edits.push(Edit::Body {
                    side: Side::Request,
                    size: body.len(),
                    body: reduced,
                });
                self.response.plan = disposition.response;
                Step::go().after(edits)
            }
            Action::Respond { status: 401, body } => {
                let mut answer = LocalAnswer::new(401, body);
                answer
                    .headers
                    .push(("www-authenticate", self.challenge(rt)));
                self.answered_locally = true;
                Step::answer(answer)
            }
            Action::Respond { status, body } => self.respond(status, body),
            Action::Escalate => self.fail_closed(host),
        }
    }

    /// Counts and keeps a decision's audit events (they go to the runtime when the stream ends).
    fn record(&mut self, rt: &Runtime, disposition: &mut Disposition) {
        for event in &disposition.events {
            rt.metrics.decision(event);
        }
        self.events.append(&mut disposition.events);
    }

    /// The `WWW-Authenticate` value of a 401: where the resource's metadata is, and whether the
    /// token sent was refused or none was sent.
    fn challenge(&self, rt: &Runtime) -> String {
        let Some(resource) = &rt.settings.protected_resource else {
            return resource_server::BARE_CHALLENGE.to_owned();
        };
        let why = if self.head.authorization.is_some() {
            Challenge::InvalidToken
        } else {
            Challenge::Missing
        };
        resource.challenge(&self.ctx.path, why)
    }

    /// A metadata request, answered here: it needs no token and is not a tool-server exchange.
    fn answer_metadata(&mut self, answer: MetadataAnswer) -> Step {
        let answer = match answer {
            MetadataAnswer::Document(document) => {
                let mut answer = LocalAnswer::new(200, document);
                answer
                    .headers
                    .push(("cache-control", "public, max-age=300".to_owned()));
                answer
            }
            MetadataAnswer::Unknown => LocalAnswer::new(404, String::new()),
            MetadataAnswer::MethodNotAllowed => {
                let mut answer = LocalAnswer::new(405, String::new());
                answer.headers.push(("allow", "GET, HEAD".to_owned()));
                answer
            }
        };
        self.answer_locally(answer)
    }

    fn respond(&mut self, status: u16, body: String) -> Step {
        self.answer_locally(LocalAnswer::new(status, body))
    }

    fn answer_locally(&mut self, answer: LocalAnswer) -> Step {
        self.answered_locally = true;
        self.state = State::Decided;
        Step::answer(answer)
    }

    /// Something the engine itself needs is missing: refuse rather than forward unchecked.
    fn fail_closed(&mut self, host: &mut dyn Host) -> Step {
        host.log(
            Level::Error,
            "intentgate: internal state unavailable, refusing request",
        );
        self.answered_locally = true;
        self.state = State::Decided;
        Step {
            edits: Vec::new(),
            outcome: Outcome::Respond(LocalAnswer::unavailable("gateway state unavailable")),
        }
    }
}
