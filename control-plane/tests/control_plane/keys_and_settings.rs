//! Signing keys, the filters view, tenant settings, and writes that overlap on SQLite.

use axum::http::StatusCode;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, TestApp};

on_both_backends!(
    rotation_makes_a_new_key_sign_and_keeps_the_old_one_trusted_until_retired,
    only_the_superadmin_manages_keys_and_sees_filters,
    settings_are_validated_audited_and_confined_to_their_tenant,
    retiring_keys_while_audit_events_are_appended_never_fails,
);

async fn rotation_makes_a_new_key_sign_and_keeps_the_old_one_trusted_until_retired(app: TestApp) {
    let (status, keys) = app.get(SUPER, "/v1/admin/keys").await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let first = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(keys[0]["status"], "active");
    let (status, rotated) = app.post(SUPER, "/v1/admin/keys/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["kid"], first.as_str());
    assert_eq!(
        app.state.signing.active().kid(),
        rotated["kid"].as_str().unwrap(),
        "mint signs with it"
    );
    let (_, keys) = app.get(SUPER, "/v1/admin/keys").await;
    let status_of = |kid: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(&first), "trusted");
    let (status, _) = app
        .delete(
            SUPER,
            &format!("/v1/admin/keys/{}", rotated["kid"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the key that signs cannot be retired"
    );
    assert_eq!(
        app.delete(SUPER, &format!("/v1/admin/keys/{first}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(SUPER, &format!("/v1/admin/keys/{first}"))
            .await
            .0,
        StatusCode::NO_CONTENT,
        "idempotent"
    );
    assert_eq!(
        app.delete(SUPER, "/v1/admin/keys/ig-0000000000000000")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Malformed path segments are JSON 400s naming the problem, never a database error.
    for uri in ["/v1/admin/keys/%00", "/v1/admin/keys/%FF"] {
        let (status, body) = app.call("DELETE", uri, Some(SUPER), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
    let (status, body) = app
        .call("GET", "/v1/admin/tenants/%FF/settings", Some(SUPER), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let events = app.events("_system").await;
    let actions: Vec<_> = events
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["admin/retire_key", "admin/rotate_key"],
        "newest first"
    );
}

async fn only_the_superadmin_manages_keys_and_sees_filters(app: TestApp) {
    assert_eq!(
        app.post(ACME, "/v1/admin/keys/rotate", json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, keys) = app.get(SUPER, "/v1/admin/keys").await;
    let kid = keys[0]["kid"].as_str().unwrap();
    assert_eq!(
        app.delete(ACME, &format!("/v1/admin/keys/{kid}")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(ACME, "/v1/admin/filters").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, filters) = app.get(SUPER, "/v1/admin/filters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filters, json!({"state_version": 0, "filters": []}));
}

async fn settings_are_validated_audited_and_confined_to_their_tenant(app: TestApp) {
    let (status, defaults) = app.get(ACME, "/v1/admin/tenants/acme/settings").await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert_eq!(defaults["settings"]["approval_mode"], "sync");
    assert_eq!(defaults["settings"]["approval_timeout_secs"], 300);
    assert_eq!(defaults["settings"]["approval_lifetime_secs"], 86_400);
    assert_eq!(defaults["updated_at"], serde_json::Value::Null);
    let update = json!({
        "settings": {"approval_mode": "async", "approval_timeout_secs": 30, "require_intent": true},
        "intent_rules": [{"id": "inv", "keywords": ["invoice"], "allow": ["read_*"]}]
    });
    let (status, saved) = app
        .put(ACME, "/v1/admin/tenants/acme/settings", update)
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["settings"]["approval_mode"], "async");
    assert_eq!(saved["intent_rules"][0]["id"], "inv");
    assert_eq!(saved["updated_by"], "tenant-admin:acme");
    let events = app.events("acme").await;
    assert!(events.iter().any(|e| e["method"] == "admin/settings"));
    for (bad, needle) in [
        (
            json!({"settings": {"approval_timeout_secs": 0}}),
            "approval_timeout_secs",
        ),
        (
            json!({"settings": {"approval_lifetime_secs": 0}}),
            "approval_lifetime_secs",
        ),
        (
            json!({"settings": {"approval_lifetime_secs": 2_592_001}}),
            "approval_lifetime_secs",
        ),
        (
            json!({"settings": {"approval_mode": "sometimes"}}),
            "approval_mode",
        ),
        (
            json!({"settings": {"rate_limits": {"per_agent_per_minute": 0}}}),
            "per_agent_per_minute",
        ),
        (
            json!({"settings": {}, "intent_rules": [{"id": "x", "keywords": ["  "], "allow": ["a"]}]}),
            "intent_rules",
        ),
        (
            json!({"settings": {}, "intent_rules": [{"id": "x", "keywords": ["k"], "forbid": [""]}]}),
            "intent_rules",
        ),
        (
            json!({"settings": {"rate_limits": [null, null]}}),
            "expected an object",
        ),
        (json!({"settings": [false]}), "expected an object"),
        (
            json!({"settings": {}, "intent_rules": [["x", ["k"]]]}),
            "expected an object",
        ),
        (json!({"settings": {}, "extra": 1}), "extra"),
    ] {
        let (status, body) = app
            .put(ACME, "/v1/admin/tenants/acme/settings", bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{bad}: {body}"
        );
    }
    assert_eq!(
        app.get(GLOBEX, "/v1/admin/tenants/acme/settings").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = app
        .put(
            GLOBEX,
            "/v1/admin/tenants/acme/settings",
            json!({"settings": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, still) = app.get(SUPER, "/v1/admin/tenants/acme/settings").await;
    assert_eq!(
        still["settings"]["approval_mode"], "async",
        "a refused change changed nothing"
    );
}

/// A transaction that reads before it writes must wait for SQLite's write lock, not fail with
/// "database is locked" when audit events are appended at the same time.
async fn retiring_keys_while_audit_events_are_appended_never_fails(app: TestApp) {
    let db = app.state.db.clone();
    let appender = tokio::spawn(async move {
        for n in 0..300 {
            let event = intentgate_control_plane::audit::record::admin(
                "acme",
                "load",
                "test",
                format!("event {n}"),
            )
            .unwrap();
            intentgate_control_plane::audit::store::append(&db, &[event])
                .await
                .unwrap();
        }
    });
    for _ in 0..10 {
        let (_, keys) = app.get(SUPER, "/v1/admin/keys").await;
        let (status, body) = app.post(SUPER, "/v1/admin/keys/rotate", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let previous = keys[0]["kid"].as_str().unwrap();
        let (status, body) = app
            .delete(SUPER, &format!("/v1/admin/keys/{previous}"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    appender.await.unwrap();
}
