//! Authentication, tenant confinement and the error shape, across every endpoint.

use axum::http::StatusCode;
use serde_json::json;

use crate::approvals::park;
use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, POLICY, SUPER, TestApp};

on_both_backends!(
    every_admin_endpoint_needs_a_valid_token,
    another_tenants_resource_by_id_is_not_found,
    unknown_routes_and_methods_answer_json,
);

const ENDPOINTS: [(&str, &str); 20] = [
    ("POST", "/v1/admin/mint"),
    ("POST", "/v1/admin/revoke"),
    ("GET", "/v1/admin/revocations"),
    ("GET", "/v1/admin/policies/drafts"),
    ("POST", "/v1/admin/policies/drafts"),
    ("GET", "/v1/admin/policies/drafts/01X"),
    ("PUT", "/v1/admin/policies/drafts/01X"),
    ("DELETE", "/v1/admin/policies/drafts/01X"),
    ("GET", "/v1/admin/policies/active"),
    ("POST", "/v1/admin/policies/active"),
    ("DELETE", "/v1/admin/policies/active"),
    ("POST", "/v1/admin/policies/rollback"),
    ("POST", "/v1/admin/policies/dry-run"),
    ("GET", "/v1/admin/audit"),
    ("GET", "/v1/admin/audit/verify"),
    ("GET", "/v1/admin/audit/export?format=csv"),
    ("GET", "/v1/admin/approvals"),
    ("POST", "/v1/admin/approvals/01X/decide"),
    ("GET", "/v1/admin/tenants"),
    ("GET", "/v1/admin/integrations"),
];

async fn every_admin_endpoint_needs_a_valid_token(app: TestApp) {
    for (method, uri) in ENDPOINTS {
        for token in [
            None,
            Some("wrong-token-0123456789"),
            Some(""),
            Some(&SUPER[..SUPER.len() - 1]),
        ] {
            let (status, body) = app.call(method, uri, token, Some(&json!({}))).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} {token:?}");
            assert!(body["error"].is_string(), "{method} {uri}");
        }
    }
    // Basic or other schemes are not bearer tokens.
    let (status, _) = app.call("GET", "/v1/admin/tenants", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn another_tenants_resource_by_id_is_not_found(app: TestApp) {
    let draft = app.draft("globex", "theirs", POLICY).await;
    let approval = park(&app, "globex", "wire").await;
    let checks = [
        ("GET", format!("/v1/admin/policies/drafts/{draft}"), None),
        (
            "PUT",
            format!("/v1/admin/policies/drafts/{draft}"),
            Some(json!({"name": "mine"})),
        ),
        ("DELETE", format!("/v1/admin/policies/drafts/{draft}"), None),
        (
            "POST",
            "/v1/admin/policies/active".into(),
            Some(json!({"draft_id": draft})),
        ),
        (
            "POST",
            format!("/v1/admin/approvals/{}/decide", approval.id),
            Some(json!({"decision": "reject"})),
        ),
    ];
    for (method, uri, body) in &checks {
        let (status, answer) = app.call(method, uri, Some(ACME), body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
        assert!(answer["error"].is_string());
    }
    // Still there and untouched for their owner.
    let (status, theirs) = app
        .get(GLOBEX, &format!("/v1/admin/policies/drafts/{draft}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["name"], "theirs");
    let (_, pending) = app.get(GLOBEX, "/v1/admin/approvals").await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    let (_, revoked) = app.get(GLOBEX, "/v1/admin/revocations").await;
    assert!(revoked["items"].as_array().unwrap().is_empty());
    assert!(
        app.events("acme").await.is_empty(),
        "nothing was recorded for acme"
    );
}

async fn unknown_routes_and_methods_answer_json(app: TestApp) {
    // Text Postgres could not even compare is refused up front, on both databases alike.
    for uri in [
        "/v1/admin/policies/drafts/a%00b",
        "/v1/admin/audit?subject=a%00b",
        "/v1/admin/audit?tool=%01",
        "/v1/admin/audit/export?format=csv&subject=%00",
    ] {
        let (status, body) = app.get(SUPER, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let (status, _) = app
        .post(
            SUPER,
            "/v1/admin/policies/active",
            json!({"draft_id": "x\u{0}"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = app.get(SUPER, "/v1/admin/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let (status, body) = app.call("PATCH", "/v1/admin/mint", Some(SUPER), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
}
