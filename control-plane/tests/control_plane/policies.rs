//! Drafts, promote, clear, rollback, the promotion history, dry-run.

use axum::http::StatusCode;
use intentgate_control_plane::audit;
use intentgate_control_plane::store::changes::Change;
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use intentgate_core::policy::{Policy, sha256_hex};
use serde_json::json;

use crate::on_both_backends;
use crate::support::{ACME, DENY_ALL, GLOBEX, POLICY, SUPER, TestApp};

on_both_backends!(
    drafts_crud_compiles_and_audits,
    bad_rego_is_returned_verbatim_and_changes_nothing,
    promote_clear_and_rollback_any_number_of_levels,
    dry_run_with_input_compares_with_the_active_policy,
    dry_run_with_sample_replays_recorded_calls,
    dry_run_rejects_bad_requests,
    a_label_in_the_body_cannot_pass_for_another_admin_in_the_chain,
    an_update_over_a_stale_read_changes_and_audits_nothing,
    the_promotion_history_shows_each_promotion_and_what_became_of_it,
);

async fn an_update_over_a_stale_read_changes_and_audits_nothing(app: TestApp) {
    use intentgate_control_plane::auth::Admin;
    use intentgate_control_plane::error::Error;
    use intentgate_control_plane::policies::drafts::{self, DraftUpdate};

    let id = app.draft("acme", "first", POLICY).await;
    let admin = Admin::Tenant("acme".into());
    // Read, then another admin renames the draft before this update writes.
    let stale = drafts::get(&app.state.db, &admin, &id).await.unwrap();
    let (status, _) = app
        .put(
            ACME,
            &format!("/v1/admin/policies/drafts/{id}"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let change = || DraftUpdate {
        name: None,
        description: None,
        rego_source: Some(DENY_ALL.into()),
    };
    let lost = drafts::update_from(&app.state.recorder(), &admin, stale.clone(), change()).await;
    assert!(matches!(lost, Err(Error::Conflict(_))), "{lost:?}");
    let (_, now) = app
        .get(ACME, &format!("/v1/admin/policies/drafts/{id}"))
        .await;
    assert_eq!(
        (now["name"].as_str(), now["rego_source"].as_str()),
        (Some("renamed"), Some(POLICY))
    );
    // Deleted meanwhile: 404, and still nothing audited for it.
    app.delete(ACME, &format!("/v1/admin/policies/drafts/{id}"))
        .await;
    let gone = drafts::update_from(&app.state.recorder(), &admin, stale, change()).await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
    let updates = app
        .events("acme")
        .await
        .into_iter()
        .filter(|e| e["method"] == "admin/draft_update")
        .count();
    assert_eq!(updates, 1, "only the rename was recorded");
}

async fn a_label_in_the_body_cannot_pass_for_another_admin_in_the_chain(app: TestApp) {
    let (status, draft) = app
        .post(
            ACME,
            "/v1/admin/policies/drafts",
            json!({"name": "n", "rego_source": POLICY, "created_by": "joe@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    let (status, active) = app
        .post(
            ACME,
            "/v1/admin/policies/active",
            json!({"draft_id": draft["id"], "promoted_by": "superadmin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{active}");
    // The rows keep the labels, as the API reference shows them ...
    assert_eq!(draft["created_by"], "joe@acme.example");
    assert_eq!(active["promoted_by"], "superadmin");
    // ... while the chain records who authenticated.
    let events = app.events("acme").await;
    let by = |method: &str| {
        events
            .iter()
            .find(|e| e["method"] == method)
            .map(|e| e["decided_by"].clone())
            .unwrap()
    };
    assert_eq!(by("admin/promote"), "tenant-admin:acme as superadmin");
    assert_eq!(
        by("admin/draft_create"),
        "tenant-admin:acme as joe@acme.example"
    );
}

async fn drafts_crud_compiles_and_audits(app: TestApp) {
    let (status, draft) = app
        .post(
            ACME,
            "/v1/admin/policies/drafts",
            json!({"name": "baseline", "description": "first", "rego_source": POLICY,
                   "tenant": "globex", "created_by": "joe@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    let id = draft["id"].as_str().unwrap();
    assert_eq!(draft["tenant"], "acme");
    assert_eq!(draft["created_by"], "joe@acme.example");
    assert_eq!(draft["rego_sha256"], sha256_hex(POLICY.as_bytes()));
    assert_eq!(draft["rego_source"], POLICY);

    let (_, list) = app.get(ACME, "/v1/admin/policies/drafts").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("rego_source").is_none());
    let (_, other) = app.get(GLOBEX, "/v1/admin/policies/drafts").await;
    assert!(other.as_array().unwrap().is_empty());

    let (status, updated) = app
        .put(
            ACME,
            &format!("/v1/admin/policies/drafts/{id}"),
            json!({"rego_source": DENY_ALL}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "baseline");
    assert_eq!(updated["description"], "first");
    assert_eq!(updated["rego_sha256"], sha256_hex(DENY_ALL.as_bytes()));
    let (_, fetched) = app
        .get(SUPER, &format!("/v1/admin/policies/drafts/{id}"))
        .await;
    assert_eq!(fetched["rego_source"], DENY_ALL);

    let (status, _) = app
        .delete(ACME, &format!("/v1/admin/policies/drafts/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .get(ACME, &format!("/v1/admin/policies/drafts/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let methods: Vec<_> = app
        .events("acme")
        .await
        .iter()
        .map(|e| e["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "admin/draft_delete",
            "admin/draft_update",
            "admin/draft_create"
        ]
    );
}

async fn bad_rego_is_returned_verbatim_and_changes_nothing(app: TestApp) {
    let bad = "package intentgate.policy\n\ndecision := {";
    let expected = Policy::compile(bad).unwrap_err().to_string();
    let (status, body) = app
        .post(
            SUPER,
            "/v1/admin/policies/drafts",
            json!({"name": "x", "tenant": "acme", "rego_source": bad}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], expected.as_str());
    let id = app.draft("acme", "good", POLICY).await;
    let (status, body) = app
        .put(
            SUPER,
            &format!("/v1/admin/policies/drafts/{id}"),
            json!({"rego_source": bad}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], expected.as_str());
    let (_, draft) = app
        .get(SUPER, &format!("/v1/admin/policies/drafts/{id}"))
        .await;
    assert_eq!(draft["rego_source"], POLICY);
    let (status, body) = app
        .put(
            SUPER,
            &format!("/v1/admin/policies/drafts/{id}"),
            json!({"name": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("name"));
}

async fn promote_clear_and_rollback_any_number_of_levels(app: TestApp) {
    let mut changes = app.state.changes.subscribe();
    let (status, _) = app.get(ACME, "/v1/admin/policies/active").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(ACME, "/v1/admin/policies/rollback", json!(null))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let first = app.draft("acme", "one", POLICY).await;
    let second = app.draft("acme", "two", DENY_ALL).await;
    let third = app
        .draft("acme", "three", &POLICY.replace("reads", "reads3"))
        .await;
    for (id, by) in [(&first, "a@x"), (&second, "b@x"), (&third, "c@x")] {
        let (status, active) = app
            .post(
                ACME,
                "/v1/admin/policies/active",
                json!({"draft_id": id, "promoted_by": by}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{active}");
        assert_eq!(active["draft_id"], id.as_str());
        assert_eq!(active["promoted_by"], by);
        assert_eq!(active["tenant"], "acme");
    }
    assert!(matches!(
        changes.try_recv().unwrap().change,
        Change::PolicyActivated { .. }
    ));

    // The active policy is a snapshot: deleting its draft changes nothing.
    app.delete(ACME, &format!("/v1/admin/policies/drafts/{third}"))
        .await;
    let (_, active) = app.get(ACME, "/v1/admin/policies/active").await;
    assert_eq!(active["draft_id"], third.as_str());
    let (_, bytecode) = intentgate_control_plane::policies::active::current(&app.state.db, "acme")
        .await
        .unwrap()
        .unwrap();
    assert!(Policy::from_bytecode(&bytecode).is_ok());

    // Clear: no active policy (filters fail closed); rollback then restores the last one.
    let (status, _) = app.delete(ACME, "/v1/admin/policies/active").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(ACME, "/v1/admin/policies/active").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, restored) = app
        .post(ACME, "/v1/admin/policies/rollback", json!(null))
        .await;
    assert_eq!(restored["draft_id"], third.as_str());

    // Two levels back, then nothing left.
    let (_, back) = app
        .post(ACME, "/v1/admin/policies/rollback", json!(null))
        .await;
    assert_eq!(back["draft_id"], second.as_str());
    let (_, back) = app
        .post(
            SUPER,
            "/v1/admin/policies/rollback?tenant=acme",
            json!(null),
        )
        .await;
    assert_eq!(back["draft_id"], first.as_str());
    let (status, _) = app
        .post(ACME, "/v1/admin/policies/rollback", json!(null))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, active) = app
        .get(SUPER, "/v1/admin/policies/active?tenant=acme")
        .await;
    assert_eq!(active["draft_id"], first.as_str());
    assert_eq!(active["rego_sha256"], sha256_hex(POLICY.as_bytes()));

    // Another tenant is untouched, and cannot promote acme's draft.
    let (status, _) = app.get(GLOBEX, "/v1/admin/policies/active").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            GLOBEX,
            "/v1/admin/policies/active",
            json!({"draft_id": first}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            SUPER,
            "/v1/admin/policies/active",
            json!({"draft_id": first, "tenant": "globex"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let methods: Vec<String> = app
        .events("acme")
        .await
        .iter()
        .map(|e| e["method"].as_str().unwrap().to_owned())
        .filter(|m| !m.starts_with("admin/draft"))
        .collect();
    assert_eq!(
        methods,
        [
            "admin/rollback",
            "admin/rollback",
            "admin/rollback",
            "admin/clear",
            "admin/promote",
            "admin/promote",
            "admin/promote"
        ]
    );
}

async fn dry_run_with_input_compares_with_the_active_policy(app: TestApp) {
    let input = json!({"tool": "transfer_funds", "args": {"amount": 5}});
    let (status, body) = app
        .post(
            ACME,
            "/v1/admin/policies/dry-run",
            json!({"rego_source": POLICY, "input": input}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let decision = &body["decisions"][0];
    assert_eq!(decision["candidate_decision"], "deny");
    assert_eq!(decision["rule"], "default");
    assert_eq!(
        decision["actual_decision"], "deny",
        "no active policy: fail closed"
    );
    assert_eq!(decision["input"], input);

    let id = app.draft("acme", "deny", DENY_ALL).await;
    app.post(ACME, "/v1/admin/policies/active", json!({"draft_id": id}))
        .await;
    let (_, body) = app
        .post(
            ACME,
            "/v1/admin/policies/dry-run",
            json!({"rego_source": POLICY, "input": {"tool": "read"}}),
        )
        .await;
    assert_eq!(body["decisions"][0]["candidate_decision"], "allow");
    assert_eq!(body["decisions"][0]["rule"], "reads");
    assert_eq!(body["decisions"][0]["actual_decision"], "deny");
}

fn tool_call(tenant: &str, n: i64, tool: &str, decision: AuditDecision) -> AuditEvent {
    let mut event = AuditEvent::new(
        format!("01TOOLCALL{n:016}"),
        1_781_444_520_000 + n,
        EventKind::ToolCall,
        decision,
    );
    event.tenant = tenant.into();
    event.agent_id = "agent-7".into();
    event.tool = tool.into();
    event.intent_summary = "pay the invoice".into();
    event.remote_ip = "10.0.0.1".into();
    event.arg_values = json!({"amount": n}).as_object().unwrap().clone();
    event
}

async fn dry_run_with_sample_replays_recorded_calls(app: TestApp) {
    let events = vec![
        tool_call("acme", 1, "read_invoice", AuditDecision::Deny),
        tool_call("acme", 2, "transfer_funds", AuditDecision::Allow),
        tool_call("acme", 3, "read_invoice", AuditDecision::Allow),
        tool_call("globex", 4, "read_invoice", AuditDecision::Allow),
    ];
    audit::append(&app.state.db, &events).await.unwrap();
    app.mint("acme", "not-a-tool-call").await; // Admin events are not replayed.

    let (status, body) = app
        .post(
            ACME,
            "/v1/admin/policies/dry-run",
            json!({"rego_source": POLICY, "sample": "2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let decisions = body["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["input"]["tool"], "read_invoice");
    assert_eq!(decisions[0]["candidate_decision"], "allow");
    assert_eq!(decisions[0]["actual_decision"], "allow");
    assert_eq!(decisions[1]["input"]["tool"], "transfer_funds");
    assert_eq!(decisions[1]["candidate_decision"], "deny");
    assert_eq!(decisions[1]["actual_decision"], "allow");
    assert_eq!(decisions[1]["rule"], "default");
    let input = &decisions[1]["input"];
    assert_eq!(input["args"], json!({"amount": 2}));
    assert_eq!(input["capability"]["subject"], "agent-7");
    assert_eq!(input["intent"]["summary"], "pay the invoice");
    assert_eq!(input["request"]["remote_ip"], "10.0.0.1");
    assert_eq!(input["now"], 1_781_444_520);

    let (_, all) = app
        .post(
            SUPER,
            "/v1/admin/policies/dry-run",
            json!({"rego_source": POLICY, "sample": "1000", "tenant": "acme"}),
        )
        .await;
    assert_eq!(all["decisions"].as_array().unwrap().len(), 3);
}

async fn dry_run_rejects_bad_requests(app: TestApp) {
    let cases = [
        (json!({"rego_source": POLICY}), "input or sample"),
        (
            json!({"rego_source": POLICY, "input": {}, "sample": "1"}),
            "not both",
        ),
        (json!({"rego_source": POLICY, "sample": "0"}), "sample"),
        (json!({"rego_source": POLICY, "sample": "1001"}), "sample"),
        (json!({"rego_source": POLICY, "sample": "ten"}), "sample"),
        (json!({"rego_source": POLICY, "sample": 5}), "sample"),
        (json!({"rego_source": POLICY, "input": [1]}), "input"),
        (json!({"input": {}}), "rego_source"),
    ];
    for (body, expected) in cases {
        let (status, answer) = app
            .post(ACME, "/v1/admin/policies/dry-run", body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{body}: {answer}"
        );
    }
    let (status, answer) = app
        .post(
            ACME,
            "/v1/admin/policies/dry-run",
            json!({"rego_source": "package x\n{", "input": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        Policy::compile("package x\n{").unwrap_err().to_string()
    );
}

async fn the_promotion_history_shows_each_promotion_and_what_became_of_it(app: TestApp) {
    let history = |token: &'static str, uri: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.get(token, uri).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let empty = history(ACME, "/v1/admin/policies/history").await;
    assert_eq!(empty, json!({"items": [], "next_cursor": null}));
    for name in ["first", "second", "third"] {
        let draft = app.draft("acme", name, POLICY).await;
        let (status, _) = app
            .post(
                ACME,
                "/v1/admin/policies/active",
                json!({"draft_id": draft, "promoted_by": "joe"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let globex = app.draft("globex", "globex-only", DENY_ALL).await;
    app.post(
        GLOBEX,
        "/v1/admin/policies/active",
        json!({"draft_id": globex}),
    )
    .await;
    let (status, _) = app
        .post(ACME, "/v1/admin/policies/rollback", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let page = history(ACME, "/v1/admin/policies/history?tenant=globex").await;
    let rows: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["active"].as_bool().unwrap(),
                p["rolled_back_at"].is_string(),
                p["tenant"].as_str().unwrap(),
                p["promoted_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("third", false, true, "acme", "joe"),
            ("second", true, false, "acme", "joe"),
            ("first", false, false, "acme", "joe"),
        ],
        "a tenant admin's own history, newest first, whatever tenant it names"
    );
    assert_eq!(
        page["items"][0]["rego_sha256"],
        sha256_hex(POLICY.as_bytes())
    );

    app.delete(ACME, "/v1/admin/policies/active").await;
    let cleared = history(SUPER, "/v1/admin/policies/history?tenant=acme&limit=2").await;
    assert!(
        cleared["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["active"] == false)
    );
    let cursor = cleared["next_cursor"].as_str().unwrap();
    let (status, rest) = app
        .get(
            SUPER,
            &format!("/v1/admin/policies/history?tenant=acme&limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rest["items"][0]["name"], "first");
    assert_eq!(rest["next_cursor"], json!(null));
    let (status, _) = app
        .get(
            SUPER,
            &format!("/v1/admin/policies/history?tenant=globex&cursor={cursor}"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a cursor is bound to its tenant"
    );
    let (status, _) = app.get(SUPER, "/v1/admin/policies/history").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the superadmin names the tenant"
    );
}
