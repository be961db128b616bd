//! Trusted issuers and exchange rules as admin resources, and JWK Sets fetched from their URLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::grants::{IDP, bearer, idp_claims};
use super::*;
use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, TestApp};

on_both_backends!(
    trusted_issuers_and_rules_are_confined_validated_and_audited,
    a_jwks_url_is_fetched_once_and_cached,
    a_tenant_admins_jwks_url_reaches_public_addresses_only,
);

async fn trusted_issuers_and_rules_are_confined_validated_and_audited(app: TestApp) {
    let idp = Signer::new(31, "k");
    let (status, issuer) = app
        .post(
            ACME,
            "/v1/admin/trusted-issuers",
            json!({"name": "Okta", "issuer": IDP, "jwks": idp.jwks(), "audiences": ["api://intentgate"],
                   "tenant": "globex"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issuer}");
    assert_eq!(issuer["tenant"], "acme");
    assert_eq!(issuer["audiences"], json!(["api://intentgate"]));
    let issuer_id = issuer["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            ACME,
            "/v1/admin/trusted-issuers",
            json!({"name": "again", "issuer": IDP, "jwks": idp.jwks()}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for bad in [
        json!({"name": "x", "issuer": IDP}),
        json!({"name": "x", "issuer": "https://b", "jwks": idp.jwks(), "jwks_uri": "https://b/jwks"}),
        json!({"name": "x", "issuer": "https://b", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        json!({"name": "x", "issuer": "https://b", "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519",
               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}}),
        json!({"name": "x", "issuer": "https://b", "jwks_uri": "http://idp.example.com/jwks"}),
        json!({"name": "x", "issuer": "https://b", "jwks": idp.jwks(), "audiences": []}),
        json!({"name": "", "issuer": "https://b", "jwks": idp.jwks()}),
    ] {
        let (status, body) = app
            .post(ACME, "/v1/admin/trusted-issuers", bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }
    let (status, rule) = app
        .post(
            ACME,
            "/v1/admin/exchange-rules",
            json!({"name": "agents", "trusted_issuer_id": issuer_id, "conditions": {"groups": ["agents"]},
                   "tools": ["echo"], "ttl_seconds": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(rule["subject_claim"], "sub");
    assert_eq!(rule["priority"], 100);
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    // A rule may only use its own tenant's trusted issuer.
    let (status, _) = app
        .post(
            GLOBEX,
            "/v1/admin/exchange-rules",
            json!({"name": "steal", "trusted_issuer_id": issuer_id, "tools": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for bad in [
        json!({"name": "x", "trusted_issuer_id": issuer_id, "conditions": {"groups": []}}),
        json!({"name": "x", "trusted_issuer_id": issuer_id, "tools": []}),
        json!({"name": "x", "trusted_issuer_id": issuer_id, "ttl_seconds": 99_999_999}),
        json!({"name": "x", "trusted_issuer_id": issuer_id, "subject_claim": ""}),
        json!({"name": "x"}),
    ] {
        let (status, body) = app
            .post(ACME, "/v1/admin/exchange-rules", bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }
    // Confinement: globex sees neither, and cannot change them.
    for uri in [
        format!("/v1/admin/trusted-issuers/{issuer_id}"),
        format!("/v1/admin/exchange-rules/{rule_id}"),
    ] {
        let (status, _) = app.get(GLOBEX, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.put(GLOBEX, &uri, json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.delete(GLOBEX, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.get(ACME, &uri).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, rules) = app.get(GLOBEX, "/v1/admin/exchange-rules").await;
    assert_eq!(rules["items"], json!([]));

    // The configured audience is the one accepted, and the rule maps the JWT.
    let claims = |aud: &str| idp_claims("dave", json!({"aud": aud, "groups": ["agents"]}));
    bearer(&app, &idp.sign(json!({}), &claims("api://intentgate")), &[])
        .await
        .token();
    bearer(
        &app,
        &idp.sign(json!({}), &claims(crate::support::ISSUER)),
        &[],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, updated) = app
        .put(
            ACME,
            &format!("/v1/admin/exchange-rules/{rule_id}"),
            json!({"conditions": {"groups": ["admins"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    bearer(&app, &idp.sign(json!({}), &claims("api://intentgate")), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");

    let (status, body) = app
        .delete(ACME, &format!("/v1/admin/trusted-issuers/{issuer_id}"))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an issuer its rules use stays: {body}"
    );
    let (status, _) = app
        .delete(ACME, &format!("/v1/admin/exchange-rules/{rule_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .delete(ACME, &format!("/v1/admin/trusted-issuers/{issuer_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let methods: Vec<String> = app
        .events("acme")
        .await
        .iter()
        .map(|e| e["method"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "oauth_issuer_create",
        "oauth_rule_create",
        "oauth_rule_update",
        "oauth_rule_delete",
        "oauth_issuer_delete",
    ] {
        assert!(
            methods.contains(&format!("admin/{action}")),
            "{action}: {methods:?}"
        );
    }
    assert!(app.events("globex").await.is_empty());
}

/// Serves the JWK Set held in `keys` at `/jwks` on a free loopback port, counting requests.
async fn jwks_server(keys: Arc<Mutex<Value>>, fetches: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (keys, fetches) = (keys.clone(), fetches.clone());
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                axum::Json(keys.lock().await.clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks")
}

async fn a_jwks_url_is_fetched_once_and_cached(app: TestApp) {
    let first = Signer::new(41, "key-1");
    let second = Signer::new(42, "key-2");
    let served = Arc::new(Mutex::new(first.jwks()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(served.clone(), fetches.clone()).await;
    let (status, issuer) = app
        .post(
            SUPER,
            "/v1/admin/trusted-issuers",
            json!({"name": "k8s", "tenant": "acme", "issuer": IDP, "jwks_uri": url}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issuer}");
    assert_eq!(issuer["jwks_uri"], url.as_str());
    let (status, _) = app
        .post(
            SUPER,
            "/v1/admin/exchange-rules",
            json!({"name": "all", "tenant": "acme", "trusted_issuer_id": issuer["id"], "tools": ["echo"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..3 {
        bearer(
            &app,
            &first.sign(json!({}), &idp_claims("svc", json!({}))),
            &[],
        )
        .await
        .token();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the set is cached");
    // The issuer rotates: a JWT naming a key the fresh cached set lacks is refused until the set is
    // older than the refetch interval (the refetch itself: `oauth::jwks`'s unit test).
    *served.lock().await = json!({"keys": [first.jwk(), second.jwk()]});
    let rotated = second.sign(json!({}), &idp_claims("svc", json!({})));
    bearer(&app, &rotated, &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "no refetch within the refetch interval"
    );
    // A signature by a key of the set that no cache holds never verifies by chance.
    bearer(
        &app,
        &Signer::new(43, "key-1").sign(json!({}), &idp_claims("svc", json!({}))),
        &[],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn a_tenant_admins_jwks_url_reaches_public_addresses_only(app: TestApp) {
    for url in [
        "http://127.0.0.1:9/jwks",
        "https://10.0.0.8/jwks",
        "https://localhost/jwks",
        "https://[::1]/jwks",
    ] {
        let (status, body) = app
            .post(
                ACME,
                "/v1/admin/trusted-issuers",
                json!({"name": "internal", "issuer": "https://internal", "jwks_uri": url}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(body["error"].as_str().unwrap().contains("public"), "{body}");
        let (status, _) = app
            .post(
                ACME,
                "/v1/admin/clients",
                json!({"name": "c", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": url}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}");
    }
    // The superadmin may point one inward; a tenant admin may then keep it, not set another.
    let (status, issuer) = app
        .post(
            SUPER,
            "/v1/admin/trusted-issuers",
            json!({"name": "cluster", "tenant": "acme", "issuer": "https://kubernetes.default.svc",
                   "jwks_uri": "https://10.96.0.1/openid/v1/jwks"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issuer}");
    let uri = format!(
        "/v1/admin/trusted-issuers/{}",
        issuer["id"].as_str().unwrap()
    );
    let (status, _) = app.put(ACME, &uri, json!({"name": "renamed"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(
            ACME,
            &uri,
            json!({"jwks_uri": "https://10.96.0.2/openid/v1/jwks"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
