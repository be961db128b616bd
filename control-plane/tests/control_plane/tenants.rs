//! Tenants, integrations, health and metrics.

use axum::http::StatusCode;
use serde_json::json;

use crate::approvals::park;
use crate::on_both_backends;
use crate::support::{ACME, POLICY, REPORTS, SUPER, TestApp};

on_both_backends!(
    tenants_summarise_state,
    integrations_never_show_secrets,
    integrations_count_the_audit_events_filters_dropped,
    a_destinations_error_text_is_for_the_superadmin_only,
    health_checks_the_database_and_metrics_count_requests,
    the_control_planes_own_chain_is_not_a_tenant,
);

async fn tenants_summarise_state(app: TestApp) {
    app.mint("initech", "agent-i").await;
    let draft = app.draft("acme", "p", POLICY).await;
    let (_, active) = app
        .post(
            ACME,
            "/v1/admin/policies/active",
            json!({"draft_id": draft}),
        )
        .await;
    park(&app, "acme", "wire").await;
    park(&app, "acme", "wire").await;

    let (status, tenants) = app.get(SUPER, "/v1/admin/tenants").await;
    assert_eq!(status, StatusCode::OK, "{tenants}");
    let names: Vec<_> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["acme", "globex", "initech"],
        "configured and in use, sorted"
    );
    assert_eq!(tenants[0]["active_policy_sha"], active["rego_sha256"]);
    assert_eq!(tenants[0]["pending_approvals"], 2);
    // Events in the last 24 h: the draft creation and the promotion.
    assert_eq!(tenants[0]["recent_event_count"], 2);
    assert!(tenants[1]["active_policy_sha"].is_null());
    assert_eq!(tenants[2]["recent_event_count"], 1);

    let (_, own) = app.get(ACME, "/v1/admin/tenants").await;
    assert_eq!(own.as_array().unwrap().len(), 1);
    assert_eq!(own[0]["name"], "acme");
}

async fn integrations_never_show_secrets(app: TestApp) {
    let (status, list) = app.get(ACME, "/v1/admin/integrations").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "splunk", "datadog", "sentinel", "webhook", "syslog", "filters"
        ]
    );
    for item in list.as_array().unwrap() {
        assert_eq!(item["configured"], false);
        let keys: Vec<_> = item.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 8, "the reference's fields and lag: {keys:?}");
    }
}

async fn a_destinations_error_text_is_for_the_superadmin_only(app: TestApp) {
    use intentgate_control_plane::delivery::store;
    store::ensure(&app.state.db, "webhook").await.unwrap();
    store::failed(
        &app.state.db,
        "webhook",
        "HTTP 400: rejected event of tenant globex",
    )
    .await
    .unwrap();
    let error_of = |list: &serde_json::Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "webhook")
            .unwrap()["last_error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_, full) = app.get(SUPER, "/v1/admin/integrations").await;
    assert!(error_of(&full).contains("tenant globex"), "{full}");
    let (_, redacted) = app.get(ACME, "/v1/admin/integrations").await;
    assert!(!error_of(&redacted).contains("globex"), "{redacted}");
    assert!(error_of(&redacted).contains("failing"), "{redacted}");
}

async fn integrations_count_the_audit_events_filters_dropped(app: TestApp) {
    use intentgate_control_plane::filters::registry as filters;
    filters::audit_batch(&app.state.db, "envoy-a/vm-1", 10, 0)
        .await
        .unwrap();
    filters::audit_batch(&app.state.db, "envoy-b/vm-1", 4, 3)
        .await
        .unwrap();
    filters::audit_batch(&app.state.db, "envoy-b/vm-1", 2, 1)
        .await
        .unwrap();

    let (status, list) = app.get(ACME, "/v1/admin/integrations").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ingest = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "filters")
        .unwrap();
    assert_eq!(ingest["configured"], true);
    assert_eq!(ingest["events_flushed"], 16);
    assert_eq!(ingest["events_dropped"], 4);
    assert!(ingest["last_flush_ts"].is_string(), "{ingest}");
    assert!(
        ingest["last_error"]
            .as_str()
            .unwrap()
            .contains("dropped 4 audit events"),
        "{ingest}"
    );
}

async fn health_checks_the_database_and_metrics_count_requests(app: TestApp) {
    let (status, body) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    app.get(SUPER, "/v1/admin/tenants").await;
    let (status, text) = app.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_owned();
    assert!(text.contains("intentgate_control_plane_http_requests_total{method=\"GET\",route=\"/v1/admin/tenants\",status=\"200\"} 1"), "{text}");
    // Made-up methods share one label instead of growing the series without bound.
    for method in ["A0001", "A0002"] {
        app.call(method, "/healthz", None, None).await;
    }
    let (_, text) = app.call("GET", "/metrics", None, None).await;
    let text = text.as_str().unwrap().to_owned();
    assert!(!text.contains("A0001"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");

    // A dead database makes health and every query answer 503 with a JSON error.
    app.state.db.close().await;
    let (status, body) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "database unavailable");
    let (status, _) = app.get(SUPER, "/v1/admin/tenants").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// `_system` holds the control plane's own changes (key rotations): it is listed nowhere as a
/// tenant, and no admin change can be made in it.
async fn the_control_planes_own_chain_is_not_a_tenant(app: TestApp) {
    app.mint("acme", "agent-a").await;
    let (status, _) = app.post(SUPER, "/v1/admin/keys/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.events("_system").await.len(),
        1,
        "the rotation is audited"
    );

    let (status, tenants) = app.get(SUPER, "/v1/admin/tenants").await;
    assert_eq!(status, StatusCode::OK, "{tenants}");
    let listed = tenants.as_array().unwrap().iter().map(|t| &t["name"]);
    assert!(listed.eq([&json!("acme"), &json!("globex")]), "{tenants}");
    for report in ["posture", "access", "attestation", "activity"] {
        for format in ["json", "csv"] {
            let uri = format!("/api/reports/{report}?format={format}");
            let (status, body) = app.send("GET", &uri, Some(REPORTS), Vec::new()).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            let text = String::from_utf8(body).unwrap();
            assert!(!text.contains("_system"), "{uri}: {text}");
        }
    }

    let refused = [
        (
            "POST",
            "/v1/admin/policies/drafts".to_owned(),
            json!({"name": "p", "tenant": "_system", "rego_source": POLICY}),
        ),
        (
            "POST",
            "/v1/admin/discovery/sources".to_owned(),
            json!({"name": "s", "vendor": "generic", "tenant": "_system"}),
        ),
        (
            "POST",
            "/v1/admin/attestations".to_owned(),
            json!({"name": "c", "tenant": "_system"}),
        ),
        (
            "PUT",
            "/v1/admin/tenants/_system/settings".to_owned(),
            json!({"settings": {"approval_mode": "sync", "approval_timeout_secs": 30}}),
        ),
        (
            "PUT",
            "/v1/admin/discovery/agents/agent-a".to_owned(),
            json!({"tenant": "_system", "owner": "joe"}),
        ),
    ];
    for (method, uri, body) in refused {
        let (status, answer) = app.call(method, &uri, Some(SUPER), Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("reserved"),
            "{answer}"
        );
    }
    for uri in [
        "/v1/admin/policies/active?tenant=_system",
        "/v1/admin/policies/rollback?tenant=_system",
    ] {
        let method = if uri.contains("rollback") {
            "POST"
        } else {
            "DELETE"
        };
        let (status, answer) = app.call(method, uri, Some(SUPER), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {answer}");
    }
    assert_eq!(
        app.events("_system").await.len(),
        1,
        "nothing written there"
    );
}
