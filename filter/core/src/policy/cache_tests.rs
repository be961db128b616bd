//! The decision cache: which policies get one (what they read is proved, they are deterministic),
//! which must not, and that a cached policy decides exactly as an uncached evaluation would.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::*;
use crate::intent::Intent;
use crate::token::Caveat;

fn policy(rules: &str) -> Policy {
    Policy::compile(&format!(
        "package intentgate.policy\nimport rego.v1\ndefault decision := {{\"allow\": false, \"rule\": \"default\"}}\n{rules}"
    ))
    .unwrap()
}

const DEMO: &str = include_str!("../../../../envoy/demo-policy.rego");

#[test]
fn policies_reading_named_input_fields_are_cached_by_those_fields() {
    let demo = Policy::compile(DEMO).unwrap();
    assert_eq!(demo.cached_by(), Some(&["tool".to_owned()][..]));
    let cases = [
        (
            r#"decision := {"allow": true} if { glob.match("read_*", [], input.tool); input.args.amount < 10 }"#,
            vec!["args", "tool"],
        ),
        (
            r#"decision := {"allow": true} if { input.request.headers["x-team"] == "ops" }"#,
            vec!["request"],
        ),
        (
            r#"decision := {"allow": true} if { some c in input.capability.caveats; c.tools }"#,
            vec!["capability"],
        ),
        (
            r#"decision := {"allow": true} if { input.now > 5; startswith(input.agent_id, "a") }"#,
            vec!["agent_id", "now"],
        ),
        (r#"decision := {"allow": true, "rule": "all"}"#, vec![]),
    ];
    for (rules, keys) in cases {
        let keys: Vec<String> = keys.into_iter().map(String::from).collect();
        assert_eq!(policy(rules).cached_by(), Some(&keys[..]), "{rules}");
    }
}

#[test]
fn policies_whose_decision_is_not_proved_a_function_of_named_fields_are_not_cached() {
    for rules in [
        // Not deterministic: the clock, randomness, identifiers.
        r#"decision := {"allow": true} if { time.now_ns() > 0 }"#,
        r#"decision := {"allow": true} if { rand.intn("x", 10) > 3 }"#,
        // The whole input: counted, passed on, iterated, returned by a rule.
        r#"decision := {"allow": true} if { count(input) > 3 }"#,
        r#"decision := {"allow": true} if { object.get(input, "tool", "") == "x" }"#,
        r#"f(x) := x.tool
decision := {"allow": true} if { f(input) == "x" }"#,
        r#"decision := {"allow": true} if { some k, _ in input; k == "tool" }"#,
        r#"whole := input
decision := {"allow": true} if { whole.tool == "x" }"#,
        // Input indexed by a value computed at run time.
        r#"decision := {"allow": true} if { some k in ["tool"]; input[k] == "x" }"#,
        r#"decision := {"allow": true} if { k := concat("", ["to", "ol"]); input[k] == "x" }"#,
        // A builtin not listed as pure is taken as impure.
        r#"decision := {"allow": true} if { time.parse_rfc3339_ns(input.tool) > 0 }"#,
    ] {
        assert_eq!(policy(rules).cached_by(), None, "{rules}");
    }
}

/// One generated call.
struct Call {
    tool: String,
    args: String,
    headers: BTreeMap<String, String>,
    now: i64,
    step_up_at: Option<i64>,
    intent: Option<Intent>,
}

/// Generated calls: tools, arguments, headers, clocks, step-ups and intents in combination.
fn inputs() -> Vec<Call> {
    let tools = ["echo", "read_invoice", "transfer_funds", "get-env", "x"];
    let args = [
        "{}",
        r#"{"amount": 5}"#,
        r#"{"amount": 5000}"#,
        r#"{"amount": "5"}"#,
        r#"{"n": 10, "nested": {"k": [1, 2]}}"#,
        r#"{"n": 100000}"#,
    ];
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        for (j, args) in args.iter().enumerate() {
            for k in 0..3 {
                let mut headers = BTreeMap::new();
                if k > 0 {
                    headers.insert("x-team".to_owned(), ["ops", "dev"][k - 1].to_owned());
                }
                let intent = (k == 2).then(|| Intent {
                    summary: "invoices".into(),
                    allowed_tools: vec!["read_*".into()],
                    forbidden_tools: vec![],
                    confidence: 0.9,
                });
                let now = 1_000 + i64::try_from(i * j + k).unwrap();
                let step_up = (j % 2 == 1).then_some(990);
                out.push(Call {
                    tool: (*tool).to_owned(),
                    args: (*args).to_owned(),
                    headers,
                    now,
                    step_up_at: step_up,
                    intent,
                });
            }
        }
    }
    out
}

#[test]
fn a_cached_policy_decides_every_call_exactly_as_an_uncached_evaluation() {
    let policies = [
        Policy::compile(DEMO).unwrap(),
        policy(
            r#"decision := {"allow": true, "rule": "reads"} if { glob.match("read_*", [], input.tool) }
decision := {"allow": false, "escalate": true, "reason": "big", "rule": "big"} if {
    input.tool == "transfer_funds"
    input.args.amount > 1000
}
decision := {"allow": true, "rule": "small"} if { input.tool == "transfer_funds"; input.args.amount <= 1000 }"#,
        ),
        policy(
            r#"decision := {"allow": true, "rule": "ops"} if { input.request.headers["x-team"] == "ops" }
decision := {"allow": false, "reason": "step up", "requires_step_up": true, "rule": "stale"} if {
    input.request.headers["x-team"] == "dev"
    input.now - input.capability.step_up_at > 5
}"#,
        ),
        policy(
            r#"decision := {"allow": true, "rule": "intent"} if { some t in input.intent.allowed_tools; glob.match(t, [], input.tool) }
decision := {"allow": true, "rule": "conflict"} if { input.tool == "x" }
decision := {"allow": false, "rule": "conflict2"} if { startswith(input.tool, "x") }"#,
        )
        .with_instruction_limit(5_000),
        policy(
            r#"decision := {"allow": count([x | some x in numbers.range(1, input.args.n); x % 7 == 0]) > 0, "rule": "count"} if { input.args.n }"#,
        )
        .with_instruction_limit(20_000),
    ];
    let mut compared = 0;
    for (index, policy) in policies.iter().enumerate() {
        assert!(policy.cached_by().is_some(), "policy {index} is cached");
        for Call {
            tool,
            args,
            headers,
            now,
            step_up_at,
            intent,
        } in inputs()
        {
            let args = RawValue::from_string(args).unwrap();
            let caveats = step_up_at
                .map(Caveat::StepUpAt)
                .into_iter()
                .collect::<Vec<_>>();
            let input = PolicyInput {
                method: "tools/call",
                tool: &tool,
                args: &args,
                agent_id: "agent",
                tenant: "acme",
                capability: CapabilityInput {
                    subject: "agent",
                    tenant: "acme",
                    jti: "j",
                    root_jti: "j",
                    step_up_at,
                    caveats: &caveats,
                },
                intent: intent.as_ref(),
                request: RequestInput {
                    method: "POST",
                    path: "/v1/mcp",
                    remote_ip: "127.0.0.1",
                    headers: &headers,
                },
                now,
            };
            let uncached = policy.evaluate(input.to_value(None).unwrap());
            // First the decision is evaluated and kept, then it is remembered: both must agree.
            assert_eq!(
                policy.decide(&input, None),
                uncached,
                "policy {index}, {tool} {args}"
            );
            assert_eq!(
                policy.decide(&input, None),
                uncached,
                "policy {index}, {tool} {args}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 5 * 90);
}

#[test]
fn errors_are_not_remembered_and_the_instruction_limit_still_applies() {
    let p = policy(
        r#"decision := {"allow": count([x | some x in numbers.range(1, input.args.n); x % 7 == 0]) > 0}"#,
    )
    .with_instruction_limit(10_000);
    assert_eq!(p.cached_by(), Some(&["args".to_owned()][..]));
    let headers = BTreeMap::new();
    let decide = |args: &str| {
        let args = RawValue::from_string(args.to_owned()).unwrap();
        let input = PolicyInput {
            method: "tools/call",
            tool: "t",
            args: &args,
            agent_id: "a",
            tenant: "t",
            capability: CapabilityInput {
                subject: "a",
                tenant: "t",
                jti: "j",
                root_jti: "j",
                step_up_at: None,
                caveats: &[],
            },
            intent: None,
            request: RequestInput {
                method: "POST",
                path: "/",
                remote_ip: "",
                headers: &headers,
            },
            now: 0,
        };
        p.decide(&input, None)
    };
    for _ in 0..2 {
        match decide(r#"{"n": 1000000}"#) {
            PolicyOutcome::Error(reason) => {
                assert!(reason.contains("instruction limit"), "{reason}")
            }
            other => panic!("expected the limit to stop it, got {other:?}"),
        }
    }
    assert_eq!(decide(r#"{"n": 10}"#).label(), "allow");
    assert_eq!(
        p.cache.as_ref().unwrap().len(),
        1,
        "only the decision is kept"
    );
}
