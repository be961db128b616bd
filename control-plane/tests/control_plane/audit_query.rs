//! Audit query filters and pagination, and the streamed export.

use axum::http::StatusCode;
use intentgate_control_plane::audit;
use intentgate_control_plane::audit::export::CSV_COLUMNS;
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, TestApp};

on_both_backends!(
    filters_narrow_the_query,
    query_pages_newest_first_and_refuses_bad_parameters,
    export_streams_every_matching_event,
);

/// 30 acme events, one a minute from 2026-06-14T13:00:00Z, and 5 globex ones.
async fn seed(app: &TestApp) -> Vec<AuditEvent> {
    let base = 1_781_442_000_000; // 2026-06-14T13:00:00Z
    let mut events = Vec::new();
    for n in 0..35i64 {
        let tenant = if n < 30 { "acme" } else { "globex" };
        let decision = [
            AuditDecision::Allow,
            AuditDecision::Deny,
            AuditDecision::Escalate,
        ][(n % 3) as usize];
        let mut event = AuditEvent::new(
            format!("ev-{n:03}"),
            base + n * 60_000,
            EventKind::ToolCall,
            decision,
        );
        event.tenant = tenant.into();
        event.agent_id = format!("agent-{}", n % 2);
        event.tool = if n % 5 == 0 {
            "transfer_funds".into()
        } else {
            "read_invoice".into()
        };
        event.reason = "line one, \"quoted\"\nline two".into();
        events.push(event);
    }
    audit::append(&app.state.db, &events).await.unwrap();
    events
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn filters_narrow_the_query(app: TestApp) {
    let events = seed(&app).await;
    let query = |q: &str| format!("/v1/admin/audit?tenant=acme&limit=1000&{q}");
    let expect = |pred: &dyn Fn(&AuditEvent) -> bool| -> Vec<String> {
        events
            .iter()
            .rev()
            .filter(|e| e.tenant == "acme" && pred(e))
            .map(|e| e.id.clone())
            .collect()
    };
    let (_, body) = app.get(SUPER, &query("decision=deny")).await;
    assert_eq!(ids(&body), expect(&|e| e.decision == AuditDecision::Deny));
    let (_, body) = app
        .get(SUPER, &query("tool=transfer_funds&subject=agent-0"))
        .await;
    assert_eq!(
        ids(&body),
        expect(&|e| e.tool == "transfer_funds" && e.agent_id == "agent-0")
    );
    // since inclusive, until exclusive, any offset.
    let (_, body) = app
        .get(
            SUPER,
            &query("since=2026-06-14T13:10:00Z&until=2026-06-14T15:15:00%2B02:00"),
        )
        .await;
    assert_eq!(
        ids(&body),
        expect(&|e| ("ev-010".."ev-015").contains(&e.id.as_str()))
    );
    assert_eq!(body["items"][0]["event"], "intentgate.tool_call");
    assert_eq!(body["items"][0]["schema_version"], "v4");

    // A per-tenant admin only ever sees its own events; the superadmin may see all.
    let (_, own) = app.get(GLOBEX, "/v1/admin/audit?tenant=acme").await;
    assert_eq!(own["items"].as_array().unwrap().len(), 5);
    let (_, all) = app.get(SUPER, "/v1/admin/audit?limit=1000").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 35);
    let (_, none) = app.get(ACME, "/v1/admin/audit?subject=nobody").await;
    assert!(none["items"].as_array().unwrap().is_empty());
}

async fn query_pages_newest_first_and_refuses_bad_parameters(app: TestApp) {
    seed(&app).await;
    let mut seen = Vec::new();
    let mut uri = "/v1/admin/audit?limit=7".to_string();
    let mut cursor = None;
    loop {
        let (status, page) = app.get(ACME, &uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => {
                cursor = Some(next.to_owned());
                uri = format!("/v1/admin/audit?limit=7&cursor={next}");
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..30).rev().map(|n| format!("ev-{n:03}")).collect();
    assert_eq!(seen, expected);
    let cursor = cursor.unwrap();
    let (status, _) = app
        .get(GLOBEX, &format!("/v1/admin/audit?cursor={cursor}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another tenant's cursor");
    let (status, _) = app
        .get(
            ACME,
            "/v1/admin/revocations?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("decision=maybe", "decision"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=%%%", "cursor"),
        ("tenant=bad%20tenant", "tenant"),
    ] {
        let (status, body) = app.get(SUPER, &format!("/v1/admin/audit?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(field),
            "{query}: {body}"
        );
    }
}

async fn export_streams_every_matching_event(app: TestApp) {
    seed(&app).await;
    // Enough events for several chunks.
    let many: Vec<AuditEvent> = (0..1500)
        .map(|n| {
            let mut e = AuditEvent::new(
                format!("bulk-{n:05}"),
                1_781_450_000_000 + n,
                EventKind::Request,
                AuditDecision::Allow,
            );
            e.tenant = "acme".into();
            e.reason = "x".repeat(100);
            e
        })
        .collect();
    audit::append(&app.state.db, &many).await.unwrap();

    let (status, body) = app
        .send(
            "GET",
            "/v1/admin/audit/export?format=ndjson",
            Some(ACME),
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1530);
    assert_eq!(lines[0]["id"], "ev-000", "oldest first");
    assert!(lines.iter().all(|l| l["tenant"] == "acme"));

    let (status, body) = app
        .send(
            "GET",
            "/v1/admin/audit/export?format=csv&tenant=acme&decision=deny&since=2026-06-14T13:03:00Z",
            Some(SUPER),
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    let mut rows = text.split("\r\n").filter(|r| !r.is_empty());
    assert_eq!(rows.next().unwrap(), CSV_COLUMNS.join(","));
    let rows: Vec<&str> = rows.collect();
    // Deny events are n = 1, 4, 7, ...; since 13:03 leaves n >= 4: 9 of them.
    assert_eq!(rows.len(), 9, "{text}");
    assert!(rows[0].starts_with("ev-004,2026-06-14T13:04:00.000Z,intentgate.tool_call,v4,deny,,\"line one, \"\"quoted\"\"\nline two\",acme,"));

    for query in ["format=xml", "", "format=csv&since=nope"] {
        let (status, body) = app
            .get(SUPER, &format!("/v1/admin/audit/export?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body["error"].is_string());
    }
}
