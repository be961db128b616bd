//! Governance reports in JSON and CSV against a seeded database: the inventory from a discovery
//! source, the gateway's audit log, owners, an attestation campaign; tenant scoping; the reports
//! and sync tokens (503 when unset, 401 when wrong); admin tokens, scoped like the admin lists.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use intentgate_control_plane::audit;
use intentgate_control_plane::config::Config;
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::discovery::{ingest, source};
use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, POLICY, REPORTS, SUPER, TestApp};

on_both_backends!(
    reports_match_the_seeded_database_in_json_and_csv,
    admin_tokens_read_reports_within_their_scope,
    attestation_campaigns_record_answers_once,
);

/// acme: `agent-pay` calls the gateway (3 allowed read_invoice, 2 denied transfer_funds, 1
/// escalated); discovery finds `shadow-bot` (ungoverned) and `agent-pay` itself. globex: one
/// denied call by `globex-bot`. Times are within the last day.
async fn seed(app: &TestApp) {
    let now = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let calls = [
        ("acme", "agent-pay", "read_invoice", AuditDecision::Allow),
        ("acme", "agent-pay", "read_invoice", AuditDecision::Allow),
        ("acme", "agent-pay", "read_invoice", AuditDecision::Allow),
        ("acme", "agent-pay", "transfer_funds", AuditDecision::Deny),
        ("acme", "agent-pay", "transfer_funds", AuditDecision::Deny),
        (
            "acme",
            "agent-pay",
            "transfer_funds",
            AuditDecision::Escalate,
        ),
        ("globex", "globex-bot", "wire", AuditDecision::Deny),
    ];
    let events: Vec<AuditEvent> = calls
        .iter()
        .enumerate()
        .map(|(n, (tenant, agent, tool, decision))| {
            let mut e = AuditEvent::new(
                format!("call-{n}"),
                now + n as i64,
                EventKind::ToolCall,
                *decision,
            );
            e.tenant = (*tenant).into();
            e.agent_id = (*agent).into();
            e.tool = (*tool).into();
            e
        })
        .collect();
    audit::append(&app.state.db, &events).await.unwrap();
    let draft = app.draft("acme", "baseline", POLICY).await;
    let (status, _) = app
        .post(
            ACME,
            "/v1/admin/policies/active",
            json!({"draft_id": draft}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, token) = source(app, "acme", "generic", json!({})).await;
    let batch = json!([
        {"agent": "shadow-bot", "host": "api.anthropic.com", "timestamp": now},
        {"agent": "agent-pay", "host": "api.openai.com", "timestamp": now},
    ]);
    assert_eq!(ingest(app, &token, batch).await.0, StatusCode::OK);
    app.put(
        ACME,
        "/v1/admin/discovery/agents/agent-pay",
        json!({"owner": "payments@acme.example"}),
    )
    .await;
}

async fn report(app: &TestApp, uri: &str) -> (StatusCode, Value) {
    app.get(REPORTS, uri).await
}

async fn csv(app: &TestApp, uri: &str) -> Vec<Vec<String>> {
    let (status, body) = app.send("GET", uri, Some(REPORTS), Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

async fn reports_match_the_seeded_database_in_json_and_csv(app: TestApp) {
    seed(&app).await;

    let (status, posture) = report(&app, "/api/reports/posture").await;
    assert_eq!(status, StatusCode::OK, "{posture}");
    assert_eq!(posture["report"], "posture");
    let acme = &posture["tenants"][0];
    assert_eq!(acme["tenant"], "acme");
    assert_eq!(
        [
            &acme["agents"],
            &acme["discovered"],
            &acme["governed"],
            &acme["owned"],
            &acme["attested"],
            &acme["sources"]
        ],
        [
            &json!(2),
            &json!(2),
            &json!(1),
            &json!(1),
            &json!(0),
            &json!(1)
        ]
    );
    assert_eq!(
        (&acme["governed_pct"], &acme["owned_pct"]),
        (&json!(50), &json!(50))
    );
    assert_eq!(posture["totals"]["agents"], 3);
    let rows = csv(&app, "/api/reports/posture?format=csv").await;
    assert_eq!(rows[0][..4], ["tenant", "agents", "discovered", "governed"]);
    assert_eq!(rows[1][..4], ["acme", "2", "2", "1"]);
    assert_eq!(rows.last().unwrap()[..2], ["*", "3"], "the totals row");

    let (_, access) = report(&app, "/api/reports/access?tenant=acme").await;
    let pay = access["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "agent-pay")
        .unwrap();
    assert_eq!(
        (&pay["governed"], &pay["owner"]),
        (&json!(true), &json!("payments@acme.example"))
    );
    assert_eq!(pay["policy"]["name"], "baseline");
    let touches: Vec<_> = pay["touches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap(),
                t["name"].as_str().unwrap(),
                t["calls"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        touches,
        [
            ("tool", "read_invoice", 3),
            ("tool", "transfer_funds", 3),
            ("service", "OpenAI API", 0)
        ]
    );
    let rows = csv(&app, "/api/reports/access?tenant=acme&format=csv").await;
    assert_eq!(
        rows.len(),
        1 + 3 + 1,
        "header, agent-pay's three touches, shadow-bot's one"
    );
    assert!(
        rows.iter()
            .any(|r| r[1] == "shadow-bot" && r[3] == "false" && r[8] == "Anthropic API")
    );

    let (_, activity) = report(&app, "/api/reports/activity").await;
    let acme = &activity["tenants"][0];
    assert_eq!(
        [&acme["allow"], &acme["deny"], &acme["escalate"]],
        [&json!(3), &json!(2), &json!(1)]
    );
    assert_eq!(
        acme["top_blocked_agents"],
        json!([{"name": "agent-pay", "denied": 2}])
    );
    assert_eq!(
        acme["top_blocked_tools"],
        json!([{"name": "transfer_funds", "denied": 2}])
    );
    let rows = csv(&app, "/api/reports/activity?format=csv&tenant=globex").await;
    assert_eq!(
        rows[1],
        ["globex", "summary", "", "0", "1", "0", "0", "0", "1"]
    );
    assert_eq!(rows[2][..3], ["globex", "blocked_agent", "globex-bot"]);
    let (_, old) = report(
        &app,
        "/api/reports/activity?until=2020-01-01T00:00:00Z&since=2019-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(old["tenants"], json!([]));

    // Scoping: one tenant's report holds nothing of another.
    let (_, scoped) = report(&app, "/api/reports/posture?tenant=globex").await;
    assert_eq!(scoped["tenant"], "globex");
    assert_eq!(scoped["tenants"].as_array().unwrap().len(), 1);
    assert!(!scoped.to_string().contains("acme"));

    // Tokens: a wrong one is refused; bad parameters are named.
    assert_eq!(
        app.get("wrong-token-0123456789", "/api/reports/posture")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        report(&app, "/api/reports/everything").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, error) = report(&app, "/api/reports/posture?format=xml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"].as_str().unwrap().contains("format"));
    assert_eq!(
        report(&app, "/api/reports/posture?tenant=bad%20name")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

/// The console reads reports with the admin token it signed in with: the superadmin every tenant
/// (or the one it names), a per-tenant admin its own only, whatever `tenant` it sends.
async fn admin_tokens_read_reports_within_their_scope(app: TestApp) {
    seed(&app).await;
    let tenants = |report: &Value| -> Vec<String> {
        report["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenant"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = app.get(SUPER, "/api/reports/activity").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(tenants(&all), ["acme", "globex"]);
    assert_eq!(all["tenant"], Value::Null);
    let (_, named) = app.get(SUPER, "/api/reports/activity?tenant=globex").await;
    assert_eq!(tenants(&named), ["globex"]);
    for uri in [
        "/api/reports/activity",
        "/api/reports/activity?tenant=globex",
    ] {
        let (status, own) = app.get(ACME, uri).await;
        assert_eq!(status, StatusCode::OK, "{own}");
        assert_eq!(own["tenant"], "acme");
        assert_eq!(tenants(&own), ["acme"]);
        assert!(!own.to_string().contains("globex"), "{own}");
    }
    let (_, posture) = app.get(GLOBEX, "/api/reports/posture").await;
    assert_eq!(tenants(&posture), ["globex"]);
    let rows = {
        let (status, body) = app
            .send(
                "GET",
                "/api/reports/access?format=csv",
                Some(GLOBEX),
                Vec::new(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body).unwrap()
    };
    assert!(
        !rows.contains("acme") && !rows.contains("agent-pay"),
        "{rows}"
    );
    assert_eq!(
        app.get(SUPER, "/api/reports/posture?tenant=bad%20name")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

async fn attestation_campaigns_record_answers_once(app: TestApp) {
    seed(&app).await;
    let (status, campaign) = app
        .post(
            ACME,
            "/v1/admin/attestations",
            json!({"name": "Q2 agent review", "due_at": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    assert_eq!(
        (&campaign["total"], &campaign["status"]),
        (&json!(2), &json!("open"))
    );
    let id = campaign["id"].as_str().unwrap();
    let answer =
        json!({"agent": "agent-pay", "decision": "certify", "evidence": "CAB-1142: still needed"});
    let uri = format!("/v1/admin/attestations/{id}/responses");
    let (status, answered) = app.post(ACME, &uri, answer.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    assert_eq!(
        (&answered["answered"], &answered["completion_pct"]),
        (&json!(1), &json!(50))
    );
    assert_eq!(app.post(ACME, &uri, answer).await.0, StatusCode::CONFLICT);
    assert_eq!(
        app.post(
            GLOBEX,
            &uri,
            json!({"agent": "agent-pay", "decision": "revoke", "evidence": "x"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = app
        .post(
            ACME,
            &uri,
            json!({"agent": "shadow-bot", "decision": "revoke", "evidence": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "evidence is required");

    let (_, report) = report(&app, "/api/reports/attestation?tenant=acme").await;
    let items = report["campaigns"][0]["items"].as_array().unwrap();
    let pay = items.iter().find(|i| i["agent"] == "agent-pay").unwrap();
    assert_eq!(
        (&pay["decision"], &pay["evidence"]),
        (&json!("certify"), &json!("CAB-1142: still needed"))
    );
    let rows = csv(&app, "/api/reports/attestation?format=csv").await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .any(|r| r[6] == "agent-pay" && r[8] == "certify" && r[5] == "50")
    );
    let (_, posture) = app.get(REPORTS, "/api/reports/posture?tenant=acme").await;
    assert_eq!(posture["tenants"][0]["attested"], 1);
    let (_, list) = app.get(GLOBEX, "/v1/admin/attestations").await;
    assert_eq!(list["items"], json!([]));
}

/// Without the variables the endpoints exist but answer 503, naming what to set.
#[tokio::test]
async fn reports_and_sync_are_unavailable_until_their_tokens_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cp.db?mode=rwc", dir.path().display());
    let config = Config::from_lookup(|name| match name {
        "INTENTGATE_ADMIN_TOKEN" => Some(SUPER.into()),
        "INTENTGATE_DATABASE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    let router =
        intentgate_control_plane::app(intentgate_control_plane::build(&config).await.unwrap());
    for (method, uri, variable) in [
        (
            "GET",
            "/api/reports/posture",
            "INTENTGATE_REPORTS_API_TOKEN",
        ),
        (
            "POST",
            "/api/discovery/sync",
            "INTENTGATE_DISCOVERY_SYNC_TOKEN",
        ),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, "Bearer someone-else-0123456789")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains(variable));
    }
    let request = Request::builder()
        .uri("/api/reports/posture")
        .header(header::AUTHORIZATION, format!("Bearer {SUPER}"))
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "an admin token needs no reports token"
    );
}
