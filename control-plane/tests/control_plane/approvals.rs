//! The approvals queue: created by the runtime's API, listed and decided by operators.

use axum::http::StatusCode;
use intentgate_control_plane::approvals::{self, Approval, Lifetime, NewApproval};
use intentgate_control_plane::store::changes::Change;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, TestApp};

on_both_backends!(
    pending_approvals_list_and_paginate,
    deciding_is_once_audited_and_announced
);

pub async fn park(app: &TestApp, tenant: &str, tool: &str) -> Approval {
    approvals::create(
        &app.state.db,
        NewApproval {
            tenant: tenant.into(),
            agent_id: "agent-7".into(),
            capability_token_id: "01JTI".into(),
            root_capability_token_id: "01ROOT".into(),
            tool: tool.into(),
            arguments: json!({"amount": 5000, "api_key": "[redacted]"})
                .as_object()
                .unwrap()
                .clone(),
            escalating_rule: "big_transfer".into(),
            reason: "over the limit".into(),
            lifetime: Lifetime::Parked {
                lifetime_ms: 3_600_000,
            },
        },
    )
    .await
    .unwrap()
}

async fn pending_approvals_list_and_paginate(app: TestApp) {
    let mut parked = Vec::new();
    for i in 0..5 {
        parked.push(park(&app, "acme", &format!("tool_{i}")).await);
    }
    park(&app, "globex", "other").await;

    let (status, page) = app.get(ACME, "/v1/admin/approvals?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], parked[4].id.as_str(), "newest first");
    assert_eq!(
        items[0]["arguments"],
        json!({"amount": 5000, "api_key": "[redacted]"})
    );
    assert_eq!(items[0]["escalating_rule"], "big_transfer");
    assert_eq!(items[0]["capability_token_id"], "01JTI");
    assert!(items[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            ACME,
            &format!("/v1/admin/approvals?limit=3&cursor={cursor}"),
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());

    let (_, all) = app.get(SUPER, "/v1/admin/approvals").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
    let (_, globex) = app.get(GLOBEX, "/v1/admin/approvals?tenant=acme").await;
    assert_eq!(globex["items"].as_array().unwrap().len(), 1);
}

async fn deciding_is_once_audited_and_announced(app: TestApp) {
    let mut changes = app.state.changes.subscribe();
    let first = park(&app, "acme", "transfer_funds").await;
    let second = park(&app, "acme", "wire").await;
    let uri = |id: &str| format!("/v1/admin/approvals/{id}/decide");

    // Another tenant's id is absent, and so is an unknown one.
    let (status, _) = app
        .post(GLOBEX, &uri(&first.id), json!({"decision": "approve"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(SUPER, &uri("01UNKNOWN"), json!({"decision": "approve"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .post(ACME, &uri(&first.id), json!({"decision": "maybe"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("decision"));

    let (status, body) = app
        .post(ACME, &uri(&first.id), json!({"decision": "approve", "reason": "ok'd by finance", "decided_by": "joe@acme.example"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app
        .post(SUPER, &uri(&first.id), json!({"decision": "reject"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .post(ACME, &uri(&second.id), json!({"decision": "reject"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        changes.try_recv().unwrap().change,
        Change::ApprovalDecided {
            tenant: "acme".into(),
            id: first.id.clone(),
            approved: true
        }
    );

    let (_, pending) = app.get(ACME, "/v1/admin/approvals").await;
    assert!(pending["items"].as_array().unwrap().is_empty());

    let events = app.events("acme").await;
    assert_eq!(events.len(), 2);
    let approve = &events[1];
    assert_eq!(approve["event"], "intentgate.approval");
    assert_eq!(approve["decision"], "approve");
    assert_eq!(approve["method"], "admin/decide");
    assert_eq!(approve["pending_id"], first.id.as_str());
    // The label names the person; the chain leads with the token that made the call.
    assert_eq!(
        approve["decided_by"],
        "tenant-admin:acme as joe@acme.example"
    );
    assert_eq!(approve["reason"], "ok'd by finance");
    assert_eq!(approve["tool"], "transfer_funds");
    assert_eq!(approve["rule"], "big_transfer");
    assert_eq!(approve["agent_id"], "agent-7");
    assert_eq!(events[0]["decision"], "reject");
    assert_eq!(events[0]["decided_by"], "tenant-admin:acme");
}
