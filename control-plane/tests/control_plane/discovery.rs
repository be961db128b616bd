//! Discovery: every vendor parser on realistic export records (tests/fixtures/discovery),
//! malformed ones included; sources and their tokens; push ingest; pull sync from a local export
//! server; the inventory and tenant scoping.

use axum::http::{HeaderMap, StatusCode};
use intentgate_control_plane::discovery::catalog::Catalog;
use intentgate_control_plane::discovery::parse::Vendor;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, SYNC, TestApp};

pub fn fixture(vendor: &str) -> Vec<Value> {
    let path = format!(
        "{}/../tests/fixtures/discovery/{vendor}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// (records, imported, skipped, malformed, agents) expected of each fixture.
const EXPECTED: [(&str, i64, i64, i64, i64, i64); 5] = [
    ("zscaler", 7, 3, 1, 3, 2),
    ("netskope", 5, 2, 1, 2, 1),
    ("mdca", 7, 4, 1, 2, 4),
    ("infoblox", 8, 4, 1, 3, 3),
    ("generic", 7, 2, 2, 3, 1),
];

#[test]
fn each_parser_reads_its_vendors_export_fields() {
    let zscaler = fixture("zscaler");
    let o = Vendor::Zscaler.parse(&zscaler[0]).unwrap();
    assert_eq!(o.host.as_deref(), Some("api.openai.com"));
    assert_eq!(o.path.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(o.user.as_deref(), Some("jdoe@safemarch.com"));
    assert_eq!(o.device.as_deref(), Some("FIN-LT-0042"));
    assert_eq!(o.client_ip.as_deref(), Some("10.20.1.17"));
    assert_eq!(o.time_ms, Some(1_781_444_520_000));
    assert!(Vendor::Zscaler.parse(&zscaler[1]).unwrap().blocked);
    let raw = Vendor::Zscaler.parse(&zscaler[2]).unwrap();
    assert_eq!(
        (raw.path.as_deref(), raw.low_trust),
        (Some("/mcp"), true),
        "b64url, appriskscore"
    );
    assert_eq!(raw.user.as_deref(), Some("build@safemarch.com"));

    let netskope = fixture("netskope");
    let o = Vendor::Netskope.parse(&netskope[1]).unwrap();
    assert_eq!(o.host.as_deref(), Some("api.deepseek.com"));
    assert_eq!(o.device.as_deref(), Some("GLX-MAC-117"));
    assert_eq!(
        (o.blocked, o.low_trust),
        (true, true),
        "action block, ccl poor"
    );
    assert_eq!(o.time_ms, Some(1_781_444_580_000));

    let mdca = fixture("mdca");
    let app = Vendor::Mdca.parse(&mdca[1]).unwrap();
    assert_eq!(app.host.as_deref(), Some("character.ai"));
    assert_eq!(
        (app.blocked, app.low_trust),
        (true, true),
        "unsanctioned, riskScore 3"
    );
    let activity = Vendor::Mdca.parse(&mdca[2]).unwrap();
    assert_eq!(activity.user.as_deref(), Some("kwong@initech.example"));
    assert_eq!(activity.client_ip.as_deref(), Some("10.1.5.9"));
    let hunting = Vendor::Mdca.parse(&mdca[3]).unwrap();
    assert_eq!(hunting.app.as_deref(), Some("Anthropic Claude"));
    assert_eq!(hunting.user_agent.as_deref(), Some("claude-code/1.0.31"));

    let infoblox = fixture("infoblox");
    let o = Vendor::Infoblox.parse(&infoblox[0]).unwrap();
    assert_eq!(
        o.host.as_deref(),
        Some("generativelanguage.googleapis.com"),
        "trailing dot dropped"
    );
    assert_eq!(
        (o.device.as_deref(), o.user.as_deref()),
        (Some("ENG-WS-221"), Some("pnair"))
    );
    let threat = Vendor::Infoblox.parse(&infoblox[1]).unwrap();
    assert_eq!((threat.blocked, threat.threat), (true, true));
    let line = Vendor::Infoblox.parse(&infoblox[2]).unwrap();
    assert_eq!(line.client_ip.as_deref(), Some("10.40.9.5"));
    assert_eq!(line.host.as_deref(), Some("api.mistral.ai"));
    assert_eq!(line.time_ms, Some(1_781_432_142_118));
    let syslog = Vendor::Infoblox.parse(&infoblox[3]).unwrap();
    assert_eq!(
        (syslog.host.as_deref(), syslog.time_ms),
        (Some("mcp.atlassian.com"), None)
    );

    let generic = fixture("generic");
    let o = Vendor::Generic.parse(&generic[0]).unwrap();
    assert_eq!(o.agent.as_deref(), Some("invoice-bot"));
    assert_eq!(o.user_agent.as_deref(), Some("openai-python/1.40.0"));
}

#[test]
fn malformed_records_are_reported_with_their_reason() {
    let reason =
        |vendor: Vendor, name: &str, index: usize| vendor.parse(&fixture(name)[index]).unwrap_err();
    assert!(reason(Vendor::Zscaler, "zscaler", 4).contains("`datetime`"));
    assert!(reason(Vendor::Zscaler, "zscaler", 5).contains("`event`"));
    assert!(reason(Vendor::Zscaler, "zscaler", 6).contains("destination"));
    assert!(reason(Vendor::Netskope, "netskope", 3).contains("`timestamp`"));
    assert!(reason(Vendor::Mdca, "mdca", 5).contains("`domains`"));
    assert!(reason(Vendor::Mdca, "mdca", 6).contains("neither"));
    assert!(reason(Vendor::Infoblox, "infoblox", 5).contains("`qname`"));
    assert!(reason(Vendor::Infoblox, "infoblox", 6).contains("query log"));
    assert!(reason(Vendor::Generic, "generic", 4).contains("`agent`"));
    assert!(reason(Vendor::Generic, "generic", 5).contains("`host`"));
}

#[test]
fn configured_ai_domains_are_recognised() {
    let catalog = Catalog::new(&["llm.internal.acme.example=Acme LLM".into()], &[]).unwrap();
    let record = Vendor::Generic.parse(&fixture("generic")[2]).unwrap();
    assert_eq!(catalog.classify(&record).unwrap().name, "Acme LLM");
    assert_eq!(Catalog::default().classify(&record), None);
}

on_both_backends!(
    ingest_parses_each_vendor_and_builds_the_inventory,
    ingest_refuses_wrong_foreign_and_revoked_tokens,
    sources_hide_credentials_and_stay_in_their_tenant,
    sync_polls_due_pull_sources_from_a_local_export,
    owners_links_and_tenant_scoping_of_the_inventory,
    a_source_update_over_a_stale_read_changes_and_audits_nothing,
    a_tenant_admins_pull_endpoint_reaches_public_addresses_only,
);

async fn a_tenant_admins_pull_endpoint_reaches_public_addresses_only(app: TestApp) {
    let endpoint = netskope_export().await; // on 127.0.0.1
    let pull = |endpoint: &str| {
        json!({"name": "n", "vendor": "netskope", "mode": "pull", "endpoint": endpoint,
               "credentials": {"type": "token", "token": "ns-secret"}})
    };
    // A per-tenant admin may not make the control plane fetch internal services.
    for inward in [
        endpoint.as_str(),
        "https://10.0.0.5/export",
        "https://localhost/export",
        "https://[::1]/export",
        "https://169.254.169.254/latest/meta-data",
    ] {
        let (status, body) = app
            .post(GLOBEX, "/v1/admin/discovery/sources", pull(inward))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{inward}: {body}");
        assert!(body["error"].as_str().unwrap().contains("public"), "{body}");
    }
    // The superadmin may (an internal collector); a tenant admin may then rename the source, but
    // not point it elsewhere inside.
    let (id, _) = source(&app, "globex", "netskope", pull(&endpoint)).await;
    let uri = format!("/v1/admin/discovery/sources/{id}");
    assert_eq!(
        app.put(GLOBEX, &uri, json!({"name": "renamed"})).await.0,
        StatusCode::OK
    );
    let (status, _) = app
        .put(
            GLOBEX,
            &uri,
            json!({"endpoint": "https://192.168.1.9/export"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, report) = app.post(SYNC, "/api/discovery/sync", json!({})).await;
    assert_eq!(report["results"][0]["ok"], true, "{report}");
    // A source nobody vouched for (one stored before this rule) is refused when it is polled.
    sqlx::query("UPDATE discovery_sources SET private_reach = 0, next_poll_at = 0 WHERE id = $1")
        .bind(&id)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let (_, report) = app.post(SYNC, "/api/discovery/sync", json!({})).await;
    let error = report["results"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("public"), "{report}");
}

async fn a_source_update_over_a_stale_read_changes_and_audits_nothing(app: TestApp) {
    use intentgate_control_plane::auth::Admin;
    use intentgate_control_plane::discovery::sources::{self, SourceUpdate};
    use intentgate_control_plane::error::Error;

    let (id, _) = source(&app, "acme", "generic", json!({})).await;
    let admin = Admin::Tenant("acme".into());
    let stale = sources::get(&app.state.db, &admin, &id).await.unwrap();
    // Another admin renames it (at once: versions differ even within one millisecond).
    let uri = format!("/v1/admin/discovery/sources/{id}");
    let (status, _) = app.put(ACME, &uri, json!({"name": "renamed"})).await;
    assert_eq!(status, StatusCode::OK);
    let change = || -> SourceUpdate { serde_json::from_value(json!({"enabled": false})).unwrap() };
    let seed = app.state.keys.seed();
    let lost =
        sources::update_from(&app.state.recorder(), seed, &admin, stale.clone(), change()).await;
    assert!(matches!(lost, Err(Error::Conflict(_))), "{lost:?}");
    let (_, now) = app.get(ACME, &uri).await;
    assert_eq!(
        (now["name"].as_str(), now["enabled"].as_bool()),
        (Some("renamed"), Some(true))
    );
    app.delete(ACME, &uri).await;
    let gone = sources::update_from(&app.state.recorder(), seed, &admin, stale, change()).await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
    let updates = app
        .events("acme")
        .await
        .into_iter()
        .filter(|e| e["method"] == "admin/discovery_source_update")
        .count();
    assert_eq!(updates, 1, "only the rename was recorded");
}

/// Creates a source as the superadmin and returns (id, token).
pub async fn source(app: &TestApp, tenant: &str, vendor: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": format!("{vendor} feed"), "vendor": vendor, "tenant": tenant});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, created) = app.post(SUPER, "/v1/admin/discovery/sources", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

pub async fn ingest(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.call("POST", "/api/discovery/ingest", Some(token), Some(&body))
        .await
}

async fn ingest_parses_each_vendor_and_builds_the_inventory(app: TestApp) {
    for (vendor, records, imported, skipped, malformed, agents) in EXPECTED {
        let (_, token) = source(&app, "acme", vendor, json!({})).await;
        let body = if vendor == "mdca" {
            Value::Array(fixture(vendor))
        } else {
            json!({ "records": fixture(vendor) })
        };
        let (status, report) = ingest(&app, &token, body).await;
        assert_eq!(status, StatusCode::OK, "{vendor}: {report}");
        assert_eq!(report["ok"], true);
        let counts = [
            &report["received"],
            &report["imported"],
            &report["skipped"],
            &report["malformed"],
            &report["discovered"],
        ];
        assert_eq!(
            counts,
            [records, imported, skipped, malformed, agents]
                .map(Value::from)
                .each_ref(),
            "{vendor}: {report}"
        );
        assert_eq!(report["errors"].as_array().unwrap().len() as i64, malformed);
    }
    let (_, page) = app.get(ACME, "/v1/admin/discovery/agents?limit=1000").await;
    let agents = page["items"].as_array().unwrap();
    let find = |name: &str| {
        agents
            .iter()
            .find(|a| a["agent"] == name)
            .unwrap_or_else(|| panic!("{name}: {page}"))
    };
    let laptop = find("FIN-LT-0042");
    assert_eq!(laptop["kind"], "agent");
    assert_eq!(laptop["governed"], false);
    assert_eq!(laptop["services"].as_array().unwrap().len(), 2);
    assert_eq!(laptop["first_seen"], "2026-06-14T13:42:00Z");
    assert_eq!(laptop["last_seen"], "2026-06-14T13:45:10Z");
    assert!(
        laptop["risk_signals"]
            .as_array()
            .unwrap()
            .contains(&json!("blocked_by_source"))
    );
    let runner = find("ci-runner-3");
    assert_eq!(
        (&runner["kind"], &runner["risk"]),
        (&json!("mcp_client"), &json!("high"))
    );
    assert!(
        runner["risk_signals"]
            .as_array()
            .unwrap()
            .contains(&json!("direct_mcp"))
    );
    assert_eq!(find("invoice-bot")["services"].as_array().unwrap().len(), 2);
    assert_eq!(
        find("GLX-MAC-117")["kind"],
        "agent",
        "a program's call upgrades a browser user"
    );
    // Pushing the same batch again adds sightings, not agents.
    let before = agents.len();
    let (_, token) = source(&app, "acme", "generic", json!({})).await;
    ingest(&app, &token, json!(fixture("generic"))).await;
    let (_, again) = app.get(ACME, "/v1/admin/discovery/agents?limit=1000").await;
    assert_eq!(again["items"].as_array().unwrap().len(), before);
    let (_, sources) = app.get(ACME, "/v1/admin/discovery/sources").await;
    assert_eq!(sources["items"][0]["records_received"], 7);
    assert!(sources["items"][0]["last_ingest_at"].is_string());
}

async fn ingest_refuses_wrong_foreign_and_revoked_tokens(app: TestApp) {
    let (a, token_a) = source(&app, "acme", "generic", json!({})).await;
    let (_, token_b) = source(&app, "acme", "generic", json!({})).await;
    let batch = json!([{"host": "api.openai.com", "device": "d1"}]);
    assert_eq!(
        ingest(&app, &token_a, batch.clone()).await.0,
        StatusCode::OK
    );
    // Source a's id with source b's secret; an admin token; garbage; none.
    let secret_b = token_b.rsplit_once('_').unwrap().1;
    let forged = format!("igds_{a}_{secret_b}");
    for bad in [forged.as_str(), SUPER, "igds_nope", ""] {
        let (status, body) = ingest(&app, bad, batch.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
    }
    let (status, _) = app
        .call("POST", "/api/discovery/ingest", None, Some(&batch))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A bad body is named and changes nothing.
    let (status, body) = ingest(&app, &token_a, json!({"rows": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("records"),
        "{body}"
    );
    // Disabled, rotated and deleted sources' tokens stop working.
    app.put(
        SUPER,
        &format!("/v1/admin/discovery/sources/{a}"),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(
        ingest(&app, &token_a, batch.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.put(
        SUPER,
        &format!("/v1/admin/discovery/sources/{a}"),
        json!({"enabled": true}),
    )
    .await;
    let (status, rotated) = app
        .post(
            SUPER,
            &format!("/v1/admin/discovery/sources/{a}/token"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(
        ingest(&app, &token_a, batch.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ingest(&app, rotated["token"].as_str().unwrap(), batch.clone())
            .await
            .0,
        StatusCode::OK
    );
    app.delete(SUPER, &format!("/v1/admin/discovery/sources/{a}"))
        .await;
    assert_eq!(
        ingest(&app, rotated["token"].as_str().unwrap(), batch)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

async fn sources_hide_credentials_and_stay_in_their_tenant(app: TestApp) {
    let pull = json!({"mode": "pull", "endpoint": "https://tenant.goskope.com/api/v2/events/dataexport/events/page?operation=next&index=ig",
                      "credentials": {"type": "token", "token": "netskope-api-secret"}, "interval_seconds": 300});
    let (status, created) = app
        .post(
            ACME,
            "/v1/admin/discovery/sources",
            json!({"name": "ns", "vendor": "netskope"})
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain(pull.as_object().unwrap().clone())
                .collect::<serde_json::Map<_, _>>()
                .into(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let text = created.to_string();
    assert!(
        !text.contains("netskope-api-secret"),
        "credentials are never returned"
    );
    assert_eq!(
        (&created["tenant"], &created["has_credentials"]),
        (&json!("acme"), &json!(true))
    );
    assert!(created["token"].as_str().unwrap().starts_with("igds_"));
    let id = created["id"].as_str().unwrap();
    let (status, shown) = app
        .get(ACME, &format!("/v1/admin/discovery/sources/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(shown.get("token").is_none() && !shown.to_string().contains("netskope-api-secret"));
    // Another tenant's admin sees nothing of it.
    assert_eq!(
        app.get(GLOBEX, &format!("/v1/admin/discovery/sources/{id}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(GLOBEX, &format!("/v1/admin/discovery/sources/{id}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.get(GLOBEX, "/v1/admin/discovery/sources").await;
    assert_eq!(list["items"], json!([]));
    // Bad input is named and changes nothing.
    for (body, field) in [
        (json!({"name": "x", "vendor": "splunk"}), "vendor"),
        (
            json!({"name": "x", "vendor": "generic", "mode": "pull"}),
            "endpoint",
        ),
        (
            json!({"name": "x", "vendor": "generic", "mode": "pull", "endpoint": "http://logs.example/export"}),
            "https",
        ),
        (
            json!({"name": "x", "vendor": "generic", "endpoint": "https://logs.example"}),
            "pull",
        ),
        (
            json!({"name": "x", "vendor": "generic", "mode": "pull", "endpoint": "https://l.example", "interval_seconds": 5}),
            "interval_seconds",
        ),
        (
            json!({"name": "x", "vendor": "generic", "mode": "pull", "endpoint": "https://l.example", "credentials": {"type": "token"}}),
            "credentials",
        ),
        (json!({"name": "", "vendor": "generic"}), "name"),
    ] {
        let (status, error) = app
            .post(ACME, "/v1/admin/discovery/sources", body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error["error"].as_str().unwrap().contains(field),
            "{body}: {error}"
        );
    }
    let (_, list) = app.get(ACME, "/v1/admin/discovery/sources").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let events = app.events("acme").await;
    assert!(
        events
            .iter()
            .any(|e| e["method"] == "admin/discovery_source_create")
    );
}

/// A local export endpoint speaking Netskope's dataexport format; it answers only with the right
/// `Netskope-Api-Token`.
async fn netskope_export() -> String {
    async fn export(headers: HeaderMap) -> (StatusCode, axum::Json<Value>) {
        if headers
            .get("netskope-api-token")
            .and_then(|v| v.to_str().ok())
            != Some("ns-secret")
        {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({"ok": 0})));
        }
        (
            StatusCode::OK,
            axum::Json(json!({"ok": 1, "result": fixture("netskope"), "wait_time": 0})),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/api/v2/events/dataexport/events/page",
        axum::routing::get(export),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/api/v2/events/dataexport/events/page")
}

async fn sync_polls_due_pull_sources_from_a_local_export(app: TestApp) {
    let endpoint = netskope_export().await;
    let good = json!({"mode": "pull", "endpoint": endpoint, "credentials": {"type": "token", "token": "ns-secret"}, "interval_seconds": 600});
    let (ok_id, _) = source(&app, "globex", "netskope", good).await;
    let wrong = json!({"mode": "pull", "endpoint": endpoint, "credentials": {"type": "token", "token": "stale"}});
    let (bad_id, _) = source(&app, "globex", "netskope", wrong).await;
    source(&app, "globex", "generic", json!({})).await; // push: never polled
    let (status, report) = app.post(SYNC, "/api/discovery/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["polled"], &report["imported"], &report["ok"]),
        (&json!(2), &json!(2), &json!(false))
    );
    let results = report["results"].as_array().unwrap();
    let ok = results
        .iter()
        .find(|r| r["source"] == ok_id.as_str())
        .unwrap();
    assert_eq!(
        (&ok["ok"], &ok["malformed"], &ok["skipped"]),
        (&json!(true), &json!(2), &json!(1))
    );
    let failed = results
        .iter()
        .find(|r| r["source"] == bad_id.as_str())
        .unwrap();
    assert_eq!(failed["error"], "the endpoint answered HTTP 401");
    let (_, shown) = app
        .get(SUPER, &format!("/v1/admin/discovery/sources/{bad_id}"))
        .await;
    assert_eq!(shown["last_error"], "the endpoint answered HTTP 401");
    // Nothing is due again until the interval has passed.
    let (_, again) = app.post(SYNC, "/api/discovery/sync", json!({})).await;
    assert_eq!(again["polled"], 0);
    let (_, agents) = app.get(GLOBEX, "/v1/admin/discovery/agents").await;
    assert_eq!(agents["items"][0]["agent"], "GLX-MAC-117");
    // The sync token, not an admin's, runs the scheduler.
    assert_eq!(
        app.post(SUPER, "/api/discovery/sync", json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn owners_links_and_tenant_scoping_of_the_inventory(app: TestApp) {
    let (_, token) = source(&app, "acme", "generic", json!({})).await;
    ingest(
        &app,
        &token,
        json!([{"agent": "shadow-bot", "host": "api.openai.com"}]),
    )
    .await;
    let (_, other) = source(&app, "globex", "generic", json!({})).await;
    ingest(
        &app,
        &other,
        json!([{"agent": "globex-bot", "host": "api.openai.com"}]),
    )
    .await;
    let uri = "/v1/admin/discovery/agents/shadow-bot";
    let (status, updated) = app
        .put(ACME, uri, json!({"owner": "finance-platform@acme.example"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["owner"], "finance-platform@acme.example");
    assert!(
        !updated["risk_signals"]
            .as_array()
            .unwrap()
            .contains(&json!("unowned"))
    );
    // Link it to the gateway identity its calls are audited under: it becomes governed.
    app.mint("acme", "agent-finance-bot-7").await;
    let (_, linked) = app
        .put(
            ACME,
            uri,
            json!({"gateway_agent_id": "agent-finance-bot-7"}),
        )
        .await;
    assert_eq!(linked["gateway_agent_id"], "agent-finance-bot-7");
    assert_eq!(
        app.get(GLOBEX, uri).await.0,
        StatusCode::NOT_FOUND,
        "another tenant's agent"
    );
    assert_eq!(
        app.put(GLOBEX, uri, json!({"owner": "x"})).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, own) = app.get(GLOBEX, "/v1/admin/discovery/agents").await;
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
    let (_, all) = app.get(SUPER, "/v1/admin/discovery/agents?limit=1").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let cursor = all["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get(
            SUPER,
            &format!("/v1/admin/discovery/agents?limit=1&cursor={cursor}"),
        )
        .await;
    assert_ne!(next["items"][0]["agent"], all["items"][0]["agent"]);
    assert_eq!(
        app.get(ACME, &format!("/v1/admin/discovery/agents?cursor={cursor}"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (status, error) = app.put(ACME, uri, json!({"owner": null})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}
