//! One HTTP exchange: collects what the core needs, lets it decide, and carries out the disposition
//! (forward, forward a rewritten body, answer locally), then rewrites the upstream's answer when the
//! plan says so. Audit events are written when the stream ends, with the upstream status.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use intentgate_core::audit::AuditEvent;
use intentgate_core::budget::lease::Lease;
use intentgate_core::config::Gateway;
use intentgate_core::decision::{Denial, ErrorCode};
use intentgate_core::exchange::{self, Action, Disposition, Env, ResponsePlan};
use intentgate_core::intent::IntentSource;
use intentgate_core::intent::external;
use intentgate_core::jsonrpc::{self, MAX_BODY_BYTES};
use intentgate_core::pipeline::{RequestContext, policy_headers};
use intentgate_core::token::VerifiedToken;
use intentgate_core::{headers, ids};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as Flow, BufferType, LogLevel};

mod approval;

use crate::budget::FilterBudget;
use crate::leases::{self, Pending};
use crate::root::Shared;
use crate::{audit, host};

const JSON: &str = "application/json";

/// What happens to the upstream's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    PassThrough,
    Rewrite,
    /// The upstream failed with this status: answer -32603 instead.
    UpstreamFailure(u16),
}

/// A body waiting for the external extractor or for budget leases before it is decided.
struct Waiting {
    body: Vec<u8>,
    /// `None` while the extractor has not answered.
    intent: Option<IntentSource>,
    leases: HashMap<u32, Pending>,
    /// Whether the leases this body needs were asked for (once).
    asked: bool,
    /// Leases granted for this body, added to the pool when it is decided.
    granted: Vec<(String, Lease)>,
    /// Set when this is a call a human approved: the escalating rule the approval sets aside.
    approved: Option<Option<String>>,
}

pub struct Http {
    shared: Rc<Shared>,
    gateway: Option<Arc<Gateway>>,
    started_ns: u64,
    /// Time spent in this exchange's callbacks so far.
    busy_ns: u64,
    ctx: RequestContext,
    prompt: Option<String>,
    auth: Result<Arc<VerifiedToken>, Denial>,
    waiting: Option<Waiting>,
    /// `X-IntentGate-Approval-Id`: a retry of a call a human approved.
    approval_id: Option<String>,
    approval: Option<approval::Approval>,
    /// Kept to authenticate again when an approved call runs the pipeline again.
    authorization: Option<String>,
    tenant_header: Option<String>,
    answered_locally: bool,
    /// Bytes of a request body held so far while its end has not come; `None` once decided.
    request_open: Option<usize>,
    /// The same for an upstream answer held to be rewritten.
    response_open: Option<usize>,
    plan: ResponsePlan,
    mode: ResponseMode,
    content_type: String,
    upstream_status: u16,
    events: Vec<AuditEvent>,
}

impl Http {
    pub fn new(shared: Rc<Shared>) -> Self {
        Http {
            gateway: shared.gateway(),
            shared,
            started_ns: 0,
            busy_ns: 0,
            ctx: RequestContext::default(),
            prompt: None,
            auth: Err(Denial::capability("missing bearer token")),
            waiting: None,
            approval_id: None,
            approval: None,
            authorization: None,
            tenant_header: None,
            answered_locally: false,
            request_open: None,
            response_open: None,
            plan: ResponsePlan::default(),
            mode: ResponseMode::PassThrough,
            content_type: String::new(),
            upstream_status: 0,
            events: Vec::new(),
        }
    }

    fn elapsed_ms(started_ns: u64) -> f64 {
        host::now_ns().saturating_sub(started_ns) as f64 / 1e6
    }

    fn next_id() -> String {
        let now = u64::try_from(host::now_ms()).unwrap_or(0);
        ids::ulid(now, host::random_bytes::<10>())
    }

    /// Reads the request headers into the context and takes the gateway-only ones off the request.
    /// Returns the method and the declared body length. Every header access is a host call that
    /// costs microseconds in Envoy's V8, so the headers are fetched once, as a list.
    fn read_headers(&mut self) -> Result<(String, usize), Flow> {
        let received = match host::request_headers() {
            Ok(received) => received,
            Err(name) => return Err(self.refuse_undecodable_header(&name)),
        };
        let find = |name: &str| {
            received
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let method = find(":method").unwrap_or_default();
        let authorization = find(headers::AUTHORIZATION);
        let tenant = find(headers::TENANT);
        self.prompt = find(headers::INTENT_PROMPT);
        self.approval_id = find(headers::APPROVAL_ID).filter(|id| !id.trim().is_empty());
        self.ctx = RequestContext {
            http_method: method.clone(),
            path: find(":path").unwrap_or_default(),
            remote_ip: host::source_ip(),
            session_id: find(headers::MCP_SESSION_ID).unwrap_or_default(),
            memory_provenance: find(headers::MEMORY_PROVENANCE),
            headers: policy_headers(received.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            now_ms: host::now_ms(),
        };
        // Only headers that are there: each removal is a host call.
        for name in headers::GATEWAY_ONLY {
            if received.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                host::remove_request_header(name);
            }
        }
        let declared = find("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        self.authorization = authorization;
        self.tenant_header = tenant;
        self.authenticate();
        Ok((method, declared))
    }

    /// A header value that is not UTF-8 is refused before anything reads it: decoding it lossily
    /// would let the policy see other bytes than the tool server.
    fn refuse_undecodable_header(&mut self, name: &str) -> Flow {
        let denial = Denial::envelope(
            ErrorCode::InvalidRequest,
            format!("request header {name} is not valid UTF-8"),
        );
        self.respond(400, &jsonrpc::error_body(None, &denial))
    }

    /// The capability check of the request as a whole, against the gateway this request uses.
    fn authenticate(&mut self) {
        self.auth = match (&self.gateway, self.shared.tokens.try_borrow_mut()) {
            (Some(gateway), Ok(mut cache)) => {
                let t0 = host::now_ns();
                let auth = gateway.authenticate(
                    &mut cache,
                    self.authorization.as_deref(),
                    self.tenant_header.as_deref(),
                    host::now_ms().div_euclid(1000),
                );
                self.shared
                    .metrics
                    .verify(host::now_ns().saturating_sub(t0) / 1000);
                auth
            }
            _ => Err(Denial::capability(
                "gateway state unavailable (fail closed)",
            )),
        };
    }

    /// Runs `decide` with the host's facilities. `None` when the gateway state is unavailable.
    fn with_env<T>(
        &mut self,
        approved_rule: Option<&Option<String>>,
        decide: impl FnOnce(&mut Env<'_>) -> T,
    ) -> Option<T> {
        let gateway = self.gateway.clone()?;
        let started = self.started_ns;
        let mut next_id = Self::next_id;
        let elapsed = move || Self::elapsed_ms(started);
        let budget = FilterBudget {
            leases: self
                .shared
                .config
                .control_plane
                .as_ref()
                .map(|_| &self.shared.leases),
            now_ms: host::now_ms(),
        };
        let mut env = Env {
            gateway: &gateway,
            ctx: &self.ctx,
            auth: &self.auth,
            budget: &budget,
            next_id: &mut next_id,
            elapsed_ms: &elapsed,
            approvals: self.shared.config.control_plane.is_some(),
            approved_rule,
        };
        Some(decide(&mut env))
    }

    /// Runs `decide` and carries out the result.
    fn apply(
        &mut self,
        decide: impl FnOnce(&mut Env<'_>) -> Disposition,
        body: &[u8],
        intent: &IntentSource,
    ) -> Flow {
        match self.with_env(None, decide) {
            Some(disposition) => self.carry_out(disposition, body, intent),
            None => self.fail_closed(),
        }
    }

    /// Counts and keeps a decision's audit events (they are written when the stream ends).
    fn record(&mut self, disposition: &mut Disposition) {
        for ms in &disposition.eval_ms {
            self.shared.metrics.eval((ms * 1000.0) as u64);
        }
        for event in &disposition.events {
            self.shared.metrics.decision(event);
        }
        self.events.append(&mut disposition.events);
    }

    /// Forwards, forwards a reduced body, answers, or starts waiting for approvals.
    fn carry_out(
        &mut self,
        mut disposition: Disposition,
        body: &[u8],
        intent: &IntentSource,
    ) -> Flow {
        if disposition.action == Action::Escalate {
            return self.escalate(disposition, body, intent);
        }
        self.record(&mut disposition);
        match disposition.action {
            Action::Forward => {
                self.plan = disposition.response;
                Flow::Continue
            }
            Action::ForwardBody(reduced) => {
                if !host::replace_body(BufferType::HttpRequestBody, body.len(), &reduced) {
                    return self.fail_closed();
                }
                if self.shared.config.hold_headers {
                    host::set_request_header("content-length", Some(&reduced.len().to_string()));
                }
                self.plan = disposition.response;
                Flow::Continue
            }
            Action::Respond { status, body } => self.respond(u32::from(status), &body),
            Action::Escalate => self.fail_closed(),
        }
    }

    fn respond(&mut self, status: u32, body: &str) -> Flow {
        self.answered_locally = true;
        let content_type = (!body.is_empty()).then_some(JSON);
        let extra: &[(&str, &str)] = if status == 401 {
            &[("www-authenticate", "Bearer")]
        } else {
            &[]
        };
        if !host::send_response(status, content_type, body.as_bytes(), extra) {
            host::reset_request();
        }
        Flow::Pause
    }

    /// Something the filter itself needs is missing: refuse rather than forward unchecked.
    fn fail_closed(&mut self) -> Flow {
        host::log(
            LogLevel::Error,
            "intentgate: internal state unavailable, refusing request",
        );
        self.respond(
            503,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Gateway unavailable","data":{"upstream_status":null,"detail":"gateway state unavailable"}}}"#,
        )
    }

    fn intent_for(&self, agent: &str) -> Result<IntentSource, [u8; 32]> {
        let Some(prompt) = self.prompt.as_deref() else {
            return Ok(IntentSource::NotDeclared);
        };
        match (&self.shared.config.intent_extractor, &self.gateway) {
            (None, Some(gateway)) => {
                let tenant = self.auth.as_ref().map(|t| t.tenant.as_str()).unwrap_or("");
                Ok(gateway.builtin_intent(tenant, Some(prompt)))
            }
            (None, None) => Ok(IntentSource::Unavailable(
                "gateway state unavailable".into(),
            )),
            (Some(_), _) => {
                let key = external::cache_key(agent, prompt);
                match self.shared.intents.try_borrow() {
                    Ok(cache) => match cache.get(&key, self.ctx.now_ms) {
                        Some(intent) => Ok(IntentSource::Extracted(intent.clone())),
                        None => Err(key),
                    },
                    Err(_) => Err(key),
                }
            }
        }
    }

    /// Asks the external extractor; `false` if the call could not even be dispatched.
    fn dispatch_extractor(&mut self, agent: &str) -> bool {
        let (Some(extractor), Some(prompt)) = (&self.shared.config.intent_extractor, &self.prompt)
        else {
            return false;
        };
        let headers = vec![
            (":method", "POST"),
            (":path", extractor.path.as_str()),
            (":authority", extractor.authority()),
            ("content-type", JSON),
        ];
        let body = external::request_body(prompt, agent);
        host::dispatch_http_call(&extractor.cluster, headers, &body, extractor.timeout()).is_ok()
    }

    fn decide_body(&mut self, body: &[u8], intent: &IntentSource) -> Flow {
        if let Some(id) = self.approval_id.clone() {
            return self.use_presented_approval(id, body, intent);
        }
        self.apply(|env| exchange::decide(env, body, intent), body, intent)
    }

    /// Moves a waiting body forward: asks for the leases it needs once intent is known, and decides
    /// it when nothing is outstanding. `Flow::Pause` while something is.
    fn advance(&mut self, mut waiting: Waiting) -> Flow {
        let Some(intent) = waiting.intent.take() else {
            self.waiting = Some(waiting);
            return Flow::Pause;
        };
        if !waiting.asked
            && let (Some(config), Ok(token)) = (&self.shared.config.control_plane, &self.auth)
            && !token.budgets.is_empty()
        {
            waiting.asked = true;
            let need = exchange::evaluations(&waiting.body, &self.auth) as u64;
            waiting.leases = leases::request(&self.shared, config, token, need);
        }
        if !waiting.leases.is_empty() {
            waiting.intent = Some(intent);
            self.waiting = Some(waiting);
            return Flow::Pause;
        }
        if let Ok(mut pool) = self.shared.leases.try_borrow_mut() {
            for (counter, lease) in waiting.granted.drain(..) {
                pool.grant(&counter, lease);
            }
        }
        match waiting.approved.take() {
            Some(rule) => self.decide_approved(&waiting.body, &intent, rule),
            None => self.decide_body(&waiting.body, &intent),
        }
    }

    /// Resumes the request if deciding a waiting body let it through.
    fn resume_if(flow: Flow) {
        if flow == Flow::Continue {
            host::resume_request();
        }
    }

    fn emit_audit(&mut self) {
        let log = self.shared.config.audit_log();
        let buffer = self
            .shared
            .config
            .control_plane
            .as_ref()
            .map(|c| c.audit_buffer_events);
        for mut event in self.events.drain(..) {
            if event.decision == intentgate_core::decision::AuditDecision::Allow
                && !self.answered_locally
            {
                event.upstream_status = self.upstream_status;
            }
            audit::record(&event, log, buffer, &self.shared.metrics);
        }
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(mut waiting) = self.waiting.take() else {
            return;
        };
        let status = host::http_call_response_status();
        let answer = host::http_call_response_body(body_size.min(external::MAX_ANSWER_BYTES + 1));
        let intent = external::parse_answer(status, &answer);
        if let (IntentSource::Extracted(found), Ok(token), Ok(mut cache)) =
            (&intent, &self.auth, self.shared.intents.try_borrow_mut())
            && let Some(prompt) = &self.prompt
        {
            cache.insert(
                external::cache_key(&token.subject, prompt),
                found.clone(),
                self.ctx.now_ms,
            );
        }
        waiting.intent = Some(intent);
        Self::resume_if(self.advance(waiting));
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        if let Some(flow) = self.on_approval_response(token, status, size) {
            Self::resume_if(flow);
            return;
        }
        let Some(mut waiting) = self.waiting.take() else {
            return;
        };
        if let Some(pending) = waiting.leases.remove(&token)
            && let Some(granted) = leases::on_response(pending, status, size)
        {
            waiting.granted.push(granted);
        }
        if waiting.leases.is_empty() {
            Self::resume_if(self.advance(waiting));
        } else {
            self.waiting = Some(waiting);
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Flow {
        self.started_ns = host::now_ns();
        self.timed(|http| http.request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        self.timed(|http| http.request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Flow {
        self.timed(Self::request_trailers)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Flow {
        self.timed(|http| http.response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        self.timed(|http| http.response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Flow {
        self.timed(Self::response_trailers)
    }

    fn on_log(&mut self) {
        self.timed(Self::emit_audit);
        self.shared.metrics.filter(self.busy_ns / 1000);
    }
}

/// The exchange's callbacks, each timed by [`Http::timed`].
impl Http {
    /// Runs one callback and adds its time to the request's own cost (`intentgate.filter_us`):
    /// what the filter spent, without the time it waited for the upstream, the extractor or a human.
    fn timed<T>(&mut self, callback: impl FnOnce(&mut Self) -> T) -> T {
        let t0 = host::now_ns();
        let out = callback(self);
        self.busy_ns = self
            .busy_ns
            .saturating_add(host::now_ns().saturating_sub(t0));
        out
    }

    fn request_headers(&mut self, end_of_stream: bool) -> Flow {
        let (method, declared) = match self.read_headers() {
            Ok(read) => read,
            Err(refused) => return refused,
        };
        match method.as_str() {
            "POST" if end_of_stream => self.decide_body(b"", &IntentSource::NotDeclared),
            "POST" => {
                if declared > MAX_BODY_BYTES {
                    return self.apply(
                        |env| exchange::decide_oversized(env, declared),
                        b"",
                        &IntentSource::NotDeclared,
                    );
                }
                self.request_open = Some(0);
                if self.shared.config.hold_headers {
                    // Hold the headers until the whole body is in and decided.
                    return Flow::Pause;
                }
                // Without Envoy's allow_on_headers_stop_iteration (Istio's WasmPlugin cannot set
                // it), the headers go on now and the body is held instead. The length goes, so a
                // reduced batch can still be sent; a refused call is answered locally and Envoy
                // resets the upstream request before any of the body reached it.
                host::remove_request_header("content-length");
                Flow::Continue
            }
            "GET" | "DELETE" => self.apply(
                |env| exchange::decide_bodyless(env, &method),
                b"",
                &IntentSource::NotDeclared,
            ),
            other => {
                let reason = format!("HTTP method {other} is not served; use POST, GET or DELETE");
                let denial = Denial::envelope(ErrorCode::InvalidRequest, reason);
                self.respond(405, &jsonrpc::error_body(None, &denial))
            }
        }
    }

    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        self.request_open = None;
        if self.answered_locally {
            return Flow::Pause;
        }
        if body_size > MAX_BODY_BYTES {
            return self.apply(
                |env| exchange::decide_oversized(env, body_size),
                b"",
                &IntentSource::NotDeclared,
            );
        }
        if !end_of_stream {
            self.request_open = Some(body_size);
            return Flow::Pause;
        }
        let Some(body) = host::body(BufferType::HttpRequestBody, body_size) else {
            return self.decide_body(b"", &IntentSource::NotDeclared);
        };
        let agent = self
            .auth
            .as_ref()
            .map(|t| t.subject.clone())
            .unwrap_or_default();
        let intent = if exchange::evaluations(&body, &self.auth) > 0 {
            self.intent_for(&agent)
        } else {
            Ok(IntentSource::NotDeclared)
        };
        let intent = match intent {
            Ok(intent) => Some(intent),
            Err(_) if self.dispatch_extractor(&agent) => None,
            Err(_) => Some(IntentSource::Unavailable(
                "extractor call could not be dispatched".into(),
            )),
        };
        self.advance(Waiting {
            body,
            intent,
            leases: HashMap::new(),
            asked: false,
            granted: Vec::new(),
            approved: None,
        })
    }

    /// Trailers end a stream whose last data frame did not (HTTP/2): the held body is decided here,
    /// exactly as at its end. Continuing, the SDK's default, would release it unchecked.
    fn request_trailers(&mut self) -> Flow {
        match self.request_open {
            Some(size) => self.request_body(size, true),
            None if self.answered_locally => Flow::Pause,
            None => Flow::Continue,
        }
    }

    fn response_trailers(&mut self) -> Flow {
        match self.response_open {
            Some(size) => self.response_body(size, true),
            None => Flow::Continue,
        }
    }

    fn response_headers(&mut self, end_of_stream: bool) -> Flow {
        if self.answered_locally {
            return Flow::Continue;
        }
        self.upstream_status = host::response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if self.upstream_status >= 500 && !self.plan.forwarded_ids.is_empty() {
            self.mode = ResponseMode::UpstreamFailure(self.upstream_status);
        } else if self.plan.rewrites_body() {
            // Read only when needed: a header access is a costly host call.
            self.content_type = host::response_header("content-type").unwrap_or_default();
            self.mode = ResponseMode::Rewrite;
        } else {
            return Flow::Continue;
        }
        if end_of_stream {
            // No body will follow to rewrite (a failure, or the 202 that answers forwarded
            // notifications): what the client is owed is answered as a fresh local reply, under
            // the upstream's status when that was an error, as a rewritten body would be.
            let (status, body) = match (self.mode, &self.auth) {
                (ResponseMode::UpstreamFailure(status), _) => {
                    (200, self.plan.upstream_failure(status))
                }
                (_, Ok(token)) => (
                    if (200..300).contains(&self.upstream_status) {
                        200
                    } else {
                        u32::from(self.upstream_status)
                    },
                    self.plan
                        .rewrite(&self.content_type, b"", token)
                        .map(|b| String::from_utf8_lossy(&b).into_owned()),
                ),
                (_, Err(_)) => (200, None),
            };
            return match body {
                Some(body) if !body.is_empty() => self.respond(status, &body),
                _ => Flow::Continue,
            };
        }
        if let ResponseMode::UpstreamFailure(_) = self.mode {
            host::set_response_header(":status", Some("200"));
            host::set_response_header("content-type", Some(JSON));
        }
        self.response_open = Some(0);
        host::remove_response_header("content-length");
        Flow::Continue
    }

    fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        self.response_open = None;
        if self.mode == ResponseMode::PassThrough || self.answered_locally {
            return Flow::Continue;
        }
        if !end_of_stream {
            self.response_open = Some(body_size);
            return Flow::Pause;
        }
        let replacement = match self.mode {
            ResponseMode::UpstreamFailure(status) => {
                self.plan.upstream_failure(status).map(String::into_bytes)
            }
            _ => match (
                &self.auth,
                host::body(BufferType::HttpResponseBody, body_size),
            ) {
                (Ok(token), Some(body)) => self.plan.rewrite(&self.content_type, &body, token),
                (Ok(token), None) => self.plan.rewrite(&self.content_type, b"", token),
                (Err(_), _) => None,
            },
        };
        if let Some(replacement) = replacement
            && !host::replace_body(BufferType::HttpResponseBody, body_size, &replacement)
        {
            host::log(
                LogLevel::Error,
                "intentgate: could not rewrite the upstream answer",
            );
        }
        Flow::Continue
    }
}

/// The context when the configuration failed: every request is refused.
pub struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Flow {
        let body = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Gateway unavailable","data":{"upstream_status":null,"detail":"gateway not configured"}}}"#;
        if !host::send_response(503, Some(JSON), body, &[]) {
            host::reset_request();
        }
        Flow::Pause
    }
}
