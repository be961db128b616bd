use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::budget::MemoryBudget;
use crate::config::{
    GatewayConfig, KeyConfig, PolicySource, RateLimits, RevocationConfig, TenantConfig,
    TenantSettings,
};
use crate::decision::{Check, ErrorCode};
use crate::intent::{Intent, IntentRule};
use crate::jsonrpc::{Entry, Message};
use crate::memory::{ChainWriter, derive_memory_key};
use crate::token::{Grant, IssuerKey, TokenCache, mint};

const NOW: i64 = 1_781_444_520;
const MASTER: [u8; 32] = [42u8; 32];

const POLICY: &str = r#"
package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "not on the list", "rule": "default"}

decision := {"allow": true, "rule": "reads"} if { startswith(input.tool, "read_") }

decision := {"allow": false, "escalate": true, "reason": "large transfer", "rule": "big_transfer"} if {
    input.tool == "transfer_funds"
    input.args.amount > 1000
}

decision := {"allow": true, "rule": "small_transfer"} if {
    input.tool == "transfer_funds"
    input.args.amount <= 1000
}

decision := {"allow": false, "reason": "step-up needed", "rule": "step_up", "requires_step_up": true} if {
    input.tool == "delete_account"
    not input.capability.step_up_at
}
"#;

fn issuer() -> IssuerKey {
    IssuerKey::from_seed(&MASTER)
}

fn gateway_with(tenant: TenantConfig, serve: Option<Vec<String>>) -> Gateway {
    let mut tenants = std::collections::BTreeMap::new();
    tenants.insert("acme-corp".to_string(), tenant);
    tenants.insert(
        "other-corp".to_string(),
        TenantConfig {
            policy: Some(PolicySource::Rego(POLICY.into())),
            ..Default::default()
        },
    );
    Gateway::compile(GatewayConfig {
        keys: vec![KeyConfig {
            kid: None,
            public_key: issuer().public_base64(),
        }],
        tenants,
        revocations: vec![
            RevocationConfig::Everywhere("01JREVOKED".into()),
            RevocationConfig::InTenant {
                tenant: "acme-corp".into(),
                jti: "01JACMEREVOKED".into(),
            },
            RevocationConfig::InTenant {
                tenant: "other-corp".into(),
                jti: "01JOTHERS".into(),
            },
        ],
        serve_tenants: serve,
    })
    .unwrap()
}

fn tenant(settings: TenantSettings) -> TenantConfig {
    TenantConfig {
        policy: Some(PolicySource::Rego(POLICY.into())),
        settings,
        intent_rules: vec![IntentRule {
            id: "invoices".into(),
            keywords: vec!["invoice".into()],
            allow: vec!["read_*".into()],
            forbid: vec!["transfer_*".into()],
            summary: Some("invoice lookup".into()),
        }],
    }
}

fn gateway() -> Gateway {
    gateway_with(
        tenant(TenantSettings::default()),
        Some(vec!["acme-corp".into()]),
    )
}

fn grant(jti: &str) -> Grant {
    Grant {
        jti: jti.into(),
        issuer: "intentgate".into(),
        subject: "agent-7".into(),
        tenant: "acme-corp".into(),
        issued_at: NOW - 10,
        not_before: NOW - 10,
        expires_at: NOW + 3600,
        tools: Some(vec![
            "read_*".into(),
            "transfer_funds".into(),
            "delete_account".into(),
        ]),
        max_calls: Some(2),
        step_up_at: None,
        memory_key: None,
    }
}

fn token_for(grant: &Grant) -> String {
    mint(&issuer(), grant, &[5u8; 32]).unwrap()
}

fn ctx() -> RequestContext {
    RequestContext {
        http_method: "POST".into(),
        path: "/v1/mcp".into(),
        remote_ip: "127.0.0.1".into(),
        session_id: "s-1".into(),
        headers: policy_headers([("User-Agent", "test"), ("Authorization", "Bearer x")]),
        memory_provenance: None,
        now_ms: NOW * 1000,
    }
}

struct Run {
    verdicts: Vec<Result<Verdict, Denial>>,
}

/// Runs a body through the pipeline the way the filter does, with the built-in extractor.
fn run(
    gw: &Gateway,
    body: &str,
    token: Option<&str>,
    prompt: Option<&str>,
    ctx: &RequestContext,
    budget: &MemoryBudget,
) -> Run {
    let mut cache = TokenCache::new(16);
    let header = token.map(|t| format!("Bearer {t}"));
    let auth = gw.authenticate(&mut cache, header.as_deref(), None, ctx.now_secs());
    let message = match crate::jsonrpc::parse(body.as_bytes()) {
        Ok(m) => m,
        Err(d) => {
            return Run {
                verdicts: vec![Err(d)],
            };
        }
    };
    let verdicts = message
        .entries()
        .iter()
        .map(|entry| match plan(entry, &auth) {
            Plan::Refuse(d) => Err(d),
            Plan::Forward | Plan::ForwardToolList => Ok(Verdict::Allow { rule: None }),
            Plan::Evaluate(call) => {
                let token = auth.as_ref().unwrap();
                let intent = gw.builtin_intent(&token.tenant, prompt);
                Ok(gw.decide_tool_call(ctx, token, &call, &intent, budget, None))
            }
        })
        .collect();
    Run { verdicts }
}

fn call(tool: &str, args: serde_json::Value) -> String {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":args}})
        .to_string()
}

fn single(
    gw: &Gateway,
    body: &str,
    token: Option<&str>,
    prompt: Option<&str>,
) -> Result<Verdict, Denial> {
    run(gw, body, token, prompt, &ctx(), &MemoryBudget::new())
        .verdicts
        .remove(0)
}

fn denied(result: Result<Verdict, Denial>) -> Denial {
    match result {
        Err(d) | Ok(Verdict::Deny(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn allowed_call_passes_every_check() {
    let t = token_for(&grant("01JA"));
    assert_eq!(
        single(
            &gateway(),
            &call("read_invoice", json!({"id": 7})),
            Some(&t),
            Some("show invoice 7")
        ),
        Ok(Verdict::Allow {
            rule: Some("reads".into())
        })
    );
}

#[test]
fn envelope_errors_come_first_with_their_codes() {
    let t = token_for(&grant("01JA"));
    let gw = gateway();
    assert_eq!(
        denied(single(&gw, "{", Some(&t), None)).code,
        ErrorCode::ParseError
    );
    assert_eq!(
        denied(single(&gw, r#"{"id":1,"method":"ping"}"#, Some(&t), None)).code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        denied(single(
            &gw,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/destroy"}"#,
            Some(&t),
            None
        ))
        .code,
        ErrorCode::MethodNotFound
    );
    assert_eq!(
        denied(single(
            &gw,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
            Some(&t),
            None
        ))
        .code,
        ErrorCode::InvalidParams
    );
    // The envelope is judged before the token: a malformed call without a token is still -32602.
    assert_eq!(
        denied(single(
            &gw,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            None,
            None
        ))
        .code,
        ErrorCode::InvalidParams
    );
}

#[test]
fn capability_failures_are_32010() {
    let gw = gateway();
    let body = call("read_invoice", json!({}));
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing bearer token"),
        (Some("garbage".into()), "malformed"),
        (
            Some(token_for(&Grant {
                expires_at: NOW - 1,
                not_before: NOW - 100,
                issued_at: NOW - 100,
                ..grant("01JE")
            })),
            "expired",
        ),
        (
            Some(token_for(&Grant {
                not_before: NOW + 600,
                issued_at: NOW + 600,
                expires_at: NOW + 3600,
                ..grant("01JN")
            })),
            "not yet valid",
        ),
        (Some(token_for(&grant("01JREVOKED"))), "revoked"),
        (Some(token_for(&grant("01JACMEREVOKED"))), "revoked"),
        (
            Some(token_for(&Grant {
                tenant: "other-corp".into(),
                ..grant("01JT")
            })),
            "not served",
        ),
        (
            Some(mint(&IssuerKey::from_seed(&[1; 32]), &grant("01JF"), &[5; 32]).unwrap()),
            "unknown key",
        ),
    ];
    for (token, needle) in cases {
        let d = denied(single(&gw, &body, token.as_deref(), None));
        assert_eq!(d.code, ErrorCode::CapabilityDenied, "{needle}");
        assert_eq!(d.check, Check::Capability);
        assert!(d.reason.contains(needle), "{needle}: {}", d.reason);
    }
    // A revocation in another tenant does not reach this tenant's token of the same jti.
    let t = token_for(&grant("01JOTHERS"));
    assert!(matches!(
        single(&gw, &call("read_invoice", json!({})), Some(&t), None),
        Ok(Verdict::Allow { .. })
    ));
    // The tool caveat.
    let t = token_for(&grant("01JA"));
    let d = denied(single(&gw, &call("wire_money", json!({})), Some(&t), None));
    assert_eq!(d.code, ErrorCode::CapabilityDenied);
    assert!(d.reason.contains("not allowed by the token"));
}

#[test]
fn tenant_header_must_match_the_token() {
    let gw = gateway();
    let mut cache = TokenCache::new(4);
    let t = format!("Bearer {}", token_for(&grant("01JA")));
    assert!(
        gw.authenticate(&mut cache, Some(&t), Some("acme-corp"), NOW)
            .is_ok()
    );
    let d = gw
        .authenticate(&mut cache, Some(&t), Some("other-corp"), NOW)
        .unwrap_err();
    assert_eq!(d.code, ErrorCode::CapabilityDenied);
}

#[test]
fn intent_forbidden_and_outside_allow_list_are_32011() {
    let t = token_for(&grant("01JA"));
    let gw = gateway();
    let d = denied(single(
        &gw,
        &call("transfer_funds", json!({"amount": 5})),
        Some(&t),
        Some("pay the invoice"),
    ));
    assert_eq!(d.code, ErrorCode::IntentDenied);
    assert!(d.reason.contains("forbidden"));
    let d = denied(single(
        &gw,
        &call("delete_account", json!({})),
        Some(&t),
        Some("the invoice please"),
    ));
    assert_eq!(d.code, ErrorCode::IntentDenied);
    assert!(d.reason.contains("outside"));
}

#[test]
fn intent_required_by_tenant_fails_without_a_prompt() {
    let gw = gateway_with(
        tenant(TenantSettings {
            require_intent: true,
            ..Default::default()
        }),
        None,
    );
    let t = token_for(&grant("01JA"));
    let d = denied(single(
        &gw,
        &call("read_invoice", json!({})),
        Some(&t),
        None,
    ));
    assert_eq!(d.code, ErrorCode::IntentDenied);
    assert!(
        single(
            &gw,
            &call("read_invoice", json!({})),
            Some(&t),
            Some("invoice 7")
        )
        .is_ok()
    );
}

#[test]
fn unavailable_extractor_fails_closed() {
    let gw = gateway();
    let token = gw
        .authenticate(
            &mut TokenCache::new(1),
            Some(&format!("Bearer {}", token_for(&grant("01JA")))),
            None,
            NOW,
        )
        .unwrap();
    let body = call("read_invoice", json!({}));
    let Ok(Message::Single(Entry::Call(c))) = crate::jsonrpc::parse(body.as_bytes()) else {
        panic!()
    };
    let tc = crate::jsonrpc::tool_call(&c).unwrap();
    let v = gw.decide_tool_call(
        &ctx(),
        &token,
        &tc,
        &IntentSource::Unavailable("timeout".into()),
        &MemoryBudget::new(),
        None,
    );
    assert_eq!(denied(Ok(v)).code, ErrorCode::IntentDenied);
}

fn memory_gateway(required: bool) -> (Gateway, String, String) {
    let gw = gateway_with(
        tenant(TenantSettings {
            require_memory_provenance: required,
            ..Default::default()
        }),
        None,
    );
    let key = derive_memory_key(&MASTER, "01JM");
    let t = token_for(&Grant {
        memory_key: Some(key.verifying_key()),
        ..grant("01JM")
    });
    let mut w = ChainWriter::new(&key, "01JM");
    w.append(b"user: show invoice 7");
    (gw, t, w.header())
}

#[test]
fn signed_memory_provenance_is_verified() {
    let (gw, t, header) = memory_gateway(true);
    let body = call("read_invoice", json!({}));
    let mut c = ctx();
    assert_eq!(
        denied(
            run(&gw, &body, Some(&t), None, &c, &MemoryBudget::new())
                .verdicts
                .remove(0)
        )
        .code,
        ErrorCode::IntentDenied
    );
    c.memory_provenance = Some(header.clone());
    assert!(matches!(
        run(&gw, &body, Some(&t), None, &c, &MemoryBudget::new())
            .verdicts
            .remove(0),
        Ok(Verdict::Allow { .. })
    ));
    // A chain signed with another token's key fails.
    let other = derive_memory_key(&MASTER, "01JOTHER");
    let mut w = ChainWriter::new(&other, "01JM");
    w.append(b"forged");
    c.memory_provenance = Some(w.header());
    let d = denied(
        run(&gw, &body, Some(&t), None, &c, &MemoryBudget::new())
            .verdicts
            .remove(0),
    );
    assert_eq!(d.code, ErrorCode::IntentDenied);
    assert!(d.reason.contains("signature"));
}

#[test]
fn policy_denial_carries_rule_and_step_up() {
    let t = token_for(&grant("01JA"));
    let d = denied(single(
        &gateway(),
        &call("delete_account", json!({})),
        Some(&t),
        None,
    ));
    assert_eq!(d.code, ErrorCode::PolicyDenied);
    assert_eq!(d.rule.as_deref(), Some("step_up"));
    assert!(d.requires_step_up);
    assert_eq!(d.error_data()["requires_step_up"], true);
}

#[test]
fn missing_policy_fails_closed() {
    let gw = gateway_with(TenantConfig::default(), None);
    let t = token_for(&grant("01JA"));
    let d = denied(single(
        &gw,
        &call("read_invoice", json!({})),
        Some(&t),
        None,
    ));
    assert_eq!(d.code, ErrorCode::PolicyDenied);
    assert!(d.reason.contains("no active policy"), "{}", d.reason);
    // A tenant with no configuration at all, on a gateway that serves every tenant.
    let t = token_for(&Grant {
        tenant: "ghost-corp".into(),
        ..grant("01JG")
    });
    let d = denied(single(
        &gw,
        &call("read_invoice", json!({})),
        Some(&t),
        None,
    ));
    assert_eq!(d.code, ErrorCode::PolicyDenied);
}

#[test]
fn escalation_and_its_approval_set_aside() {
    let gw = gateway();
    let t = token_for(&grant("01JA"));
    let body = call("transfer_funds", json!({"amount": 5000}));
    match single(&gw, &body, Some(&t), None) {
        Ok(Verdict::Escalate(e)) => assert_eq!(e.rule.as_deref(), Some("big_transfer")),
        other => panic!("{other:?}"),
    }
    let token = gw
        .authenticate(
            &mut TokenCache::new(1),
            Some(&format!("Bearer {t}")),
            None,
            NOW,
        )
        .unwrap();
    let Ok(Message::Single(Entry::Call(c))) = crate::jsonrpc::parse(body.as_bytes()) else {
        panic!()
    };
    let tc = crate::jsonrpc::tool_call(&c).unwrap();
    let budget = MemoryBudget::new();
    let approved = Some("big_transfer".to_string());
    assert_eq!(
        gw.decide_tool_call(
            &ctx(),
            &token,
            &tc,
            &IntentSource::NotDeclared,
            &budget,
            Some(&approved)
        ),
        Verdict::Allow {
            rule: Some("big_transfer".into())
        }
    );
    // Approval of another rule does not set this escalation aside.
    let other = Some("something_else".to_string());
    assert!(matches!(
        gw.decide_tool_call(
            &ctx(),
            &token,
            &tc,
            &IntentSource::NotDeclared,
            &budget,
            Some(&other)
        ),
        Verdict::Escalate(_)
    ));
    // The approved re-run still counts against the budget: max_calls is 2, one was spent above.
    assert!(matches!(
        gw.decide_tool_call(
            &ctx(),
            &token,
            &tc,
            &IntentSource::NotDeclared,
            &budget,
            Some(&approved)
        ),
        Verdict::Allow { .. }
    ));
    assert!(
        matches!(gw.decide_tool_call(&ctx(), &token, &tc, &IntentSource::NotDeclared, &budget, Some(&approved)), Verdict::Deny(d) if d.check == Check::Budget)
    );
}

#[test]
fn budget_counts_only_calls_that_reach_it() {
    let gw = gateway();
    let t = token_for(&grant("01JA"));
    let budget = MemoryBudget::new();
    let c = ctx();
    // Denied by the tool caveat and by policy, twice each: no budget spent.
    for _ in 0..2 {
        run(
            &gw,
            &call("wire_money", json!({})),
            Some(&t),
            None,
            &c,
            &budget,
        );
        run(
            &gw,
            &call("delete_account", json!({})),
            Some(&t),
            None,
            &c,
            &budget,
        );
    }
    for _ in 0..2 {
        assert!(matches!(
            run(
                &gw,
                &call("read_invoice", json!({})),
                Some(&t),
                None,
                &c,
                &budget
            )
            .verdicts
            .remove(0),
            Ok(Verdict::Allow { .. })
        ));
    }
    let d = denied(
        run(
            &gw,
            &call("read_invoice", json!({})),
            Some(&t),
            None,
            &c,
            &budget,
        )
        .verdicts
        .remove(0),
    );
    assert_eq!(d.code, ErrorCode::BudgetExceeded);
    assert_eq!(
        d.error_data(),
        json!({"check":"budget","reason":d.reason,"limit":2,"used":2})
    );
}

#[test]
fn rate_limits_per_agent_and_tenant() {
    let gw = gateway_with(
        tenant(TenantSettings {
            rate_limits: RateLimits {
                per_agent_per_minute: Some(1),
                per_tenant_per_minute: None,
            },
            ..Default::default()
        }),
        None,
    );
    let t = token_for(&Grant {
        max_calls: None,
        ..grant("01JA")
    });
    let budget = MemoryBudget::new();
    let mut c = ctx();
    assert!(matches!(
        run(&gw, &call("read_a", json!({})), Some(&t), None, &c, &budget)
            .verdicts
            .remove(0),
        Ok(Verdict::Allow { .. })
    ));
    let d = denied(
        run(&gw, &call("read_a", json!({})), Some(&t), None, &c, &budget)
            .verdicts
            .remove(0),
    );
    assert_eq!(d.code, ErrorCode::BudgetExceeded);
    assert!(d.reason.contains("agent agent-7"));
    c.now_ms += 60_000;
    assert!(matches!(
        run(&gw, &call("read_a", json!({})), Some(&t), None, &c, &budget)
            .verdicts
            .remove(0),
        Ok(Verdict::Allow { .. })
    ));
}

#[test]
fn batch_checks_each_call_on_its_own() {
    let t = token_for(&grant("01JA"));
    let body = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{}}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_account","arguments":{}}},
        {"jsonrpc":"2.0","id":3,"method":"tools/list"},
        {"jsonrpc":"2.0","id":4,"method":"nope"}
    ])
    .to_string();
    let r = run(
        &gateway(),
        &body,
        Some(&t),
        None,
        &ctx(),
        &MemoryBudget::new(),
    );
    assert!(matches!(r.verdicts[0], Ok(Verdict::Allow { .. })));
    assert_eq!(denied(r.verdicts[1].clone()).code, ErrorCode::PolicyDenied);
    assert!(matches!(r.verdicts[2], Ok(Verdict::Allow { .. })));
    assert_eq!(
        denied(r.verdicts[3].clone()).code,
        ErrorCode::MethodNotFound
    );
}

#[test]
fn other_mcp_methods_need_only_a_valid_token() {
    let gw = gateway();
    let t = token_for(&grant("01JA"));
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
    assert!(single(&gw, init, Some(&t), None).is_ok());
    assert_eq!(
        denied(single(&gw, init, None, None)).code,
        ErrorCode::CapabilityDenied
    );
    let list = r#"{"jsonrpc":"2.0","id":0,"method":"tools/list"}"#;
    let auth = gw.authenticate(
        &mut TokenCache::new(1),
        Some(&format!("Bearer {t}")),
        None,
        NOW,
    );
    let Ok(Message::Single(entry)) = crate::jsonrpc::parse(list.as_bytes()) else {
        panic!()
    };
    assert!(matches!(plan(&entry, &auth), Plan::ForwardToolList));
}

#[test]
fn policy_sees_the_documented_input() {
    let echo = r#"package intentgate.policy
import rego.v1
decision := {"allow": true, "rule": "echo", "reason": json.marshal(input)}"#;
    let gw = gateway_with(
        TenantConfig {
            policy: Some(PolicySource::Rego(echo.into())),
            ..tenant(TenantSettings::default())
        },
        None,
    );
    let t = token_for(&Grant {
        step_up_at: Some(NOW - 5),
        ..grant("01JA")
    });
    let token = gw
        .authenticate(
            &mut TokenCache::new(1),
            Some(&format!("Bearer {t}")),
            None,
            NOW,
        )
        .unwrap();
    let body = call("read_invoice", json!({"id": 7}));
    let Ok(Message::Single(Entry::Call(c))) = crate::jsonrpc::parse(body.as_bytes()) else {
        panic!()
    };
    let tc = crate::jsonrpc::tool_call(&c).unwrap();
    let intent = IntentSource::Extracted(Intent {
        summary: "s".into(),
        allowed_tools: vec!["read_*".into()],
        forbidden_tools: vec![],
        confidence: 1.0,
    });
    let outcome = evaluate_policy(
        &ctx(),
        &token,
        gw.tenant("acme-corp").unwrap(),
        &tc,
        &intent,
    );
    let PolicyOutcome::Allow {
        reason: Some(reason),
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    let input: serde_json::Value = serde_json::from_str(&reason).unwrap();
    assert_eq!(input["method"], "tools/call");
    assert_eq!(input["tool"], "read_invoice");
    assert_eq!(input["args"], json!({"id": 7}));
    assert_eq!(input["agent_id"], "agent-7");
    assert_eq!(input["tenant"], "acme-corp");
    assert_eq!(input["capability"]["subject"], "agent-7");
    assert_eq!(input["capability"]["jti"], "01JA");
    assert_eq!(input["capability"]["step_up_at"], NOW - 5);
    assert_eq!(input["capability"]["caveats"][0]["kind"], "tools");
    assert_eq!(input["intent"]["allowed_tools"], json!(["read_*"]));
    assert_eq!(input["request"]["path"], "/v1/mcp");
    assert_eq!(input["request"]["remote_ip"], "127.0.0.1");
    assert_eq!(
        input["request"]["headers"],
        json!({"user-agent": "test"}),
        "credentials never reach policies"
    );
    assert_eq!(input["now"], NOW);
}

#[test]
fn audit_event_of_a_decision_has_the_schema_fields() {
    let gw = gateway();
    let t = token_for(&grant("01JA"));
    let token = gw
        .authenticate(
            &mut TokenCache::new(1),
            Some(&format!("Bearer {t}")),
            None,
            NOW,
        )
        .unwrap();
    let body = call("delete_account", json!({"account": "a-1", "password": "x"}));
    let Ok(Message::Single(Entry::Call(c))) = crate::jsonrpc::parse(body.as_bytes()) else {
        panic!()
    };
    let tc = crate::jsonrpc::tool_call(&c).unwrap();
    let intent = gw.builtin_intent("acme-corp", Some("close my account"));
    let verdict = gw.decide_tool_call(&ctx(), &token, &tc, &intent, &MemoryBudget::new(), None);
    let mut event = tool_call_event(
        "01JEVT".into(),
        &ctx(),
        Some(&token),
        Some(&tc),
        &verdict,
        &intent,
    );
    event.set_latency(0.1234);
    let v = serde_json::to_value(&event).unwrap();
    for field in [
        "ts",
        "event",
        "schema_version",
        "decision",
        "check",
        "reason",
        "tenant",
        "agent_id",
        "session_id",
        "tool",
        "arg_keys",
        "arg_values",
        "capability_token_id",
        "root_capability_token_id",
        "caveat_count",
        "pending_id",
        "decided_by",
        "intent_summary",
        "latency_ms",
        "remote_ip",
        "upstream_status",
        "requires_step_up",
        "elevation_id",
    ] {
        assert!(v.get(field).is_some(), "missing {field}");
    }
    assert_eq!(v["event"], "intentgate.tool_call");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["check"], "policy");
    assert_eq!(v["rule"], "step_up");
    assert_eq!(v["tenant"], "acme-corp");
    assert_eq!(v["agent_id"], "agent-7");
    assert_eq!(v["capability_token_id"], "01JA");
    assert_eq!(v["caveat_count"], 2);
    assert_eq!(v["arg_values"]["password"], "[redacted]");
    assert_eq!(v["latency_ms"], 0.123);
    assert_eq!(v["session_id"], "s-1");
    assert_eq!(v["requires_step_up"], true);
    let _ = Arc::new(event);
}
