//! Calls waiting for a human (SPEC §4). An escalation is sent to the control plane, which keeps the
//! approval and writes the `escalate` event to the chain at once. A lone call of a synchronous tenant
//! is then held until a human decides or the tenant's timeout passes; anything else is answered
//! -32019 with the approval id. An approved call uses its approval once and runs the whole pipeline
//! again, on the state in force now, with that one escalation set aside.

use std::collections::HashMap;

use intentgate_proto::v1::{self, approval_status::State as Decision};
use prost::Message as _;

use super::{State, Stream, now_ms};
use crate::config::{ApprovalMode, TenantSettings};
use crate::decision::Denial;
use crate::engine::endings::Ending;
use crate::engine::host::{Answer, CallId, Host, Rpc, Step};
use crate::engine::runtime::Runtime;
use crate::exchange::{self, Disposition};
use crate::intent::IntentSource;

/// Longest single wait asked of the control plane; the engine asks again until the tenant's timeout.
pub const WAIT_SLICE_MS: u64 = 30_000;

/// A request waiting on the approval service.
#[derive(Debug)]
pub(super) struct Approval {
    stage: Stage,
    body: Vec<u8>,
    intent: IntentSource,
}

#[derive(Debug)]
enum Stage {
    /// Approvals being created: the call of each, by escalation index.
    Creating {
        disposition: Box<Disposition>,
        calls: HashMap<CallId, usize>,
        ids: Vec<Option<String>>,
    },
    /// A held call waiting for the decision on approval `id`.
    Waiting {
        call: CallId,
        id: String,
        deadline_ms: i64,
    },
    /// Using approval `id` for the call.
    Using { call: CallId, id: String },
}

fn refusal(reason: String) -> Denial {
    Denial::policy(reason, None)
}

impl Stream {
    fn call_approvals(
        &self,
        rt: &Runtime,
        host: &mut dyn Host,
        rpc: Rpc,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<CallId> {
        let config = rt.settings.control_plane.as_ref()?;
        host.grpc_call(config, rpc, message, timeout_ms)
    }

    fn call_timeout_ms(rt: &Runtime) -> u64 {
        rt.settings
            .control_plane
            .as_ref()
            .map_or(5_000, |c| c.call_timeout_ms)
    }

    /// Sends every escalation of `disposition` to the control plane.
    pub(super) fn escalate(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        disposition: Disposition,
        body: &[u8],
        intent: &IntentSource,
    ) -> Step {
        let mut calls = HashMap::new();
        // A held call's approval ends with its hold; a parked one lives on for the agent's retry.
        let hold_ms = if disposition.holds(self.synchronous()) {
            self.approval_timeout_ms()
        } else {
            0
        };
        for (index, escalated) in disposition.escalations.iter().enumerate() {
            let Some(event) = disposition.events.get(escalated.event) else {
                continue;
            };
            let request = v1::ApprovalRequest {
                filter_id: rt.filter_id().to_owned(),
                event_json: serde_json::to_string(event).unwrap_or_default(),
                arguments_json: escalated.arguments.clone(),
                arguments_sha256: escalated.arguments_digest(),
                hold_ms,
            };
            if let Some(call) = self.call_approvals(
                rt,
                host,
                Rpc::CreateApproval,
                &request.encode_to_vec(),
                Self::call_timeout_ms(rt),
            ) {
                calls.insert(call, index);
            }
        }
        let count = disposition.escalations.len();
        self.settle_creation(
            rt,
            host,
            Approval {
                stage: Stage::Creating {
                    disposition: Box::new(disposition),
                    calls,
                    ids: vec![None; count],
                },
                body: body.to_vec(),
                intent: intent.clone(),
            },
        )
    }

    /// Once every approval exists (or failed to), holds the lone call or parks the rest.
    fn settle_creation(&mut self, rt: &Runtime, host: &mut dyn Host, flow: Approval) -> Step {
        let Approval {
            stage:
                Stage::Creating {
                    mut disposition,
                    calls,
                    ids,
                },
            body,
            intent,
        } = flow
        else {
            return self.fail_closed(host);
        };
        if !calls.is_empty() {
            self.state = State::Approval(Box::new(Approval {
                stage: Stage::Creating {
                    disposition,
                    calls,
                    ids,
                },
                body,
                intent,
            }));
            return Step::pause();
        }
        let Some(ids) = ids.into_iter().collect::<Option<Vec<String>>>() else {
            // An approval could not be created: nobody can decide, so the calls are denied.
            let denial = refusal(
                "escalated for human approval, but the approval service is unavailable".into(),
            );
            disposition.deny_escalations(&body, &denial);
            return self.carry_out(rt, host, *disposition, &body, &intent);
        };
        if disposition.holds(self.synchronous()) {
            disposition.set_pending(&ids);
            self.record(rt, &mut disposition);
            let Some(id) = ids.into_iter().next() else {
                return self.fail_closed(host);
            };
            let timeout_ms = i64::try_from(self.approval_timeout_ms()).unwrap_or(i64::MAX);
            let deadline_ms = now_ms(host.now_ns()).saturating_add(timeout_ms);
            return self.wait(
                rt,
                host,
                Approval {
                    stage: Stage::Waiting {
                        call: 0,
                        id,
                        deadline_ms,
                    },
                    body,
                    intent,
                },
            );
        }
        disposition.park(&body, &ids);
        self.carry_out(rt, host, *disposition, &body, &intent)
    }

    /// The settings of the caller's tenant; `None` without a verified token.
    fn tenant_settings(&self) -> Option<&TenantSettings> {
        let token = self.auth.as_ref().ok()?;
        self.gateway.tenant(&token.tenant).map(|t| &t.settings)
    }

    /// Whether the caller's tenant holds a lone escalated call until a human decides.
    fn synchronous(&self) -> bool {
        self.tenant_settings()
            .is_none_or(|s| s.approval_mode == ApprovalMode::Sync)
    }

    fn tenant(&self) -> String {
        self.auth
            .as_ref()
            .map(|t| t.tenant.clone())
            .unwrap_or_default()
    }

    fn approval_timeout_ms(&self) -> u64 {
        self.tenant_settings()
            .map_or_else(
                || TenantSettings::default().approval_timeout_secs,
                |s| s.approval_timeout_secs,
            )
            .saturating_mul(1000)
    }

    /// Asks for the decision, waiting at most until the deadline.
    fn wait(&mut self, rt: &Runtime, host: &mut dyn Host, flow: Approval) -> Step {
        let Approval {
            stage: Stage::Waiting {
                id, deadline_ms, ..
            },
            body,
            intent,
        } = flow
        else {
            return self.fail_closed(host);
        };
        let left = u64::try_from(deadline_ms.saturating_sub(now_ms(host.now_ns()))).unwrap_or(0);
        if left == 0 {
            let reason = format!(
                "approval {id} was not decided within {} s",
                self.approval_timeout_ms() / 1000
            );
            let step = self.refuse(rt, host, &body, &intent, refusal(reason));
            // The denial just recorded is the call's end: it goes to the control plane with the
            // approval's ending, which records both at once.
            if let Some(event) = self.events.pop() {
                rt.end_approval(id, self.tenant(), Ending::TimedOut, event);
            }
            return step;
        }
        let wait_ms = left.min(WAIT_SLICE_MS);
        let request = v1::AwaitApprovalRequest {
            id: id.clone(),
            tenant: self.tenant(),
            wait_ms: u32::try_from(wait_ms).unwrap_or(u32::MAX),
        };
        let Some(call) = self.call_approvals(
            rt,
            host,
            Rpc::AwaitApproval,
            &request.encode_to_vec(),
            wait_ms + Self::call_timeout_ms(rt),
        ) else {
            return self.unavailable(rt, host, &body, &intent, &id);
        };
        self.state = State::Approval(Box::new(Approval {
            stage: Stage::Waiting {
                call,
                id,
                deadline_ms,
            },
            body,
            intent,
        }));
        Step::pause()
    }

    /// A presented `X-IntentGate-Approval-Id` (or a held call's approval once approved): use it
    /// once.
    pub(super) fn use_presented_approval(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        id: String,
        body: Vec<u8>,
        intent: IntentSource,
    ) -> Step {
        let (Ok(token), Some((tool, digest))) = (self.auth.clone(), exchange::lone_call(&body))
        else {
            // Not one authenticated tools/call: decide it as it is, without the approval.
            return self.decide_held(rt, host, &body, &intent, None);
        };
        let request = v1::UseApprovalRequest {
            id: id.clone(),
            tenant: token.tenant.clone(),
            agent_id: token.subject.clone(),
            tool,
            arguments_sha256: digest,
        };
        let Some(call) = self.call_approvals(
            rt,
            host,
            Rpc::UseApproval,
            &request.encode_to_vec(),
            Self::call_timeout_ms(rt),
        ) else {
            return self.unavailable(rt, host, &body, &intent, &id);
        };
        self.state = State::Approval(Box::new(Approval {
            stage: Stage::Using { call, id },
            body,
            intent,
        }));
        Step::pause()
    }

    /// The approval service's answers.
    pub(super) fn on_approval_answer(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        flow: Approval,
        call: CallId,
        answer: Answer,
    ) -> Step {
        let message = match answer {
            Answer::Grpc { status: 0, message } => Some(message),
            _ => None,
        };
        match flow.stage {
            Stage::Creating {
                disposition,
                mut calls,
                mut ids,
            } => {
                if let Some(index) = calls.remove(&call)
                    && let Some(created) =
                        message.and_then(|m| v1::ApprovalCreated::decode(m.as_slice()).ok())
                    && let Some(slot) = ids.get_mut(index)
                {
                    *slot = Some(created.id);
                }
                self.settle_creation(
                    rt,
                    host,
                    Approval {
                        stage: Stage::Creating {
                            disposition,
                            calls,
                            ids,
                        },
                        ..flow
                    },
                )
            }
            Stage::Waiting {
                call: waiting,
                id,
                deadline_ms,
            } if waiting == call => {
                let Some(status) =
                    message.and_then(|m| v1::ApprovalStatus::decode(m.as_slice()).ok())
                else {
                    return self.unavailable(rt, host, &flow.body, &flow.intent, &id);
                };
                match Decision::try_from(status.state) {
                    Ok(Decision::Approved) => {
                        self.use_presented_approval(rt, host, id, flow.body, flow.intent)
                    }
                    Ok(Decision::Rejected) => {
                        let reason = format!(
                            "approval {id} rejected by {}: {}",
                            status.decided_by, status.reason
                        );
                        self.refuse(rt, host, &flow.body, &flow.intent, refusal(reason))
                    }
                    // The control plane ended it (and recorded how): nobody can use it now.
                    Ok(Decision::Ended) => {
                        let reason = format!("approval {id} ended: {}", status.reason);
                        self.refuse(rt, host, &flow.body, &flow.intent, refusal(reason))
                    }
                    _ => self.wait(
                        rt,
                        host,
                        Approval {
                            stage: Stage::Waiting {
                                call: 0,
                                id,
                                deadline_ms,
                            },
                            ..flow
                        },
                    ),
                }
            }
            Stage::Using { call: using, id } if using == call => {
                match message.and_then(|m| v1::ApprovalUse::decode(m.as_slice()).ok()) {
                    Some(used) if used.granted => {
                        // The whole pipeline again, on the state in force now (a token revoked or a
                        // policy changed meanwhile still denies), the approved escalation set aside.
                        self.gateway = rt.gateway();
                        self.authenticate(rt);
                        let rule =
                            (!used.escalating_rule.is_empty()).then_some(used.escalating_rule);
                        self.hold_approved(rt, host, flow.body, flow.intent, rule)
                    }
                    Some(used) => {
                        let reason = format!("approval {id} refused: {}", used.refusal);
                        self.refuse(rt, host, &flow.body, &flow.intent, refusal(reason))
                    }
                    None => self.unavailable(rt, host, &flow.body, &flow.intent, &id),
                }
            }
            stage => {
                self.state = State::Approval(Box::new(Approval { stage, ..flow }));
                Step::pause()
            }
        }
    }

    /// The stream ended while its call waited for a human: the approval is abandoned, with an event
    /// saying so (nothing was answered: the client is gone).
    pub(super) fn abandon(&mut self, rt: &Runtime) {
        let State::Approval(flow) = &self.state else {
            return;
        };
        let Stage::Waiting { id, .. } = &flow.stage else {
            return;
        };
        let reason = format!("approval {id} abandoned: the client went away before it was decided");
        let (mut event, _) = exchange::held_call_event(
            String::new(),
            &self.ctx,
            self.auth.as_deref().ok(),
            &flow.body,
            &flow.intent,
            &refusal(reason),
        );
        event.error_code = 0;
        rt.metrics.decision(&event);
        rt.end_approval(id.clone(), self.tenant(), Ending::Abandoned, event);
        self.state = State::Decided;
    }

    /// The approval service could not be reached: nobody can approve, so the call is denied.
    fn unavailable(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        body: &[u8],
        intent: &IntentSource,
        id: &str,
    ) -> Step {
        let reason = format!("approval {id}: the approval service is unavailable");
        self.refuse(rt, host, body, intent, refusal(reason))
    }

    /// Answers the call with a policy denial (rejected, timed out, refused, or unavailable).
    fn refuse(
        &mut self,
        rt: &Runtime,
        host: &mut dyn Host,
        body: &[u8],
        intent: &IntentSource,
        denial: Denial,
    ) -> Step {
        let disposition = self.with_env(rt, host, None, |env| {
            exchange::refuse(env, body, intent, denial)
        });
        self.decided_body(rt, host, disposition, body, intent, false)
    }
}
