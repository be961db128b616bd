//! Calls waiting for a human (SPEC §4). An escalation is sent to the control plane, which keeps the
//! approval and writes the `escalate` event to the chain at once. A lone call of a synchronous tenant
//! is then held until a human decides or the tenant's timeout passes; anything else is answered
//! -32019 with the approval id. An approved call uses its approval once and runs the whole pipeline
//! again, on the state in force now, with that one escalation set aside.

use std::collections::HashMap;

use intentgate_core::config::{ApprovalMode, TenantSettings};
use intentgate_core::decision::Denial;
use intentgate_core::exchange::{self, Disposition};
use intentgate_core::intent::IntentSource;
use intentgate_proto::v1::{self, approval_status::State};
use prost::Message;
use proxy_wasm::types::Action as Flow;

use super::Http;
use crate::host;

/// Longest single wait asked of the control plane; the filter asks again until the tenant's timeout.
const WAIT_SLICE_MS: u64 = 30_000;

/// A request waiting on the approval service.
pub(super) struct Approval {
    stage: Stage,
    body: Vec<u8>,
    intent: IntentSource,
}

enum Stage {
    /// Approvals being created: the call token of each, by escalation index.
    Creating {
        // Boxed: the disposition dwarfs the other stages.
        disposition: Box<Disposition>,
        calls: HashMap<u32, usize>,
        ids: Vec<Option<String>>,
    },
    /// A held call waiting for the decision on approval `id`.
    Waiting {
        call: u32,
        id: String,
        deadline_ms: i64,
    },
    /// Using approval `id` for the call.
    Using { call: u32, id: String },
}

fn refusal(reason: String, rule: Option<String>) -> Denial {
    Denial::policy(reason, rule)
}

impl Http {
    fn control_plane_call(&self, method: &str, message: &[u8], timeout_ms: u64) -> Option<u32> {
        let config = self.shared.config.control_plane.as_ref()?;
        host::dispatch_grpc_call(
            &config.cluster,
            method,
            message,
            std::time::Duration::from_millis(timeout_ms),
            config.metadata().as_deref(),
        )
        .ok()
    }

    fn call_timeout_ms(&self) -> u64 {
        self.shared
            .config
            .control_plane
            .as_ref()
            .map_or(5_000, |c| c.call_timeout_ms)
    }

    /// Sends every escalation of `disposition` to the control plane.
    pub(super) fn escalate(
        &mut self,
        disposition: Disposition,
        body: &[u8],
        intent: &IntentSource,
    ) -> Flow {
        let mut calls = HashMap::new();
        for (index, escalated) in disposition.escalations.iter().enumerate() {
            let Some(event) = disposition.events.get(escalated.event) else {
                continue;
            };
            let request = v1::ApprovalRequest {
                filter_id: self.shared.filter_id.clone(),
                event_json: serde_json::to_string(event).unwrap_or_default(),
                arguments_json: escalated.arguments.clone(),
                arguments_sha256: escalated.arguments_digest(),
            };
            if let Some(call) = self.control_plane_call(
                "CreateApproval",
                &request.encode_to_vec(),
                self.call_timeout_ms(),
            ) {
                calls.insert(call, index);
            }
        }
        let count = disposition.escalations.len();
        let flow = Approval {
            stage: Stage::Creating {
                disposition: Box::new(disposition),
                calls,
                ids: vec![None; count],
            },
            body: body.to_vec(),
            intent: intent.clone(),
        };
        self.settle_creation(flow)
    }

    /// Once every approval exists (or failed to), holds the lone call or parks the rest.
    fn settle_creation(&mut self, flow: Approval) -> Flow {
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
            return self.fail_closed();
        };
        if !calls.is_empty() {
            self.approval = Some(Approval {
                stage: Stage::Creating {
                    disposition,
                    calls,
                    ids,
                },
                body,
                intent,
            });
            return Flow::Pause;
        }
        let Some(ids) = ids.into_iter().collect::<Option<Vec<String>>>() else {
            // An approval could not be created: nobody can decide, so the calls are denied.
            let denial = refusal(
                "escalated for human approval, but the approval service is unavailable".into(),
                None,
            );
            disposition.deny_escalations(&body, &denial);
            return self.carry_out(*disposition, &body, &intent);
        };
        let synchronous = self
            .tenant_settings()
            .is_none_or(|s| s.approval_mode == ApprovalMode::Sync);
        if disposition.holds(synchronous) {
            disposition.set_pending(&ids);
            self.record(&mut disposition);
            let Some(id) = ids.into_iter().next() else {
                return self.fail_closed();
            };
            let timeout_ms = self.approval_timeout_ms();
            let deadline_ms =
                host::now_ms().saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
            return self.wait(Approval {
                stage: Stage::Waiting {
                    call: 0,
                    id,
                    deadline_ms,
                },
                body,
                intent,
            });
        }
        disposition.park(&body, &ids);
        self.carry_out(*disposition, &body, &intent)
    }

    /// The settings of the caller's tenant; `None` without a verified token or gateway state.
    fn tenant_settings(&self) -> Option<&TenantSettings> {
        let token = self.auth.as_ref().ok()?;
        self.gateway
            .as_ref()?
            .tenant(&token.tenant)
            .map(|t| &t.settings)
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
    fn wait(&mut self, flow: Approval) -> Flow {
        let Approval {
            stage: Stage::Waiting {
                id, deadline_ms, ..
            },
            body,
            intent,
        } = flow
        else {
            return self.fail_closed();
        };
        let left = u64::try_from(deadline_ms.saturating_sub(host::now_ms())).unwrap_or(0);
        if left == 0 {
            let reason = format!(
                "approval {id} was not decided within {} s",
                self.approval_timeout_ms() / 1000
            );
            return self.refuse(&body, &intent, refusal(reason, None));
        }
        let wait_ms = left.min(WAIT_SLICE_MS);
        let tenant = self
            .auth
            .as_ref()
            .map(|t| t.tenant.clone())
            .unwrap_or_default();
        let request = v1::AwaitApprovalRequest {
            id: id.clone(),
            tenant,
            wait_ms: u32::try_from(wait_ms).unwrap_or(u32::MAX),
        };
        let Some(call) = self.control_plane_call(
            "AwaitApproval",
            &request.encode_to_vec(),
            wait_ms + self.call_timeout_ms(),
        ) else {
            return self.unavailable(&body, &intent, &id);
        };
        self.approval = Some(Approval {
            stage: Stage::Waiting {
                call,
                id,
                deadline_ms,
            },
            body,
            intent,
        });
        Flow::Pause
    }

    /// A presented `X-IntentGate-Approval-Id` (or a held call's approval once approved): use it once.
    pub(super) fn use_presented_approval(
        &mut self,
        id: String,
        body: &[u8],
        intent: &IntentSource,
    ) -> Flow {
        let flow = Approval {
            stage: Stage::Using { call: 0, id },
            body: body.to_vec(),
            intent: intent.clone(),
        };
        self.use_approval(flow)
    }

    fn use_approval(&mut self, flow: Approval) -> Flow {
        let Approval {
            stage: Stage::Using { id, .. },
            body,
            intent,
        } = flow
        else {
            return self.fail_closed();
        };
        let (Ok(token), Some((tool, digest))) = (self.auth.clone(), exchange::lone_call(&body))
        else {
            // Not one authenticated tools/call: decide it as it is, without the approval.
            self.approval_id = None;
            return self.apply(|env| exchange::decide(env, &body, &intent), &body, &intent);
        };
        let request = v1::UseApprovalRequest {
            id: id.clone(),
            tenant: token.tenant.clone(),
            agent_id: token.subject.clone(),
            tool,
            arguments_sha256: digest,
        };
        let Some(call) = self.control_plane_call(
            "UseApproval",
            &request.encode_to_vec(),
            self.call_timeout_ms(),
        ) else {
            return self.unavailable(&body, &intent, &id);
        };
        self.approval = Some(Approval {
            stage: Stage::Using { call, id },
            body,
            intent,
        });
        Flow::Pause
    }

    /// The control plane's answers; `None` when `token` is not an approval call.
    pub(super) fn on_approval_response(
        &mut self,
        token: u32,
        status: u32,
        size: usize,
    ) -> Option<Flow> {
        let flow = self.approval.take()?;
        let answer = (status == 0).then(|| host::grpc_message(size));
        Some(match flow.stage {
            Stage::Creating {
                disposition,
                mut calls,
                mut ids,
            } => {
                let Some(index) = calls.remove(&token) else {
                    self.approval = Some(Approval {
                        stage: Stage::Creating {
                            disposition,
                            calls,
                            ids,
                        },
                        ..flow
                    });
                    return None;
                };
                if let Some(created) =
                    answer.and_then(|b| v1::ApprovalCreated::decode(b.as_slice()).ok())
                    && let Some(slot) = ids.get_mut(index)
                {
                    *slot = Some(created.id);
                }
                self.settle_creation(Approval {
                    stage: Stage::Creating {
                        disposition,
                        calls,
                        ids,
                    },
                    ..flow
                })
            }
            Stage::Waiting {
                call,
                id,
                deadline_ms,
            } if call == token => {
                let Some(state) =
                    answer.and_then(|b| v1::ApprovalStatus::decode(b.as_slice()).ok())
                else {
                    return Some(self.unavailable(&flow.body, &flow.intent, &id));
                };
                match State::try_from(state.state) {
                    Ok(State::Approved) => self.use_approval(Approval {
                        stage: Stage::Using { call: 0, id },
                        ..flow
                    }),
                    Ok(State::Rejected) => {
                        let reason = format!(
                            "approval {id} rejected by {}: {}",
                            state.decided_by, state.reason
                        );
                        self.refuse(&flow.body, &flow.intent, refusal(reason, None))
                    }
                    _ => self.wait(Approval {
                        stage: Stage::Waiting {
                            call: 0,
                            id,
                            deadline_ms,
                        },
                        ..flow
                    }),
                }
            }
            Stage::Using { call, id } if call == token => {
                let used = answer.and_then(|b| v1::ApprovalUse::decode(b.as_slice()).ok());
                match used {
                    Some(used) if used.granted => {
                        self.rerun_approved(flow.body, flow.intent, used.escalating_rule)
                    }
                    Some(used) => {
                        let reason = format!("approval {id} refused: {}", used.refusal);
                        self.refuse(&flow.body, &flow.intent, refusal(reason, None))
                    }
                    None => self.unavailable(&flow.body, &flow.intent, &id),
                }
            }
            stage => {
                self.approval = Some(Approval { stage, ..flow });
                return None;
            }
        })
    }

    /// The whole pipeline again, on the state in force now (a token revoked or a policy changed
    /// meanwhile still denies), with the approved escalation set aside.
    fn rerun_approved(&mut self, body: Vec<u8>, intent: IntentSource, rule: String) -> Flow {
        self.approval_id = None;
        self.gateway = self.shared.gateway();
        self.authenticate();
        // Through the lease step again: the lease taken before a held call escalated has usually
        // ended by the time a human decides, and without one the budget check fails closed.
        self.advance(super::Waiting {
            body,
            intent: Some(intent),
            leases: HashMap::new(),
            asked: false,
            granted: Vec::new(),
            approved: Some((!rule.is_empty()).then_some(rule)),
        })
    }

    /// Decides an approved call, its approved escalation set aside.
    pub(super) fn decide_approved(
        &mut self,
        body: &[u8],
        intent: &IntentSource,
        approved: Option<String>,
    ) -> Flow {
        let disposition = self.with_env(Some(&approved), |env| exchange::decide(env, body, intent));
        match disposition {
            // Another rule escalating now is denied: one approval lets one escalation through.
            Some(mut d) if d.action == exchange::Action::Escalate => {
                let rule = d
                    .escalations
                    .first()
                    .and_then(|e| e.escalation.rule.clone());
                let denial = refusal(
                    "escalated again after its approval (by another rule); ask for a new approval"
                        .into(),
                    rule,
                );
                d.deny_escalations(body, &denial);
                self.carry_out(d, body, intent)
            }
            Some(d) => self.carry_out(d, body, intent),
            None => self.fail_closed(),
        }
    }

    /// The approval service could not be reached: nobody can approve, so the call is denied.
    fn unavailable(&mut self, body: &[u8], intent: &IntentSource, id: &str) -> Flow {
        let reason = format!("approval {id}: the approval service is unavailable");
        self.refuse(body, intent, refusal(reason, None))
    }

    /// Answers the call with a policy denial (rejected, timed out, refused, or unavailable).
    fn refuse(&mut self, body: &[u8], intent: &IntentSource, denial: Denial) -> Flow {
        self.approval_id = None;
        match self.with_env(None, |env| exchange::refuse(env, body, intent, denial)) {
            Some(d) => self.carry_out(d, body, intent),
            None => self.fail_closed(),
        }
    }
}
