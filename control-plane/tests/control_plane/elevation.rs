//! `X-IntentGate-Elevation-Id`: the privileged-access ticket an admin change is made under, recorded
//! as the `elevation_id` of the change's audit event.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::approvals::park;
use crate::on_both_backends;
use crate::support::{POLICY, TestApp};

on_both_backends!(
    the_ticket_is_recorded_on_the_event_of_each_change_it_covers,
    a_malformed_ticket_is_refused_and_changes_nothing,
);

const HEADER: &str = "X-IntentGate-Elevation-Id";

async fn the_ticket_is_recorded_on_the_event_of_each_change_it_covers(app: TestApp) {
    let ticket = |t: &'static str| [(HEADER, t.as_bytes())];
    let (status, minted) = app
        .call_with(
            "POST",
            "/v1/admin/mint",
            &ticket("PAM-2026-0042"),
            Some(&json!({"subject": "agent-7", "tenant": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    let draft = app.draft("acme", "first", POLICY).await;
    let (status, body) = app
        .call_with(
            "POST",
            "/v1/admin/policies/active",
            &ticket("CHG 7: break glass ~ozone"),
            Some(&json!({"draft_id": draft, "tenant": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let approval = park(&app, "acme", "transfer_funds").await;
    let longest = "T".repeat(128);
    let (status, body) = app
        .call_with(
            "POST",
            &format!("/v1/admin/approvals/{}/decide", approval.id),
            &[(HEADER, longest.as_bytes())],
            Some(&json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let events = app.events("acme").await;
    let elevation = |method: &str| -> Value {
        events
            .iter()
            .find(|e| e["method"] == method)
            .map(|e| e["elevation_id"].clone())
            .unwrap_or_else(|| panic!("no {method} event"))
    };
    assert_eq!(elevation("admin/mint"), "PAM-2026-0042");
    assert_eq!(elevation("admin/promote"), "CHG 7: break glass ~ozone");
    assert_eq!(elevation("admin/decide"), longest.as_str());
    // A change made without a ticket records none.
    assert_eq!(elevation("admin/draft_create"), "");
}

async fn a_malformed_ticket_is_refused_and_changes_nothing(app: TestApp) {
    let draft = app.draft("acme", "first", POLICY).await;
    let approval = park(&app, "acme", "transfer_funds").await;
    let before = app.events("acme").await.len();
    let too_long = "T".repeat(129);
    let refused: [&[(&str, &[u8])]; 5] = [
        &[(HEADER, too_long.as_bytes())],
        &[(HEADER, b"PAM\t42")],
        &[(HEADER, "caf\u{e9}".as_bytes())],
        &[(HEADER, b"")],
        &[(HEADER, b"PAM-1"), (HEADER, b"PAM-2")],
    ];
    for headers in refused {
        let requests = [
            (
                "/v1/admin/mint".to_owned(),
                json!({"subject": "agent-7", "tenant": "acme"}),
            ),
            (
                "/v1/admin/policies/active".to_owned(),
                json!({"draft_id": draft, "tenant": "acme"}),
            ),
            (
                format!("/v1/admin/approvals/{}/decide", approval.id),
                json!({"decision": "approve"}),
            ),
        ];
        for (uri, body) in requests {
            let (status, answer) = app.call_with("POST", &uri, headers, Some(&body)).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{uri} {headers:?}: {answer}"
            );
            let error = answer["error"].as_str().unwrap();
            assert!(error.to_lowercase().contains("elevation"), "{error}");
        }
    }
    assert_eq!(app.events("acme").await.len(), before, "nothing audited");
    let (status, _) = app
        .get(
            crate::support::SUPER,
            "/v1/admin/policies/active?tenant=acme",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing promoted");
    let (_, pending) = app.get(crate::support::ACME, "/v1/admin/approvals").await;
    assert_eq!(
        pending["items"][0]["id"],
        approval.id.as_str(),
        "still pending"
    );
    let (_, revocations) = app
        .get(crate::support::SUPER, "/v1/admin/revocations")
        .await;
    assert!(revocations["items"].as_array().unwrap().is_empty());
    let minted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(minted, 0, "nothing minted");
}
