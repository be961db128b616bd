//! A complete body held before it is decided: until the intent extractor answers (a prompt not in
//! the runtime's cache), and, with a control plane, until the budget leases its calls need are
//! granted, so the budget check itself never waits. A failed extractor call makes intent
//! unavailable (the intent check fails closed); a failed lease call leaves the counter without a
//! lease (the budget check fails closed).

use std::collections::HashMap;

use intentgate_proto::v1;
use prost::Message as _;

use super::{State, Stream};
use crate::budget::calls_key;
use crate::budget::lease::Lease;
use crate::engine::host::{Answer, CallId, Host, HttpCallout, Rpc, Step};
use crate::engine::lock;
use crate::engine::runtime::Runtime;
use crate::intent::IntentSource;
use crate::intent::external;
use crate::jsonrpc;

/// A lease request on its way: the counter it is for and its limit.
#[derive(Debug)]
struct PendingLease {
    counter: String,
    limit: u64,
}

#[derive(Debug)]
pub(super) struct Waiting {
    body: Vec<u8>,
    /// `None` while the extractor has not answered.
    intent: Option<IntentSource>,
    extractor: Option<CallId>,
    /// Calls of the body to be evaluated: the calls each lease must cover.
    evaluations: usize,
    leases: HashMap<CallId, PendingLease>,
    /// Whether the leases this body needs were asked for (once).
    asked: bool,
    /// Leases granted for this body, added to the runtime's pool when it is decided, in the same
    /// callback, so no other exchange takes them first.
    granted: Vec<(String, Lease)>,
    /// A call a human approved: the escalating rule the approval sets aside.
    pub(super) approved: Option<Option<String>>,
}

impl Waiting {
    pub(super) fn new(body: Vec<u8>, intent: Option<IntentSource>, evaluations: usize) -> Self {
        Waiting {
            body,
            intent,
            extractor: None,
            evaluations,
            leases: HashMap::new(),
            asked: false,
            granted: Vec::new(),
            approved: None,
        }
    }
}

impl Stream {
    /// The intent of this request's prompt when it is known now; `None` when the extractor must be
    /// asked.
    pub(super) fn intent_for(&self, rt: &Runtime) -> Option<IntentSource> {
        let Some(prompt) = self.head.prompt.as_deref() else {
            return Some(IntentSource::NotDeclared);
        };
        let token = self.auth.as_ref().ok();
        if rt.settings.intent_extractor.is_none() {
            let tenant = token.map_or("", |t| t.tenant.as_str());
            return Some(self.gateway.builtin_intent(tenant, Some(prompt)));
        }
        let agent = token.map_or("", |t| t.subject.as_str());
        let key = external::cache_key(agent, prompt);
        lock(&rt.intents)
            .get(&key, self.ctx.now_ms)
            .map(|intent| IntentSource::Extracted(intent.clone()))
    }

    /// Whether the token's `max_calls` counters lack live leases for `evaluations` calls.
    pub(super) fn needs_leases(&self, rt: &Runtime, evaluations: usize) -> bool {
        let (Some(_), Ok(token)) = (&rt.settings.control_plane, &self.auth) else {
            return false;
        };
        let need = evaluations as u64;
        let pool = lock(&rt.leases);
        need > 0
            && token.budgets.iter().any(|budget| {
                let counter = calls_key(&budget.counter);
                pool.available(&counter, self.ctx.now_ms) < need
                    && !pool.spent(&counter, self.ctx.now_ms)
            })
    }

    /// Asks the extractor; a call that cannot be dispatched makes intent unavailable.
    pub(super) fn ask_extractor(&self, rt: &Runtime, host: &mut dyn Host, waiting: &mut Waiting) {
        let (Some(extractor), Some(prompt)) = (&rt.settings.intent_extractor, &self.head.prompt)
        else {
            waiting.intent = Some(IntentSource::NotDeclared);
            return;
        };
        let agent = self.auth.as_ref().map_or("", |t| t.subject.as_str());
        let body = external::request_body(prompt, agent);
        let callout = HttpCallout {
            cluster: &extractor.cluster,
            path: &extractor.path,
            authority: extractor.authority(),
            body: &body,
            timeout_ms: extractor.timeout_ms,
        };
        match host.http_callout(&callout) {
            Some(call) => waiting.extractor = Some(call),
            None => {
                waiting.intent = Some(IntentSource::Unavailable(
                    "extractor call could not be dispatched".into(),
                ))
            }
        }
    }

    /// Asks the control plane for a lease of every counter whose live leases lack the calls this
    /// body needs. The leases already held stay in use.
    fn ask_leases(&self, rt: &Runtime, host: &mut dyn Host, waiting: &mut Waiting) {
        waiting.asked = true;
        let (Some(config), Ok(token)) = (&rt.settings.control_plane, &self.auth) else {
            return;
        };
        let need = waiting.evaluations as u64;
        for budget in &token.budgets {
            let counter = calls_key(&budget.counter);
            let available = {
                let pool = lock(&rt.leases);
                if pool.spent(&counter, self.ctx.now_ms) {
                    continue;
                }
                pool.available(&counter, self.ctx.now_ms)
            };
            if available >= need {
                continue;
            }
            let request = v1::LeaseRequest {
                filter_id: rt.filter_id().to_owned(),
                counter: counter.clone(),
                tenant: token.tenant.clone(),
                limit: budget.max_calls,
                want: (need - available).max(config.lease_slice),
                ..Default::default()
            };
            if let Some(call) = host.grpc_call(
                config,
                Rpc::LeaseBudget,
                &request.encode_to_vec(),
                config.call_timeout_ms,
            ) {
                waiting.leases.insert(
                    call,
                    PendingLease {
                        counter,
                        limit: budget.max_calls,
                    },
                );
            }
        }
    }

    /// Moves a held body forward: asks for the leases it needs once intent is known, and decides it
    /// when nothing is outstanding.
    pub(super) fn advance(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        mut waiting: Waiting,
    ) -> Step {
        let Some(intent) = waiting.intent.take() else {
            self.state = State::Waiting(Box::new(waiting));
            return Step::pause();
        };
        if !waiting.asked {
            self.ask_leases(rt, host, &mut waiting);
        }
        if !waiting.leases.is_empty() {
            waiting.intent = Some(intent);
            self.state = State::Waiting(Box::new(waiting));
            return Step::pause();
        }
        {
            let mut pool = lock(&rt.leases);
            for (counter, lease) in waiting.granted.drain(..) {
                pool.grant(&counter, lease);
            }
        }
        self.state = State::Decided;
        if waiting.approved.is_none()
            && let Some(id) = self.head.approval_id.take()
        {
            return self.use_presented_approval(rt, host, id, waiting.body, intent);
        }
        self.decide_held(rt, host, &waiting.body, &intent, waiting.approved.as_ref())
    }

    /// An answer while held: the extractor's, or a lease's.
    pub(super) fn on_wait_answer(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        mut waiting: Waiting,
        call: CallId,
        answer: Answer,
    ) -> Step {
        if waiting.extractor == Some(call) {
            waiting.extractor = None;
            let intent = match answer {
                Answer::Http { status, body } => external::parse_answer(status, &body),
                Answer::Grpc { .. } => external::parse_answer(None, b""),
            };
            if let (IntentSource::Extracted(found), Ok(token), Some(prompt)) =
                (&intent, &self.auth, &self.head.prompt)
            {
                lock(&rt.intents).insert(
                    external::cache_key(&token.subject, prompt),
                    found.clone(),
                    self.ctx.now_ms,
                );
            }
            waiting.intent = Some(intent);
            return self.advance(rt, host, waiting);
        }
        let Some(pending) = waiting.leases.remove(&call) else {
            self.state = State::Waiting(Box::new(waiting));
            return Step::pause();
        };
        if let Answer::Grpc { status: 0, message } = answer
            && let Ok(granted) = v1::LeaseResponse::decode(message.as_slice())
        {
            let now_ms = super::now_ms(host.now_ns());
            waiting.granted.push((
                pending.counter,
                Lease {
                    id: granted.lease_id,
                    granted: granted.granted,
                    remaining: granted.granted,
                    expires_ms: now_ms.saturating_add(i64::from(granted.ttl_ms)),
                    limit: pending.limit,
                    used: granted.used,
                },
            ));
        }
        if waiting.leases.is_empty() {
            self.advance(rt, host, waiting)
        } else {
            self.state = State::Waiting(Box::new(waiting));
            Step::pause()
        }
    }

    /// Holds an approved call's body again, through the lease step: the lease taken before a held
    /// call escalated has usually ended by the time a human decides, and without one the budget
    /// check fails closed.
    pub(super) fn hold_approved(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        body: Vec<u8>,
        intent: IntentSource,
        rule: Option<String>,
    ) -> Step {
        let evaluations = match jsonrpc::parse(&body) {
            Ok(message) => {
                crate::exchange::evaluations(&crate::exchange::plans(&message, &self.auth))
            }
            Err(_) => 0,
        };
        let mut waiting = Waiting::new(body, Some(intent), evaluations);
        waiting.approved = Some(rule);
        self.advance(rt, host, waiting)
    }
}
