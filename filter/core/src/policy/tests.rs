use super::*;

const BASE: &str = r#"
package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "default deny", "rule": "default"}

decision := {"allow": true, "rule": "reads"} if {
    glob.match("read_*", [], input.tool)
}

decision := {"allow": false, "escalate": true, "reason": "large transfer", "rule": "big_transfer"} if {
    input.tool == "transfer_funds"
    input.args.amount > 1000
}

decision := {"allow": true, "rule": "small_transfer"} if {
    input.tool == "transfer_funds"
    input.args.amount <= 1000
}
"#;

fn eval(policy: &Policy, input: &str) -> PolicyOutcome {
    policy.evaluate(Value::from_json_str(input).unwrap())
}

#[test]
fn allow_deny_and_escalate_follow_the_rules() {
    let p = Policy::compile(BASE).unwrap();
    assert_eq!(
        eval(&p, r#"{"tool":"read_invoice","args":{}}"#),
        PolicyOutcome::Allow {
            rule: Some("reads".into()),
            reason: None
        }
    );
    assert_eq!(
        eval(&p, r#"{"tool":"delete_invoice","args":{}}"#),
        PolicyOutcome::Deny {
            rule: Some("default".into()),
            reason: "default deny".into(),
            requires_step_up: false
        }
    );
    assert_eq!(
        eval(&p, r#"{"tool":"transfer_funds","args":{"amount":5000}}"#),
        PolicyOutcome::Escalate {
            rule: Some("big_transfer".into()),
            reason: "large transfer".into(),
            requires_step_up: false
        }
    );
    assert_eq!(
        eval(&p, r#"{"tool":"transfer_funds","args":{"amount":5}}"#).label(),
        "allow"
    );
}

#[test]
fn escalate_wins_over_allow_within_a_decision() {
    let p = Policy::compile(
        "package intentgate.policy\nimport rego.v1\ndecision := {\"allow\": true, \"escalate\": true, \"rule\": \"r\"}",
    )
    .unwrap();
    assert_eq!(eval(&p, "{}").label(), "escalate");
}

#[test]
fn malformed_decisions_deny() {
    for (body, needle) in [
        ("decision := {\"reason\": \"no allow\"}", "allow is missing"),
        ("decision := {\"allow\": \"yes\"}", "allow is not a boolean"),
        ("decision := true", "not an object"),
        (
            "decision := {\"allow\": true, \"escalate\": 1}",
            "escalate must be a boolean",
        ),
        (
            "decision := {\"allow\": true} if { input.never }",
            "undefined",
        ),
    ] {
        let p = Policy::compile(&format!(
            "package intentgate.policy\nimport rego.v1\n{body}"
        ))
        .unwrap();
        match eval(&p, "{}") {
            PolicyOutcome::Error(reason) => assert!(reason.contains(needle), "{body}: {reason}"),
            other => panic!("{body}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn conflicting_rule_bodies_deny_with_a_reason_that_names_the_conflict() {
    let p = Policy::compile(
        r#"package intentgate.policy
import rego.v1
decision := {"allow": true, "rule": "a"} if { input.tool == "x" }
decision := {"allow": false, "rule": "b"} if { startswith(input.tool, "x") }
"#,
    )
    .unwrap();
    match eval(&p, r#"{"tool":"x"}"#) {
        PolicyOutcome::Error(reason) => assert!(reason.contains("conflict"), "{reason}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn runaway_policy_hits_the_instruction_limit_and_denies() {
    let p = Policy::compile(
        r#"package intentgate.policy
import rego.v1
decision := {"allow": count([x | some x in numbers.range(1, 1000000); x % 7 == 0]) > 0}
"#,
    )
    .unwrap()
    .with_instruction_limit(10_000);
    match eval(&p, "{}") {
        PolicyOutcome::Error(reason) => assert!(reason.contains("instruction limit"), "{reason}"),
        other => panic!("expected the limit to stop it, got {other:?}"),
    }
}

#[test]
fn compile_errors_are_returned_verbatim() {
    let err = Policy::compile("package intentgate.policy\ndecision := {").unwrap_err();
    let PolicyError::Compile(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("policy.rego"), "{message}");
}

#[test]
fn bytecode_round_trips_with_the_same_results() {
    let p = Policy::compile(BASE).unwrap();
    let loaded = Policy::from_bytecode(&p.bytecode().unwrap()).unwrap();
    assert_eq!(loaded.sha256(), p.sha256());
    for input in [
        r#"{"tool":"read_invoice","args":{}}"#,
        r#"{"tool":"transfer_funds","args":{"amount":5000}}"#,
        r#"{"tool":"nope","args":{}}"#,
    ] {
        assert_eq!(eval(&loaded, input), eval(&p, input), "{input}");
    }
    assert!(Policy::from_bytecode(b"garbage").is_err());
}

#[test]
fn policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn a_conflict_is_not_masked_by_a_default_decision() {
    let p = Policy::compile(
        r#"package intentgate.policy
import rego.v1
default decision := {"allow": true, "rule": "default_allow"}
decision := {"allow": true, "rule": "a"} if { input.tool == "x" }
decision := {"allow": false, "rule": "b"} if { startswith(input.tool, "x") }
"#,
    )
    .unwrap();
    match eval(&p, r#"{"tool":"x"}"#) {
        PolicyOutcome::Error(reason) => assert!(reason.contains("conflict"), "{reason}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Without a conflict the default still applies.
    assert_eq!(eval(&p, r#"{"tool":"y"}"#).label(), "allow");
}

#[test]
fn an_evaluation_does_not_wait_for_a_vm_another_thread_holds() {
    let p = Policy::compile(BASE).unwrap();
    let held = p.take_vm();
    // With one VM behind a lock, this evaluation would wait for `held` forever.
    let outcome = std::thread::scope(|s| {
        s.spawn(|| eval(&p, r#"{"tool":"read_invoice","args":{}}"#))
            .join()
            .unwrap()
    });
    assert_eq!(outcome.label(), "allow");
    p.give_back(held);
    assert_eq!(
        p.vms.lock().unwrap().len(),
        2,
        "both VMs are kept for reuse"
    );
}

#[test]
fn every_pooled_vm_keeps_the_instruction_limit() {
    let p = Policy::compile(BASE).unwrap().with_instruction_limit(5);
    let held = p.take_vm();
    let outcome = eval(&p, r#"{"tool":"read_invoice","args":{}}"#);
    assert!(matches!(outcome, PolicyOutcome::Error(_)), "{outcome:?}");
    p.give_back(held);
}
