//! The token exchange of one of our capability tokens (RFC 8693, subject_token_type
//! `urn:intentgate:token-type:capability`) for an attenuated child of it.

use axum::http::StatusCode;
use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{SUPER, TestApp};

on_both_backends!(
    a_capability_token_is_exchanged_for_a_narrower_child_never_a_wider_one,
    revoked_expired_foreign_and_forged_capability_tokens_are_refused,
);

async fn exchange(app: &TestApp, subject: &str, extra: &[(&str, &str)]) -> Answer {
    let mut params = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", CAPABILITY_TYPE),
    ];
    params.extend_from_slice(extra);
    token(app, &params, None, None).await
}

async fn mint(app: &TestApp, body: serde_json::Value) -> (String, String) {
    let (status, minted) = app.post(SUPER, "/v1/admin/mint", body).await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    (
        minted["token"].as_str().unwrap().to_owned(),
        minted["jti"].as_str().unwrap().to_owned(),
    )
}

async fn a_capability_token_is_exchanged_for_a_narrower_child_never_a_wider_one(app: TestApp) {
    let (parent, root) = mint(
        &app,
        json!({"subject": "agent-7", "tenant": "acme", "tools": ["read_*", "echo"], "max_calls": 10,
               "ttl_seconds": 7200}),
    )
    .await;
    let child = exchange(
        &app,
        &parent,
        &[("scope", "tool:read_invoice"), ("resource", RESOURCE)],
    )
    .await;
    assert_eq!(child.body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(child.body["scope"], "tool:read_invoice");
    let expires_in = child.body["expires_in"].as_i64().unwrap();
    assert!(
        (3590..=3600).contains(&expires_in),
        "at most the default lifetime: {expires_in}"
    );
    let narrowed = verified(&app, &child.token());
    assert_eq!(narrowed.root_jti, root);
    assert_ne!(narrowed.jti, root);
    assert_eq!(narrowed.subject, "agent-7");
    assert!(narrowed.allows_tool("read_invoice") && !narrowed.allows_tool("echo"));
    assert_eq!(
        narrowed.max_calls(),
        Some(10),
        "the parent's budget still holds"
    );
    assert_eq!(narrowed.audience.as_deref(), Some(RESOURCE));
    let event = last_event(&app, "acme", "oauth/token").await;
    assert_eq!(event["capability_token_id"], narrowed.jti);
    assert_eq!(event["root_capability_token_id"], root);
    assert_eq!(event["decided_by"], format!("capability:{root}"));

    // The child keeps its audience: another resource is refused; the same one is fine.
    let grandchild = exchange(&app, &child.token(), &[("resource", RESOURCE)]).await;
    assert_eq!(
        verified(&app, &grandchild.token()).audience.as_deref(),
        Some(RESOURCE)
    );
    exchange(
        &app,
        &child.token(),
        &[("resource", "https://other.example.com/v1/mcp")],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_target");
    // Never wider: tools outside the parent's are invalid_scope.
    for scope in ["tool:write_invoice", "tool:echo"] {
        exchange(&app, &child.token(), &[("scope", scope)])
            .await
            .refused(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    // `tool:*` (what the metadata advertises) asks for all the parent has, and gets no more.
    let all = exchange(&app, &child.token(), &[("scope", "tool:*")]).await;
    assert_eq!(all.body["scope"], "tool:read_invoice");
    // Without a scope the child keeps the parent's tools.
    let plain = exchange(&app, &parent, &[]).await;
    assert_eq!(plain.body["scope"], "tool:read_* tool:echo");

    // The child's jti is revocable, and revoking the root revokes the children.
    let (status, body) = app
        .post(SUPER, "/v1/admin/revoke", json!({"jti": narrowed.jti}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    exchange(&app, &child.token(), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, _) = app
        .post(SUPER, "/v1/admin/revoke", json!({"jti": root}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    exchange(&app, &plain.token(), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn revoked_expired_foreign_and_forged_capability_tokens_are_refused(app: TestApp) {
    let (parent, _) = mint(
        &app,
        json!({"subject": "agent", "tenant": "acme", "tools": ["echo"]}),
    )
    .await;
    // Signed by a key the control plane does not trust.
    let stranger = intentgate_core::token::IssuerKey::from_seed(&[99; 32]);
    let grant = intentgate_core::token::Grant {
        jti: "01JFORGED0000000000000000".into(),
        issuer: "intentgate".into(),
        subject: "agent".into(),
        tenant: "acme".into(),
        issued_at: now(),
        not_before: now(),
        expires_at: now() + 600,
        tools: None,
        max_calls: None,
        step_up_at: None,
        memory_key: None,
    };
    let forged = intentgate_core::token::mint(&stranger, &grant, &[5; 32]).unwrap();
    exchange(&app, &forged, &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    exchange(&app, "igt1.garbage", &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    // Expired.
    let (short, _) = mint(
        &app,
        json!({"subject": "agent", "tenant": "acme", "ttl_seconds": 1}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    exchange(&app, &short, &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    // A client of another tenant may not exchange acme's token.
    let (id, secret) =
        secret_client(&app, "globex", json!({"grant_types": [TOKEN_EXCHANGE]})).await;
    token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &parent),
            ("subject_token_type", CAPABILITY_TYPE),
        ],
        Some((&id, &secret)),
        None,
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    // An acme client may.
    let (acme, acme_secret) =
        secret_client(&app, "acme", json!({"grant_types": [TOKEN_EXCHANGE]})).await;
    let issued = token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &parent),
            ("subject_token_type", CAPABILITY_TYPE),
        ],
        Some((&acme, &acme_secret)),
        None,
    )
    .await;
    assert_eq!(verified(&app, &issued.token()).tenant, "acme");
    assert_eq!(
        last_event(&app, "acme", "oauth/token").await["decided_by"],
        format!("client:{acme}")
    );
    assert!(
        app.events("globex")
            .await
            .iter()
            .all(|e| e["method"] != "oauth/token")
    );
}
