//! Mint, revoke, revocations.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_control_plane::store::changes::Change;
use intentgate_core::memory::derive_memory_key;
use intentgate_core::token::{PublicKeys, verify};
use intentgate_proto::v1::sync_update;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, TestApp};

on_both_backends!(
    minted_tokens_verify_with_the_filters_code,
    tenant_admins_mint_for_their_own_tenant,
    mint_rejects_bad_bodies_naming_the_field,
    revoke_is_tenant_scoped_audited_and_announced,
    revocations_paginate_with_tamper_safe_cursors,
);

async fn minted_tokens_verify_with_the_filters_code(app: TestApp) {
    let (status, body) = app
        .post(
            SUPER,
            "/v1/admin/mint",
            json!({"subject": "agent-7", "tenant": "acme", "ttl_seconds": 600, "tools": ["read_*"],
                   "max_calls": 5, "step_up": true, "with_memory_signing_key": true, "issuer": "ops"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut keys = PublicKeys::new();
    keys.insert(app.state.keys.issuer().public());
    let token = verify(body["token"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(token.jti, body["jti"].as_str().unwrap());
    assert_eq!(
        (token.tenant.as_str(), token.subject.as_str()),
        ("acme", "agent-7")
    );
    assert_eq!(token.issuer, "ops");
    assert_eq!(token.expires_at - token.issued_at, 600);
    assert_eq!(token.tool_lists, vec![vec!["read_*".to_string()]]);
    assert!(token.step_up_at.is_some());
    let memory = derive_memory_key(app.state.keys.seed(), &token.jti);
    assert_eq!(
        body["memory_signing_key"],
        STANDARD.encode(memory.to_bytes())
    );
    assert_eq!(token.memory_key, Some(memory.verifying_key()));
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    // Without the flag there is no memory key.
    let (_, plain) = app
        .post(
            SUPER,
            "/v1/admin/mint",
            json!({"subject": "a", "tenant": "acme"}),
        )
        .await;
    assert!(plain.get("memory_signing_key").is_none());

    let events = app.events("acme").await;
    let mint = events.iter().find(|e| e["method"] == "admin/mint").unwrap();
    assert_eq!(mint["event"], "intentgate.admin");
    assert_eq!(mint["decision"], "allow");
    assert_eq!(mint["decided_by"], "superadmin");
    assert!(
        events
            .iter()
            .any(|e| e["capability_token_id"] == body["jti"])
    );
}

async fn tenant_admins_mint_for_their_own_tenant(app: TestApp) {
    let (status, body) = app
        .post(
            ACME,
            "/v1/admin/mint",
            json!({"subject": "a", "tenant": "globex"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = intentgate_core::token::read_unverified(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.authority.tenant, "acme");
    // The superadmin must say which tenant.
    let (status, body) = app
        .post(SUPER, "/v1/admin/mint", json!({"subject": "a"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("tenant"));
}

async fn mint_rejects_bad_bodies_naming_the_field(app: TestApp) {
    let cases = [
        (json!({"tenant": "acme"}), "subject"),
        (json!({"subject": 7, "tenant": "acme"}), "subject"),
        (
            json!({"subject": "a", "tenant": "acme", "ttl_seconds": "soon"}),
            "ttl_seconds",
        ),
        (
            json!({"subject": "a", "tenant": "acme", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"subject": "a", "tenant": "acme", "max_calls": -1}),
            "max_calls",
        ),
        (
            json!({"subject": "a", "tenant": "acme", "tools": "read"}),
            "tools",
        ),
        (
            json!({"subject": "a", "tenant": "acme", "step_up": "yes"}),
            "step_up",
        ),
        (
            json!({"subject": "a", "tenant": "acme", "colour": "red"}),
            "colour",
        ),
        (json!({"subject": "a", "tenant": "not a tenant"}), "tenant"),
        (json!({"subject": "a", "tenant": "_system"}), "reserved"),
        (json!({"subject": "", "tenant": "acme"}), "subject"),
        (
            json!({"subject": "a", "tenant": "acme", "step_up": null}),
            "step_up",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post(SUPER, "/v1/admin/mint", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(field), "{body}: {error}");
    }
    let (status, answer) = app
        .send("POST", "/v1/admin/mint", Some(SUPER), b"{not json".to_vec())
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let huge = format!(
        r#"{{"subject": "{}", "tenant": "acme"}}"#,
        "x".repeat(1024 * 1024 + 1)
    );
    let (status, _) = app
        .send("POST", "/v1/admin/mint", Some(SUPER), huge.into_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .send("POST", "/v1/admin/mint", Some(SUPER), Vec::new())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing was minted by any of them.
    assert!(app.events("acme").await.is_empty());
    assert!(app.events("_system").await.is_empty());
}

async fn revoke_is_tenant_scoped_audited_and_announced(app: TestApp) {
    let mut changes = app.state.changes.subscribe();
    let acme_jti = app.mint("acme", "agent-a").await;
    let globex_jti = app.mint("globex", "agent-g").await;

    let (status, body) = app
        .post(ACME, "/v1/admin/revoke", json!({"reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("jti"));
    // A jti not minted here: the superadmin must say in which tenant.
    let (status, body) = app
        .post(SUPER, "/v1/admin/revoke", json!({"jti": "01JCLI"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("tenant"), "{body}");
    let (status, _) = app
        .post(
            SUPER,
            "/v1/admin/revoke",
            json!({"jti": "01JCLI", "tenant": "_system"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no change in a tenant of its own"
    );
    assert!(changes.try_recv().is_err(), "nothing was revoked");

    let (status, body) = app
        .post(
            ACME,
            "/v1/admin/revoke",
            json!({"jti": acme_jti, "reason": "rotation", "tenant": "globex"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        changes.try_recv().unwrap().change,
        Change::TokenRevoked {
            tenant: "acme".into(),
            jti: acme_jti.clone()
        },
        "a tenant admin's tenant is its own, whatever it names"
    );
    // Revoking again changes nothing and announces nothing; the superadmin's tenant defaults to
    // the one the token was minted for.
    let (status, _) = app
        .post(SUPER, "/v1/admin/revoke", json!({"jti": acme_jti}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(changes.try_recv().is_err());

    // Another tenant's jti named by acme's admin is revoked in acme only: globex's token is not
    // reached, and nothing tells acme that globex has such a token.
    let (status, _) = app
        .post(ACME, "/v1/admin/revoke", json!({"jti": globex_jti}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        changes.try_recv().unwrap().change,
        Change::TokenRevoked {
            tenant: "acme".into(),
            jti: globex_jti.clone()
        }
    );
    // A token minted elsewhere (the CLI) or derived: any jti, in the tenant named.
    let (status, _) = app
        .post(
            SUPER,
            "/v1/admin/revoke",
            json!({"jti": "01JCLI", "tenant": "globex", "reason": "leaked"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, list) = app.get(ACME, "/v1/admin/revocations?tenant=globex").await;
    let items = list["items"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["jti"].as_str().unwrap(), i["tenant"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [(globex_jti.as_str(), "acme"), (acme_jti.as_str(), "acme")]
    );
    assert_eq!(items[1]["reason"], "rotation");
    assert!(list["next_cursor"].is_null());
    let (_, globex) = app.get(GLOBEX, "/v1/admin/revocations").await;
    let globex: Vec<&str> = globex["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["jti"].as_str().unwrap())
        .collect();
    assert_eq!(globex, ["01JCLI"]);

    let revokes: Vec<_> = app
        .events("acme")
        .await
        .into_iter()
        .filter(|e| e["method"] == "admin/revoke")
        .collect();
    assert_eq!(revokes.len(), 2, "newest first");
    assert_eq!(revokes[1]["capability_token_id"], acme_jti.as_str());
    assert_eq!(revokes[1]["root_capability_token_id"], acme_jti.as_str());
    assert_eq!(revokes[1]["agent_id"], "agent-a");
    assert_eq!(revokes[1]["decided_by"], "tenant-admin:acme");
    assert_eq!(revokes[0]["capability_token_id"], globex_jti.as_str());
    assert_eq!(
        (
            revokes[0]["agent_id"].as_str(),
            revokes[0]["root_capability_token_id"].as_str()
        ),
        (Some(""), Some("")),
        "nothing of globex's token shows in acme's chain"
    );
    let globex_revokes = app
        .events("globex")
        .await
        .into_iter()
        .filter(|e| e["method"] == "admin/revoke")
        .count();
    assert_eq!(globex_revokes, 1);

    // Filters get every revocation with its tenant, those of tokens not minted here included.
    let snapshot = intentgate_control_plane::filters::state::snapshot(&app.state.db)
        .await
        .unwrap();
    let Some(sync_update::Kind::Snapshot(snapshot)) = snapshot.kind else {
        panic!("not a snapshot");
    };
    let sent: Vec<(String, String)> = snapshot
        .revocations
        .into_iter()
        .map(|r| (r.tenant, r.jti))
        .collect();
    assert_eq!(
        sent,
        [
            ("acme".to_string(), acme_jti.clone()),
            ("acme".to_string(), globex_jti.clone()),
            ("globex".to_string(), "01JCLI".to_string()),
        ]
    );
}

async fn revocations_paginate_with_tamper_safe_cursors(app: TestApp) {
    let mut jtis = Vec::new();
    for i in 0..5 {
        let jti = app.mint("acme", &format!("agent-{i}")).await;
        let (status, _) = app
            .post(SUPER, "/v1/admin/revoke", json!({"jti": jti}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        jtis.push(jti);
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/admin/revocations?tenant=acme&limit=2".to_string();
    let mut last_cursor = String::new();
    loop {
        let (status, page) = app.get(SUPER, &uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["jti"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                last_cursor = cursor.to_owned();
                uri = format!("/v1/admin/revocations?tenant=acme&limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    jtis.reverse();
    assert_eq!(seen, jtis, "newest first, each once");

    // A cursor is bound to its tenant scope and cannot be forged.
    let (status, _) = app
        .get(
            GLOBEX,
            &format!("/v1/admin/revocations?cursor={last_cursor}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .get(
            SUPER,
            &format!("/v1/admin/revocations?cursor={last_cursor}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut forged = last_cursor.clone().into_bytes();
    forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let (status, _) = app
        .get(
            SUPER,
            &format!("/v1/admin/revocations?tenant=acme&cursor={forged}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for limit in ["0", "1001", "x", "-5"] {
        let (status, body) = app
            .get(SUPER, &format!("/v1/admin/revocations?limit={limit}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}");
        assert!(body["error"].as_str().unwrap().contains("limit"));
    }
    let (status, page) = app.get(SUPER, "/v1/admin/revocations?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
}
