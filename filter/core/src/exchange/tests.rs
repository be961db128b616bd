use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::*;
use crate::budget::MemoryBudget;
use crate::config::{GatewayConfig, KeyConfig, PolicySource, TenantConfig};
use crate::token::{Grant, IssuerKey, TokenCache, mint};

const NOW: i64 = 1_781_444_520;
const POLICY: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "reason": "no", "rule": "default"}
decision := {"allow": true, "rule": "reads"} if { startswith(input.tool, "read_") }
"#;

fn gateway() -> Gateway {
    gateway_with(POLICY)
}

fn gateway_with(policy: &str) -> Gateway {
    let issuer = IssuerKey::from_seed(&[3; 32]);
    let mut tenants = BTreeMap::new();
    tenants.insert(
        "acme".to_string(),
        TenantConfig {
            policy: Some(PolicySource::Rego(policy.into())),
            ..Default::default()
        },
    );
    Gateway::compile(GatewayConfig {
        keys: vec![KeyConfig {
            kid: None,
            public_key: issuer.public_base64(),
        }],
        tenants,
        ..Default::default()
    })
    .unwrap()
}

fn token() -> String {
    let grant = Grant {
        jti: "01JX".into(),
        issuer: "i".into(),
        subject: "agent".into(),
        tenant: "acme".into(),
        issued_at: NOW,
        not_before: NOW,
        expires_at: NOW + 60,
        tools: Some(vec!["read_*".into(), "write_*".into()]),
        max_calls: None,
        step_up_at: None,
        memory_key: None,
    };
    mint(&IssuerKey::from_seed(&[3; 32]), &grant, &[4; 32]).unwrap()
}

struct Harness {
    gateway: Gateway,
    ctx: RequestContext,
    budget: MemoryBudget,
    counter: u32,
}

impl Harness {
    fn new() -> Self {
        Harness {
            gateway: gateway(),
            ctx: RequestContext {
                now_ms: NOW * 1000,
                ..Default::default()
            },
            budget: MemoryBudget::new(),
            counter: 0,
        }
    }

    fn auth(&self, token: Option<&str>) -> Result<Arc<VerifiedToken>, Denial> {
        let header = token.map(|t| format!("Bearer {t}"));
        self.gateway
            .authenticate(&mut TokenCache::new(4), header.as_deref(), None, NOW)
    }

    fn decide(&mut self, body: &str, token: Option<&str>) -> Disposition {
        let auth = self.auth(token);
        let counter = &mut self.counter;
        let mut next_id = || {
            *counter += 1;
            format!("ev{counter}")
        };
        let mut env = Env {
            gateway: &self.gateway,
            ctx: &self.ctx,
            auth: &auth,
            budget: &self.budget,
            next_id: &mut next_id,
            approvals: false,
            approved_rule: None,
        };
        decide(&mut env, body.as_bytes(), &IntentSource::NotDeclared)
    }
}

fn tools_call(id: u32, tool: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{}}})
}

fn body_json(action: &Action) -> (u16, Value) {
    match action {
        Action::Respond { status, body } => {
            (*status, serde_json::from_str(body).unwrap_or(Value::Null))
        }
        other => panic!("expected a local answer, got {other:?}"),
    }
}

#[test]
fn allowed_single_call_is_forwarded_with_one_allow_event() {
    let mut h = Harness::new();
    let d = h.decide(&tools_call(1, "read_x").to_string(), Some(&token()));
    assert_eq!(d.action, Action::Forward);
    assert_eq!(d.response.forwarded_ids, vec!["1"]);
    assert!(!d.response.rewrites_body());
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].decision.as_str(), "allow");
    assert_eq!(d.events[0].id, "ev1");
}

#[test]
fn denied_single_call_is_answered_locally_with_http_200() {
    let mut h = Harness::new();
    let d = h.decide(&tools_call(7, "write_x").to_string(), Some(&token()));
    let (status, body) = body_json(&d.action);
    assert_eq!(status, 200);
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32012);
    assert_eq!(d.events[0].decision.as_str(), "deny");
    assert_eq!(d.events[0].check, "policy");
}

#[test]
fn partly_refused_batch_forwards_the_rest_and_merges_errors() {
    let mut h = Harness::new();
    let body = json!([
        tools_call(1, "read_x"),
        tools_call(2, "write_x"),
        {"jsonrpc":"2.0","id":3,"method":"tools/list"},
        {"jsonrpc":"2.0","method":"notifications/whatever"},
        {"jsonrpc":"2.0","id":4,"method":"bogus"}
    ])
    .to_string();
    let d = h.decide(&body, Some(&token()));
    let Action::ForwardBody(forwarded) = &d.action else {
        panic!("{:?}", d.action)
    };
    let forwarded: Value = serde_json::from_slice(forwarded).unwrap();
    let ids: Vec<Value> = forwarded
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!(3), Value::Null]);
    assert_eq!(d.response.local_errors.len(), 2);
    assert!(d.response.tools_list_ids.contains(&json!(3)));
    assert_eq!(d.events.len(), 5);
    // The upstream's answer gets the local errors appended.
    let token = h.auth(Some(&token())).unwrap();
    let upstream = json!([
        {"jsonrpc":"2.0","id":1,"result":{"content":[]}},
        {"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_x"},{"name":"delete_all"}]}}
    ]);
    let out = d
        .response
        .rewrite("application/json", upstream.to_string().as_bytes(), &token)
        .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out.as_array().unwrap().len(), 4);
    assert_eq!(out[1]["result"]["tools"], json!([{"name":"read_x"}]));
    assert_eq!(out[2]["error"]["code"], -32012);
    assert_eq!(out[3]["error"]["code"], -32601);
}

#[test]
fn fully_refused_batch_is_an_array_of_errors() {
    let mut h = Harness::new();
    let body = json!([tools_call(1, "write_a"), tools_call(2, "nope_b")]).to_string();
    let (status, body) = body_json(&h.decide(&body, Some(&token())).action);
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(body[1]["error"]["code"], -32010);
}

#[test]
fn a_request_without_a_valid_token_is_401_with_its_32010_error() {
    let mut h = Harness::new();
    for token in [None, Some("igt1.bad")] {
        let (status, body) =
            body_json(&h.decide(&tools_call(1, "read_x").to_string(), token).action);
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(
            (body["id"].clone(), body["error"]["code"].clone()),
            (json!(1), json!(-32010))
        );
    }
    let initialize = r#"{"jsonrpc":"2.0","id":"i","method":"initialize","params":{}}"#;
    let (status, body) = body_json(&h.decide(initialize, None).action);
    assert_eq!((status, body["id"].clone()), (401, json!("i")));
    // A batch keeps one error per call, still 401.
    let batch = json!([tools_call(1, "read_x"), tools_call(2, "read_y")]).to_string();
    let (status, body) = body_json(&h.decide(&batch, None).action);
    assert_eq!((status, body.as_array().unwrap().len()), (401, 2));
    // The envelope is checked first: a body that is not JSON-RPC is -32600 at 200, token or not.
    let (status, body) = body_json(&h.decide(r#"{"id":1,"method":"x"}"#, None).action);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (200, json!(-32600))
    );
    // A valid token whose tools do not cover the call: the per-call -32010, at 200.
    let (status, body) = body_json(
        &h.decide(&tools_call(1, "nope_b").to_string(), Some(&token()))
            .action,
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (200, json!(-32010))
    );
}

#[test]
fn notification_without_a_valid_token_is_401() {
    let mut h = Harness::new();
    let d = h.decide(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        Some("igt1.bad"),
    );
    let (status, body) = body_json(&d.action);
    assert_eq!(status, 401);
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], -32010);
    // With a valid token it is forwarded.
    let d = h.decide(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        Some(&token()),
    );
    assert_eq!(d.action, Action::Forward);
}

#[test]
fn bodyless_requests_need_a_valid_token() {
    let mut h = Harness::new();
    let auth = h.auth(None);
    let mut next = || "ev".to_string();
    let mut env = Env {
        gateway: &h.gateway,
        ctx: &h.ctx,
        auth: &auth,
        budget: &h.budget,
        next_id: &mut next,
        approvals: false,
        approved_rule: None,
    };
    let d = decide_bodyless(&mut env, "GET");
    let (status, body) = body_json(&d.action);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], -32010);
    assert_eq!(d.events[0].decision.as_str(), "deny");
    assert_eq!(d.events[0].method, "GET");
    let auth = h.auth(Some(&token()));
    let mut env = Env {
        gateway: &h.gateway,
        ctx: &h.ctx,
        auth: &auth,
        budget: &h.budget,
        next_id: &mut next,
        approvals: false,
        approved_rule: None,
    };
    assert_eq!(decide_bodyless(&mut env, "DELETE").action, Action::Forward);
    h.counter = 0;
}

#[test]
fn oversized_body_is_refused_unread() {
    let h = Harness::new();
    let auth = h.auth(Some(&token()));
    let mut next = || "ev".to_string();
    let mut env = Env {
        gateway: &h.gateway,
        ctx: &h.ctx,
        auth: &auth,
        budget: &h.budget,
        next_id: &mut next,
        approvals: false,
        approved_rule: None,
    };
    let d = decide_oversized(&mut env, 2 * 1024 * 1024);
    let (status, body) = body_json(&d.action);
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], -32600);
    assert!(
        body["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("2097152")
    );
    assert_eq!(d.events.len(), 1);
}

#[test]
fn malformed_body_is_answered_with_its_code() {
    let mut h = Harness::new();
    let (status, body) = body_json(&h.decide("{nope", Some(&token())).action);
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], -32700);
    assert_eq!(body["id"], Value::Null);
}

#[test]
fn upstream_failure_answers_32603_for_each_forwarded_request() {
    let mut h = Harness::new();
    let d = h.decide(&tools_call(5, "read_x").to_string(), Some(&token()));
    let single: Value = serde_json::from_str(&d.response.upstream_failure(503).unwrap()).unwrap();
    assert_eq!(single["id"], 5);
    assert_eq!(single["error"]["code"], -32603);
    assert_eq!(
        single["error"]["data"],
        json!({"upstream_status": 503, "detail": "upstream answered HTTP 503"})
    );
    let d = h.decide(
        &json!([tools_call(1, "read_x"), tools_call(2, "write_x")]).to_string(),
        Some(&token()),
    );
    let batch: Value = serde_json::from_str(&d.response.upstream_failure(502).unwrap()).unwrap();
    assert_eq!(batch.as_array().unwrap().len(), 2);
}

#[test]
fn unfilterable_tools_list_answer_is_replaced_not_passed_through() {
    let mut h = Harness::new();
    let d = h.decide(
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
        Some(&token()),
    );
    assert_eq!(d.action, Action::Forward);
    let token = h.auth(Some(&token())).unwrap();
    let out = d
        .response
        .rewrite("application/json", b"<html>", &token)
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], -32603);
    // SSE answers are filtered event by event.
    let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"tools\":[{\"name\":\"read_a\"},{\"name\":\"zap\"}]}}\n\n";
    let out = String::from_utf8(
        d.response
            .rewrite("text/event-stream", sse.as_bytes(), &token)
            .unwrap(),
    )
    .unwrap();
    assert!(out.contains("read_a") && !out.contains("zap"));
}

#[test]
fn only_tool_calls_that_passed_the_token_check_are_evaluated() {
    let h = Harness::new();
    let ok = h.auth(Some(&token()));
    let count =
        |body: &str, auth| evaluations(&plans(&jsonrpc::parse(body.as_bytes()).unwrap(), auth));
    assert_eq!(count(&tools_call(1, "read_x").to_string(), &ok), 1);
    let batch =
        json!([tools_call(1, "a"), tools_call(2, "b"), {"jsonrpc":"2.0","id":3,"method":"ping"}]);
    assert_eq!(count(&batch.to_string(), &ok), 2);
    assert_eq!(count(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, &ok), 0);
    let unauthenticated = h.auth(None);
    assert_eq!(
        count(&tools_call(1, "read_x").to_string(), &unauthenticated),
        0
    );
}

const ESCALATING: &str = r#"package intentgate.policy
import rego.v1
default decision := {"allow": false, "rule": "default"}
decision := {"allow": true, "rule": "reads"} if { startswith(input.tool, "read_") }
decision := {"allow": false, "escalate": true, "reason": "big write", "rule": "writes"} if { startswith(input.tool, "write_") }
"#;

fn escalating_gateway() -> Gateway {
    gateway_with(ESCALATING)
}

fn decide_with(
    gw: &Gateway,
    body: &str,
    approvals: bool,
    approved: Option<&Option<String>>,
) -> Disposition {
    let h = Harness::new();
    let auth = gw.authenticate(
        &mut TokenCache::new(4),
        Some(&format!("Bearer {}", token())),
        None,
        NOW,
    );
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("ev{n}")
    };
    let mut env = Env {
        gateway: gw,
        ctx: &h.ctx,
        auth: &auth,
        budget: &h.budget,
        next_id: &mut next,
        approvals,
        approved_rule: approved,
    };
    decide(&mut env, body.as_bytes(), &IntentSource::NotDeclared)
}

#[test]
fn without_an_approval_service_an_escalation_is_a_denial() {
    let d = decide_with(
        &escalating_gateway(),
        &tools_call(1, "write_x").to_string(),
        false,
        None,
    );
    let (status, body) = body_json(&d.action);
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], -32012);
    assert!(
        body["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("no approval service")
    );
}

#[test]
fn a_lone_escalated_call_is_held_in_synchronous_mode() {
    let d = decide_with(
        &escalating_gateway(),
        &tools_call(7, "write_x").to_string(),
        true,
        None,
    );
    assert_eq!(d.action, Action::Escalate);
    assert_eq!(d.escalations.len(), 1);
    let e = &d.escalations[0];
    assert_eq!(e.id.as_deref(), Some("7"));
    assert_eq!(e.tool, "write_x");
    assert_eq!(e.escalation.rule.as_deref(), Some("writes"));
    assert_eq!(d.events[e.event].decision.as_str(), "escalate");
    assert!(d.holds(true));
    assert!(!d.holds(false), "asynchronous tenants are answered at once");
}

#[test]
fn parked_calls_are_answered_32019_with_their_approval_id() {
    let body = json!([tools_call(1, "read_x"), tools_call(2, "write_x")]).to_string();
    let mut d = decide_with(&escalating_gateway(), &body, true, None);
    assert!(!d.holds(true), "a batch is never held");
    d.park(body.as_bytes(), &["01JPENDING".to_string()]);
    let Action::ForwardBody(forwarded) = &d.action else {
        panic!("{:?}", d.action)
    };
    assert_eq!(
        serde_json::from_slice::<Value>(forwarded)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let pending: Value = serde_json::from_str(&d.response.local_errors[0]).unwrap();
    assert_eq!(pending["id"], 2);
    assert_eq!(pending["error"]["code"], -32019);
    assert_eq!(
        pending["error"]["data"],
        json!({"pending_id": "01JPENDING", "status": "pending", "resume_header": "X-IntentGate-Approval-Id"})
    );
    assert_eq!(d.events[1].pending_id, "01JPENDING");
}

#[test]
fn escalations_answered_with_a_denial_are_audited_as_denials() {
    let body = json!([tools_call(1, "read_x"), tools_call(2, "write_x")]).to_string();
    let mut d = decide_with(&escalating_gateway(), &body, true, None);
    let escalated = d.escalations[0].event;
    assert_eq!(d.events[escalated].decision.as_str(), "escalate");
    // No approval could be created (the control plane is unreachable, say).
    let denial = Denial::policy("approval service unavailable", Some("writes".into()));
    d.deny_escalations(body.as_bytes(), &denial);
    let event = &d.events[escalated];
    assert_eq!(event.decision.as_str(), "deny");
    assert_eq!(
        (
            event.check.as_str(),
            event.error_code,
            event.reason.as_str()
        ),
        ("policy", -32012, "approval service unavailable")
    );
    assert_eq!(
        d.events[0].decision.as_str(),
        "allow",
        "the other call is untouched"
    );
}

#[test]
fn an_approved_rerun_sets_aside_only_that_rule() {
    let body = tools_call(3, "write_x").to_string();
    let approved = Some("writes".to_string());
    let d = decide_with(&escalating_gateway(), &body, true, Some(&approved));
    assert_eq!(d.action, Action::Forward);
    let other = Some("other".to_string());
    let d = decide_with(&escalating_gateway(), &body, true, Some(&other));
    assert_eq!(d.action, Action::Escalate);
}

#[test]
fn a_refused_approval_answers_the_held_call_and_audits_it() {
    let h = Harness::new();
    let gw = escalating_gateway();
    let auth = gw.authenticate(
        &mut TokenCache::new(4),
        Some(&format!("Bearer {}", token())),
        None,
        NOW,
    );
    let mut next = || "ev".to_string();
    let mut env = Env {
        gateway: &gw,
        ctx: &h.ctx,
        auth: &auth,
        budget: &h.budget,
        next_id: &mut next,
        approvals: true,
        approved_rule: None,
    };
    let denial = Denial::policy("rejected by joe: too risky", Some("writes".into()));
    let d = refuse(
        &mut env,
        tools_call(9, "write_x").to_string().as_bytes(),
        &IntentSource::NotDeclared,
        denial,
    );
    let (status, body) = body_json(&d.action);
    assert_eq!(status, 200);
    assert_eq!(body["id"], 9);
    assert_eq!(body["error"]["code"], -32012);
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].tool, "write_x");
    assert_eq!(d.events[0].decision.as_str(), "deny");
}

#[test]
fn the_arguments_digest_ignores_key_order_and_spacing() {
    let a = RawValue::from_string(r#"{"b": 1, "a": [1, 2]}"#.into()).unwrap();
    let b = RawValue::from_string(r#"{"a":[1,2],"b":1}"#.into()).unwrap();
    let c = RawValue::from_string(r#"{"a":[1,2],"b":2}"#.into()).unwrap();
    assert_eq!(arguments_digest(Some(&a)), arguments_digest(Some(&b)));
    assert_ne!(arguments_digest(Some(&a)), arguments_digest(Some(&c)));
    assert_eq!(
        arguments_digest(None),
        arguments_digest(Some(&RawValue::from_string("{}".into()).unwrap()))
    );
}
